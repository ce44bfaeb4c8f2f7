"""Which trackers a launch uses, from the CLI, the launching env and ``.torchxconfig``.

Precedence, highest first (written down once here and tested in ``tests/launcher_plugin``):

1. ``torchx run --tracker NAME[=CONFIG]`` (repeatable). When given, exactly these trackers are
   used. A flag without ``=CONFIG`` takes the config from (2) or (3).
2. The launching shell's ``TORCHX_TRACKERS`` and ``TORCHX_TRACKER_<NAME>_CONFIG``.
3. ``.torchxconfig``: the keys of ``[torchx:tracker]`` and ``[tracker:NAME] config=...``.

(2) over (3) is TorchX's own rule (``torchx.runner.api.get_configured_trackers``).
The parent run id follows the same order: ``--parent-run-id`` > ``TORCHX_PARENT_RUN_ID``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from torchx.runner.config import get_config, get_configs

from trackers.env import (
    ENV_TORCHX_TRACKERS,
    parse_tracker_names,
    tracker_config_env_var_name,
    validate_tracker_name,
)
from trackers.errors import TrackerConfigError


@dataclass(frozen=True)
class TrackerSpec:
    """One ``--tracker`` flag: a tracker name and its optional config string."""

    name: str
    config: str | None = None

    @classmethod
    def parse(cls, flag: str) -> TrackerSpec:
        """``fsspec=file:///data/runs`` -> ``TrackerSpec("fsspec", "file:///data/runs")``.

        The config is everything after the first ``=``, kept byte for byte.
        """
        name, sep, config = flag.partition("=")
        name = name.strip()
        if not name:
            raise TrackerConfigError(
                f"--tracker {flag!r}: expected NAME or NAME=CONFIG, e.g. fsspec=file:///data/runs"
            )
        try:
            validate_tracker_name(name)
        except TrackerConfigError as e:
            raise TrackerConfigError(f"--tracker {flag!r}: {e}") from None
        return cls(name, config if sep else None)

    @classmethod
    def from_flag(cls, flag: str) -> TrackerSpec:
        """:meth:`parse` as an argparse ``type=``: a bad flag is a usage error."""
        try:
            return cls.parse(flag)
        except TrackerConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None


def _torchxconfig_trackers(dirs: Sequence[str] | None) -> list[str]:
    return list(get_configs(prefix="torchx", name="tracker", dirs=dirs).keys())


def _torchxconfig_config(name: str, dirs: Sequence[str] | None) -> str | None:
    value = get_config(prefix="tracker", name=name, key="config", dirs=dirs)
    return value if value else None


def resolve_trackers(
    cli: Sequence[TrackerSpec],
    environ: Mapping[str, str],
    dirs: Sequence[str] | None = None,
) -> dict[str, str | None]:
    """Tracker name -> config for a launch, by the precedence in the module docstring."""
    if cli:
        names = []
        for spec in cli:
            if spec.name in names:
                raise TrackerConfigError(f"--tracker {spec.name!r} is given more than once")
            names.append(spec.name)
        given = {s.name: s.config for s in cli}
    elif ENV_TORCHX_TRACKERS in environ:
        names = parse_tracker_names(environ[ENV_TORCHX_TRACKERS])
        given = {}
    else:
        names = parse_tracker_names(",".join(_torchxconfig_trackers(dirs)))
        given = {}
    resolved: dict[str, str | None] = {}
    for name in names:
        config = given.get(name)
        if config is None:
            config = environ.get(tracker_config_env_var_name(name))
        if config is None:
            config = _torchxconfig_config(name, dirs)
        resolved[name] = config
    return resolved
