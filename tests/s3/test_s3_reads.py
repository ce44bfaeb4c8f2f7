"""Reads at scale on S3 (moto): request counts of compacted runs, of the run listing, of the
catalog behind ``torchx tracker list jobs --status`` and ``lineage()`` (the same for 50 and 500
runs; runs written by TorchX's own tracker from the second read on), and 16 writers with 2
compactors at once. Timings are in ``benchmarks/bench_reads_s3.py``, not here."""

from __future__ import annotations

import argparse
import json
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest

from tests.s3.conftest import Store
from tests.s3.support import Requests
from tests.s3.test_s3_compat import s3fs_side
from trackers.backends.catalog import MERGE_SEGMENTS_AT
from trackers.testing import PARENT, RUN

N = 1000


def chain(i: int) -> str:
    return f"local_cwd://torchx/step-{i:04d}"


def test_a_compacted_run_reads_in_at_most_three_requests(
    make_s3_tracker: Callable[..., Any],
) -> None:
    writer = make_s3_tracker()
    writer.add_metadata(PARENT, stage="data")
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: writer.add_metadata(RUN, **{f"k{i}": i}), range(N)))
        list(pool.map(lambda i: writer.add_artifact(RUN, f"a{i}", f"/p/{i}"), range(N)))
    # Links one at a time: 16 threads rewriting one TorchX sources/ file can exhaust its 25
    # conditional-write retries (a TrackerError; the link itself is kept in links/). What this
    # test measures is the read side.
    for i in range(300):
        writer.add_source(RUN, PARENT, f"s{i}")
    writer.compact(RUN)
    writer.compact(PARENT)
    reader = make_s3_tracker()
    requests = Requests(reader)
    reads: list[tuple[str, Callable[[], Any], int]] = [
        ("metadata", lambda: reader.metadata(RUN), N),
        ("artifacts", lambda: reader.artifacts(RUN), N),
        ("sources", lambda: reader.sources(RUN), 300),
        ("descendants", lambda: reader.descendants(PARENT), 300),
    ]
    for what, read, expected in reads:
        requests.clear()
        assert len(read()) == expected, what
        assert len(requests.ops) <= 3, (what, requests.ops)


def compacted_links(make_s3_tracker: Callable[..., Any], n: int) -> Any:
    """A writer that linked ``RUN`` to ``PARENT`` for artifacts ``s0``..``s{n-1}`` and
    compacted ``RUN``."""
    writer = make_s3_tracker()
    writer.add_metadata(PARENT, stage="data")
    for i in range(n):
        writer.add_source(RUN, PARENT, f"s{i}")
    writer.compact(RUN)
    return writer


def test_a_runs_listings_and_snapshot_are_requested_side_by_side(
    make_s3_tracker: Callable[..., Any], proxy_factory: Callable[..., Any]
) -> None:
    """sources() needs two listings (links/, TorchX's sources/) and the snapshot: behind real
    latency one round trip, not three, so all three requests are in flight at once."""
    compacted_links(make_s3_tracker, 3)
    proxy = proxy_factory(rate=0.0, latency=0.3)  # every request held: sent together, they overlap
    reader = make_s3_tracker(endpoint=proxy.endpoint)
    requests = Requests(reader)
    assert [s.artifact_name for s in reader.sources(RUN)] == ["s0", "s1", "s2"]
    assert sorted(requests.ops) == ["GetObject", "ListObjectsV2", "ListObjectsV2"]
    assert (proxy.in_flight, proxy.most_in_flight) == (0, 3)


def test_a_repeat_read_of_unchanged_links_sends_only_the_two_listings(
    make_s3_tracker: Callable[..., Any],
) -> None:
    """The reader's memo (trackers.backends.link_memo): the listings' ETags vouch for every
    TorchX file, so the snapshot is not fetched again; a change is read on the next call."""
    writer = compacted_links(make_s3_tracker, 3)
    reader = make_s3_tracker()
    requests = Requests(reader)
    assert [s.artifact_name for s in reader.sources(RUN)] == ["s0", "s1", "s2"]
    assert sorted(requests.ops) == ["GetObject", "ListObjectsV2", "ListObjectsV2"]
    requests.clear()
    assert [s.artifact_name for s in reader.sources(RUN)] == ["s0", "s1", "s2"]
    assert requests.ops == ["ListObjectsV2", "ListObjectsV2"]
    writer.add_source(RUN, PARENT, "s3")
    assert [s.artifact_name for s in reader.sources(RUN)] == ["s0", "s1", "s2", "s3"]


def test_a_new_reader_answers_links_from_the_snapshots_view_without_parsing_its_body(
    make_s3_tracker: Callable[..., Any], body_parses: list[int]
) -> None:
    """The listings' ETags equal the view's (trackers.backends.snapshots): the answer is the
    view's, in the same three requests, and a TorchX file changed since is read, not the view."""
    writer = compacted_links(make_s3_tracker, 20)
    reader = make_s3_tracker()
    requests = Requests(reader)
    assert len(reader.sources(RUN)) == 20
    assert sorted(requests.ops) == ["GetObject", "ListObjectsV2", "ListObjectsV2"]
    assert body_parses == []
    writer.add_source(RUN, PARENT, "late")  # rewrites TorchX's sources/ file of PARENT
    names = [s.artifact_name for s in make_s3_tracker().sources(RUN)]
    assert "late" in names and len(names) == 21
    assert body_parses


def test_run_listing_requests_do_not_grow_with_records(
    make_s3_tracker: Callable[..., Any],
) -> None:
    tracker = make_s3_tracker()
    runs = [chain(i) for i in range(20)]
    for run in runs:
        tracker.add_metadata(run, x=1)
    requests = Requests(tracker)
    assert tracker.run_ids() == runs
    before = len(requests.ops)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: tracker.add_metadata(runs[i % 20], **{f"k{i}": i}), range(400)))
    requests.clear()
    assert tracker.run_ids() == runs
    assert len(requests.ops) == before == 1


def test_list_jobs_status_reads_a_few_objects(make_s3_tracker: Callable[..., Any]) -> None:
    from launcher_plugin.reconcile import run_states

    writer = make_s3_tracker()
    runs = [chain(i) for i in range(300)]

    def write(i: int) -> None:
        writer.set_status(runs[i], "RUNNING")
        writer.set_status(runs[i], "FAILED" if i % 7 == 0 else "SUCCEEDED")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(write, range(len(runs))))
    for _ in range(2):  # the first read merges the catalog's segments; both answer the same
        reader = make_s3_tracker()
        requests = Requests(reader)
        states = run_states(reader, None, reader.run_ids(), write=False)  # type: ignore[arg-type]
        expected = ["FAILED" if i % 7 == 0 else "SUCCEEDED" for i in range(300)]
        assert [s.recorded for s in states] == expected
    assert len(requests.ops) <= 10, requests.ops


def test_lineage_of_a_chain_reads_the_catalog_not_every_run(
    make_s3_tracker: Callable[..., Any],
) -> None:
    writer = make_s3_tracker()
    writer.add_metadata(chain(0), x=0)
    for i in range(1, 100):
        writer.add_source(chain(i), chain(i - 1), "model")
    reader = make_s3_tracker()
    assert len(reader.lineage(chain(50)).ancestors) == 50
    requests = Requests(reader)
    lineage = reader.lineage(chain(50))
    assert (len(lineage.ancestors), len(lineage.descendants)) == (50, 49)
    assert lineage.ancestors[chain(0)] == 50
    assert len(requests.ops) <= 4, requests.ops


def test_runs_summary_of_runs_written_without_the_catalog(
    make_s3_tracker: Callable[..., Any], store: Store
) -> None:
    """A store of the previous layout (no catalog): derived once, then read from the catalog."""
    writer = make_s3_tracker()
    writer.set_status(RUN, "SUCCEEDED")
    writer.add_source(RUN, PARENT, "data")
    for key in store.keys():
        if key.startswith(".catalog"):
            store.admin.delete_object(Bucket=store.bucket, Key=f"{store.prefix}/{key}")
    first = make_s3_tracker().runs_summary()
    second = make_s3_tracker().runs_summary()
    assert first == second
    assert [(s.run_id, s.status, [p.run_id for p in s.parents]) for s in first] == [
        (RUN, "SUCCEEDED", [PARENT])
    ]


def test_sixteen_writers_and_two_compactors_on_s3(make_s3_tracker: Callable[..., Any]) -> None:
    writers, per = 16, 15
    make_s3_tracker().add_metadata(PARENT, stage="data")
    stop = threading.Event()

    def compactor() -> None:
        t = make_s3_tracker()
        while not stop.is_set():
            t.compact(RUN)
            t.compact(PARENT)
            t.compact_catalog()

    def writer(w: int) -> None:
        t = make_s3_tracker()
        for i in range(per):
            t.add_metadata(RUN, **{f"w{w}-{i}": i})
            t.add_artifact(RUN, f"w{w}-a{i}", f"/p/{w}/{i}")
            if i % 5 == 0:
                t.add_source(RUN, PARENT, f"w{w}-s{i}")

    threads = [threading.Thread(target=compactor) for _ in range(2)]
    for t in threads:
        t.start()
    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(writer, range(writers)))
    stop.set()
    for t in threads:
        t.join()
    links = sorted(f"w{w}-s{i}" for w in range(writers) for i in range(0, per, 5))
    for reader in (make_s3_tracker(), make_s3_tracker()):
        assert reader.metadata(RUN) == {f"w{w}-{i}": i for w in range(writers) for i in range(per)}
        assert {n: a.path for n, a in reader.artifacts(RUN).items()} == {
            f"w{w}-a{i}": f"/p/{w}/{i}" for w in range(writers) for i in range(per)
        }
        assert sorted(s.artifact_name or "" for s in reader.sources(RUN)) == links
        assert sorted(d.artifact_name or "" for d in reader.descendants(PARENT)) == links
        graph = reader.lineage(PARENT)
        assert sorted(e.artifact_name or "" for e in graph.edges) == links


@pytest.fixture
def own_bucket(store: Store) -> Store:
    """A store in a bucket of its own: moto lists a prefix by scanning its whole bucket, so in
    the shared bucket every listing of these large tests would also pay for other tests' keys."""
    bucket = f"reads-{uuid.uuid4().hex[:12]}"
    store.admin.create_bucket(Bucket=bucket)
    return Store(store.endpoint, bucket, store.prefix, store.admin)


def _store_at(store: Store, name: str = "") -> Any:
    """A new tracker on ``store`` (or on the store ``<prefix>/<name>`` under it)."""
    from trackers.backends.s3 import create_tracker

    url = f"{store.url}/{name}" if name else store.url
    return create_tracker(json.dumps({"url": url, "endpoint_url": store.endpoint}))


def _lineage_shape(writer: Any, shape: str, runs: int) -> str:
    """Write a chain or a wide graph of ``runs`` runs; return the run whose lineage is read."""
    with ThreadPoolExecutor(16) as pool:  # every run exists first: links go both ways
        list(pool.map(lambda i: writer.add_metadata(chain(i), x=i), range(runs)))
    if shape == "chain":
        links = [(chain(i), chain(i - 1)) for i in range(1, runs)]
        middle = chain(runs // 2)
    else:  # one parent, its children, and a grandchild under every tenth child
        children = (runs - 1) * 9 // 10
        links = [(chain(i), chain(0)) for i in range(1, children + 1)]
        links += [(chain(i), chain(i - children)) for i in range(children + 1, runs)]
        middle = chain(1)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda link: writer.add_source(*link, "model"), links))
    return middle


@pytest.mark.parametrize("shape", ["chain", "wide"])
def test_lineage_requests_do_not_grow_with_runs(own_bucket: Store, shape: str) -> None:
    """50 and 500 runs: the second reader's lineage costs the same few requests (the run
    listing and the catalog), not a read per run."""
    seen: dict[int, list[str]] = {}
    for runs in (50, 500):
        name = f"{shape}-{runs}"
        start = _lineage_shape(_store_at(own_bucket, name), shape, runs)
        first = _store_at(own_bucket, name).lineage(start)  # merges the segments
        reader = _store_at(own_bucket, name)
        requests = Requests(reader)
        lineage = reader.lineage(start)
        seen[runs] = list(requests.ops)
        assert lineage == first
        if shape == "chain":
            assert (len(lineage.ancestors), len(lineage.descendants)) == (runs // 2, runs // 2 - 1)
        else:
            assert (len(lineage.ancestors), len(lineage.descendants)) == (1, 1)
            assert len(reader.lineage(chain(0)).descendants) == runs - 1
    assert seen[50] == seen[500], seen
    assert len(seen[500]) <= 4, seen[500]


def test_run_listing_skips_the_catalog_segments(make_s3_tracker: Callable[..., Any]) -> None:
    """Segments wait at the store's root until a reader merges them: listing runs must not page
    through them (1200 segments here would be two more pages)."""
    writer = make_s3_tracker()
    runs = [chain(i) for i in range(20)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: writer.set_status(runs[i % 20], "RUNNING"), range(600)))
    reader = make_s3_tracker()
    requests = Requests(reader)
    assert reader.run_ids() == runs
    assert requests.ops == ["ListObjectsV2"]


def _list_jobs_status(tracker: Any, *, status: bool = True) -> list[dict[str, Any]]:
    """What ``torchx tracker list jobs [--status]`` prints as JSON, through the command's code."""
    from launcher_plugin.cli.cmd_tracker import list_jobs

    output = list_jobs(tracker, argparse.Namespace(parent_run_id=None, status=status))
    data: list[dict[str, Any]] = output.data
    return data


JOBS = 1000


def _launched_at(i: int) -> str:
    return f"2026-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}+00:00"


def test_list_jobs_with_and_without_status_over_1000_runs_in_at_most_ten_requests(
    own_bucket: Store,
) -> None:
    """Both read the catalog only: status, and (plain ``list jobs``) the start and component
    the launch records put there, not each run's own records."""

    def make_s3_tracker() -> Any:
        return _store_at(own_bucket)

    writer = make_s3_tracker()
    runs = [chain(i) for i in range(JOBS)]

    def launch_and_end(i: int) -> None:
        launch = {"launch.component": f"dist.ddp-{i % 3}", "launch.time": _launched_at(i)}
        writer.add_metadata(runs[i], **launch)
        writer.set_status(runs[i], _final(i))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(launch_and_end, range(JOBS)))
    expected = [
        {"run_id": run, "status": _final(i), "scheduler": "-"} for i, run in enumerate(runs)
    ]
    assert _list_jobs_status(make_s3_tracker()) == expected  # the first read merges segments
    reader = make_s3_tracker()
    requests = Requests(reader)
    assert _list_jobs_status(reader) == expected
    assert len(requests.ops) <= 10, requests.ops
    plain = [
        {
            "run_id": runs[i],
            "status": _final(i),
            "start_time": _launched_at(i),
            "component": f"dist.ddp-{i % 3}",
        }
        for i in reversed(range(JOBS))  # newest first
    ]
    reader = make_s3_tracker()
    requests = Requests(reader)
    assert _list_jobs_status(reader, status=False) == plain
    assert len(requests.ops) <= 10, requests.ops
    # Writers go on: segments below the merge threshold are read as they are, still few reads.
    for i in range(MERGE_SEGMENTS_AT // 2):
        writer.set_status(runs[i], "KILLED")
        expected[i]["status"] = "KILLED"
    reader = make_s3_tracker()
    requests = Requests(reader)
    assert _list_jobs_status(reader) == expected
    assert requests.count("GetObject") <= MERGE_SEGMENTS_AT + 1, requests.ops
    assert len(requests.ops) <= 10, requests.ops


def _final(i: int) -> str:
    return "FAILED" if i % 7 == 0 else "SUCCEEDED"


def test_list_jobs_status_of_1000_runs_torchx_wrote(own_bucket: Store, s3fs_py: Path) -> None:
    """Runs written by TorchX's own ``FsspecTracker`` (over s3fs) are not in the catalog: the
    first read derives their entries (side by side) and stores them; from the second read on
    the command reads a few objects."""
    runs = [chain(i) for i in range(JOBS)]
    store = own_bucket
    store.admin.put_object(Bucket=store.bucket, Key=f"{store.prefix}/", Body=b"")  # TorchX's root
    sources = {runs[i]: runs[i - 1] for i in range(1, JOBS, 2)}
    s3fs_side(s3fs_py, store, {"do": "torchx_runs", "runs": runs, "sources": sources})
    first = _list_jobs_status(_store_at(store))
    assert [row["run_id"] for row in first] == runs
    assert {row["status"] for row in first} == {None}  # TorchX records no status
    reader = _store_at(store)
    requests = Requests(reader)
    assert _list_jobs_status(reader) == first
    assert len(requests.ops) <= 10, requests.ops
    parents = {s.run_id: [p.run_id for p in s.parents] for s in reader.runs_summary()}
    assert parents == {run: [sources[run]] if run in sources else [] for run in runs}


def test_listing_timestamps_parse_as_botocore_does(
    make_s3_tracker: Callable[..., Any], store: Store
) -> None:
    """The tracker's client parses listings' ISO times without dateutil, to the same values."""
    from botocore.parsers import DEFAULT_TIMESTAMP_PARSER

    from trackers.backends.s3 import _fast_timestamp

    parse = _fast_timestamp(DEFAULT_TIMESTAMP_PARSER)
    for text in (
        "2026-12-05T07:11:34.000Z",
        "2026-12-05T07:11:34Z",
        "2026-12-05T07:11:34.123456Z",
        "Sat, 05 Dec 2026 07:11:34 GMT",  # an HTTP date: botocore's own parser
        "1733380294",
    ):
        assert parse(text) == DEFAULT_TIMESTAMP_PARSER(text), text
    tracker = make_s3_tracker()
    tracker.add_metadata(RUN, x=1)
    prefix = f"{store.prefix}/"
    ours = tracker._client.list_objects_v2(Bucket=store.bucket, Prefix=prefix)["Contents"]
    theirs = store.admin.list_objects_v2(Bucket=store.bucket, Prefix=prefix)["Contents"]
    assert [o["LastModified"] for o in ours] == [o["LastModified"] for o in theirs]
    # timezone.utc, where dateutil would give tzutc(): the client takes the fast path
    assert all(o["LastModified"].tzinfo is timezone.utc for o in ours)


def test_a_parent_with_1000_children_torchx_linked_reads_in_three_requests(
    make_s3_tracker: Callable[..., Any], store: Store
) -> None:
    """TorchX's ``add_source`` writes ``<parent>/descendants/<b32(child)>`` next to our
    directory marker: 1000 of them and the marker must still be one listing page."""
    from trackers.ids import encode_run_id

    make_s3_tracker().add_metadata(PARENT, stage="data")  # ours: descendants/ has a marker
    children = [chain(i) for i in range(1000)]
    directory = f"{store.prefix}/{encode_run_id(PARENT)}/descendants"
    with ThreadPoolExecutor(16) as pool:  # TorchX's bytes, as its add_source writes them
        list(
            pool.map(
                lambda c: store.admin.put_object(
                    Bucket=store.bucket, Key=f"{directory}/{encode_run_id(c)}", Body=b"data\n"
                ),
                children,
            )
        )
    assert len(make_s3_tracker().descendants(PARENT)) == 1000  # stores the link files' copies
    reader = make_s3_tracker()
    requests = Requests(reader)
    assert sorted(d.run_id for d in reader.descendants(PARENT)) == children
    assert len(requests.ops) <= 3, requests.ops


def test_the_stored_catalog_is_read_in_a_few_requests_or_refused_in_one(
    own_bucket: Store,
) -> None:
    """``stored_runs_summary()`` (the web view's first page): a listing of at most 8 keys that
    stops there, and a GET per object; ``None`` after one request when segments are pending
    beyond the merge threshold; never a write."""
    writer = _store_at(own_bucket)
    runs = [chain(i) for i in range(20)]
    for i, run in enumerate(runs):
        writer.add_metadata(run, **{"launch.component": "c", "launch.user": f"u{i % 2}"})
        writer.set_status(run, _final(i))
    reader = _store_at(own_bucket)
    requests = Requests(reader)
    assert reader.stored_runs_summary() is None  # 40 segments, none merged
    assert requests.ops == ["ListObjectsV2"]
    assert writer.compact_catalog()
    for i in range(MERGE_SEGMENTS_AT - 1):
        writer.set_status(runs[i], "KILLED")  # segments below the threshold are read as stored
    requests.clear()
    summaries = reader.stored_runs_summary()
    assert summaries is not None
    assert [s.run_id for s in summaries] == runs
    statuses = [s.status for s in summaries]
    assert statuses == ["KILLED"] * (MERGE_SEGMENTS_AT - 1) + [
        _final(i) for i in range(MERGE_SEGMENTS_AT - 1, 20)
    ]
    assert all(s.launch_known and s.user == f"u{i % 2}" for i, s in enumerate(summaries))
    assert all(s.status_time is not None for s in summaries)
    assert requests.count("ListObjectsV2") == 1
    assert len(requests.ops) <= 1 + MERGE_SEGMENTS_AT, requests.ops
    assert set(requests.ops) == {"ListObjectsV2", "GetObject"}
