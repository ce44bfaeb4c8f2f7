"""Reads at scale on S3 (moto): request counts of compacted runs and of the catalog, and 16
writers with 2 compactors at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.s3.conftest import Store
from tests.s3.support import Requests
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
