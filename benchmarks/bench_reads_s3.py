"""Benchmark: reads at scale on S3 (issue #16), ours against TorchX 0.7.0's ``FsspecTracker``.

One moto server on 127.0.0.1 (its own process group, stopped by group at the end); the latency
rows go through ``tests/s3/faultproxy.py`` holding every request 20 ms. Ours is the ``s3``
backend (boto3) in this process; TorchX's ``FsspecTracker`` over s3fs, and our ``fsspec``
backend over s3fs, run in the s3fs virtualenv the tests build (s3fs pins an older botocore than
the project's boto3): this file, run there with ``--torchx-side``, writes or times and prints
JSON. Every store is in a bucket of its own (moto lists a prefix by scanning its whole bucket).

Each timed read is cold as a new process is: a new tracker object, no in-process cache (TorchX:
``fs.invalidate_cache()`` and a new ``FsspecTracker``); the client and its connection are warmed
by one unrelated request first, for both sides. "Second read on" means one read of ours already
stored what it derived (a run's snapshot, catalog entries, merged catalog segments); the first
read's cost is printed under the table. Requests are counted on the client (boto3 and s3fs
events), retries included.

Stores (sizes: full / ``--quick``):

* per-run, written by our ``s3`` backend (16 threads): a run with N metadata, N artifacts, N
  sources, and a parent with N children (N = 1000 / 100);
* per-run, written by TorchX's own tracker over s3fs (16 threads), the same calls; the parent is
  created by ours (TorchX writes a parent's ``descendants/`` file only where it exists);
* the graph: R runs (10,000 / 1000), a 3-ary tree with a second source on every tenth run. It is
  written by our backend's own code into memory (the exact objects, checked against a real
  write of a few runs) and uploaded with 16 threads, with its catalog segments merged into
  ``.catalog`` as a reader's compaction leaves them: writing 10,000 runs call by call would take
  ~10 minutes here;
* R runs written by TorchX's own tracker (one metadata record each);
* J runs (1000 / 200) with statuses written by our backend, and J runs written by TorchX's own
  tracker (metadata, every second run with a source);
* a chain of C runs (500 / 50) written by our backend.

Run from the repository root (full: ~18 minutes on the shared 2-core machine, 6 of them setup)::

    .venv/bin/python benchmarks/bench_reads_s3.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import posixpath
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from _rows import OURS, TORCHX, RowResult  # benchmarks/ is sys.path[0] when run as a script
from _s3_server import REPO, expect, latency_proxy, run_torchx_side, side_request

FSSPEC = "fsspec"
RUN = "local_cwd://torchx/run"
PARENT = "local_cwd://torchx/parent"
PER_RUN_READS = ("metadata", "artifacts", "sources", "descendants")


def rid(kind: str, i: int) -> str:
    return f"local_cwd://torchx/{kind}-{i:05d}"


def graph_sources(runs: int) -> dict[str, list[tuple[str, str]]]:
    """The graph: run i's parent is run (i-1)//3 (a 3-ary tree); every tenth run also names run
    i-7 as its ``data`` source."""
    out: dict[str, list[tuple[str, str]]] = {}
    for i in range(1, runs):
        links = [(rid("g", (i - 1) // 3), "model")]
        if i % 10 == 0:
            links.append((rid("g", i - 7), "data"))
        out[rid("g", i)] = links
    return out


def write_layout_sample(tracker: Any, links: dict[str, list[tuple[str, str]]]) -> None:
    """The graph's first 12 runs, written the same way into a real store and into the recorder
    to check that the two hold the same objects (also ``tests/s3/test_bench_recorder.py``)."""
    tracker.add_metadata(rid("g", 0), stage="root")
    for i in range(1, 12):
        for parent, name in links[rid("g", i)]:
            tracker.add_source(rid("g", i), parent, name)


def write_per_run(tracker: Any, n: int) -> None:
    """RUN gets n metadata, n artifacts and n sources, PARENT n children (16 calls at a time)."""
    calls: list[Callable[[], None]] = []
    for i in range(n):
        calls += [
            lambda i=i: tracker.add_metadata(RUN, **{f"k{i}": i}),
            lambda i=i: tracker.add_artifact(RUN, f"a{i}", f"/p/{i}"),
            lambda i=i: tracker.add_source(RUN, rid("src", i), "data"),
            lambda i=i: tracker.add_source(rid("child", i), PARENT, "data"),
        ]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda call: call(), calls))


# --- the s3fs side: TorchX's FsspecTracker and our fsspec backend over s3fs ---


def torchx_side(request: dict[str, Any]) -> dict[str, Any]:
    """Write or time as ``request`` says, in the s3fs virtualenv."""
    import fsspec
    from torchx.tracker.backend.fsspec import FsspecTracker

    from tests.s3.s3fs_side import torchx_runs
    from trackers.backends.fsspec import create_tracker

    endpoint, url = request["endpoint"], request["url"]
    if request["do"] == "write_runs":
        torchx_runs(url, endpoint, request["runs"], request["sources"])
        return {}
    fs = fsspec.filesystem("s3", endpoint_url=endpoint, skip_instance_cache=True)
    root = url.removeprefix("s3://")
    if request["do"] == "write_per_run":
        write_per_run(FsspecTracker(fs, root), request["n"])
        return {}
    ops: list[str] = []
    times: list[float] = []
    found: Any = None
    for _ in range(request["repeats"]):
        if request["impl"] == "torchx":
            fs.invalidate_cache()
            reader: Any = FsspecTracker(fs, root)
            client_fs = fs
        else:
            reader = create_tracker(
                json.dumps({"url": url, "storage_options": {"endpoint_url": endpoint}})
            )
            client_fs = reader.fs
            client_fs.invalidate_cache()
        client_fs.ls(root.split("/")[0])  # the client and its connection (untimed)
        client_fs.invalidate_cache()
        if not getattr(client_fs, "_bench_counted", False):
            client_fs.s3.meta.events.register(
                "before-send.s3", lambda event_name, **_: ops.append(event_name)
            )
            client_fs._bench_counted = True
        ops.clear()
        start = time.perf_counter()
        found = _side_read(reader, request["impl"], request["read"], request.get("arg"))
        times.append(time.perf_counter() - start)
    return {"times": times, "requests": len(ops), "found": found}


def _side_read(reader: Any, impl: str, read: str, arg: str | None) -> Any:
    """One read, and what it found in a comparable form (counts, or ids)."""
    if read == "metadata":
        return len(reader.metadata(RUN))
    if read == "artifacts":
        return len(reader.artifacts(RUN))
    if read == "sources":
        return len(list(reader.sources(RUN)))
    if read == "descendants":  # TorchX's way to find children: run_ids(parent_run_id=...)
        if impl == "torchx":
            return len(list(reader.run_ids(parent_run_id=PARENT)))
        return len(reader.descendants(PARENT))
    if read == "run_ids":
        return len(list(reader.run_ids()))
    if read == "lineage":
        lineage = reader.lineage(arg)
        return [len(lineage.ancestors), len(lineage.descendants)]
    raise ValueError(read)


# --- our side ---


@dataclass
class Row(RowResult):
    """A benchmark row with its request counts and target."""

    store: str = ""
    target: str = ""
    requests: dict[str, int] = field(default_factory=dict)
    verdict: str = ""


@dataclass
class Store:
    bucket: str
    written_by: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/store"


class Bench:
    def __init__(self, server_port: int, quick: bool, repeats: int) -> None:
        from tests.s3.support import admin_client, aws_test_env, s3fs_python

        self.port = server_port
        self.endpoint = f"http://127.0.0.1:{server_port}"
        self.quick = quick
        self.n, self.runs, self.jobs, self.chain = (
            (100, 1000, 200, 50) if quick else (1000, 10_000, 1000, 500)
        )
        self.repeats = repeats
        self.torchx_repeats = min(repeats, 3)
        os.environ.update(aws_test_env())  # fake credentials for moto
        self.admin: Any = admin_client(self.endpoint)
        self.python, self.why = s3fs_python()
        self.rows: list[Row] = []
        self.notes: list[str] = []

    # helpers
    def store(self, name: str, written_by: str) -> Store:
        self.admin.create_bucket(Bucket=name)
        self.admin.put_object(Bucket=name, Key="store/", Body=b"")  # TorchX needs its root
        return Store(name, written_by)

    def ours(self, store: Store, endpoint: str | None = None) -> Any:
        from trackers.backends.s3 import create_tracker

        config = {"url": store.url, "endpoint_url": endpoint or self.endpoint}
        tracker = create_tracker(json.dumps(config))
        tracker.verify()  # client and connection (untimed): one HeadBucket
        return tracker

    def side(self, endpoint: str, **request: Any) -> dict[str, Any]:
        request = {"endpoint": endpoint, **request}
        return run_torchx_side(self.python, self.why, __file__, endpoint, request)

    def timed_ours(
        self, store: Store, read: Callable[[Any], Any], endpoint: str | None = None
    ) -> tuple[list[float], int, Any]:
        """``read`` on a new tracker per repeat: times, the requests of the last, its result."""
        from tests.s3.support import Requests

        times, count, found = [], 0, None
        for _ in range(self.repeats):
            tracker = self.ours(store, endpoint)
            requests = Requests(tracker)
            start = time.perf_counter()
            found = read(tracker)
            times.append(time.perf_counter() - start)
            count = len(requests.ops)
            tracker.close()
        return times, count, found

    def first_read(self, store: Store, what: str, read: Callable[[Any], Any]) -> Any:
        from tests.s3.support import Requests

        tracker = self.ours(store)
        requests = Requests(tracker)
        start = time.perf_counter()
        found = read(tracker)
        took = time.perf_counter() - start
        self.notes.append(
            f"first read, {what} ({store.written_by}): {took:.3f} s, {len(requests.ops)} requests"
        )
        tracker.close()
        return found

    def side_row(
        self, row: Row, impl: str, store: Store, read: str, expected: Any, **options: Any
    ) -> None:
        """Time TorchX's tracker (``impl="torchx"``) or our fsspec backend over s3fs."""
        if self.python is None:
            row.note[impl] = "n/a (no s3fs venv)"
            return
        endpoint = options.pop("endpoint", self.endpoint)
        repeats = options.pop("repeats", self.torchx_repeats)
        result = self.side(
            endpoint, do="time", impl=impl, url=store.url, read=read, repeats=repeats, **options
        )
        expect(result["found"] == expected, f"{impl} {read}: {result['found']} != {expected}")
        row.samples[impl] = result["times"]
        row.requests[impl] = result["requests"]

    # stores
    def write_per_run_ours(self) -> Store:
        store = self.store("per-run-ours", "our s3 backend")
        writer = self.ours(store)
        writer.add_metadata(PARENT, stage="data")
        write_per_run(writer, self.n)
        return store

    def write_per_run_torchx(self) -> Store:
        store = self.store("per-run-torchx", "TorchX's tracker")
        self.ours(store).add_metadata(PARENT, stage="data")  # its descendants/ directory
        self.side(self.endpoint, do="write_per_run", url=store.url, n=self.n)
        return store

    def write_graph(self) -> Store:
        """The graph through our backend's own write code into memory, then uploaded."""
        from trackers.backends.catalog import SEGMENT_PREFIX, Catalog

        store = self.store("graph-ours", "our backend's objects, uploaded")
        links = graph_sources(self.runs)
        recorder = _Recorder(store.bucket, "store")
        recorder.add_metadata(rid("g", 0), stage="root")
        for child, parents in links.items():
            for parent, name in parents:
                recorder.add_source(child, parent, name)
        catalog = Catalog()
        objects = {}
        for key, data in recorder.objects.items():
            if posixpath.basename(key).startswith(SEGMENT_PREFIX):
                catalog.merge_json(data, key)
            else:
                objects[key] = data
        objects["store/.catalog"] = catalog.encode()
        self.check_recorded_layout(links)
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda kv: self.admin.put_object(Bucket=store.bucket, Key=kv[0], Body=kv[1]),
                    objects.items(),
                )
            )
        self.notes.append(f"graph store: {len(objects)} objects for {self.runs} runs")
        return store

    def check_recorded_layout(self, links: dict[str, list[tuple[str, str]]]) -> None:
        """The recorder writes exactly what our backend writes: the same keys (record names
        aside) and bodies (origin and record names aside) for the graph's first 12 runs."""
        store = self.store("layout-check", "our s3 backend")
        real = self.ours(store)
        recorder = _Recorder(store.bucket, "store")
        for tracker in (real, recorder):
            write_layout_sample(tracker, links)
        stored = {}
        for page in self.admin.get_paginator("list_objects_v2").paginate(Bucket=store.bucket):
            for obj in page.get("Contents", ()):
                if obj["Key"] != "store/":
                    body = self.admin.get_object(Bucket=store.bucket, Key=obj["Key"])["Body"]
                    stored[obj["Key"]] = body.read()
        expect(
            _normalized(stored) == _normalized(recorder.objects),
            "the recorded graph objects differ from what our backend writes",
        )

    def write_torchx_runs(self, name: str, runs: list[str], sources: dict[str, str]) -> Store:
        store = self.store(name, "TorchX's tracker")
        self.side(self.endpoint, do="write_runs", url=store.url, runs=runs, sources=sources)
        return store

    def write_jobs_ours(self) -> Store:
        store = self.store("jobs-ours", "our s3 backend")
        writer = self.ours(store)

        def write(i: int) -> None:
            writer.add_metadata(rid("job", i), **launch_record(i))  # what `torchx run` writes
            writer.set_status(rid("job", i), "RUNNING")
            writer.set_status(rid("job", i), "FAILED" if i % 7 == 0 else "SUCCEEDED")

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(write, range(self.jobs)))
        return store

    def write_chain(self) -> Store:
        store = self.store("chain-ours", "our s3 backend")
        writer = self.ours(store)
        with ThreadPoolExecutor(16) as pool:  # every run first, so links go both ways
            list(pool.map(lambda i: writer.add_metadata(rid("c", i), x=i), range(self.chain)))
            list(
                pool.map(
                    lambda i: writer.add_source(rid("c", i), rid("c", i - 1), "model"),
                    range(1, self.chain),
                )
            )
        return store

    # rows
    def per_run_rows(self, store: Store, endpoint: str, latency: str) -> None:
        n = self.n
        expected = {"metadata": n, "artifacts": n, "sources": n, "descendants": n}
        reads: dict[str, Callable[[Any], int]] = {
            "metadata": lambda t: len(t.metadata(RUN)),
            "artifacts": lambda t: len(t.artifacts(RUN)),
            "sources": lambda t: len(t.sources(RUN)),
            "descendants": lambda t: len(t.descendants(PARENT)),
        }
        for read in PER_RUN_READS:
            if not latency:
                found = self.first_read(store, f"{read}()", reads[read])
                expect(found == expected[read], f"ours {read}: {found}")
            row = Row(
                f"{read}() of a run with {n} records{latency}",
                store=store.written_by,
                target="<= 3 req, >= 100x",
            )
            times, count, found = self.timed_ours(store, reads[read], endpoint)
            expect(found == expected[read], f"ours {read}: {found}")
            row.samples[OURS], row.requests[OURS] = times, count
            repeats = self.torchx_repeats if not latency else 1
            self.side_row(
                row, TORCHX, store, read, expected[read], endpoint=endpoint, repeats=repeats
            )
            if not latency:
                self.side_row(row, FSSPEC, store, read, expected[read])
            ratio = row.ratio()
            row.verdict = _verdict(count <= 3 and ratio is not None and ratio >= 100)
            self.rows.append(row)
            if read == "sources" and store.written_by == "our s3 backend":
                self.rows.append(self.sources_floor_row(store, endpoint, latency, row))
                self.rows.append(self.warm_sources_row(store, endpoint, latency, row))

    def warm_sources_row(self, store: Store, endpoint: str, latency: str, of: Row) -> Row:
        """``sources()`` repeated by one reader (a long-lived process: the UI, a notebook):
        the two listings' ETags vouch for the kept answer (trackers.backends.link_memo), so
        no snapshot GET and no parsing. TorchX's times are those of row ``of``."""
        from tests.s3.support import Requests

        tracker = self.ours(store, endpoint)
        try:
            expect(len(tracker.sources(RUN)) == self.n, "warm sources(): the first read")
            requests = Requests(tracker)
            times = []
            for _ in range(self.repeats):
                requests.clear()
                start = time.perf_counter()
                found = len(tracker.sources(RUN))
                times.append(time.perf_counter() - start)
                expect(found == self.n, f"warm sources(): {found} links, not {self.n}")
        finally:
            tracker.close()
        row = Row(
            f"sources() of a run with {self.n} records, warm reader{latency}",
            store=store.written_by,
            target="<= 3 req, >= 100x",
        )
        row.samples[OURS], row.requests[OURS] = times, len(requests.ops)
        if TORCHX in of.samples:
            row.samples[TORCHX], row.requests[TORCHX] = of.samples[TORCHX], of.requests[TORCHX]
        ratio = row.ratio()
        row.verdict = _verdict(len(requests.ops) <= 3 and ratio is not None and ratio >= 100)
        return row

    def sources_floor_row(self, store: Store, endpoint: str, latency: str, of: Row) -> Row:
        """``sources()``'s three requests alone, side by side as it makes them (the ``links/``
        and TorchX ``sources/`` listings and the snapshot GET), nothing parsed or merged: the
        ceiling of its ratio with two listings. TorchX's times are those of row ``of``."""

        def requests_only(tracker: Any) -> int:
            run_dir = tracker._run_dir(RUN)
            links, files, _ = tracker._side_by_side(
                [
                    lambda: tracker._list_names(f"{run_dir}/links"),
                    lambda: tracker._list_versions(f"{run_dir}/sources"),
                    lambda: tracker._read_versioned(tracker._snapshot_key(RUN, "links")),
                ]
            )
            return min(len(links), len(files))

        row = Row(
            f"sources() floor: its 3 requests alone{latency}",
            store=store.written_by,
            target="(ceiling of the row above)",
        )
        times, count, found = self.timed_ours(store, requests_only, endpoint)
        expect(found == self.n, f"sources() floor: {found} links listed, not {self.n}")
        row.samples[OURS], row.requests[OURS] = times, count
        if TORCHX in of.samples:
            row.samples[TORCHX], row.requests[TORCHX] = of.samples[TORCHX], of.requests[TORCHX]
        row.verdict = "-"
        one, _, _ = self.timed_ours(
            store, lambda t: len(t._list_names(f"{t._run_dir(RUN)}/links")), endpoint
        )
        self.notes.append(
            f"the links/ listing of {self.n} records alone{latency}: "
            f"{statistics.median(one):.3f} s (moto answers one listing at a time)"
        )
        return row

    def run_ids_row(self, store: Store, runs: int) -> None:
        pages = math.ceil(runs / 1000)
        row = Row(f"run_ids() over {runs} runs", store=store.written_by)
        row.target = f"{pages} req (1 per 1000 runs)"
        times, count, found = self.timed_ours(store, lambda t: len(t.run_ids()))
        expect(found == runs, f"ours run_ids: {found}")
        row.samples[OURS], row.requests[OURS] = times, count
        self.side_row(row, TORCHX, store, "run_ids", runs)
        self.side_row(row, FSSPEC, store, "run_ids", runs)
        row.verdict = _verdict(count == pages)
        self.rows.append(row)

    def catalog_row(
        self, store: Store, what: str, label: str, read: Callable[[Any], Any], expected: Any
    ) -> list[float]:
        """A row of a command that reads the catalog (``what``: its name in the notes):
        checked on the first read and every timed one, at most 10 requests; its times."""
        found = self.first_read(store, what, read)
        expect(found == expected, f"{what}: wrong rows (first read)")
        row = Row(label, store=store.written_by)
        row.target = "<= 10 req"
        times, count, found = self.timed_ours(store, read)
        expect(found == expected, f"{what}: wrong rows")
        row.samples[OURS], row.requests[OURS] = times, count
        row.note[TORCHX] = "n/a (no status)"
        row.verdict = _verdict(count <= 10)
        self.rows.append(row)
        return times

    def list_jobs_row(self, store: Store, statuses: dict[str, str | None]) -> None:
        def read(tracker: Any) -> list[tuple[str, str | None]]:
            return [(r["run_id"], r["status"]) for r in _list_jobs_status(tracker)]

        label = f"list jobs --status over {len(statuses)} runs"
        self.catalog_row(store, "list jobs --status", label, read, sorted(statuses.items()))

    def list_jobs_plain_row(self, store: Store, statuses: dict[str, str | None]) -> None:
        """Plain ``list jobs`` (status, start, component) of launched runs: from the catalog,
        against reading each run's row on its own, as the command did before the catalog kept
        components (timed once: ~9 requests a run)."""
        from launcher_plugin.ui.data import read_row

        def read(tracker: Any) -> list[tuple[str, str | None, str | None]]:
            rows = _list_jobs_status(tracker, status=False)
            return sorted((r["run_id"], r["status"], r["component"]) for r in rows)

        expected = sorted(
            (run, s, launch_record(i)["launch.component"])
            for i, (run, s) in enumerate(sorted(statuses.items()))
        )
        label = f"list jobs over {len(statuses)} launched runs"
        times = self.catalog_row(store, "list jobs", label, read, expected)
        saved, self.repeats = self.repeats, 1
        try:
            per_run, per_run_count, rows = self.timed_ours(
                store, lambda t: [read_row(t, run) for run in sorted(statuses)]
            )
        finally:
            self.repeats = saved
        expect(len(rows) == len(statuses), "list jobs, per run: wrong row count")
        self.notes.append(
            f"list jobs over {len(statuses)} launched runs, each run's row read on its own (the "
            f"command before the catalog kept components): {per_run[0]:.2f} s, "
            f"{per_run_count} requests; from the catalog {statistics.median(times):.3f} s "
            f"({per_run[0] / statistics.median(times):.0f}x)"
        )

    def ui_page_row(self, store: Store, statuses: dict[str, str | None]) -> None:
        """A page of the web view's runs table: 50 ended launched runs no page has read yet,
        with the catalog load it rests on (done once per minute for every page), against the
        same catalog load and each row read on its own, :data:`PAGE_WORKERS` at once (what a
        page did before the catalog kept users and final status times; timed once)."""
        from launcher_plugin.ui.data import make_read_only, read_row
        from launcher_plugin.ui.index import PAGE_WORKERS, RunIndex

        order = sorted(statuses)
        page = order[:PAGE]

        def row_values(rows: Any) -> list[tuple[Any, ...]]:
            return sorted((r.run_id, r.status, r.component, r.user, r.duration) for r in rows)

        def served(tracker: Any) -> list[tuple[Any, ...]]:
            index = RunIndex(make_read_only(tracker), contextlib.nullcontext())
            try:
                index._load_summaries()  # the background's first step
                return row_values(index.rows(page))
            finally:
                index.stop()

        def read_each(tracker: Any) -> list[tuple[Any, ...]]:
            reader = make_read_only(tracker)
            summaries = {s.run_id: s for s in reader.runs_summary()}
            with ThreadPoolExecutor(PAGE_WORKERS) as pool:
                rows = pool.map(lambda run: read_row(reader, run, summaries[run]), page)
                return row_values(rows)

        saved, self.repeats = self.repeats, 1
        try:
            per_run, per_run_count, expected = self.timed_ours(store, read_each)
        finally:
            self.repeats = saved
        users = {run: launch_record(i)["launch.user"] for i, run in enumerate(order)}
        expect(
            [(v[0], v[1], v[3]) for v in expected] == [(r, statuses[r], users[r]) for r in page],
            "web view page, per run: wrong rows",
        )
        label = f"web view page of {PAGE} ended runs, catalog of {len(statuses)} loaded"
        times = self.catalog_row(store, "web view page", label, served, expected)
        self.notes.append(
            f"web view page of {PAGE} ended runs, catalog loaded and each row read on its own "
            f"({PAGE_WORKERS} at once; a page before the catalog kept users): {per_run[0]:.2f} s, "
            f"{per_run_count} requests; catalog load and page {statistics.median(times):.3f} s "
            f"({per_run[0] / statistics.median(times):.0f}x)"
        )

    def lineage_row(
        self, store: Store, endpoint: str, label: str, run: str, counts: list[int], limit: float
    ) -> None:
        def read(tracker: Any) -> list[int]:
            lineage = tracker.lineage(run)
            return [len(lineage.ancestors), len(lineage.descendants)]

        found = self.first_read(store, label, read)
        expect(found == counts, f"lineage {label}: {found} != {counts}")
        row = Row(f"{label}, 20 ms/request", store=store.written_by, target=f"< {limit:g} s")
        times, count, found = self.timed_ours(store, read, endpoint)
        expect(found == counts, f"lineage {label}: {found} != {counts}")
        row.samples[OURS], row.requests[OURS] = times, count
        row.note[TORCHX] = "n/a (NotImplementedError)"
        self.side_row(row, FSSPEC, store, "lineage", counts, endpoint=endpoint, arg=run)
        median = row.median(OURS)
        row.verdict = _verdict(median is not None and median < limit)
        self.rows.append(row)

    def run(self, slow: str) -> None:
        started = time.perf_counter()
        per_ours, per_torchx = self.write_per_run_ours(), self.write_per_run_torchx()
        graph = self.write_graph()
        listing_runs = [rid("t", i) for i in range(self.runs)]
        torchx_listing = self.write_torchx_runs("listing-torchx", listing_runs, {})
        jobs_ours = self.write_jobs_ours()
        job_runs = [rid("tj", i) for i in range(self.jobs)]
        job_sources = {job_runs[i]: job_runs[i - 1] for i in range(1, self.jobs, 2)}
        jobs_torchx = self.write_torchx_runs("jobs-torchx", job_runs, job_sources)
        chain = self.write_chain()
        self.notes.append(f"setup (untimed): {time.perf_counter() - started:.0f} s")

        self.per_run_rows(per_ours, self.endpoint, "")
        self.per_run_rows(per_torchx, self.endpoint, "")
        self.per_run_rows(per_ours, slow, ", 20 ms/request")
        self.run_ids_row(graph, self.runs)
        self.run_ids_row(torchx_listing, self.runs)
        ours_status = {
            rid("job", i): "FAILED" if i % 7 == 0 else "SUCCEEDED" for i in range(self.jobs)
        }
        self.list_jobs_row(jobs_ours, ours_status)
        self.list_jobs_plain_row(jobs_ours, ours_status)
        self.ui_page_row(jobs_ours, ours_status)
        self.list_jobs_row(jobs_torchx, dict.fromkeys(job_runs))
        middle = self.chain // 2
        self.lineage_row(
            chain,
            slow,
            f"lineage of a {self.chain}-run chain",
            rid("c", middle),
            [middle, self.chain - 1 - middle],
            1.0,
        )
        self.lineage_row(
            graph,
            slow,
            f"lineage of a {self.runs}-run graph (its root)",
            rid("g", 0),
            [0, self.runs - 1],
            3.0,
        )


class _Recorder:
    """Our S3 backend's write code with the objects kept in memory instead of PUT.

    Built lazily (it subclasses :class:`S3Tracker`); only the storage calls a write makes are
    answered here: a PUT (plain, conditional or create-if-absent) stores, a GET and "is there a
    run" read back.
    """

    def __new__(cls, bucket: str, prefix: str) -> Any:
        from trackers.backends.s3 import S3Config, S3Tracker

        class Recorder(S3Tracker):
            def __init__(self) -> None:
                super().__init__(S3Config(bucket=bucket, prefix=prefix), client=object())
                self.objects: dict[str, bytes] = {}
                self.runs: set[str] = set()

            def _put_object(self, key: str, data: bytes, **conditions: str) -> None:
                self.objects[key] = data
                self.runs.add("/".join(key.split("/")[:2]))

            def _get_object(self, key: str) -> tuple[bytes, str] | None:
                data = self.objects.get(key)
                return None if data is None else (data, '"recorded"')

            def _is_dir(self, prefix: str) -> bool:
                return prefix in self.runs

            def _put_if(
                self, run_id: str, key: str, data: bytes, version: str | None, *, exists: bool
            ) -> bool:
                self._put_object(key, data)
                return True

            def _create_if_absent(self, run_id: str, key: str, data: bytes) -> bool:
                if key in self.objects:
                    return False
                self._put_object(key, data)
                return True

        return Recorder()


_RECORD = re.compile(r"\d{20}-[0-9a-f]{32}")
_ORIGIN = re.compile(rb',?\s*"origin":\s*\{[^}]*\}')


def _normalized(objects: dict[str, bytes]) -> list[tuple[str, bytes]]:
    """Keys and bodies with record names, origins and start times blanked, sorted (records
    are JSON with or without spaces after ``:``: an edge record is also a catalog segment)."""
    out = []
    for key, data in objects.items():
        body = _ORIGIN.sub(b"", re.sub(rb"\d{20}-[0-9a-f]{32}", b"R", data))
        body = re.sub(rb'"start":\s*[0-9.e+]+', b'"start":T', body)
        out.append((_RECORD.sub("R", key), body))
    return sorted(out)


#: Rows of a web view page (its default ``limit``).
PAGE = 50


def launch_record(i: int) -> dict[str, str]:
    """The launch record's keys the catalog keeps, for job ``i``."""
    return {
        "launch.component": f"dist.ddp-{i % 5}",
        "launch.time": f"2026-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}+00:00",
        "launch.user": f"user-{i % 3}",
    }


def _list_jobs_status(tracker: Any, *, status: bool = True) -> list[dict[str, Any]]:
    """``torchx tracker list jobs [--status]`` as JSON rows, through the command's own code."""
    from launcher_plugin.cli.cmd_tracker import list_jobs

    output = list_jobs(tracker, argparse.Namespace(parent_run_id=None, status=status))
    data: list[dict[str, Any]] = output.data
    return data


def _verdict(ok: bool) -> str:
    return "holds" if ok else "MISSED"


def _fmt(row: Row, impl: str) -> str:
    if impl in row.note and impl not in row.samples:
        return row.note[impl]
    median = row.median(impl)
    return "-" if median is None else f"{median:.4f}"


def report(rows: Sequence[Row]) -> str:
    from tabulate import tabulate

    table = []
    for row in rows:
        ratio = row.ratio()
        fs = row.median(FSSPEC)
        table.append(
            [
                row.label,
                row.store,
                " / ".join(str(row.requests[i]) for i in (OURS, TORCHX) if i in row.requests),
                _fmt(row, TORCHX),
                _fmt(row, OURS),
                "-" if fs is None else f"{fs:.4f} ({row.requests.get(FSSPEC, '?')} req)",
                "-" if ratio is None else f"{ratio:.1f}x",
                row.target,
                row.verdict,
            ]
        )
    return tabulate(
        table,
        headers=(
            "row",
            "written by",
            "requests ours / TorchX",
            "TorchX median s",
            "ours (s3) median s",
            "ours (fsspec/s3fs)",
            "TorchX/ours",
            "target",
            "",
        ),
        disable_numparse=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=100, R=1000, J=200, C=50")
    parser.add_argument("--repeats", type=int, default=None, help="timed reads per row (5; 3)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help=argparse.SUPPRESS)
    parser.add_argument("--torchx-side", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.torchx_side:
        sys.path.insert(0, str(REPO))
        print(json.dumps(torchx_side(side_request(args.torchx_side))))
        return 0
    sys.path.insert(0, str(REPO))
    from tests.s3.support import moto

    repeats = args.repeats or (3 if args.quick else 5)
    with moto() as server, latency_proxy(server.port, args.latency_ms) as slow:
        bench = Bench(server.port, args.quick, repeats)
        print(
            f"S3 reads: moto on 127.0.0.1, {repeats} repeats (TorchX {bench.torchx_repeats}; "
            f"1 behind the proxy), {args.latency_ms:g} ms rows through the fault proxy; "
            f"N={bench.n}, R={bench.runs}, J={bench.jobs}, C={bench.chain}\n",
            flush=True,
        )
        bench.run(slow)
    print(report(bench.rows))
    print()
    for note in bench.notes:
        print(note)
    if bench.why:
        print(f"TorchX side not run: {bench.why}")
    return 0


if __name__ == "__main__":
    from _sigterm import exit_cleanly_on_sigterm  # benchmarks/ is sys.path[0]

    exit_cleanly_on_sigterm()
    sys.exit(main())
