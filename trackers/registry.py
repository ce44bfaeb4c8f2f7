"""Tracker names -> factories, resolved the same way whatever the install order.

A factory is anything registered in the ``torchx.tracker`` entry-point group with TorchX's
signature ``(config: str | None) -> TrackerBase``. Resolution order for a name:

1. this package's built-in backends (:data:`BUILTIN_TRACKERS`) - so ``fsspec`` always means our
   fsspec backend for our ``AppRun``, although TorchX registers its own ``fsspec`` entry point;
2. the ``torchx.tracker`` entry points. If several distributions register one name, the one whose
   distribution name sorts first wins and a warning names all of them (importlib-metadata would
   otherwise pick by directory-listing order);
3. on a TorchX with a plugin registry (torchx-nightly), trackers registered with
   ``@register.tracker`` in a ``torchx_plugins.tracker`` namespace package, looked up only when
   the name is not found above (discovery imports every plugin module, as TorchX's does).

Entry points are loaded only when their name is used, so an unused backend costs no import.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import importlib_metadata
from torchx.tracker.api import TrackerBase

from trackers.env import validate_tracker_name
from trackers.errors import TrackerConfigError, TrackerNotFoundError
from trackers.redact import redact
from trackers.torchx_compat import has_plugin_registry, plugin_tracker_factories

logger: logging.Logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "torchx.tracker"

TrackerFactory = Callable[[str | None], TrackerBase]

#: Our backends, by the names users type. Values are ``module:attr`` so nothing is imported early.
BUILTIN_TRACKERS: Mapping[str, str] = MappingProxyType(
    {
        "fsspec": "trackers.backends.fsspec:create_tracker",
        "lineage_fsspec": "trackers.backends.fsspec:create_tracker",
        "mlflow": "trackers.backends.mlflow:create_tracker",
        "s3": "trackers.backends.s3:create_tracker",
        "openlineage": "trackers.backends.openlineage:create_tracker",
    }
)

#: What to install when a backend's optional dependency is missing.
INSTALL_HINTS: Mapping[str, str] = MappingProxyType(
    {
        "mlflow": "pip install 'torchx-lineage[mlflow]'",
        "s3": "pip install 'torchx-lineage[s3]'",
        "openlineage": "pip install 'torchx-lineage[openlineage]'",
    }
)


@dataclass(frozen=True)
class FactorySpec:
    """Where a tracker name's factory comes from."""

    name: str
    target: str  # "module:attr"
    distribution: str  # who registered it ("torchx-lineage (built-in)" for ours)


def tracker_specs() -> dict[str, FactorySpec]:
    """Every known tracker name and the factory it resolves to."""
    candidates: dict[str, list[FactorySpec]] = {}
    for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "<unknown>"
        candidates.setdefault(ep.name, []).append(FactorySpec(ep.name, ep.value, dist))
    resolved: dict[str, FactorySpec] = {}
    for name, specs in candidates.items():
        distinct = sorted({(s.distribution, s.target) for s in specs})
        if len(distinct) > 1 and name not in BUILTIN_TRACKERS:
            logger.warning(
                "tracker name %r is registered by several distributions: %s; using %s",
                name,
                ", ".join(f"{d} ({t})" for d, t in distinct),
                distinct[0][0],
            )
        resolved[name] = FactorySpec(name, distinct[0][1], distinct[0][0])
    for name, target in BUILTIN_TRACKERS.items():
        resolved[name] = FactorySpec(name, target, "torchx-lineage (built-in)")
    return dict(sorted(resolved.items()))


def resolve_factory(name: str) -> TrackerFactory:
    """The factory for ``name``; raises :class:`TrackerNotFoundError` listing the known names."""
    validate_tracker_name(name)
    specs = tracker_specs()
    spec = specs.get(name)
    if spec is None:
        registered = plugin_tracker_factories()
        if name in registered:
            return registered[name]
        known = sorted(set(specs) | set(registered))
        raise TrackerNotFoundError(
            f"unknown tracker {name!r}; known trackers: {', '.join(known) or '(none)'}. "
            f"A tracker is a factory registered in the {ENTRY_POINT_GROUP!r} entry-point group"
            + (" or with TorchX's @register.tracker" if has_plugin_registry() else "")
        )
    try:
        factory = importlib_metadata.EntryPoint(
            name=name, value=spec.target, group=ENTRY_POINT_GROUP
        ).load()
    except ImportError as e:
        hint = INSTALL_HINTS.get(name, f"install the package that provides {spec.target}")
        raise TrackerConfigError(
            f"tracker {name!r} ({spec.target}) cannot be loaded: {e}. {hint}"
        ) from e
    if not callable(factory):
        raise TrackerConfigError(f"tracker {name!r}: {spec.target} is not callable")
    return factory  # type: ignore[no-any-return]


def create_tracker(name: str, config: str | None, *, origin: str) -> TrackerBase:
    """Build tracker ``name`` from ``config``; errors name ``origin`` (an env var or a flag)."""
    factory = resolve_factory(name)
    try:
        return factory(config)
    except TrackerConfigError as e:
        raise TrackerConfigError(redact(f"{origin}={config!r}: {e}")) from None
    except Exception as e:
        raise TrackerConfigError(
            redact(
                f"{origin}={config!r}: tracker {name!r} could not be created: "
                f"{type(e).__name__}: {e}"
            )
        ) from e
