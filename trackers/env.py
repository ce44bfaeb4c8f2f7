"""The environment contract between the launcher and the job: the one place that names it.

The names are TorchX's own (``torchx.tracker.api`` on 0.7.0, ``torchx.settings`` on nightly;
:mod:`trackers.torchx_compat` knows which), so a job that uses TorchX's ``AppRun`` reads
exactly what our launcher writes, and ours reads what TorchX's runner writes:

``TORCHX_JOB_ID``
    The run id: the app handle that ``torchx run`` prints (``local_cwd://torchx/train-x1``).
``TORCHX_TRACKERS``
    Comma-separated tracker names, resolved through the ``torchx.tracker`` entry points.
``TORCHX_TRACKER_<NAME>_CONFIG``
    The config string handed to tracker ``NAME``'s factory (``NAME`` upper-cased).
``TORCHX_PARENT_RUN_ID``
    The run this one was derived from; recorded as a source when the run starts.

Our additions (TorchX ignores them), all read in the job:

``TORCHX_TRACKER_STRICT``
    ``1``/``true``: a tracking failure inside the job raises instead of being logged.
``TORCHX_TRACKER_ALL_RANKS``
    ``1``: every rank logs metrics (each point tagged with its rank); default: global rank 0 only.
``TORCHX_TRACKER_MAX_QUEUED``
    Points the background writer may hold before back-pressure applies (default 1000000).
``TORCHX_TRACKER_BACKPRESSURE``
    ``block`` (default: ``log`` waits for room, nothing is lost) or ``drop`` (new points are
    discarded and counted in the metric ``tracking/dropped_points``).
``TORCHX_TRACKER_FLUSH_INTERVAL``
    Seconds between background writes (default 1.0).
``TORCHX_TRACKER_SHUTDOWN_TIMEOUT``
    Seconds the exit-time flush may take (default 30).
``TORCHX_TRACKER_CAPTURE_TENSORBOARD``
    ``1``: ``torch.utils.tensorboard`` ``SummaryWriter.add_scalar(s)`` calls are also logged.
``TORCHX_TRACKER_SPOOL_DIR``
    Where writes wait until their backend has taken them (default
    ``~/.cache/torchx-lineage/spool``; ``off``: in memory only). See :mod:`trackers.spool`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from trackers.config_options import bool_word
from trackers.errors import TrackerConfigError
from trackers.torchx_compat import (
    ENV_TORCHX_JOB_ID,
    ENV_TORCHX_PARENT_RUN_ID,
    ENV_TORCHX_TRACKERS,
)

__all__ = [
    "ENV_TORCHX_JOB_ID",
    "ENV_TORCHX_PARENT_RUN_ID",
    "ENV_TORCHX_TRACKERS",
    "ENV_TORCHX_TRACKER_ALL_RANKS",
    "ENV_TORCHX_TRACKER_BACKPRESSURE",
    "ENV_TORCHX_TRACKER_CAPTURE_TENSORBOARD",
    "ENV_TORCHX_TRACKER_FLUSH_INTERVAL",
    "ENV_TORCHX_TRACKER_MAX_QUEUED",
    "ENV_TORCHX_TRACKER_SHUTDOWN_TIMEOUT",
    "ENV_TORCHX_TRACKER_SPOOL_DIR",
    "ENV_TORCHX_TRACKER_STRICT",
    "bool_from_env",
    "number_from_env",
    "TRACKER_NAME_PATTERN",
    "UNDEFINED_JOB_ID",
    "parse_tracker_names",
    "strict_from_env",
    "tracker_config_env_var_name",
    "tracker_env",
    "validate_tracker_name",
]

ENV_TORCHX_TRACKER_STRICT = "TORCHX_TRACKER_STRICT"
ENV_TORCHX_TRACKER_ALL_RANKS = "TORCHX_TRACKER_ALL_RANKS"
ENV_TORCHX_TRACKER_MAX_QUEUED = "TORCHX_TRACKER_MAX_QUEUED"
ENV_TORCHX_TRACKER_BACKPRESSURE = "TORCHX_TRACKER_BACKPRESSURE"
ENV_TORCHX_TRACKER_FLUSH_INTERVAL = "TORCHX_TRACKER_FLUSH_INTERVAL"
ENV_TORCHX_TRACKER_SHUTDOWN_TIMEOUT = "TORCHX_TRACKER_SHUTDOWN_TIMEOUT"
ENV_TORCHX_TRACKER_CAPTURE_TENSORBOARD = "TORCHX_TRACKER_CAPTURE_TENSORBOARD"
ENV_TORCHX_TRACKER_SPOOL_DIR = "TORCHX_TRACKER_SPOOL_DIR"

#: The job id TorchX's ``AppRun.run_from_env`` uses when the process was not launched by TorchX.
UNDEFINED_JOB_ID = "<UNDEFINED>"

#: A tracker name becomes part of an env var name, which bash, Kubernetes and Slurm all accept
#: only in this form.
TRACKER_NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def validate_tracker_name(name: str) -> str:
    """Return ``name`` if it can be part of ``TORCHX_TRACKER_<NAME>_CONFIG``, else raise."""
    if not TRACKER_NAME_PATTERN.fullmatch(name):
        raise TrackerConfigError(
            f"tracker name {name!r} is not usable: it becomes part of the env var "
            f"TORCHX_TRACKER_<NAME>_CONFIG, so it must match [A-Za-z][A-Za-z0-9_]* "
            f"(letters, digits and '_', starting with a letter)"
        )
    return name


def tracker_config_env_var_name(name: str) -> str:
    """``fsspec`` -> ``TORCHX_TRACKER_FSSPEC_CONFIG`` (the same rule as TorchX)."""
    return f"TORCHX_TRACKER_{name.upper()}_CONFIG"


def parse_tracker_names(value: str) -> list[str]:
    """Split and validate a ``TORCHX_TRACKERS`` value; empty items are ignored, order is kept."""
    names: list[str] = []
    for raw in value.split(","):
        name = raw.strip()
        if not name:
            continue
        try:
            validate_tracker_name(name)
        except TrackerConfigError as e:
            raise TrackerConfigError(f"{ENV_TORCHX_TRACKERS}={value!r}: {e}") from None
        if name not in names:
            names.append(name)
    return names


def tracker_env(
    trackers: Mapping[str, str | None], job_id: str | None, parent_run_id: str | None
) -> dict[str, str]:
    """The env entries that configure ``trackers`` for a job (the launcher's side)."""
    env: dict[str, str] = {}
    if job_id is not None:
        env[ENV_TORCHX_JOB_ID] = job_id
    if parent_run_id:
        env[ENV_TORCHX_PARENT_RUN_ID] = parent_run_id
    if trackers:
        env[ENV_TORCHX_TRACKERS] = ",".join(validate_tracker_name(n) for n in trackers)
    for name, config in trackers.items():
        if config is not None:
            env[tracker_config_env_var_name(name)] = config
    return env


def bool_from_env(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """A yes/no env var (``1/true/yes/on`` or ``0/false/no/off``; unset means no)."""
    env = os.environ if environ is None else environ
    raw = env.get(name, "").strip().lower()
    found = bool_word(raw) if raw else False
    if found is not None:
        return found
    raise TrackerConfigError(f"{name}={raw!r}: expected one of 1/true/yes/on or 0/false/no/off")


def number_from_env(
    name: str, default: float, environ: Mapping[str, str] | None = None, *, minimum: float = 0.0
) -> float:
    """A number env var, ``default`` when unset; raises naming the var when malformed."""
    env = os.environ if environ is None else environ
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value >= minimum:
        raise TrackerConfigError(f"{name}={raw!r}: expected a number >= {minimum:g}")
    return value


def strict_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``TORCHX_TRACKER_STRICT`` asks for tracking failures to be fatal."""
    return bool_from_env(ENV_TORCHX_TRACKER_STRICT, environ)
