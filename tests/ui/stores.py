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
