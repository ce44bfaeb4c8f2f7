"""Metric logging: what ``run.log`` costs the training thread, and how fast points become durable.

Why: a tracker earns its place only if logging is invisible in the training loop. This measures
our ``AppRun.log`` (queue + background writer into the fsspec store on local disk) against the
obvious alternative of writing each point as it comes (``add_metrics`` per point, i.e. what a
synchronous per-call API does), in one process run, and reports medians and ratios.

Rows:

1. hot path: median cost of one ``run.log({"loss": x}, step=i)`` call on the training thread,
   measured in blocks of 1000 calls while the writer thread is running;
2. sustained throughput: 1,000,000 points logged as fast as possible, until durable
   (``flush``), with the peak queue length (memory stays under the cap);
3. the same 10,000 points written synchronously one call per point vs through ``run.log`` +
   ``flush``: training-thread time and end-to-end time, with ratios.

Usage: ``.venv/bin/python benchmarks/bench_metrics.py [--repeats N] [--quick]``
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tabulate import tabulate

from trackers import AppRun, RunSettings
from trackers.backends.fsspec import create_tracker
from trackers.types import MetricPoint

RUN = "local_cwd://torchx/bench-metrics"


def fresh_run(tmp: Path, **settings: object) -> tuple[AppRun, Path]:
    root = Path(tempfile.mkdtemp(dir=tmp))
    store = create_tracker(str(root))
    return AppRun(RUN, [store], settings=RunSettings(**settings)), root  # type: ignore[arg-type]


def hot_path_ns(tmp: Path, calls: int) -> float:
    """Median ns per ``run.log`` call, over blocks of 1000 calls."""
    run, root = fresh_run(tmp, flush_interval=0.2)
    log = run.log
    per_block: list[float] = []
    gc.disable()
    try:
        for block in range(calls // 1000):
            start = time.perf_counter_ns()
            for i in range(block * 1000, block * 1000 + 1000):
                log({"loss": 0.5}, step=i)
            per_block.append((time.perf_counter_ns() - start) / 1000)
    finally:
        gc.enable()
    run.close(timeout=120)
    shutil.rmtree(root)
    return statistics.median(per_block)


def sustained(tmp: Path, points: int) -> tuple[float, int, int]:
    """(points per second until durable, peak queue length, points read back)."""
    cap = 1_000_000
    run, root = fresh_run(tmp, flush_interval=0.2, max_queued=cap)
    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            queue = run._queue
            peak = max(peak, queue.queued if queue is not None else 0)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    log = run.log
    start = time.perf_counter()
    for i in range(points):
        log({"loss": 0.5}, step=i)
    run.flush(timeout=600)
    elapsed = time.perf_counter() - start
    stop.set()
    watcher.join()
    run.close()
    read_back = len(create_tracker(str(root)).metrics(RUN))
    shutil.rmtree(root)
    return points / elapsed, peak, read_back


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def per_call_vs_queued(tmp: Path, points: int) -> tuple[float, float, float]:
    """(synchronous per-point seconds, queued training-thread seconds, queued end-to-end s)."""
    root = Path(tempfile.mkdtemp(dir=tmp))
    store = create_tracker(str(root))

    def per_call() -> None:
        for i in range(points):
            store.add_metrics(RUN, [MetricPoint("loss", 0.5, i, time.time())])

    sync = timed(per_call)
    shutil.rmtree(root)
    run, root = fresh_run(tmp, flush_interval=0.2)
    start = time.perf_counter()
    for i in range(points):
        run.log({"loss": 0.5}, step=i)
    thread_time = time.perf_counter() - start
    run.flush(timeout=600)
    end_to_end = time.perf_counter() - start
    run.close()
    assert len(create_tracker(str(root)).metrics(RUN)) == points
    shutil.rmtree(root)
    return sync, thread_time, end_to_end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run")
    args = parser.parse_args()
    calls, bulk, sync_points = (
        (20_000, 100_000, 1000) if args.quick else (200_000, 1_000_000, 10_000)
    )
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        hot = [hot_path_ns(tmp, calls) for _ in range(args.repeats)]
        rates, peaks, complete = [], [], True
        for _ in range(args.repeats):
            rate, peak, read_back = sustained(tmp, bulk)
            rates.append(rate)
            peaks.append(peak)
            complete = complete and read_back == bulk
        sync, thread, e2e = zip(
            *(per_call_vs_queued(tmp, sync_points) for _ in range(args.repeats)), strict=True
        )
    hot_ns = statistics.median(hot)
    rate = statistics.median(rates)
    rows = [
        [
            "1. run.log() on the training thread",
            f"{hot_ns / 1000:.2f} µs per call",
            "target ≤ 2 µs",
        ],
        [
            f"2. {bulk:,} points until durable",
            f"{rate:,.0f} points/s; peak queue {max(peaks):,} (cap 1,000,000); "
            f"all read back: {complete}",
            "target ≥ 500,000/s",
        ],
        [
            f"3. {sync_points:,} points, one synchronous write per point",
            f"{statistics.median(sync):.3f} s",
            "",
        ],
        [
            "   same points via run.log (training thread)",
            f"{statistics.median(thread):.4f} s",
            f"ratio {statistics.median(sync) / statistics.median(thread):,.0f}x",
        ],
        [
            "   same points via run.log + flush (end to end)",
            f"{statistics.median(e2e):.3f} s",
            f"ratio {statistics.median(sync) / statistics.median(e2e):,.0f}x",
        ],
    ]
    print(f"medians of {args.repeats} repeats")
    print(tabulate(rows, headers=["row", "ours", "note"]))


if __name__ == "__main__":
    main()
