"""The runs table's rows: the store's catalog in the background, each run's own records as needed.

A row has two parts. Status, start, duration, parents and (for launched runs) component and user
of every run come from one :meth:`~trackers.api.LineageTracker.runs_summary` (the record stores'
catalog: a few requests for the whole store when its segments are merged). The run's own records
(:func:`~launcher_plugin.ui.data.read_row`: its launch record and its status history, a few
requests per run) add its damaged records, and what the catalog lacks for runs not launched
through the plugin or launched by a release whose catalog kept no users. Once the catalog is
loaded, a page shows the catalog's row of an ended run it holds whole without reading the run
(:func:`~launcher_plugin.ui.data.final_in_catalog`; the background still reads it, for its
damaged records); runs still going are read, as their status changes.

So a page never waits for the whole store. The run ids come from one listing; the table is
sorted and filtered over what is known so far (catalog rows, rows read; runs known by id only go
last, by id), and only the rows of the page shown are read on the spot, concurrently, in a
bounded thread pool. The first page takes the catalog as stored where that is a few requests
(:meth:`~trackers.api.LineageTracker.stored_runs_summary`: merged, few segments pending), so it
too is sorted over every run the catalog holds. A background thread loads the catalog (deriving
entries for runs it lacks) and then reads every other run's row in a second pool, those the
catalog does not hold whole first, so sorting by user or duration also covers the runs the
catalog lacks them for once it has read those; the page says how far it has got and asks again
until then. Pages go first: the background starts once the first page has been served (or when
none was asked for within :data:`FIRST_PAGE_GRACE_S`), and reads no new row while a page's rows
are being read. (A catalog nobody merged is ~3 objects per run; loading it beside the first page
made that page wait for the store's every segment.)

No lock is held across reads of different runs: our trackers are safe to share between threads
(S3 and MLflow say so; the fsspec backend keeps no per-read state). A tracker that is not ours
may not be, so its reads go one at a time through :attr:`RunIndex.gate`. A row being read is
read once: a page that needs it waits for the read already under way.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from torchx.tracker.api import TrackerBase

from launcher_plugin.ui.data import (
    TERMINAL,
    RunRow,
    describe_error,
    final_in_catalog,
    read_row,
    summary_row,
)
from trackers.api import LineageTracker, RunSummary

__all__ = ["PAGE_WORKERS", "SORT_KEYS", "STATUS_FILTERS", "RunIndex", "RunsQuery", "read_gate"]

logger: logging.Logger = logging.getLogger(__name__)

SortKey = Callable[[RunRow], object]

#: The columns the table sorts by.
SORT_KEYS: dict[str, SortKey] = {
    "run_id": lambda r: r.run_id,
    "status": lambda r: r.status,
    "start_time": lambda r: r.start_time,
    "duration": lambda r: r.duration,
    "scheduler": lambda r: r.scheduler,
    "component": lambda r: r.component,
    "user": lambda r: r.user,
}

#: What the status filter accepts: the recorded statuses, and ``NONE`` for runs without one.
STATUS_FILTERS = ("RUNNING", "SUCCEEDED", "FAILED", "KILLED", "NONE")

MAX_LIMIT = 500
#: Rows of the page being served read at once (each a few requests; S3 fetches a run's records
#: with its own pool too, so this stays below its connection pool of 16).
PAGE_WORKERS = 8
#: Rows the background thread reads at once: fewer, so pages keep most of the store's attention.
FILL_WORKERS = 4
#: How long the background waits for a first page to be asked for before it starts anyway (s).
FIRST_PAGE_GRACE_S = 1.0


def read_gate(tracker: TrackerBase) -> contextlib.AbstractContextManager[object]:
    """What every read of ``tracker`` is made under: nothing for our trackers, a lock for a
    tracker that is not ours (it never said it may be used by several threads at once)."""
    if isinstance(tracker, LineageTracker):
        return contextlib.nullcontext()
    return threading.RLock()


@dataclass(frozen=True)
class RunsQuery:
    """One page of the runs table: its slice, order and filters."""

    offset: int = 0
    limit: int = 50
    sort: str = "start_time"
    descending: bool = True
    statuses: frozenset[str] = frozenset()
    text: str = ""

    def __post_init__(self) -> None:
        if self.sort not in SORT_KEYS:
            raise ValueError(f"sort={self.sort!r}: expected one of {', '.join(SORT_KEYS)}")
        unknown = self.statuses - set(STATUS_FILTERS)
        if unknown:
            raise ValueError(f"status={sorted(unknown)}: expected {', '.join(STATUS_FILTERS)}")
        if self.offset < 0 or not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"offset must be >= 0 and limit 1..{MAX_LIMIT}")

    def matches(self, run_id: str, row: RunRow | None) -> bool:
        """Whether the run passes the filters (a run known by id only passes on its id)."""
        if self.statuses:
            if row is None or (row.status or "NONE") not in self.statuses:
                return False
        if not self.text:
            return True
        needle = self.text.casefold()
        fields = [run_id] if row is None else [run_id, row.status, row.component, row.user]
        fields += [] if row is None else [row.scheduler]
        return any(needle in f.casefold() for f in fields if f)


class RunIndex:
    """Rows of every run in ``tracker``: the catalog's part for all, the rest as read."""

    #: Run ids are listed again after this (s).
    list_ttl: float = 5.0
    #: The catalog (:meth:`~trackers.api.LineageTracker.runs_summary`) is read again after this
    #: (s); runs listed since are read row by row meanwhile.
    summary_ttl: float = 60.0
    #: A row of a run that has not ended is read again when shown after this (s).
    row_ttl: float = 10.0

    def __init__(self, tracker: TrackerBase, gate: contextlib.AbstractContextManager[object]):
        self.tracker = tracker
        self.gate = gate
        self._rows: dict[str, RunRow] = {}
        self._summaries: dict[str, RunSummary] = {}
        self._catalog_rows: dict[str, RunRow] = {}  # summary_row of each, made once a load
        self._summary_at = float("-inf")
        self._summary_error: str | None = None
        self._ids: list[str] = []
        self._listed_at = float("-inf")
        self._list_error: str | None = None
        self._reading: dict[str, Future[RunRow]] = {}
        self._state = threading.Lock()  # guards _reading only, never held during a read
        self._first_page_asked = threading.Event()
        self._first_page = threading.Event()
        self._pages = 0  # page reads under way; the background waits for none
        self._quiet = threading.Condition()
        self._listing = threading.Lock()  # one listing at a time
        self._stored_lock = threading.Lock()
        self._stored_tried = False
        self._page_pool = ThreadPoolExecutor(PAGE_WORKERS, thread_name_prefix="tracker-ui-page")
        self._fill_pool = ThreadPoolExecutor(FILL_WORKERS, thread_name_prefix="tracker-ui-fill")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- background reading ---
    def start(self) -> None:
        """Start reading the catalog and every run's row in a daemon thread."""
        self._thread = threading.Thread(target=self._fill, name="tracker-ui-index", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the reader (rows under way are finished) and the pools."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._page_pool.shutdown(wait=False, cancel_futures=True)
        self._fill_pool.shutdown(wait=False, cancel_futures=True)

    def _fill(self) -> None:
        self.run_ids()
        if self._first_page_asked.wait(FIRST_PAGE_GRACE_S):
            while not self._first_page.wait(0.5) and not self._stop.is_set():
                pass
        while not self._stop.is_set():
            self.run_ids()
            if time.monotonic() - self._summary_at >= self.summary_ttl:
                self._load_summaries()
            todo = [i for i in self.run_ids() if i not in self._rows]
            # What sorting lacks first; rows the catalog holds whole are read for damage only.
            todo.sort(key=lambda i: final_in_catalog(self._summaries.get(i)))
            for start in range(0, len(todo), FILL_WORKERS):
                self._wait_for_pages()
                if self._stop.is_set():
                    return
                batch = todo[start : start + FILL_WORKERS]
                wait([self._submit(run_id, self._fill_pool) for run_id in batch])
            self._stop.wait(self.list_ttl)

    def _wait_for_pages(self) -> None:
        """Until no page is having its rows read (or the index stops)."""
        with self._quiet:
            while self._pages and not self._stop.is_set():
                self._quiet.wait(0.5)

    def _load_summaries(self) -> None:
        """Status, start and parents of every run (the store's catalog), when the tracker has it."""
        if not isinstance(self.tracker, LineageTracker):
            self._summary_at = time.monotonic()
            return
        try:
            summaries = self.tracker.runs_summary()
            with self._stored_lock:  # replaces a first page's stored summary, never the reverse
                self._use_summaries(summaries)
                self._summary_at = time.monotonic()
            self._summary_error = None
        except Exception as e:  # noqa: BLE001 - shown on the page; rows are still read one by one
            self._summary_error = describe_error(e)
            logger.warning("reading the store's catalog failed: %s", self._summary_error)
            self._summary_at = time.monotonic()  # tried: again after summary_ttl

    def _use_summaries(self, summaries: Sequence[RunSummary]) -> None:
        """Take ``summaries`` and their rows (each page sorts over them: made here once, not
        on every page)."""
        self._catalog_rows = {s.run_id: summary_row(s) for s in summaries}
        self._summaries = {s.run_id: s for s in summaries}

    # --- reads ---
    def run_ids(self) -> list[str]:
        """Every run id, listed again when the last listing is older than :attr:`list_ttl`."""
        if time.monotonic() - self._listed_at < self.list_ttl:
            return self._ids
        with self._listing:
            if time.monotonic() - self._listed_at >= self.list_ttl:
                try:
                    with self.gate:
                        self._ids = list(self.tracker.run_ids())
                    self._list_error = None
                except Exception as e:  # noqa: BLE001 - shown on the page, keep the last list
                    self._list_error = describe_error(e)
                    logger.warning("listing runs failed: %s", self._list_error)
                self._listed_at = time.monotonic()
        return self._ids

    def _current(self, run_id: str) -> RunRow | None:
        """The run's row if it was read and needs no new read (ended, or read lately)."""
        row = self._rows.get(run_id)
        if row is not None and (row.status in TERMINAL or self._fresh(row)):
            return row
        return None

    def _submit(
        self, run_id: str, pool: ThreadPoolExecutor, *, catalog: bool = False
    ) -> Future[RunRow]:
        """The read of the run's row: done already, under way, or started now in ``pool``.
        With ``catalog``, the catalog's row of an ended run it holds whole
        (:func:`~launcher_plugin.ui.data.final_in_catalog`) counts as done."""
        done = self._current(run_id)
        if done is None and catalog and final_in_catalog(self._summaries.get(run_id)):
            done = self._catalog_rows.get(run_id)
        if done is not None:
            finished: Future[RunRow] = Future()
            finished.set_result(done)
            return finished
        with self._state:
            future = self._reading.get(run_id)
            if future is None:
                future = pool.submit(self._read, run_id)
                self._reading[run_id] = future
        return future

    def _read(self, run_id: str) -> RunRow:
        try:
            with self.gate:
                row = read_row(self.tracker, run_id, self._summaries.get(run_id))
            self._rows[run_id] = row
            return row
        finally:
            with self._state:
                self._reading.pop(run_id, None)

    def rows(self, run_ids: Sequence[str]) -> list[RunRow]:
        """The rows of ``run_ids``, those not read (or stale) read now, concurrently."""
        with self._quiet:
            self._pages += 1
        try:
            futures = [self._submit(r, self._page_pool, catalog=True) for r in run_ids]
            return [f.result() for f in futures]
        finally:
            with self._quiet:
                self._pages -= 1
                self._quiet.notify_all()

    def row(self, run_id: str) -> RunRow:
        """The run's row, read now if it was never read or is stale (run not ended)."""
        return self.rows([run_id])[0]

    def known(self, run_id: str) -> RunRow | None:
        """What is known of the run without reading: its row, else its catalog row."""
        row = self._rows.get(run_id)
        if row is not None:
            return row
        return self._catalog_rows.get(run_id)

    def _fresh(self, row: RunRow) -> bool:
        return time.monotonic() - row.read_at < self.row_ttl

    def progress(self) -> dict[str, object]:
        """How far the background reading has got: ``read`` counts the runs whose whole row
        is known (read, or ended and held whole by the catalog), which sorting and filtering
        cover; ``ready`` when that is every run. The background goes on reading the rows the
        catalog held, for damaged records only."""
        ids = self._ids
        summaries = self._summaries
        done = sum(1 for i in ids if i in self._rows or final_in_catalog(summaries.get(i)))
        catalog = not isinstance(self.tracker, LineageTracker) or self._summary_at > float("-inf")
        return {
            "runs": len(ids),
            "read": done,
            "catalog": catalog,
            "ready": done == len(ids) and self._listed_at > float("-inf"),
            "error": "; ".join(e for e in (self._list_error, self._summary_error) if e) or None,
        }

    def _stored_summaries(self) -> None:
        """Before the first page, the summary as stored where that is a few requests (a merged
        catalog, :meth:`~trackers.api.LineageTracker.stored_runs_summary`): the page is then
        sorted over every run it holds, and reads only the rows it does not hold whole. Once,
        and never over a catalog the background has loaded."""
        with self._stored_lock:
            if self._stored_tried or not isinstance(self.tracker, LineageTracker):
                return
            self._stored_tried = True
            try:
                with self.gate:
                    stored = self.tracker.stored_runs_summary()
            except Exception as e:  # noqa: BLE001 - the background's full read will say more
                logger.warning("reading the store's catalog as stored failed: %s", e)
                return
            if stored is not None and self._summary_at == float("-inf"):
                self._use_summaries(stored)

    def page(self, query: RunsQuery) -> dict[str, object]:
        """The rows of one page, the number of runs that match, and the reading progress."""
        self._first_page_asked.set()
        self._stored_summaries()
        ids = self.run_ids()
        known = {run_id: self.known(run_id) for run_id in ids}
        matched = [i for i in ids if query.matches(i, known[i])]
        key = SORT_KEYS[query.sort]
        valued: list[tuple[object, str]] = []
        unknown: list[str] = []
        for run_id in matched:
            row = known[run_id]
            value = key(row) if row is not None else None
            if value is None:
                unknown.append(run_id)
            else:
                valued.append((value, run_id))
        valued.sort(key=_sortable, reverse=query.descending)
        unknown.sort(reverse=query.descending)
        ordered = [r for _, r in valued] + unknown
        chosen = ordered[query.offset : query.offset + query.limit]
        try:
            rows = [row.to_json() for row in self.rows(chosen)]
        finally:
            self._first_page.set()
        return {
            "total": len(ordered),
            "offset": query.offset,
            "limit": query.limit,
            "sort": query.sort,
            "descending": query.descending,
            "rows": rows,
            "index": self.progress(),
        }


def _sortable(item: tuple[object, str]) -> tuple[int, float, str, str]:
    """Numbers by value, text by its casefold; one key type so mixed columns still sort."""
    value, run_id = item
    if isinstance(value, int | float):
        return (0, float(value), "", run_id)
    return (1, 0.0, str(value).casefold(), run_id)
