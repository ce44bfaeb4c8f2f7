"""Benchmark: our fsspec tracker against TorchX 0.7.0's own ``FsspecTracker``.

Why this exists: our backend (``trackers.backends.fsspec``) keeps TorchX's on-disk layout but
writes more per call (atomic temp-file + rename, uuid record names, link records on both sides
of ``add_source``) and adds a lineage walk TorchX lacks. This script checks that none of that
makes the everyday operations slower than TorchX's tracker, and that a lineage walk over a long
chain of runs stays interactive.

Both trackers run in the same process, each on a fresh local temp directory per row, with the
same calls. Every measurement is repeated (``--repeats``, alternating which tracker goes first)
and the median is reported, because a single timing on a shared machine means little. Setup is
never timed. Cheap correctness checks run alongside (both see the same data).

Run from the repository root::

    .venv/bin/python benchmarks/bench_fsspec.py            # full run
    .venv/bin/python benchmarks/bench_fsspec.py --quick    # smoke run, small sizes
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import fsspec
import torchx
from _rows import OURS, TORCHX, RowResult  # benchmarks/ is sys.path[0] when run as a script
from tabulate import tabulate
from torchx.tracker.api import TrackerBase
from torchx.tracker.backend.fsspec import FsspecTracker as TorchxFsspecTracker

from trackers.backends.fsspec import create_tracker

IMPLS: tuple[str, str] = (TORCHX, OURS)
LINEAGE_TARGET_S = 1.0


# --- sizes and tracker construction ---


@dataclass(frozen=True)
class Sizes:
    """How much data each row works on."""

    metadata_records: int = 1000
    runs: int = 2000
    children: int = 50
    chain: int = 500


FULL = Sizes()
QUICK = Sizes(metadata_records=100, runs=200, children=10, chain=50)


def run_id(i: int) -> str:
    """A TorchX-shaped run id, e.g. ``local_cwd://torchx/train-00042``."""
    return f"local_cwd://torchx/train-{i:05d}"


def make_tracker(impl: str, root: str) -> TrackerBase:
    """A tracker of kind ``impl`` on the (not yet existing) local directory ``root``."""
    if impl == TORCHX:
        os.makedirs(root)  # TorchX's tracker asserts that its root exists
        return TorchxFsspecTracker(fsspec.filesystem("file"), root)
    return create_tracker(root)  # construction does no I/O; writes create directories


@dataclass
class Store:
    """A tracker on its own temp directory, plus what the row's setup returned."""

    root: str
    tracker: TrackerBase
    state: Any = None


class Scratch:
    """Fresh temp directories under one base directory, removed when the run ends."""

    def __init__(self, base: str | None) -> None:
        self.base = tempfile.mkdtemp(prefix="bench_fsspec-", dir=base)
        self._count = 0

    def new_store(self, impl: str) -> Store:
        self._count += 1
        root = os.path.join(self.base, f"{self._count:04d}-{impl}")
        return Store(root, make_tracker(impl, root))

    @staticmethod
    def remove(store: Store) -> None:
        shutil.rmtree(store.root, ignore_errors=True)

    def cleanup(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


# --- timing ---


def time_once(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds one call of ``fn`` takes (garbage collection paused, as ``timeit`` does)."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    return elapsed, result


def impl_order(repeat: int) -> tuple[str, ...]:
    """Alternate which tracker goes first, so neither always gets the warmer cache."""
    return IMPLS if repeat % 2 == 0 else IMPLS[::-1]


@dataclass
class Case:
    """One table row: ``setup`` builds the store (untimed), ``op`` is what is timed.

    ``check(impl, result)`` asserts on the result of ``op``; it runs on an untimed warm-up call
    for read rows, and after the first timed repeat for write rows. With ``fresh_per_repeat``
    (writes), every repeat gets a new empty store; otherwise one store per tracker is reused.
    """

    label: str
    setup: Callable[[TrackerBase], Any]
    op: Callable[[TrackerBase, Any], Any]
    check: Callable[[str, Any], None]
    fresh_per_repeat: bool = False
    impls: tuple[str, ...] = IMPLS


def prepare(case: Case, impl: str, scratch: Scratch) -> Store:
    store = scratch.new_store(impl)
    store.state = case.setup(store.tracker)
    return store


def measure(case: Case, repeats: int, scratch: Scratch) -> RowResult:
    """Time ``case.op`` ``repeats`` times per tracker, interleaving the trackers."""
    row = RowResult(case.label, {impl: [] for impl in case.impls})
    shared: dict[str, Store] = {}
    if not case.fresh_per_repeat:
        for impl in case.impls:
            store = shared[impl] = prepare(case, impl, scratch)
            case.check(impl, case.op(store.tracker, store.state))  # warm-up, and correctness
    for repeat in range(repeats):
        for impl in impl_order(repeat):
            if impl not in case.impls:
                continue
            store = shared.get(impl) or prepare(case, impl, scratch)
            elapsed, result = time_once(partial(case.op, store.tracker, store.state))
            row.samples[impl].append(elapsed)
            if case.fresh_per_repeat:
                if repeat == 0:
                    case.check(impl, result)
                scratch.remove(store)  # later repeats start from the same disk state
    for store in shared.values():
        scratch.remove(store)
    return row


# --- the rows ---


class CheckFailed(AssertionError):
    """A tracker returned something other than what the row wrote."""


def expect(condition: bool, message: str) -> None:
    """Like ``assert``, but not stripped by ``python -O``."""
    if not condition:
        raise CheckFailed(message)


def add_runs(tracker: TrackerBase, count: int) -> list[str]:
    """``count`` runs, each created by one ``add_metadata`` call."""
    ids = [run_id(i) for i in range(count)]
    for i, rid in enumerate(ids):
        tracker.add_metadata(rid, index=i)
    return ids


def case_add_metadata(sizes: Sizes) -> Case:
    n = sizes.metadata_records
    rid = run_id(0)

    def op(tracker: TrackerBase, _: Any) -> TrackerBase:
        for i in range(n):
            tracker.add_metadata(rid, **{f"k_{i}": i})
        return tracker

    def check(impl: str, tracker: TrackerBase) -> None:
        found = tracker.metadata(rid)
        ok = len(found) == n and found.get(f"k_{n - 1}") == n - 1
        expect(ok, f"{impl}: metadata() after {n} add_metadata has {len(found)} keys")

    return Case(f"{n} add_metadata (one run)", lambda t: None, op, check, fresh_per_repeat=True)


def case_metadata(sizes: Sizes) -> Case:
    n = sizes.metadata_records
    rid = run_id(0)

    def setup(tracker: TrackerBase) -> None:
        for i in range(n):
            tracker.add_metadata(rid, **{f"k_{i}": i})

    def check(impl: str, found: Any) -> None:
        expected = {f"k_{i}": i for i in range(n)}
        expect(dict(found) == expected, f"{impl}: metadata() has {len(found)} keys, expected {n}")

    return Case(f"metadata() of a run with {n} records", setup, lambda t, _: t.metadata(rid), check)


def case_run_ids(sizes: Sizes) -> Case:
    n = sizes.runs
    expected = sorted(run_id(i) for i in range(n))

    def check(impl: str, found: Any) -> None:
        expect(sorted(found) == expected, f"{impl}: run_ids() returned {len(list(found))} ids")

    return Case(
        f"run_ids() over {n} runs",
        lambda t: add_runs(t, n),
        lambda t, _: list(t.run_ids()),
        check,
    )


def case_run_ids_parent(sizes: Sizes) -> Case:
    n, k = sizes.runs, sizes.children
    parent = run_id(0)
    children = [run_id(i) for i in range(1, k + 1)]

    def setup(tracker: TrackerBase) -> None:
        add_runs(tracker, n)  # the parent exists first, so ours also writes the reverse link
        for child in children:
            tracker.add_source(child, parent)

    def check(impl: str, found: Any) -> None:
        expect(sorted(found) == children, f"{impl}: {len(list(found))} children, expected {k}")

    return Case(
        f"run_ids(parent_run_id=P) over {n} runs, {k} children",
        setup,
        lambda t, _: list(t.run_ids(parent_run_id=parent)),
        check,
    )


def case_lineage(sizes: Sizes) -> Case:
    n = sizes.chain
    ids = [run_id(i) for i in range(n)]

    def setup(tracker: TrackerBase) -> None:
        build_chain(tracker, ids)

    def check(impl: str, found: Any) -> None:
        ancestors = getattr(found, "ancestors", {})
        expect(set(ancestors) == set(ids[:-1]), f"{impl}: {len(ancestors)} ancestors, want {n - 1}")
        expect(ancestors[ids[0]] == n - 1, f"{impl}: root of the chain at the wrong distance")

    return Case(
        f"lineage() of a {n}-run chain",
        setup,
        lambda t, _: t.lineage(ids[-1]),
        check,
        impls=(OURS,),
    )


def build_chain(tracker: TrackerBase, ids: Sequence[str]) -> None:
    """run_i has run_{i-1} as its source; each run exists before it is linked."""
    for i, rid in enumerate(ids):
        tracker.add_metadata(rid, index=i)
        if i:
            tracker.add_source(rid, ids[i - 1])


def torchx_lineage_note(scratch: Scratch) -> str:
    """Call TorchX's ``lineage()`` once on a 2-run chain to confirm it is not implemented."""
    tracker = scratch.new_store(TORCHX).tracker
    ids = [run_id(0), run_id(1)]
    build_chain(tracker, ids)
    try:
        result = tracker.lineage(ids[-1])
    except NotImplementedError:
        return "n/a (NotImplementedError)"
    return f"n/a (unexpectedly returned {type(result).__name__}; not timed)"


# --- reporting ---


def fmt_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


HEADERS = ("row", "TorchX median (s)", "ours median (s)", "torchx/ours", "noise (±%)")


def table_rows(rows: Sequence[RowResult]) -> list[list[str]]:
    out = []
    for i, row in enumerate(rows, 1):
        ratio, noise = row.ratio(), row.noise()
        out.append(
            [
                f"{i}. {row.label}",
                row.note.get(TORCHX) or fmt_seconds(row.median(TORCHX)),
                row.note.get(OURS) or fmt_seconds(row.median(OURS)),
                "n/a" if ratio is None else f"{ratio:.2f}",
                "-" if noise is None else f"{noise:.0f}",
            ]
        )
    return out


def print_table(rows: Sequence[RowResult]) -> None:
    print(
        tabulate(
            table_rows(rows),
            headers=HEADERS,
            colalign=("left", "right", "right", "right", "right"),
            disable_numparse=True,
        )
    )


def speed_verdict(rows: Sequence[RowResult]) -> str:
    """Rows 1-4: ours must not be slower than TorchX (median ratio >= 1)."""
    slower = []
    for i, row in enumerate(rows, 1):
        ratio, noise = row.ratio(), row.noise() or 0.0
        if ratio is not None and ratio < 1.0:
            within = " (within noise)" if (1.0 - ratio) * 100 <= noise else ""
            slower.append(f"row {i} at {ratio:.2f}{within}")
    if not slower:
        return "PASS: no row slower than TorchX"
    return "FAIL: no row slower than TorchX -- slower on " + ", ".join(slower)


def lineage_verdict(row: RowResult, chain: int) -> str:
    """Row 5: the median lineage walk over the chain under ``LINEAGE_TARGET_S``."""
    median = row.median(OURS)
    ok = median is not None and median < LINEAGE_TARGET_S
    return (
        f"{'PASS' if ok else 'FAIL'}: lineage of {chain} runs under {LINEAGE_TARGET_S:g} s"
        f" (median {fmt_seconds(median)} s)"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row (default 5)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--tmpdir", default=None, help="where the temp stores go (default: the system temp dir)"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    print(
        f"torchx {torchx.__version__}, fsspec {fsspec.__version__}, python {sys.version.split()[0]}"
    )
    print(f"sizes: {sizes}; repeats: {args.repeats}; medians in seconds\n")

    scratch = Scratch(args.tmpdir)
    try:
        compared_cases = [
            case_add_metadata(sizes),
            case_metadata(sizes),
            case_run_ids(sizes),
            case_run_ids_parent(sizes),
        ]
        rows = [measure(case, args.repeats, scratch) for case in compared_cases]
        lineage_row = measure(case_lineage(sizes), args.repeats, scratch)
        lineage_row.note[TORCHX] = torchx_lineage_note(scratch)
    finally:
        scratch.cleanup()

    print_table([*rows, lineage_row])
    print()
    print(speed_verdict(rows))
    print(lineage_verdict(lineage_row, sizes.chain))
    return 0


if __name__ == "__main__":
    sys.exit(main())
