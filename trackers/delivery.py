"""Per-backend delivery: every backend takes a run's writes from a thread of its own, in order.

So a slow, hanging or unreachable store delays only its own queue, never training or the other
backends. A failure :func:`trackers.errors.is_transient` calls "not now" is retried with backoff
(0.2 s doubling to :data:`RETRY_MAX_S`); any other is logged and the write skipped. What is not
delivered at close stays in the spool; a store that is down gets :data:`EXIT_RETRY_S` at exit,
not the whole limit. Details: ``docs/delivery.md``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from torchx.tracker.api import TrackerBase

from trackers.errors import BackendUnavailable, is_transient
from trackers.helper_threads import start_helper_thread
from trackers.ids import encode_run_id
from trackers.operations import Operation
from trackers.spool import Segment, leftover_segments, tracker_key

logger: logging.Logger = logging.getLogger(__name__)

RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0
#: Spooled operations kept in memory as well (beyond this they are read back from the spool).
MEMORY_LIMIT_BYTES = 64 * 1024 * 1024
#: How long ``submit`` waits for the queue's lock before queueing in memory only. It is held for
#: microseconds; a wait this long means a signal handler interrupted the holder on this thread.
LOCK_WAIT_S = 1.0
#: At close, how long a store whose last attempt failed as unreachable gets for one more try.
EXIT_RETRY_S = 0.5

#: Called with the operation kind and the error for every failed delivery attempt.
ErrorHandler = Callable[[str, Exception], None]


def time_left(deadline: float | None) -> float | None:
    """Seconds until ``deadline`` (a ``time.monotonic()`` value; ``None``: no limit), >= 0."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


@dataclass
class _Waiter:
    done: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None


@dataclass
class _Entry:
    seq: int
    op: Operation | None  # None: read it back from the segment
    segment: Segment | None
    index: int
    size: int = 0
    waiter: _Waiter | None = None


class Delivery:
    """One run's writes to one backend, applied in order by a daemon thread.

    Args:
        tracker: the backend.
        run_id: the run the operations belong to.
        name, config: how the tracker was built (written into the spool, for ``sync``).
        spool: the spool root; ``None`` keeps operations in memory only.
        on_error: told about every failed attempt (it decides what to log).
    """

    def __init__(
        self,
        tracker: TrackerBase,
        run_id: str,
        *,
        name: str,
        config: str | None,
        spool: Path | None,
        on_error: ErrorHandler,
    ) -> None:
        self.tracker = tracker
        self.run_id = run_id
        self.name, self.config = name, config
        self._spool = spool
        self._on_error = on_error
        self._entries: deque[_Entry] = deque()
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._done_seq = -1  # every entry up to this seq is finished
        self._memory = 0
        self._segment: Segment | None = None
        self._adopted: list[Segment] = []
        self._closed = False
        self._wake = threading.Event()
        self.delivered = 0
        self.dropped = 0
        self._down_since: float | None = None
        self._down_error: Exception | None = None
        self._failed_attempts = 0  # transient failures so far (tells a retry happened)
        self.gave_up_down: Exception | None = None  # set when close stopped early: store down
        self.adopt_leftovers()
        self._thread = start_helper_thread(self._run, f"torchx-lineage-delivery-{name}")

    @property
    def spool_dir(self) -> Path | None:
        """Where this run's operations for this tracker are spooled."""
        if self._spool is None:
            return None
        return self._spool / encode_run_id(self.run_id) / tracker_key(self.name, self.config)

    @property
    def pending(self) -> int:
        """Operations not delivered yet (including one in flight)."""
        return len(self._entries)

    # --- any thread ---
    def submit(self, op: Operation, *, wait: bool = False) -> None:
        """Queue ``op`` (spooled first); with ``wait``, block until it was tried and raise the
        error of a failed first attempt (strict mode; the operation stays queued if transient)."""
        line = op.line if self._spool is not None else b""
        waiter = _Waiter() if wait else None
        locked = self._cond.acquire(timeout=LOCK_WAIT_S)
        try:
            segment = self._own_segment() if locked else None
            index = -1
            if segment is not None:
                try:
                    index = segment.append(line)
                except OSError as e:
                    self._spool_failed(e)
                    segment = None
            keep = segment is None or self._memory + len(line) <= MEMORY_LIMIT_BYTES
            entry = _Entry(
                next(self._seq),
                op if keep else None,
                segment,
                index,
                len(line) if keep else 0,
                waiter,
            )
            self._memory += entry.size
            self._entries.append(entry)
            if locked:
                self._cond.notify_all()
        finally:
            if locked:
                self._cond.release()
        if waiter is None:
            return
        down = self._down_error
        if down is not None:  # queued behind records that wait for the store to come back
            raise BackendUnavailable(
                f"{self.tracker!r} is unreachable; {self.pending} record(s) of run "
                f"{self.run_id} wait in the spool ({down})"
            ) from down
        waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error

    def flush(self, timeout: float | None = None, *, unless_down: bool = False) -> bool:
        """Wait until every operation submitted so far is delivered (or dropped as faulty);
        ``False`` if ``timeout`` ran out first, or (``unless_down``) once the store is down."""
        with self._cond:
            target = self._entries[-1].seq if self._entries else self._done_seq
            self._cond.wait_for(
                lambda: self._done_seq >= target or (unless_down and self._down_error is not None),
                timeout,
            )
            return self._done_seq >= target

    def close(self, timeout: float | None = None, *, compact: bool = True) -> int:
        """Flush within ``timeout``, stop, and leave what is not delivered in the spool.

        With ``compact``, a record store then gets the run's snapshots written (the process
        that started the run asks for it; a pool's workers do not, each would redo it).

        A store that is down when what is left is all spooled gets one short retry instead of
        the whole ``timeout`` (see the module docstring; :attr:`gave_up_down` says why).
        Compaction gets what is left of ``timeout`` and is abandoned when that runs out.
        Returns how many operations are left undelivered.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        self._drain_for_close(timeout)
        with self._cond:
            self._closed = True
            left = len(self._entries)
            self._cond.notify_all()
            self._wake.set()
            segments = [s for s in (*self._adopted, self._segment) if s is not None]
            self._adopted, self._segment = [], None
            for segment in segments:
                segment.release()
        if left == 0:
            self._thread.join(1.0)
            if compact and self.gave_up_down is None and not self._thread.is_alive():
                self._compact(time_left(deadline))
        return left

    def _compact(self, within: float | None) -> None:
        """Write the run's snapshots once everything is delivered (record stores only), so
        even the first read of a closed run takes one snapshot instead of every record.

        On a thread of its own, after the delivery thread stopped (nothing else writes through
        this object meanwhile), waited for at most ``within`` seconds: a slow store must not
        hold the process past its shutdown limit. Abandoning it is safe (a snapshot is written
        whole or not at all, and is only a cache); readers and ``torchx tracker compact`` write
        snapshots too. A failure is logged: reads stay correct, only slower.
        """
        compact = getattr(self.tracker, "compact", None)
        if not callable(compact) or within == 0:
            return

        def run() -> None:
            try:
                compact(self.run_id)
            except Exception as e:
                logger.info(
                    "tracking: could not compact run %s in %r: %s", self.run_id, self.tracker, e
                )

        thread = start_helper_thread(run, f"torchx-lineage-compact-{self.name}")
        thread.join(within)
        if thread.is_alive():
            logger.info(
                "tracking: compacting run %s in %r did not finish within the shutdown limit; "
                "left to readers and `torchx tracker compact`",
                self.run_id,
                self.tracker,
            )

    def _drain_for_close(self, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        retried = False
        while not self.flush(time_left(deadline), unless_down=True):
            left = time_left(deadline)
            if (left is not None and left <= 0) or not self._all_spooled():
                self.flush(left)  # memory-only operations get the whole limit
                return
            if retried:
                self.gave_up_down = self._down_error
                return
            retried = True
            self._retry_now(EXIT_RETRY_S if left is None else min(EXIT_RETRY_S, left))

    def _retry_now(self, timeout: float) -> None:
        """Cut the backoff short and wait up to ``timeout`` for that attempt (or everything)."""
        with self._cond:
            failures = self._failed_attempts
            target = self._entries[-1].seq if self._entries else self._done_seq
            self._wake.set()
            self._cond.wait_for(
                lambda: self._done_seq >= target or self._failed_attempts > failures, timeout
            )

    def _all_spooled(self) -> bool:
        with self._cond:
            return all(e.segment is not None and e.index >= 0 for e in self._entries)

    # --- the delivery thread ---
    def _run(self) -> None:
        backoff = RETRY_FIRST_S
        while True:
            with self._cond:
                while not self._entries and not self._closed:
                    self._cond.wait(0.5)  # also sees an entry queued without the lock
                if self._closed:
                    return
                entry = self._entries[0]
            op = entry.op
            try:
                if op is None:
                    assert entry.segment is not None
                    op = entry.segment.read(entry.index)
                op.apply(self.tracker, self.run_id)
            except Exception as e:
                if self._closed:
                    return  # closed while this was in flight: it stays in the spool
                kind = op.kind if op is not None else "read spool"
                self._on_error(kind, e)
                if entry.waiter is not None:
                    entry.waiter.error = e
                    entry.waiter.done.set()
                    entry.waiter = None
                if op is not None and is_transient(e):
                    with self._cond:
                        self._down_error = e
                        self._failed_attempts += 1
                        self._cond.notify_all()
                    if self._down_since is None:
                        self._down_since = time.monotonic()
                    self._wake.wait(backoff)
                    if not self._closed:
                        self._wake.clear()  # set by close() to retry at once
                    backoff = min(backoff * 2, RETRY_MAX_S)
                    continue
                self.dropped += 1
            else:
                self.delivered += 1
                self._down_error = None
                if self._down_since is not None:
                    logger.warning(
                        "tracking: %r is back after %.1f s; delivering %d waiting record(s) of "
                        "run %s",
                        self.tracker,
                        time.monotonic() - self._down_since,
                        len(self._entries) - 1,
                        self.run_id,
                    )
                    self._down_since = None
            backoff = RETRY_FIRST_S
            self._finish(entry)

    def _finish(self, entry: _Entry) -> None:
        with self._cond:
            if self._closed:
                return  # the segments are released; what was not acked is delivered again
            self._entries.popleft()
            self._memory -= entry.size
            self._done_seq = entry.seq
            segment = entry.segment
            if segment is not None:
                segment.mark_delivered(entry.index + 1)
                if segment in self._adopted and entry.index + 1 >= segment.count:
                    self._adopted.remove(segment)
                    segment.release()
            self._cond.notify_all()
        if entry.waiter is not None:
            entry.waiter.done.set()

    # --- spool ---
    def _own_segment(self) -> Segment | None:
        if self._segment is None and self._spool is not None:
            try:
                self._segment = Segment.create(self._spool, self.run_id, self.name, self.config)
            except OSError as e:
                self._spool_failed(e)
        return self._segment

    def _spool_failed(self, error: OSError) -> None:
        logger.error(
            "tracking: cannot write the spool under %s (%s); writes of run %s to %r are kept in "
            "memory only (set TORCHX_TRACKER_SPOOL_DIR to a writable directory)",
            self._spool,
            error,
            self.run_id,
            self.tracker,
        )
        self._spool = None

    def adopt_leftovers(self) -> int:
        """Queue what ended processes of this run left undelivered in this tracker's spool
        (a predecessor of a restarted job, a worker process that was killed); segments still
        locked by a live process, this one included, are left to their writer.

        Returns how many operations were queued.
        """
        spool = self._spool
        if spool is None:
            return 0
        try:
            found = leftover_segments(spool, self.run_id, self.name, self.config)
        except OSError as e:
            logger.warning("tracking: cannot look for spooled records under %s: %s", spool, e)
            return 0
        waiting = 0
        with self._cond:
            for segment in found:
                if segment.remaining == 0 or self._closed:  # delivered: its writer died first
                    segment.release()
                    continue
                self._adopted.append(segment)
                for index in range(segment.acked, segment.count):
                    self._entries.append(_Entry(next(self._seq), None, segment, index))
                waiting += segment.remaining
            self._cond.notify_all()
        if waiting:
            logger.warning(
                "tracking: %d record(s) of run %s that an ended process (an earlier attempt of "
                "the job, or a worker process) left undelivered to %r are delivered now (from %s)",
                waiting,
                self.run_id,
                self.tracker,
                self.spool_dir,
            )
        return waiting

    def forget_after_fork(self) -> None:
        """In a forked child: drop this (parent's) delivery without touching its spool files.

        The child inherited the parent's queue but not its thread; the parent delivers those
        operations itself. Only the child's copies of the segment descriptors are closed (that
        never releases the parent's lock: it goes with the parent's own descriptor).
        """
        self._closed = True
        for segment in (*self._adopted, self._segment):
            if segment is not None:
                segment.forget()
        self._adopted, self._segment = [], None
        self._entries = deque()
