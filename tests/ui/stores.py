"""Stores the web view tests (and ``benchmarks/bench_ui.py``) open, written through trackers."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

from trackers.types import MetricPoint

#: Statuses of the synthetic runs, by ``index % 4``.
CYCLE = ("SUCCEEDED", "FAILED", "KILLED", "RUNNING")
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def many_id(i: int) -> str:
    return f"local_cwd://torchx/job-{i:05d}"


def many_start(i: int) -> str:
    """Run ``i`` started ``i`` minutes after :data:`EPOCH`, so the newest is the last one."""
    return (EPOCH + dt.timedelta(minutes=i)).isoformat(timespec="seconds")


def write_many_runs(tracker: Any, count: int) -> None:
    """``count`` runs with a launch record and a status; each one derived from the one before."""
    for i in range(count):
        run_id = many_id(i)
        tracker.add_metadata(
            run_id,
            **{
                "launch.time": many_start(i),
                "launch.scheduler": "local_cwd",
                "launch.component": f"comp-{i % 7}",
                "launch.user": "alice" if i % 2 else "bob",
            },
        )
        tracker.set_status(run_id, CYCLE[i % 4])


#: Text that would run script (or open a dialog) if any of it were parsed as HTML.
HOSTILE = (
    "<script>window.__pwned=1</script>\"'><img src=x onerror=\"alert('xss');window.__pwned=2\">"
)
HOSTILE_RUN = "local_cwd://torchx/x<script>window.__pwned=3</script>\"'&amp;"
HOSTILE_PARENT = "local_cwd://torchx/p<img src=x onerror=alert(4)>"


def write_hostile_runs(tracker: Any) -> None:
    """A run whose id, metadata keys and values, artifact, metric, summary and link names all
    hold markup and quotes; and its parent, whose id does too."""
    tracker.add_metadata(HOSTILE_PARENT, **{"launch.component": HOSTILE, "launch.user": HOSTILE})
    tracker.set_status(HOSTILE_PARENT, "SUCCEEDED")
    tracker.add_metadata(
        HOSTILE_RUN,
        **{
            "launch.time": "2026-01-02T00:00:00+00:00",
            "launch.component": HOSTILE,
            HOSTILE: HOSTILE,
        },
    )
    tracker.add_metadata(HOSTILE_RUN, note=HOSTILE, nested={HOSTILE: [HOSTILE]})
    tracker.add_artifact(HOSTILE_RUN, HOSTILE, f"/data/{HOSTILE}", {HOSTILE: HOSTILE})
    tracker.add_source(HOSTILE_RUN, HOSTILE_PARENT, HOSTILE)
    tracker.add_summary(HOSTILE_RUN, **{HOSTILE: HOSTILE})
    tracker.add_metrics(
        HOSTILE_RUN, [MetricPoint(HOSTILE, 1.0 / (s + 1), s, 1.0, None) for s in range(50)]
    )
    tracker.set_status(HOSTILE_RUN, "FAILED")


def write_curves(tracker: Any, run_id: str, points: int, ranks: int = 1) -> None:
    """``loss`` with ``points`` steps from each of ``ranks`` ranks."""
    for rank in range(ranks):
        batch = [
            MetricPoint("loss", math.exp(-s / (points / 5)) + 0.01 * rank, s, 1.0 + s, rank)
            for s in range(points)
        ]
        for start in range(0, points, 50_000):
            tracker.add_metrics(run_id, batch[start : start + 50_000])


def run_dir(root: Path, run_id: str) -> Path:
    from trackers.ids import encode_run_id

    return root / encode_run_id(run_id)


BROWSE_PARENT = "local_cwd://torchx/prepare-3"
BROWSE_CHILD = "local_cwd://torchx/train-3"
BROWSE_GRANDCHILD = "local_cwd://torchx/eval-3"
#: More records of one category than a caching reader needs to store a snapshot (16) or, on S3,
#: a read cache of fetched records (32); enough runs for more catalog segments than a reader
#: merges (``MERGE_SEGMENTS_AT``).
MANY_RECORDS = 40
SIDE_RUNS = 12


def write_browsable_store(tracker: Any) -> list[str]:
    """A small pipeline (prepare -> train -> eval) that a caching reader would write to: many
    metadata, metric and status records, many catalog segments. Returns every run id."""
    runs = [BROWSE_PARENT, BROWSE_CHILD, BROWSE_GRANDCHILD]
    for i, run_id in enumerate(runs):
        tracker.add_metadata(
            run_id,
            **{
                "launch.time": many_start(i),
                "launch.scheduler": "local_cwd",
                "launch.component": "lineage.python",
                "launch.user": "dana",
            },
        )
        tracker.set_status(run_id, "RUNNING")
    tracker.add_source(BROWSE_CHILD, BROWSE_PARENT, "dataset")
    tracker.add_source(BROWSE_GRANDCHILD, BROWSE_CHILD, "model")
    tracker.add_source(BROWSE_CHILD, "s3://data/train.parquet", "dataset")
    for step in range(MANY_RECORDS):
        tracker.add_metadata(BROWSE_CHILD, **{f"hp{step}": step})
        tracker.add_metrics(
            BROWSE_CHILD,
            [MetricPoint("loss", 1.0 / (step + 1), step, 1.0 + step, rank) for rank in range(2)],
        )
        tracker.set_status(BROWSE_CHILD, "RUNNING")
    tracker.add_artifact(BROWSE_CHILD, "model", "/ckpt/model.pt", {"bytes": 10})
    tracker.add_summary(BROWSE_CHILD, best_loss=0.025)
    for run_id in runs:
        tracker.set_status(run_id, "SUCCEEDED")
    for i in range(SIDE_RUNS):
        side = f"local_cwd://torchx/side-{i}"
        tracker.set_status(side, "FAILED")
        runs.append(side)
    return runs
