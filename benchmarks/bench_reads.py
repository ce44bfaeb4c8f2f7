"""Benchmark: reads of compacted runs and of the catalog, ours against TorchX 0.7.0's
``FsspecTracker``, on the local disk, in one process (medians of ``--repeats``; ratio = TorchX
time / ours). Rows: metadata()/artifacts()/sources()/descendants() of a run with N records
(second read on: the first read writes the snapshot), run_ids() over R runs, runs_summary()
and lineage of a chain. The S3 rows (request counts) are asserted in tests/s3/test_s3_reads.py;
a timed S3 side (s3fs venv, 20 ms proxy latency) is not part of this script yet.

    .venv/bin/python benchmarks/bench_reads.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _rows import OURS, TORCHX, RowResult  # benchmarks/ is sys.path[0] when run as a script

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    import fsspec
    from torchx.tracker.backend.fsspec import FsspecTracker as TorchxTracker

    from trackers.backends.fsspec import create_tracker

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    n, runs, chain = (100, 1000, 50) if args.quick else (1000, 10_000, 500)
    rows: list[RowResult] = []
    with tempfile.TemporaryDirectory() as root:
        ours = create_tracker(root)
        theirs = TorchxTracker(fsspec.filesystem("file"), root)
        run, parent = "local_cwd://torchx/run", "local_cwd://torchx/parent"
        ours.add_metadata(parent, stage="data")
        for i in range(n):
            ours.add_metadata(run, **{f"k{i}": i})
            ours.add_artifact(run, f"a{i}", f"/p/{i}")
            ours.add_source(f"local_cwd://torchx/child-{i}", parent, "data")
            ours.add_source(run, f"local_cwd://torchx/src-{i}", "data")
        ours.compact(run)
        ours.compact(parent)
        reads: list[tuple[str, Callable[[], Any], Callable[[], Any] | None]] = [
            ("metadata()", lambda: ours.metadata(run), lambda: theirs.metadata(run)),
            ("artifacts()", lambda: ours.artifacts(run), lambda: theirs.artifacts(run)),
            ("sources()", lambda: ours.sources(run), lambda: theirs.sources(run)),
            (
                "descendants()",
                lambda: ours.descendants(parent),
                lambda: theirs.run_ids(parent_run_id=parent),  # TorchX's way to find children
            ),
        ]
        for label, mine, torchx in reads:
            row = RowResult(f"{label} of a run with {n} records")
            row.samples[OURS] = timed(mine, args.repeats)
            if torchx is not None:
                row.samples[TORCHX] = timed(torchx, args.repeats)
            rows.append(row)
    with tempfile.TemporaryDirectory() as root:
        ours = create_tracker(root)
        theirs = TorchxTracker(fsspec.filesystem("file"), root)
        for i in range(runs):
            ours.set_status(f"local_cwd://torchx/r-{i:05d}", "SUCCEEDED")
        ours.compact_catalog()
        row = RowResult(f"run_ids() over {runs} runs")
        row.samples[OURS] = timed(lambda: ours.run_ids(), args.repeats)
        row.samples[TORCHX] = timed(lambda: theirs.run_ids(), args.repeats)
        rows.append(row)
        row = RowResult(f"runs_summary() over {runs} runs (TorchX: no status; run_ids only)")
        row.samples[OURS] = timed(lambda: ours.runs_summary(), args.repeats)
        rows.append(row)
    with tempfile.TemporaryDirectory() as root:
        ours = create_tracker(root)
        ours.add_metadata("local_cwd://torchx/c-0000", x=0)
        for i in range(1, chain):
            ours.add_source(f"local_cwd://torchx/c-{i:04d}", f"local_cwd://torchx/c-{i - 1:04d}")
        ours.compact_catalog()
        row = RowResult(f"lineage of a {chain}-run chain (TorchX: NotImplementedError)")
        row.samples[OURS] = timed(lambda: ours.lineage(f"local_cwd://torchx/c-{chain // 2:04d}"), 3)
        rows.append(row)
    print(f"{'row':<70} {'torchx s':>10} {'ours s':>10} {'ratio':>7}")
    for row in rows:
        t, o, r = row.median(TORCHX), row.median(OURS), row.ratio()
        print(
            f"{row.label:<70} {'' if t is None else f'{t:.4f}':>10} "
            f"{'' if o is None else f'{o:.4f}':>10} {'' if r is None else f'{r:.1f}x':>7}"
        )


if __name__ == "__main__":
    main()
