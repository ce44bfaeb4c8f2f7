"""Runs table rows from the store's catalog: an ended run whose launch record the catalog keeps
(component, user, final status and its time) is shown without reading the run, and its row is
the one reading the run gives; runs still going, and runs whose catalog entry predates users,
are read as before."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from launcher_plugin.ui.data import RunRow, final_in_catalog, read_row, summary_row
from launcher_plugin.ui.index import RunIndex, RunsQuery
from tests.ui.conftest import ui_server
from tests.ui.stores import CYCLE, many_id, write_many_runs
from trackers.backends.catalog import CATALOG
from trackers.backends.fsspec import create_tracker

RUNS = 12
ENDED = [many_id(i) for i in range(RUNS) if CYCLE[i % 4] != "RUNNING"]
GOING = [many_id(i) for i in range(RUNS) if CYCLE[i % 4] == "RUNNING"]


def store(tmp_path: Path) -> Any:
    tracker = create_tracker(str(tmp_path / "store"))
    write_many_runs(tracker, RUNS)
    tracker.compact_catalog()
    return tracker


def count_run_reads(tracker: Any) -> Counter[str]:
    """Calls of the per-run reads a row makes, by run id."""
    reads: Counter[str] = Counter()
    for name in ("metadata", "status_history", "sources"):
        method = getattr(tracker, name)

        def counted(run_id: str, *args: Any, _method: Any = method, **kwargs: Any) -> Any:
            reads[run_id] += 1
            return _method(run_id, *args, **kwargs)

        setattr(tracker, name, counted)
    return reads


def page_reads(tracker: Any, run_ids: list[str]) -> tuple[list[RunRow], Counter[str]]:
    """The rows a page of ``run_ids`` shows once the catalog is loaded, and the runs it read."""
    index = RunIndex(tracker, contextlib.nullcontext())
    index._load_summaries()  # what the background does first
    reads = count_run_reads(tracker)
    try:
        return index.rows(run_ids), reads
    finally:
        index.stop()


def test_the_catalog_row_of_an_ended_launched_run_is_the_row_reading_the_run_gives(
    tmp_path: Path,
) -> None:
    tracker = store(tmp_path)
    summaries = {s.run_id: s for s in tracker.runs_summary()}
    for run_id in ENDED:
        summary = summaries[run_id]
        assert final_in_catalog(summary)
        from_catalog, read = summary_row(summary).to_json(), read_row(tracker, run_id).to_json()
        assert from_catalog == read
        assert read["user"] in ("alice", "bob") and read["end_time"] is not None
    for run_id in GOING:
        assert not final_in_catalog(summaries[run_id])
        assert summary_row(summaries[run_id]).to_json()["end_time"] is None


def test_a_page_reads_only_the_runs_still_going_once_the_catalog_is_loaded(
    tmp_path: Path,
) -> None:
    rows, reads = page_reads(store(tmp_path), [many_id(i) for i in range(RUNS)])
    assert set(reads) == set(GOING)
    assert [r.run_id for r in rows] == [many_id(i) for i in range(RUNS)]
    assert all(r.user and r.component and r.status for r in rows)


def test_runs_whose_catalog_entry_keeps_no_user_are_read_as_before(tmp_path: Path) -> None:
    """An entry an earlier release wrote (component, no user) is not trusted for the row."""
    tracker = store(tmp_path)
    catalog = tmp_path / "store" / CATALOG
    body = json.loads(catalog.read_bytes())
    for entry in body["runs"].values():
        entry.pop("user", None)
    catalog.write_text(json.dumps(body))
    rows, reads = page_reads(tracker, ENDED)
    assert set(reads) == set(ENDED)
    assert all(r.user in ("alice", "bob") for r in rows)


def test_sorting_by_user_and_duration_covers_every_ended_run_from_the_catalog_alone(
    tmp_path: Path,
) -> None:
    tracker = store(tmp_path)
    index = RunIndex(tracker, contextlib.nullcontext())
    index._load_summaries()
    reads = count_run_reads(tracker)
    try:
        ids = index.run_ids()
        known = {run_id: index.known(run_id) for run_id in ids}
        by_user = index.page(
            RunsQuery(sort="user", descending=False, statuses=frozenset({"FAILED"}))
        )
    finally:
        index.stop()
    assert all(known[r] is not None and known[r].user for r in ids)  # type: ignore[union-attr]
    assert all(known[r].duration is not None for r in ENDED)  # type: ignore[union-attr]
    users = [row["user"] for row in by_user["rows"]]  # type: ignore[index]
    assert users == sorted(users) and len(users) == len(range(1, RUNS, 4))
    assert not reads  # no run read: every FAILED run is ended and whole in the catalog


NEWEST = "local_cwd://torchx/aaa-launched-last"


def store_with_newest(tmp_path: Path) -> Any:
    """:func:`store` plus :data:`NEWEST`, launched after them all (no user), catalog merged."""
    tracker = store(tmp_path)
    tracker.add_metadata(
        NEWEST, **{"launch.time": "2027-01-01T00:00:00+00:00", "launch.component": "c"}
    )
    tracker.set_status(NEWEST, "SUCCEEDED")
    return tracker


def first_page(tracker: Any) -> tuple[dict[str, Any], Counter[str]]:
    """The first page (5 rows) of a new index, nothing loaded yet, and the runs it read."""
    index = RunIndex(tracker, contextlib.nullcontext())
    reads = count_run_reads(tracker)
    try:
        return index.page(RunsQuery(limit=5)), reads
    finally:
        index.stop()


def test_the_first_page_of_a_merged_store_is_sorted_over_its_catalog_before_any_read(
    tmp_path: Path,
) -> None:
    """No background yet: the page takes the catalog as stored (a few reads), so the newest
    run comes first although its id sorts last, and only the runs still going are read."""
    page, reads = first_page(store_with_newest(tmp_path))
    shown = [row["run_id"] for row in page["rows"]]  # type: ignore[union-attr]
    assert shown == [NEWEST] + [many_id(i) for i in range(RUNS - 1, RUNS - 5, -1)]
    assert set(reads) == set(shown) & set(GOING)
    assert page["rows"][0]["user"] is None  # type: ignore[index]  # its launch record names none


def test_the_first_page_of_a_store_with_many_pending_segments_reads_its_rows(
    tmp_path: Path,
) -> None:
    """More segments than a reader merges (a read-only viewer merges none): the first page does
    not wait for them; it reads its own rows, as before."""
    tracker = create_tracker(str(tmp_path / "store"))
    write_many_runs(tracker, RUNS)  # two segments a run, not merged
    assert tracker.stored_runs_summary() is None
    page, reads = first_page(tracker)
    assert set(reads) == {row["run_id"] for row in page["rows"]}  # type: ignore[union-attr]


def test_the_servers_first_page_of_a_merged_store_shows_the_newest_run_first(
    tmp_path: Path,
) -> None:
    """Through ``torchx tracker ui`` itself: the first ``/api/runs`` of a merged store."""
    store_with_newest(tmp_path).compact_catalog()
    root = tmp_path / "store"
    with ui_server(tmp_path, f"fsspec={root}") as server:
        with urllib.request.urlopen(server.url + "api/runs?limit=3", timeout=60) as response:
            body = json.loads(response.read())
    assert [row["run_id"] for row in body["rows"]] == [NEWEST, many_id(RUNS - 1), many_id(RUNS - 2)]
    assert body["rows"][1]["user"] == "alice" and body["rows"][1]["duration"] is None  # RUNNING


def test_progress_counts_the_rows_the_catalog_holds_whole_as_known(tmp_path: Path) -> None:
    """What sorting covers: once the catalog is loaded, every ended run; the runs still going
    once read."""
    tracker = store(tmp_path)
    index = RunIndex(tracker, contextlib.nullcontext())
    try:
        index.run_ids()
        assert index.progress()["read"] == 0
        index._load_summaries()
        assert index.progress()["read"] == len(ENDED) and not index.progress()["ready"]
        index.rows(GOING)
        assert index.progress()["read"] == RUNS and index.progress()["ready"]
    finally:
        index.stop()


def test_the_background_reads_the_rows_sorting_lacks_before_the_rest(tmp_path: Path) -> None:
    """Runs still going first (what sorting and the progress wait for), then the ended runs
    the catalog holds whole (read only for their damaged records)."""
    tracker = store(tmp_path)
    order: list[str] = []
    metadata = tracker.metadata
    tracker.metadata = lambda run_id: order.append(run_id) or metadata(run_id)
    index = RunIndex(tracker, contextlib.nullcontext())
    index.start()
    try:
        deadline = time.monotonic() + 60
        while len(set(order)) < RUNS and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        index.stop()
    assert set(order[: len(GOING)]) == set(GOING)
    assert set(order) == {many_id(i) for i in range(RUNS)}
