"""Runs table rows from the store's catalog: an ended run whose launch record the catalog keeps
(component, user, final status and its time) is shown without reading the run, and its row is
the one reading the run gives; runs still going, and runs whose catalog entry predates users,
are read as before."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

from launcher_plugin.ui.data import RunRow, final_in_catalog, read_row, summary_row
from launcher_plugin.ui.index import RunIndex, RunsQuery
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
