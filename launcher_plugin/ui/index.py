"""The runs table's rows: read once in the background, served a page at a time.

Listing a store's run ids is one listing (one request per 1000 runs on S3); a row costs a few
reads per run (:func:`~launcher_plugin.ui.data.read_row`). So the first page never waits for
the whole store: it sorts and filters the rows read so far (rows not read yet go last, by id),
reads the rows of that page on the spot, and says how far the background reading has got. The
page asks again until it is done. Rows of runs that have not ended are read again when shown
after :attr:`RunIndex.row_ttl` seconds; the ids are listed again after :attr:`RunIndex.list_ttl`.

Every read of the tracker holds one lock, so the reader thread and the requests never use a
backend's client at the same time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from torchx.tracker.api import TrackerBase

from launcher_plugin.ui.data import TERMINAL, RunRow, describe_error, read_row

__all__ = ["SORT_KEYS", "STATUS_FILTERS", "RunIndex", "RunsQuery"]

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
        """Whether the run passes the filters (an unread run passes on its id alone)."""
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
    """Rows of every run in ``tracker``, filled by a background thread."""

    list_ttl: float = 5.0
    row_ttl: float = 10.0

    def __init__(self, tracker: TrackerBase, lock: threading.RLock) -> None:
        self.tracker = tracker
        self.lock = lock
        self._rows: dict[str, RunRow] = {}
        self._ids: list[str] = []
        self._listed_at = float("-inf")
        self._list_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- background reading ---
    def start(self) -> None:
        """Start reading every run's row in a daemon thread."""
        self._thread = threading.Thread(target=self._fill, name="tracker-ui-index", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the reader (it finishes the row it is reading)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _fill(self) -> None:
        while not self._stop.is_set():
            for run_id in self.run_ids():
                if self._stop.is_set():
                    return
                if run_id not in self._rows:
                    self.row(run_id)
            self._stop.wait(self.list_ttl)

    # --- reads ---
    def run_ids(self) -> list[str]:
        """Every run id, listed again when the last listing is older than :attr:`list_ttl`."""
        if time.monotonic() - self._listed_at < self.list_ttl:
            return self._ids
        with self.lock:
            if time.monotonic() - self._listed_at >= self.list_ttl:
                try:
                    self._ids = list(self.tracker.run_ids())
                    self._list_error = None
                except Exception as e:  # noqa: BLE001 - shown on the page, keep the last list
                    self._list_error = describe_error(e)
                    logger.warning("listing runs failed: %s", self._list_error)
                self._listed_at = time.monotonic()
        return self._ids

    def row(self, run_id: str) -> RunRow:
        """The run's row, read now if it was never read or is stale (run not ended)."""
        row = self._rows.get(run_id)
        if row is not None and (row.status in TERMINAL or self._fresh(row)):
            return row
        with self.lock:
            row = self._rows.get(run_id)
            if row is None or not (row.status in TERMINAL or self._fresh(row)):
                row = read_row(self.tracker, run_id)
                self._rows[run_id] = row
        return row

    def _fresh(self, row: RunRow) -> bool:
        return time.monotonic() - row.read_at < self.row_ttl

    def progress(self) -> dict[str, object]:
        """How far the background reading has got."""
        ids = self._ids
        done = sum(1 for i in ids if i in self._rows)
        return {
            "runs": len(ids),
            "read": done,
            "ready": done == len(ids) and self._listed_at > float("-inf"),
            "error": self._list_error,
        }

    def page(self, query: RunsQuery) -> dict[str, object]:
        """The rows of one page, the number of runs that match, and the reading progress."""
        ids = self.run_ids()
        rows = self._rows
        matched = [i for i in ids if query.matches(i, rows.get(i))]
        key = SORT_KEYS[query.sort]
        known: list[tuple[object, str]] = []
        unknown: list[str] = []
        for run_id in matched:
            row = rows.get(run_id)
            value = key(row) if row is not None else None
            if value is None:
                unknown.append(run_id)
            else:
                known.append((value, run_id))
        known.sort(key=_sortable, reverse=query.descending)
        unknown.sort(reverse=query.descending)
        ordered = [r for _, r in known] + unknown
        chosen = ordered[query.offset : query.offset + query.limit]
        return {
            "total": len(ordered),
            "offset": query.offset,
            "limit": query.limit,
            "sort": query.sort,
            "descending": query.descending,
            "rows": [self.row(run_id).to_json() for run_id in chosen],
            "index": self.progress(),
        }


def _sortable(item: tuple[object, str]) -> tuple[int, float, str, str]:
    """Numbers by value, text by its casefold; one key type so mixed columns still sort."""
    value, run_id = item
    if isinstance(value, int | float):
        return (0, float(value), "", run_id)
    return (1, 0.0, str(value).casefold(), run_id)
