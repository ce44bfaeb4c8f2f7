"""Job-side tracking for TorchX: ``AppRun.run_from_env()`` and the tracker backends.

Usage in a job launched with ``torchx run --tracker fsspec=/data/runs ...``::

    from trackers import AppRun

    run = AppRun.run_from_env()
    run.add_metadata(lr=0.1, batch_size=32)
    run.add_artifact("model", "/data/ckpt/model.pt")
    for step in range(100):
        trackers.log({"loss": 1.0 / (step + 1)}, step=step)  # returns at once
    run.log_summary({"best_loss": 0.01})
    print(run.lineage())

Importing this package imports no optional dependency (mlflow, boto3, torch).
"""

from collections.abc import Mapping

from trackers.api import LineageTracker
from trackers.app_run import (
    AppRun,
    RunSettings,
    current_run,
    reset_current_run,
    trackers_from_env,
)
from trackers.errors import (
    RunNotFoundError,
    TrackerConfigError,
    TrackerError,
    TrackerNotFoundError,
)
from trackers.types import LineageEdge, LinkedRun, MetricPoint, RunLineage, RunStatus

__all__ = [
    "AppRun",
    "LineageEdge",
    "LineageTracker",
    "LinkedRun",
    "MetricPoint",
    "RunLineage",
    "RunSettings",
    "RunStatus",
    "RunNotFoundError",
    "TrackerConfigError",
    "TrackerError",
    "TrackerNotFoundError",
    "current_run",
    "flush",
    "log",
    "log_summary",
    "reset_current_run",
    "trackers_from_env",
]


def log(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log metrics to the current run (``AppRun.run_from_env()``); a no-op when untracked."""
    current_run().log(metrics, step)


def log_summary(values: Mapping[str, object]) -> None:
    """Record summary values for the current run."""
    current_run().log_summary(values)


def flush(timeout: float | None = None) -> bool:
    """Wait until the current run's logged metrics are stored."""
    return current_run().flush(timeout)
