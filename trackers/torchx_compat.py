"""The one place that knows which TorchX is installed: torchx 0.7.0 or torchx-nightly.

Both distributions install the ``torchx`` import package; their APIs differ where this package
touches them. Everything that differs is answered here, and every private (underscore) TorchX
name we rely on is listed in :data:`PRIVATE_APIS`, which ``tests/test_torchx_compat_apis.py``
checks against the installed TorchX, so a move fails one test with a clear message instead of a
user's ``torchx`` command.

What differs (seen with torchx 0.7.0 and torchx-nightly 2026.10.26):

* ``ENV_TORCHX_JOB_ID``/``_TRACKERS``/``_PARENT_RUN_ID`` moved from ``torchx.tracker.api`` to
  ``torchx.settings`` (no re-export).
* ``AppDryRunInfo._app``/``._cfg`` became public ``app``/``cfg``.
* ``CmdRun._wait_and_exit(runner, handle, log)`` (exits unless SUCCEEDED) became
  ``CmdRun._wait(runner, handle, log, tee_logs)`` (returns the status).
* ``DEFAULT_SCHEDULER_MODULES`` lost aws_batch, aws_sagemaker, gcp_batch, kubernetes_mcad, ray
  and lsf; nightly adds plugins before the built-ins, 0.7.0 lets one ``torchx.schedulers``
  entry point hide every built-in.
* nightly has a plugin registry (``torchx.plugins``: ``torchx_plugins.*`` namespace packages
  beside the entry points) through which trackers may be registered.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

try:
    import torchx
except ImportError as _missing:  # pragma: no cover - exercised only without TorchX
    raise ImportError(
        "torchx-lineage needs TorchX, and no `torchx` package is importable. Install it with "
        "the extra for your TorchX: pip install 'torchx-lineage[torchx]' (the torchx release) "
        "or pip install 'torchx-lineage[nightly]' (torchx-nightly)"
    ) from _missing

try:  # torchx-nightly
    from torchx.settings import (  # type: ignore[import-not-found,unused-ignore]
        ENV_TORCHX_JOB_ID,
        ENV_TORCHX_PARENT_RUN_ID,
        ENV_TORCHX_TRACKERS,
    )
except ImportError:  # torchx 0.7.0
    from torchx.tracker.api import (
        ENV_TORCHX_JOB_ID,
        ENV_TORCHX_PARENT_RUN_ID,
        ENV_TORCHX_TRACKERS,
    )

__all__ = [
    "ENV_TORCHX_JOB_ID",
    "ENV_TORCHX_PARENT_RUN_ID",
    "ENV_TORCHX_TRACKERS",
    "PRIVATE_APIS",
    "TORCHX_VERSION",
    "dryrun_app",
    "dryrun_cfg",
    "has_plugin_registry",
    "install_tracked_schedulers",
    "plugin_tracker_factories",
    "torchx_distribution",
]

#: The installed TorchX's version string (``0.7.0``, ``2026.10.26``...).
TORCHX_VERSION: str = getattr(torchx, "__version__", "unknown")


def torchx_distribution() -> str:
    """The distribution that installed the ``torchx`` package: ``torchx`` or ``torchx-nightly``."""
    import importlib.metadata

    names = importlib.metadata.packages_distributions().get("torchx", [])
    return names[0] if names else "torchx"


#: Private TorchX names this package relies on: (module, attribute, which TorchX, what for).
#: ``which`` is ``"all"``, ``"release"`` (0.7.0: no plugin registry) or ``"nightly"`` (has one).
#: ``tests/test_torchx_private_apis.py`` asserts the installed TorchX has each that applies.
PRIVATE_APIS: tuple[tuple[str, str, str, str], ...] = (
    ("torchx.cli.cmd_run", "_parse_component_name_and_args", "all", "launch record component"),
    ("torchx.schedulers.api", "Scheduler._submit_dryrun", "all", "tracking env into the request"),
    ("torchx.specs.api", "AppDryRunInfo._scheduler", "all", "launch record scheduler name"),
    ("torchx.schedulers", "DEFAULT_SCHEDULER_MODULES", "all", "tracked schedulers (a dict)"),
    ("torchx.specs.api", "AppDryRunInfo._app", "release", "the submitted AppDef"),
    ("torchx.cli.cmd_run", "CmdRun._wait_and_exit", "release", "reconcile after waiting"),
    ("torchx.cli.cmd_run", "CmdRun._wait", "nightly", "reconcile after waiting"),
    ("torchx.cli.cmd_run", "CmdRun._get_torchx_stdin_args", "nightly", "--stdin component"),
)


def dryrun_app(info: Any) -> Any:
    """The ``AppDef`` a dryrun info was made from (``_app`` on 0.7.0, ``app`` on nightly)."""
    return info.app if hasattr(info, "app") else info._app


def dryrun_cfg(info: Any) -> Mapping[str, Any]:
    """The scheduler cfg of a dryrun info (``_cfg`` on 0.7.0, ``cfg`` on nightly)."""
    cfg = info.cfg if hasattr(info, "cfg") else info._cfg
    return dict(cfg or {})


def has_plugin_registry() -> bool:
    """Whether this TorchX discovers plugins through ``torchx.plugins`` (nightly)."""
    try:
        import torchx.plugins  # noqa: F401
    except ImportError:
        return False
    return True


def plugin_tracker_factories() -> dict[str, Callable[..., Any]]:
    """Trackers registered through TorchX's plugin registry (nightly), entry points included.

    Empty on a TorchX without the registry. Reading the registry honours
    ``TORCHX_PLUGINS_SOURCE`` exactly as TorchX does, because it is TorchX's own registry.
    """
    if not has_plugin_registry():
        return {}
    from torchx import plugins

    return dict(plugins.registry().get(plugins.PluginType.TRACKER))


#: The module name prefix under which tracked scheduler modules are registered.
_TRACKED_PREFIX = "launcher_plugin.tracked_schedulers."


def install_tracked_schedulers(
    wrap: Callable[[Any, str], Any],
) -> dict[str, str]:
    """Route every scheduler TorchX ships through ``wrap(scheduler, name)``; idempotent.

    TorchX builds its default schedulers from ``torchx.schedulers.DEFAULT_SCHEDULER_MODULES``
    (name -> module with ``create_scheduler``) each time it lists them, on 0.7.0 and nightly
    alike. Each value is pointed at a module of ours whose ``create_scheduler`` calls TorchX's
    module and wraps the result, so the names, their order (the first is TorchX's default
    scheduler) and the set of schedulers stay exactly what the installed TorchX ships. We do not
    register ``torchx.schedulers`` entry points: on 0.7.0 one entry hides all built-ins and
    setuptools sorts entries by name (``aws_batch`` would become the default), and on nightly
    plugins come first and names it no longer ships would appear.

    Returns the mapping of scheduler name -> TorchX's own module, as it was before.
    """
    from torchx import schedulers

    table: dict[str, str] = schedulers.DEFAULT_SCHEDULER_MODULES  # a plain dict on both
    originals: dict[str, str] = {}
    for name, path in list(table.items()):
        if path.startswith(_TRACKED_PREFIX):  # already installed
            module = sys.modules[path]
            originals[name] = module.TORCHX_MODULE
            continue
        tracked = types.ModuleType(_TRACKED_PREFIX + name)
        tracked.TORCHX_MODULE = path  # type: ignore[attr-defined]
        tracked.create_scheduler = _tracked_factory(path, name, wrap)  # type: ignore[attr-defined]
        sys.modules[tracked.__name__] = tracked
        table[name] = tracked.__name__
        originals[name] = path
    return originals


def _tracked_factory(path: str, name: str, wrap: Callable[[Any, str], Any]) -> Callable[..., Any]:
    def create_scheduler(session_name: str, **kwargs: Any) -> Any:
        import importlib

        module = importlib.import_module(path)
        return wrap(module.create_scheduler(session_name, **kwargs), name)

    create_scheduler.__doc__ = f"TorchX's {name!r} scheduler ({path}), tracked."
    return create_scheduler
