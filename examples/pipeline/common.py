"""What the three pipeline steps share: choosing the ``AppRun`` class and small file helpers.

Each step can record through either API, chosen with ``--apprun``:

``ours`` (default)
    ``from trackers import AppRun`` - this project's ``AppRun``. Tracking failures are logged,
    not raised, and it also has ``lineage()``.
``torchx``
    ``from torchx.tracker.api import AppRun`` - TorchX's own prototype API. ``run_from_env``,
    ``add_metadata``, ``add_artifact`` and ``add_source`` work; it has no ``lineage()``.

Both read the same env that ``torchx run --tracker ...`` gives the job (``TORCHX_JOB_ID``,
``TORCHX_TRACKERS``, ``TORCHX_TRACKER_<NAME>_CONFIG``, ``TORCHX_PARENT_RUN_ID``) and both record
the parent run as a source when the run starts.

This file sits next to the step scripts, so ``python <step>.py`` imports it as ``common``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from collections.abc import Iterator
from typing import Any, Protocol

APPRUN_CHOICES = ("ours", "torchx")


class Run(Protocol):
    """The part of ``AppRun`` the steps use; both implementations have it."""

    def add_metadata(self, **kwargs: object) -> None: ...

    def add_artifact(self, name: str, path: str, metadata: Any = None) -> None: ...

    def add_source(self, source_id: str, artifact_name: str | None = None) -> None: ...

    def job_id(self) -> str: ...


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """``--out DIR`` and ``--apprun ours|torchx``, taken by every step."""
    parser.add_argument("--out", required=True, help="directory for the files this step writes")
    parser.add_argument(
        "--apprun",
        choices=APPRUN_CHOICES,
        default="ours",
        help="record through trackers.AppRun (ours) or torchx.tracker.api.AppRun (torchx)",
    )


def current_run(apprun: str) -> Run:
    """This job's run, from the env ``torchx run`` set, through the chosen ``AppRun``."""
    if apprun == "ours":
        from trackers import AppRun
    elif apprun == "torchx":
        from torchx.tracker.api import AppRun  # type: ignore[assignment]
    else:
        raise ValueError(f"--apprun {apprun!r}: expected one of {', '.join(APPRUN_CHOICES)}")
    run: Run = AppRun.run_from_env()
    return run


def prepare_out_dir(path: str) -> str:
    """Create ``path`` if needed and return it as an absolute path (recorded in artifacts)."""
    out = os.path.abspath(path)
    os.makedirs(out, exist_ok=True)
    return out


def read_rows(path: str, split: str) -> Iterator[tuple[float, float]]:
    """The ``(x, y)`` pairs of one split (``train`` or ``test``) of a dataset CSV."""
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["split"] == split:
                yield float(row["x"]), float(row["y"])


def write_json(path: str, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")


def mse(points: list[tuple[float, float]], slope: float, intercept: float) -> float:
    """Mean squared error of the line ``y = slope * x + intercept`` on ``points``."""
    if not points:
        raise ValueError("cannot compute the MSE of an empty set of points")
    return sum((y - (slope * x + intercept)) ** 2 for x, y in points) / len(points)
