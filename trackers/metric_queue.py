"""The metric queue: the training thread only appends; a background thread hands out batches.

The hot path (:meth:`MetricQueue.put`) takes no lock, so it stays cheap and a SIGTERM handler
that interrupts it cannot deadlock; memory is bounded by ``max_queued`` with a ``block`` or
``drop`` policy. Details and reasons: ``docs/delivery.md``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from trackers.helper_threads import start_helper_thread
from trackers.types import MetricColumns, MetricPoint

logger: logging.Logger = logging.getLogger(__name__)

Policy = Literal["block", "drop"]
POLICIES: tuple[Policy, ...] = ("block", "drop")
DROPPED_METRIC = "tracking/dropped_points"
_POLL_SECONDS = 0.005

#: What the writer calls with each batch of points and summary values.
BatchSink = Callable[[Sequence[MetricPoint], Mapping[str, object]], None]


@dataclass
class _Marker:
    """Put in the queue by ``flush``; set once everything before it was written."""

    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Summary:
    values: dict[str, object]


QueueItem = tuple[str, float, int | None, float, int | None] | _Marker | _Summary


class MetricQueue:
    """A bounded queue of metric points drained into ``sink`` by one daemon thread."""

    def __init__(
        self,
        sink: BatchSink,
        *,
        max_queued: int = 1_000_000,
        policy: Policy = "block",
        flush_interval: float = 1.0,
        batch_size: int = 50_000,
        name: str = "torchx-lineage-writer",
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy={policy!r}: expected one of {', '.join(POLICIES)}")
        if max_queued < 1:
            raise ValueError(f"max_queued={max_queued}: expected a positive number of points")
        self._sink = sink
        self._queue: deque[QueueItem] = deque()
        self._max = max_queued
        self._policy = policy
        self._interval = flush_interval
        self._wake_at = min(batch_size, max_queued)
        self._flush_requested = False
        self._room = threading.Condition()
        self._stopped = False
        self.dropped = 0
        self._dropped_reported = 0
        self._thread = start_helper_thread(self._run, name)

    # --- training thread ---
    def put(self, metrics: Mapping[str, float], step: int | None, rank: int | None) -> None:
        """Queue ``metrics`` (name -> value) at ``step``; see the module docstring for limits."""
        queue = self._queue
        if len(queue) + len(metrics) > self._max and not self._make_room(len(metrics)):
            self.dropped += len(metrics)
            return
        now = time.time()
        for name, value in metrics.items():
            queue.append((name, value, step, now, rank))

    def put_summary(self, values: Mapping[str, object]) -> None:
        """Queue summary values; they are written in order with the points around them."""
        self._queue.append(_Summary(dict(values)))

    def _make_room(self, wanted: int) -> bool:
        if self._policy == "drop" or self._stopped:
            return False
        self._flush_requested = True
        with self._room:
            while len(self._queue) + wanted > self._max and not self._stopped:
                self._room.wait(0.5)
        return not self._stopped

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is written; ``False`` if ``timeout`` ran out."""
        if self._stopped and not self._thread.is_alive():
            return not self._queue
        marker = _Marker()
        self._queue.append(marker)
        self._flush_requested = True
        return marker.done.wait(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flush, then stop the thread. Returns whether everything was written in time."""
        flushed = self.flush(timeout)
        self._stopped = True
        self._thread.join(timeout)
        return flushed

    @property
    def queued(self) -> int:
        """Points (and markers) waiting to be written."""
        return len(self._queue)

    # --- writer thread ---
    def _run(self) -> None:
        last = time.monotonic()
        while True:
            time.sleep(_POLL_SECONDS)
            queue = self._queue
            if self._flush_requested:
                self._flush_requested = False
                due = True
            else:
                due = len(queue) >= self._wake_at or time.monotonic() - last >= self._interval
            if due or self._stopped:
                self._drain()
                last = time.monotonic()
            if self._stopped and not queue:
                return

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            popleft = queue.popleft
            items = [popleft() for _ in range(len(queue))]
            start = 0
            for i, item in enumerate(items):
                if type(item) is not tuple:
                    self._write(items[start:i], [item])
                    start = i + 1
            if start < len(items) or self.dropped != self._dropped_reported:
                self._write(items[start:], [])

    def _write(self, rows: list[QueueItem], specials: list[QueueItem]) -> None:
        """Write ``rows`` (all point tuples), then act on ``specials`` (a summary or marker)."""
        points = MetricColumns.from_rows(rows)  # type: ignore[arg-type]
        summary: dict[str, object] = {}
        markers = [s for s in specials if isinstance(s, _Marker)]
        for special in specials:
            if isinstance(special, _Summary):
                summary.update(special.values)
        if self.dropped != self._dropped_reported:
            self._dropped_reported = self.dropped
            points = MetricColumns.from_rows(
                [*points, MetricPoint(DROPPED_METRIC, float(self.dropped), None, time.time())]
            )
            summary[DROPPED_METRIC] = self.dropped
        # Never wait for this lock: a SIGTERM handler may hold it while flushing.
        if self._room.acquire(blocking=False):
            self._room.notify_all()
            self._room.release()
        if len(points) or summary:
            try:
                self._sink(points, summary)
            except Exception:  # the sink isolates backends; this is a last resort
                logger.exception("tracking: writing %d metric points failed", len(points))
        for marker in markers:
            marker.done.set()
