"""Job-side tracking for TorchX: ``AppRun.run_from_env()`` and the tracker backends.

Usage in a job launched with ``torchx run --tracker fsspec=/data/runs ...``::

    from trackers import AppRun

    run = AppRun.run_from_env()
    run.add_metadata(lr=0.1, batch_size=32)
    run.add_artifact("model", "/data/ckpt/model.pt")
    print(run.lineage())

Importing this package imports no optional dependency (mlflow, boto3, torch).
"""

from trackers.api import LineageTracker
from trackers.app_run import AppRun, current_run, reset_current_run, trackers_from_env
from trackers.errors import (
    RunNotFoundError,
    TrackerConfigError,
    TrackerError,
    TrackerNotFoundError,
)
from trackers.types import LineageEdge, LinkedRun, RunLineage

__all__ = [
    "AppRun",
    "LineageEdge",
    "LineageTracker",
    "LinkedRun",
    "RunLineage",
    "RunNotFoundError",
    "TrackerConfigError",
    "TrackerError",
    "TrackerNotFoundError",
    "current_run",
    "reset_current_run",
    "trackers_from_env",
]
