"""Benchmark: reads of compacted runs and of the catalog, ours against TorchX 0.7.0's
``FsspecTracker``, on the local disk, in one process (medians of ``--repeats``; ratio = TorchX
time / ours). Rows: metadata()/artifacts()/sources()/descendants() of a run with N records
(second read on: the first read writes the snapshot), the floor of a lossless sources() (its
stats alone), the same reads of a run TorchX's own tracker wrote, run_ids() over R
runs, runs_summary(), lineage of a chain, and add_source per call (synchronous, and through our
AppRun, where the training thread only spools it).

"warm" reads reuse one tracker object (a long-lived process: the UI, a notebook): a repeat
sources()/descendants() of an unchanged run answers from its stamp (local disk: two directory
stats and a stat per TorchX file) and the reader's memo (trackers.backends.link_memo); the
"memo cleared" row reads the snapshot's header instead. "new
process" reads build a new tracker object and clear the per-process caches (the base32 name
decoding), as one ``torchx tracker list`` call does. The S3 rows are benchmarks/bench_reads_s3.py.

    .venv/bin/python benchmarks/bench_reads.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _rows import OURS, TORCHX, RowResult  # benchmarks/ is sys.path[0] when run as a script

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


#: ``--racy``: no pause between the writes and the timed reads (see :func:`settle`).
RACY_READS = False


def timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def fresh_process_state() -> None:
    """Forget what a process caches between reads (what a new ``torchx tracker`` call lacks)."""
    from trackers.ids import decode_run_id, encode_run_id

    decode_run_id.cache_clear()
    encode_run_id.cache_clear()


def new_reader(root: str, read: Callable[[Any], Any]) -> Callable[[], Any]:
    """A read by a new tracker object with the per-process caches cleared."""
    from trackers.backends.fsspec import create_tracker

    def call() -> Any:
        fresh_process_state()
        return read(create_tracker(root))

    return call


def settle() -> None:
    """Wait until the files just written are older than the window in which a file's stat
    cannot yet vouch for its contents (``RACY_NS``): a read within it fetches TorchX's link
    files changed in it again, every time. The rows time reads of runs that are not being
    written at that moment; ``--racy`` times them right after the writes instead."""
    from trackers.backends.fsspec import RACY_NS

    if not RACY_READS:
        time.sleep(2 * RACY_NS / 1e9)


def forget_links(tracker: Any) -> None:
    """Empty the tracker's memo of link reads: its next read is what a read after a change
    costs (the listings, the snapshot, the merge), short of fetching the changed record."""
    tracker._link_memo._entries.clear()


def stats_alone(run_dir: Path) -> int:
    """What any lossless ``sources()`` of a run must do on local disk, and nothing else: a
    stat of our ``links/`` directory (its mtime changes with every record added) and of each
    of TorchX's ``sources/`` files. Those cannot be skipped: TorchX rewrites a link file in
    place (its status change time, size or mtime changes, the directory's mtime does not), so
    only a per-file stat tells a reader holding a snapshot that it changed. TorchX time /
    this time is the ceiling of the ``sources()`` ratio."""
    os.stat(run_dir / "links")
    found = 0
    with os.scandir(run_dir / "sources") as entries:
        for entry in entries:
            entry.stat(follow_symlinks=False)
            found += 1
    return found


def per_call(fn: Callable[[int], Any], calls: int, repeats: int) -> list[float]:
    """Seconds per call of ``fn(i)`` over ``calls`` calls, per repeat."""
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        for i in range(calls):
            fn(r * calls + i)
        times.append((time.perf_counter() - start) / calls)
    return times


def per_call_side_by_side(
    row: RowResult,
    ours: Callable[[int], Any],
    torchx: Callable[[int], Any],
    calls: int,
    repeats: int,
) -> None:
    """:func:`per_call` for both, alternating repeat by repeat. File creation on the shared box
    swings between ~30 µs and ~700 µs for seconds at a time: timing all of ours and then all of
    TorchX's can put the two in different phases and flip the ratio."""
    row.samples[OURS], row.samples[TORCHX] = [], []
    for r in range(repeats):
        row.samples[OURS] += per_call(lambda i, r=r: ours(r * calls + i), calls, 1)
        row.samples[TORCHX] += per_call(lambda i, r=r: torchx(r * calls + i), calls, 1)


def main() -> None:
    import fsspec
    from torchx.tracker.backend.fsspec import FsspecTracker as TorchxTracker

    from trackers.backends.fsspec import create_tracker
    from trackers.backends.run_index import RUN_INDEX
    from trackers.ids import encode_run_id

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--racy", action="store_true", help="read right after the writes")
    args = parser.parse_args()
    global RACY_READS
    RACY_READS = args.racy
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
        settle()
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
        row = RowResult(f"sources() of a run with {n} records, warm, memo cleared each read")
        row.samples[OURS] = timed(lambda: forget_links(ours) or ours.sources(run), args.repeats)
        row.samples[TORCHX] = timed(lambda: theirs.sources(run), args.repeats)
        rows.append(row)
        row = RowResult(f"metadata() of a run with {n} records, new process")
        row.samples[OURS] = timed(new_reader(root, lambda t: t.metadata(run)), args.repeats)
        row.samples[TORCHX] = timed(lambda: theirs.metadata(run), args.repeats)
        rows.append(row)
        row = RowResult(f"sources() of a run with {n} records, new process")
        row.samples[OURS] = timed(new_reader(root, lambda t: t.sources(run)), args.repeats)
        row.samples[TORCHX] = timed(lambda: theirs.sources(run), args.repeats)
        rows.append(row)
        run_dir = Path(ours._run_dir(run))
        row = RowResult(f"sources() floor: stat links/ and the {n} TorchX files, nothing else")
        row.samples[OURS] = timed(lambda: stats_alone(run_dir), args.repeats)
        row.samples[TORCHX] = timed(lambda: theirs.sources(run), args.repeats)
        rows.append(row)
    with tempfile.TemporaryDirectory() as root:
        # A store TorchX's own tracker wrote: no snapshot until a reader of ours stores one.
        theirs = TorchxTracker(fsspec.filesystem("file"), root)
        run, parent = "local_cwd://torchx/run", "local_cwd://torchx/parent"
        for i in range(n):
            theirs.add_metadata(run, **{f"k{i}": i})
            theirs.add_source(run, f"local_cwd://torchx/src-{i}", "data")
        settle()
        first = create_tracker(root)
        row = RowResult(f"metadata() of a TorchX-written run, {n} records, first read")
        fresh_process_state()
        row.samples[OURS] = timed(lambda: first.metadata(run), 1)
        row.samples[TORCHX] = timed(lambda: theirs.metadata(run), args.repeats)
        rows.append(row)
        for label, read, torchx_read in (
            ("metadata()", lambda t: t.metadata(run), lambda: theirs.metadata(run)),
            ("sources()", lambda t: t.sources(run), lambda: theirs.sources(run)),
        ):
            new_reader(root, read)()  # the first read stores the snapshot
            row = RowResult(f"{label} of a TorchX-written run, {n} records, second read on")
            row.samples[OURS] = timed(new_reader(root, read), args.repeats)
            row.samples[TORCHX] = timed(torchx_read, args.repeats)
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
        row = RowResult(f"run_ids() over {runs} runs, new process")
        row.samples[OURS] = timed(new_reader(root, lambda t: t.run_ids()), args.repeats)
        row.samples[TORCHX] = timed(lambda: theirs.run_ids(), args.repeats)
        rows.append(row)
        index = Path(root, RUN_INDEX)

        def first_read_after_a_change(t: Any) -> Any:
            index.unlink(missing_ok=True)  # as a run added since: the index no longer matches
            return t.run_ids()

        row = RowResult(f"run_ids() over {runs} runs, new process, run index stale")
        row.samples[OURS] = timed(new_reader(root, first_read_after_a_change), args.repeats)
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
    with tempfile.TemporaryDirectory() as root:
        from trackers import AppRun

        ours = create_tracker(root + "/ours")
        ours.add_metadata(parent, stage="data")
        Path(root, "torchx").mkdir()
        theirs = TorchxTracker(fsspec.filesystem("file"), root + "/torchx")
        theirs.add_metadata(parent, stage="data")
        # TorchX writes a child's reverse link only into a parent that has descendants/
        Path(root, "torchx", encode_run_id(parent), "descendants").mkdir(parents=True)
        calls = 50 if args.quick else 200
        row = RowResult("add_source per call, new child each call (synchronous)")
        per_call_side_by_side(
            row,
            lambda i: ours.add_source(f"local_cwd://torchx/c-{i}", parent, "data"),
            lambda i: theirs.add_source(f"local_cwd://torchx/c-{i}", parent, "data"),
            calls,
            args.repeats,
        )
        rows.append(row)
        child = "local_cwd://torchx/step"
        ours.add_metadata(child, stage="train")
        theirs.add_metadata(child, stage="train")
        row = RowResult("add_source per call, one run, new source each call (synchronous)")
        per_call_side_by_side(
            row,
            lambda i: ours.add_source(child, f"s3://data/shard-{i}", "data"),
            lambda i: theirs.add_source(child, f"s3://data/shard-{i}", "data"),
            calls,
            args.repeats,
        )
        rows.append(row)
        app_run = AppRun("local_cwd://torchx/job", [create_tracker(root + "/ours")])
        row = RowResult("add_source per call through AppRun (the training thread's cost)")
        per_call_side_by_side(
            row,
            lambda i: app_run.add_source(f"local_cwd://torchx/src-{i}", "data"),
            lambda i: theirs.add_source("local_cwd://torchx/job", f"local_cwd://torchx/src-{i}"),
            calls,
            args.repeats,
        )
        rows.append(row)
        app_run.close()
    print(f"{'row':<70} {'torchx ms':>10} {'ours ms':>10} {'ratio':>7}")
    for row in rows:
        t, o, r = row.median(TORCHX), row.median(OURS), row.ratio()
        print(
            f"{row.label:<70} {'' if t is None else f'{t * 1e3:.3f}':>10} "
            f"{'' if o is None else f'{o * 1e3:.3f}':>10} {'' if r is None else f'{r:.1f}x':>7}"
        )


if __name__ == "__main__":
    main()
