"""Benchmark: the ``s3`` backend (boto3) against TorchX 0.7.0's ``FsspecTracker`` over s3fs.

Both talk real HTTP to one local S3-protocol server (moto, started here in its own process
group on 127.0.0.1 and stopped at the end). s3fs cannot be installed next to the project's
boto3 (it pins an older botocore), so TorchX's side runs in the separate s3fs virtualenv that the
tests use (built on first use into the temp directory): this same file, run there with
``--torchx-side``, times itself and prints JSON that the main run parses. If that virtualenv
cannot be built, TorchX's column says why and only our timings are printed.

Rows (medians over ``--repeats``; setup is never timed):

1. ``add_metadata`` x N on one run (a fresh store per repeat);
2. ``metadata()`` of that run - ours twice: the first read (no read cache object yet: list, then
   N concurrent GETs, then the cache is written) and a later read (list + one GET);
3. ``run_ids()`` over R runs (one store both read).

TorchX's s3fs listing cache is cleared before every timed read, so each read asks the server, as
a new process (``torchx tracker list``) would; ours has no in-process cache.

Run from the repository root::

    .venv/bin/python benchmarks/bench_s3.py            # N=1000, R=2000, 5 repeats
    .venv/bin/python benchmarks/bench_s3.py --quick    # N=100, R=200, 3 repeats
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _rows import OURS, TORCHX, RowResult  # benchmarks/ is sys.path[0] when run as a script
from _s3_server import expect, latency_proxy, run_torchx_side, side_request

REPO = Path(__file__).resolve().parents[1]
METADATA_TARGET = 5.0  # metadata(): TorchX time / ours, at least
RUN_IDS_TARGET = 1.0  # run_ids(): not slower


def run_id(i: int) -> str:
    return f"local_cwd://torchx/train-{i:05d}"


# --- TorchX's side, run in the s3fs virtualenv ---


def torchx_side(request: dict[str, Any]) -> dict[str, Any]:
    """Time TorchX's ``FsspecTracker`` over s3fs as ``request`` says; return the timings."""
    import fsspec
    from torchx.tracker.backend.fsspec import FsspecTracker

    fs = fsspec.filesystem("s3", endpoint_url=request["endpoint"])
    fs.ls(request["roots"][0].split("/")[0])  # warm up the client (untimed)
    n, repeats, op = request["n"], request["repeats"], request["op"]
    times: list[float] = []
    if op == "add_metadata":
        for root in request["roots"]:  # one fresh root per repeat
            tracker = FsspecTracker(fs, root)
            start = time.perf_counter()
            for i in range(n):
                tracker.add_metadata(run_id(0), **{f"k_{i}": i})
            times.append(time.perf_counter() - start)
        return {"times": times}
    tracker = FsspecTracker(fs, request["roots"][0])
    for _ in range(repeats):
        fs.invalidate_cache()
        start = time.perf_counter()
        if op == "metadata":
            found: Any = dict(tracker.metadata(run_id(0)))
        else:
            found = sorted(tracker.run_ids())
        times.append(time.perf_counter() - start)
    return {"times": times, "count": len(found)}


# --- our side ---


class Bench:
    def __init__(self, endpoint: str, n: int, runs: int, repeats: int) -> None:
        sys.path.insert(0, str(REPO))
        from tests.s3.support import admin_client, aws_test_env, s3fs_python

        self.endpoint, self.n, self.runs, self.repeats = endpoint, n, runs, repeats
        self.admin: Any = admin_client(endpoint)
        self.aws_env = aws_test_env()
        python, self.why = s3fs_python()
        self.python = python
        os.environ.update(self.aws_env)  # fake credentials for moto, for our side too

    def bucket(self, name: str) -> str:
        self.admin.create_bucket(Bucket=name)
        return name

    def ours(self, url: str) -> Any:
        from trackers.backends.s3 import create_tracker

        os.environ.update(self.aws_env)
        return create_tracker(json.dumps({"url": url, "endpoint_url": self.endpoint}))

    def call_torchx(self, **request: Any) -> dict[str, Any]:
        request = {"endpoint": self.endpoint, "n": self.n, "repeats": self.repeats, **request}
        return run_torchx_side(self.python, self.why, __file__, self.endpoint, request)

    def torchx_row(
        self, row: RowResult, check: Callable[[dict[str, Any]], None], **request: Any
    ) -> None:
        if self.python is None:
            row.note[TORCHX] = "n/a (no s3fs venv)"
            return
        result = self.call_torchx(**request)
        check(result)
        row.samples[TORCHX] = result["times"]

    def marker(self, bucket: str, prefix: str) -> str:
        """TorchX's tracker refuses a root that does not exist: give it a directory marker."""
        self.admin.put_object(Bucket=bucket, Key=f"{prefix}/", Body=b"")
        return f"{bucket}/{prefix}"

    def rows(self) -> list[RowResult]:
        n, rid = self.n, run_id(0)
        write = RowResult(f"1. {n} add_metadata (one run)")
        first = RowResult(f"2a. metadata() of that run, first read ({n} records)")
        later = RowResult("2b. metadata() of that run, later reads")
        listing = RowResult(f"3. run_ids() over {self.runs} runs")

        # rows 1 and 2: each tracker in a bucket of its own (moto lists by scanning a bucket)
        ours_bucket, torchx_bucket = self.bucket("bench-ours-w"), self.bucket("bench-torchx-w")
        write.samples[OURS] = []
        tracker: Any = None
        for r in range(self.repeats):
            tracker = self.ours(f"s3://{ours_bucket}/r{r}")
            tracker.has_run(rid)  # warm up the client and its connection (untimed)
            start = time.perf_counter()
            for i in range(n):
                tracker.add_metadata(rid, **{f"k_{i}": i})
            write.samples[OURS].append(time.perf_counter() - start)
        expected = {f"k_{i}": i for i in range(n)}
        cache = f"r{self.repeats - 1}/{_b32(rid)}/.cache/metadata"
        first.samples[OURS], later.samples[OURS] = [], []
        for _ in range(self.repeats):
            self.admin.delete_object(Bucket=ours_bucket, Key=cache)
            reader = self.ours(f"s3://{ours_bucket}/r{self.repeats - 1}")
            reader.has_run(rid)  # warm-up (untimed)
            for row in (first, later):
                start = time.perf_counter()
                found = dict(reader.metadata(rid))
                row.samples[OURS].append(time.perf_counter() - start)
                expect(found == expected, f"ours: metadata() has {len(found)} keys, want {n}")

        roots = [self.marker(torchx_bucket, f"r{r}") for r in range(self.repeats)]
        self.torchx_row(write, lambda _: None, op="add_metadata", roots=roots)

        def n_keys(result: dict[str, Any]) -> None:
            expect(result["count"] == n, f"torchx: metadata() has {result['count']} keys")

        self.torchx_row(first, n_keys, op="metadata", roots=roots[-1:])
        later.note[TORCHX] = "(same as 2a)"
        if TORCHX in first.samples:
            later.samples[TORCHX] = first.samples[TORCHX]

        # row 3: one store with R runs, read by both
        runs_bucket = self.bucket("bench-runs")
        seeder = self.ours(f"s3://{runs_bucket}/runs")
        ids = [run_id(i) for i in range(self.runs)]
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda r: seeder.add_metadata(r, x=1), ids))
        reader = self.ours(f"s3://{runs_bucket}/runs")
        reader.has_run(ids[0])  # warm-up (untimed)
        listing.samples[OURS] = []
        for _ in range(self.repeats):
            start = time.perf_counter()
            found_ids = reader.run_ids()
            listing.samples[OURS].append(time.perf_counter() - start)
            expect(found_ids == sorted(ids), f"ours: run_ids() returned {len(found_ids)}")

        def n_runs(result: dict[str, Any]) -> None:
            expect(result["count"] == self.runs, f"torchx: run_ids() gave {result['count']}")

        self.torchx_row(listing, n_runs, op="run_ids", roots=[f"{runs_bucket}/runs"])
        return [write, first, later, listing]


def _b32(value: str) -> str:
    from base64 import b32encode

    return b32encode(value.encode()).decode()


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def report(rows: Sequence[RowResult], why: str) -> str:
    from tabulate import tabulate

    table = [
        [
            row.label,
            row.note.get(TORCHX) if TORCHX not in row.samples else fmt(row.median(TORCHX)),
            fmt(row.median(OURS)),
            "n/a" if row.ratio() is None else f"{row.ratio():.2f}",
            "-" if row.noise() is None else f"{row.noise():.0f}",
        ]
        for row in rows
    ]
    lines = [
        tabulate(
            table,
            headers=("row", "TorchX median (s)", "ours median (s)", "torchx/ours", "noise (±%)"),
            colalign=("left", "right", "right", "right", "right"),
            disable_numparse=True,
        )
    ]
    if why:
        lines.append(f"TorchX side not run: {why}")
    _, first, later, listing = rows
    for row, target, what in (
        (first, METADATA_TARGET, "metadata() first read"),
        (later, METADATA_TARGET, "metadata() later reads"),
        (listing, RUN_IDS_TARGET, "run_ids()"),
    ):
        ratio = row.ratio()
        if ratio is not None:
            verdict = "PASS" if ratio >= target else "FAIL"
            lines.append(f"{verdict}: {what} torchx/ours = {ratio:.2f} (target >= {target:g})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per row (5)")
    parser.add_argument("--quick", action="store_true", help="N=100, R=200, 3 repeats")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="add this round-trip delay to every request (a loopback proxy in front of the "
        "server, for both trackers), as a stand-in for a remote store (default 0)",
    )
    parser.add_argument("--torchx-side", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.torchx_side:
        print(json.dumps(torchx_side(side_request(args.torchx_side))))
        return 0
    n, runs, repeats = (100, 200, 3) if args.quick else (1000, 2000, 5)
    repeats = args.repeats or repeats

    sys.path.insert(0, str(REPO))
    import botocore

    from tests.s3.support import moto

    print(f"S3 benchmark: N={n} records, R={runs} runs, {repeats} repeats, added latency")
    print(f"{args.latency_ms:g} ms; ours on botocore {botocore.__version__}, TorchX's on s3fs")
    print("in its own virtualenv; one moto server on 127.0.0.1\n")
    with moto() as server, latency_proxy(server.port, args.latency_ms) as endpoint:
        bench = Bench(endpoint, n, runs, repeats)
        rows = bench.rows()
    print(report(rows, bench.why))
    return 0


if __name__ == "__main__":
    from _sigterm import exit_cleanly_on_sigterm  # benchmarks/ is sys.path[0]

    exit_cleanly_on_sigterm()
    sys.exit(main())
