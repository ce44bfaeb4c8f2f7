"""``AppRun``: the job's handle on its run, fanned out to every configured tracker.

A drop-in for TorchX's ``AppRun`` (same methods, plus metrics, lineage and reads) that never
lets tracking kill the job unless strict: writes go through each backend's own delivery thread
and spool, reads wait for this run's own writes, and a forked worker gets its own threads.
Why each difference exists, and how: ``docs/delivery.md``.
"""

from __future__ import annotations

import logging
import os
import shlex
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from torchx.tracker.api import AppRunTrackableSource, TrackerArtifact, TrackerBase

from trackers import lifecycle
from trackers.api import LineageTracker, capabilities
from trackers.capture import tensorboard
from trackers.delivery import Delivery, time_left
from trackers.env import (
    ENV_TORCHX_JOB_ID,
    ENV_TORCHX_PARENT_RUN_ID,
    ENV_TORCHX_TRACKER_ALL_RANKS,
    ENV_TORCHX_TRACKER_BACKPRESSURE,
    ENV_TORCHX_TRACKER_CAPTURE_TENSORBOARD,
    ENV_TORCHX_TRACKER_FLUSH_INTERVAL,
    ENV_TORCHX_TRACKER_MAX_QUEUED,
    ENV_TORCHX_TRACKER_SHUTDOWN_TIMEOUT,
    ENV_TORCHX_TRACKERS,
    UNDEFINED_JOB_ID,
    bool_from_env,
    number_from_env,
    parse_tracker_names,
    strict_from_env,
    tracker_config_env_var_name,
)
from trackers.errors import TrackerConfigError, TrackerError, is_transient
from trackers.ids import record_name
from trackers.lineage import linked_children, walk_lineage
from trackers.metric_queue import POLICIES, MetricQueue, Policy
from trackers.operations import Operation, takes
from trackers.origin import global_rank
from trackers.redact import redact
from trackers.registry import create_tracker
from trackers.snapshot import environment_snapshot
from trackers.spool import spool_root
from trackers.types import Direction, MetricPoint, RunLineage, RunStatus

logger: logging.Logger = logging.getLogger(__name__)

T = TypeVar("T")

_current: AppRun | None = None
_current_lock = threading.Lock()
#: Every AppRun alive in this process, so a fork can give each its own threads in the child.
_live_runs: weakref.WeakValueDictionary[int, AppRun] = weakref.WeakValueDictionary()


#: How a tracker was built: its name and config string (written into the spool, for ``sync``).
TrackerRef = tuple[str, str | None]


def trackers_from_env(
    environ: Mapping[str, str] | None = None, *, strict: bool | None = None
) -> list[TrackerBase]:
    """Build the trackers named in ``TORCHX_TRACKERS``, each from its ``..._CONFIG`` env var.

    A tracker that cannot be built is logged (naming the env var) and skipped, unless strict.
    """
    return [tracker for _, tracker in named_trackers_from_env(environ, strict=strict)]


def named_trackers_from_env(
    environ: Mapping[str, str] | None = None, *, strict: bool | None = None
) -> list[tuple[TrackerRef, TrackerBase]]:
    """:func:`trackers_from_env`, each tracker with the name and config it was built from."""
    env = os.environ if environ is None else environ
    strict = strict_from_env(env) if strict is None else strict
    try:
        names = parse_tracker_names(env.get(ENV_TORCHX_TRACKERS, ""))
    except TrackerError:
        if strict:
            raise
        logger.exception("tracking disabled: %s is not usable", ENV_TORCHX_TRACKERS)
        return []
    trackers = []
    for name in names:
        var = tracker_config_env_var_name(name)
        try:
            trackers.append(((name, env.get(var)), create_tracker(name, env.get(var), origin=var)))
        except TrackerError as e:
            if strict:
                raise
            logger.error("tracker %r disabled for this job: %s", name, e)
    return trackers


@dataclass(frozen=True)
class RunSettings:
    """How a run logs metrics and ends; from the ``TORCHX_TRACKER_*`` env (``trackers.env``)."""

    all_ranks: bool = False
    max_queued: int = 1_000_000
    backpressure: Policy = "block"
    flush_interval: float = 1.0
    shutdown_timeout: float = 30.0
    capture_tensorboard: bool = False
    spool_dir: Path | None = field(default_factory=spool_root)

    @staticmethod
    def from_env(environ: Mapping[str, str] | None = None) -> RunSettings:
        """Settings from ``environ``; a malformed value raises naming its env var."""
        env = os.environ if environ is None else environ
        raw = env.get(ENV_TORCHX_TRACKER_BACKPRESSURE, "block").strip().lower() or "block"
        policy = next((p for p in POLICIES if p == raw), None)
        if policy is None:
            raise TrackerConfigError(
                f"{ENV_TORCHX_TRACKER_BACKPRESSURE}={raw!r}: expected 'block' or 'drop'"
            )
        return RunSettings(
            all_ranks=bool_from_env(ENV_TORCHX_TRACKER_ALL_RANKS, env),
            max_queued=int(
                number_from_env(ENV_TORCHX_TRACKER_MAX_QUEUED, 1_000_000, env, minimum=1)
            ),
            backpressure=policy,
            flush_interval=number_from_env(ENV_TORCHX_TRACKER_FLUSH_INTERVAL, 1.0, env),
            shutdown_timeout=number_from_env(ENV_TORCHX_TRACKER_SHUTDOWN_TIMEOUT, 30.0, env),
            capture_tensorboard=bool_from_env(ENV_TORCHX_TRACKER_CAPTURE_TENSORBOARD, env),
            spool_dir=spool_root(env),
        )


@dataclass
class AppRun:
    """One run (``id``) recorded into every tracker in ``backends``.

    Args:
        id: the run id, normally the TorchX app handle (``TORCHX_JOB_ID``).
        backends: the trackers to write to; reads use the first that answers.
        strict: raise tracking failures instead of logging them.
        settings: metric queue, rank and shutdown settings.
        rank: this process's global rank (from ``RANK``/``SLURM_PROCID``...; ``None``: unknown).
        refs: how each backend was built (name, config), in the order of ``backends``; labels
            its spool. Missing entries are derived from the backend (registered name, and
            ``job_config()`` where it has one).
    """

    id: str
    backends: list[TrackerBase] = field(default_factory=list)
    strict: bool = False
    settings: RunSettings = field(default_factory=RunSettings)
    rank: int | None = field(default_factory=global_rank)
    refs: list[TrackerRef] = field(default_factory=list)
    _reported: set[tuple[int, str, str]] = field(default_factory=set, repr=False, compare=False)
    _queue: MetricQueue | None = field(default=None, repr=False, compare=False)
    _queue_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _exit_status: RunStatus | None = field(default=None, repr=False, compare=False)
    _exit_error: dict[str, str] | None = field(default=None, repr=False, compare=False)
    _closed: bool = field(default=False, repr=False, compare=False)
    _deliveries: dict[int, Delivery] = field(default_factory=dict, repr=False, compare=False)
    _deliveries_lock: threading.Lock = field(
        default_factory=threading.Lock, repr=False, compare=False
    )
    _close_done: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)
    _closing_thread: threading.Thread | None = field(default=None, repr=False, compare=False)
    _worker: bool = field(default=False, repr=False, compare=False)
    _stale_backends: set[int] = field(default_factory=set, repr=False, compare=False)
    _fork_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.backends = list(self.backends)
        self.refs = [
            self.refs[i] if i < len(self.refs) else tracker_ref(b)
            for i, b in enumerate(self.backends)
        ]
        self._lineage_backends = [b for b in self.backends if isinstance(b, LineageTracker)]
        self._logs_metrics = bool(self._lineage_backends) and (
            self.settings.all_ranks or self.rank in (None, 0)
        )
        self._worker = self._worker or lifecycle.is_worker_of(self.id)
        _live_runs[id(self)] = self

    @property
    def is_worker(self) -> bool:
        """Whether this process is a worker of a run another process started (it writes no
        status; see :mod:`trackers.lifecycle`)."""
        return self._worker

    # --- construction ---
    @staticmethod
    def run_from_env() -> AppRun:
        """The run this process belongs to, built once from the env that TorchX set.

        Without ``TORCHX_JOB_ID``/``TORCHX_TRACKERS`` (not launched by TorchX) it is a no-op run
        with id ``<UNDEFINED>``, as in TorchX. ``TORCHX_PARENT_RUN_ID`` is recorded as a source.
        A run with trackers records RUNNING and an environment snapshot (rank 0), and is closed
        with its terminal status at exit or on SIGTERM (:mod:`trackers.lifecycle`).
        """
        global _current
        with _current_lock:
            if _current is None:
                _current = AppRun.from_env()
                if _current.backends:
                    _current.start()
            return _current

    @staticmethod
    def from_env(environ: Mapping[str, str] | None = None) -> AppRun:
        """A new (not cached, not started) run from ``environ`` (default ``os.environ``)."""
        env = os.environ if environ is None else environ
        strict = strict_from_env(env)
        try:
            settings = RunSettings.from_env(env)
        except TrackerConfigError:
            if strict:
                raise
            logger.exception("tracking: using default settings")
            settings = RunSettings()
        named = named_trackers_from_env(env, strict=strict)
        run = AppRun(
            id=env.get(ENV_TORCHX_JOB_ID, UNDEFINED_JOB_ID),
            backends=[tracker for _, tracker in named],
            strict=strict,
            settings=settings,
            refs=[ref for ref, _ in named],
        )
        parent = env.get(ENV_TORCHX_PARENT_RUN_ID)
        if parent and run.backends:
            logger.info("run %s: recording parent run %s", run.id, parent)
            run.add_source(parent)
        return run

    def start(self) -> None:
        """Record RUNNING and the environment snapshot (rank 0) and hook the process's exit.

        In a worker of a run that another process started, only the exit is hooked."""
        if not self._worker:
            lifecycle.claim_run(self.id)
            if self.rank in (None, 0):
                self._set_status("RUNNING")
                self.add_metadata(**environment_snapshot())
        lifecycle.install(self)
        if self.settings.capture_tensorboard:
            tensorboard.capture_tensorboard(_log_to_current_run)

    # --- metrics: the training thread only enqueues ---
    def log(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log metric values at ``step``; returns at once (a background thread writes them)."""
        if not self._logs_metrics:
            return
        queue = self._queue or self._start_queue()
        queue.put(metrics, step, self.rank if self.settings.all_ranks else None)

    def log_summary(self, values: Mapping[str, object]) -> None:
        """Record summary values (final or best results), written in order with the metrics."""
        if not self._logs_metrics:
            return
        (self._queue or self._start_queue()).put_summary(values)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything logged and written so far is stored in every backend;
        ``False`` if ``timeout`` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        flushed = self._queue.flush(timeout) if self._queue is not None else True
        for delivery in list(self._deliveries.values()):
            flushed = delivery.flush(time_left(deadline)) and flushed
        return flushed

    def mark_exit(self, status: RunStatus, error: BaseException | str | None = None) -> None:
        """Remember how the process is ending (used by the exit hooks; the first one wins).

        ``error`` (the uncaught exception, or a reason) is recorded with the final status as
        ``error.type``, ``error.message`` and ``error.stack_trace`` (credentials masked), the
        keys MLflow-style tools and the OpenLineage error facet read.
        """
        if self._exit_status is None:
            self._exit_status = status
            if error is not None:
                self._exit_error = error_record(error)

    def close(self, status: RunStatus | None = None, timeout: float | None = None) -> None:
        """Flush (within ``timeout``, default the shutdown timeout) and record the final status.

        ``status`` defaults to what the exit hooks saw, else SUCCEEDED. Closing twice is a no-op;
        a close while a helper thread is closing waits for that one (within ``timeout``), as the
        process may end right after it returns (a multiprocessing worker's finalizer while the
        SIGTERM handler's close runs). A close by the main thread is not waited for: a signal
        handler that closes again has interrupted it and would wait for itself.
        """
        limit = self.settings.shutdown_timeout if timeout is None else timeout
        # Inside closing() before the run is marked closed: a SIGTERM between the two would
        # find a close that is neither under way (the handler's own close waits for it) nor
        # shielded (the handler waits for that close): both waited out the shutdown timeout.
        with lifecycle.closing():
            if self._closed:
                if self._closing_thread is not threading.main_thread():
                    self._close_done.wait(limit)
                return
            self._closing_thread = threading.current_thread()
            self._closed = True
            try:
                self._close(status, limit)
            finally:
                self._close_done.set()

    def _close(self, status: RunStatus | None, limit: float) -> None:
        final: RunStatus = status or self._exit_status or "SUCCEEDED"
        deadline = time.monotonic() + limit
        queue = self._queue
        if queue is not None and not queue.close(limit):
            logger.error(
                "tracking: run %s closed with %d metric points not yet handed to the trackers "
                "after %g s; they are lost",
                self.id,
                queue.queued,
                limit,
            )
        if self._worker:
            pass  # the process that started the run records its status
        elif self.backends and (self.rank in (None, 0) or final in ("FAILED", "KILLED")):
            if self._exit_error is not None and final != "SUCCEEDED":
                self.add_metadata(**self._exit_error)
            self._set_status(final, wait=False)  # bounded by the shutdown limit, even if strict
        if not self._worker:
            for delivery in list(self._deliveries.values()):
                delivery.adopt_leftovers()  # what ended worker processes could not deliver
        for i, delivery in sorted(self._deliveries.items()):
            # The process that started the run compacts it (a pool's workers would each redo
            # it), within what is left of the shutdown limit.
            left = delivery.close(time_left(deadline), compact=not self._worker)
            if not left:
                continue
            if delivery.spool_dir is not None:
                fate = (
                    f"they are kept in {delivery.spool_dir}. Deliver them with: "
                    f"torchx tracker sync {shlex.quote(self.id)}"
                )
            else:
                fate = "they are lost: the spool is off (TORCHX_TRACKER_SPOOL_DIR)"
            down = delivery.gave_up_down
            why = (
                f": it is not reachable ({down}), so exit gave it one short retry instead of "
                "the whole limit"
                if down is not None
                else ""
            )
            logger.error(
                "tracking: run %s: %d record(s) not delivered to %r within the shutdown "
                "limit (%g s)%s; %s",
                self.id,
                left,
                self.backends[i],
                limit,
                why,
                fate,
            )

    def __enter__(self) -> AppRun:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: object, tb: object) -> None:
        if kind is None:
            self.close()
        else:
            self.close("KILLED" if issubclass(kind, KeyboardInterrupt) else "FAILED")

    def _start_queue(self) -> MetricQueue:
        if self._worker:
            lifecycle.close_at_process_exit(self)
        with self._queue_lock:
            if self._queue is None:
                self._queue = MetricQueue(
                    self._write_batch,
                    max_queued=self.settings.max_queued,
                    policy=self.settings.backpressure,
                    flush_interval=self.settings.flush_interval,
                )
            return self._queue

    def _write_batch(self, points: Sequence[MetricPoint], summary: Mapping[str, object]) -> None:
        if points:
            self._submit("add_metrics", points=points)
        if summary:
            self._submit("add_summary", values=dict(summary))

    def _set_status(self, status: RunStatus, *, wait: bool | None = None) -> None:
        self._submit("set_status", wait=wait, status=status)

    # --- writes: every backend, each from its own delivery thread ---
    def add_metadata(self, **kwargs: object) -> None:
        """Record metadata for this run (a key written again later wins)."""
        self._submit("add_metadata", values=kwargs)

    def add_artifact(
        self, name: str, path: str, metadata: Mapping[str, object] | None = None
    ) -> None:
        """Record artifact ``name`` stored at ``path`` with optional ``metadata``."""
        self._submit(
            "add_artifact", name=name, path=path, metadata=dict(metadata) if metadata else None
        )

    def add_source(self, source_id: str, artifact_name: str | None = None) -> None:
        """Record that this run was derived from ``source_id`` (another run or any entity)."""
        self._submit("add_source", source_id=source_id, artifact_name=artifact_name)

    # --- reads: the first backend that answers ---
    def job_id(self) -> str:
        """This run's id."""
        return self.id

    def metadata(self) -> Mapping[str, object]:
        """This run's metadata."""
        return self._first("metadata", lambda b: b.metadata(self.id), {})

    def artifacts(self) -> Mapping[str, TrackerArtifact]:
        """This run's artifacts by name."""
        return self._first("artifacts", lambda b: b.artifacts(self.id), {})

    def sources(self, artifact_name: str | None = None) -> list[AppRunTrackableSource]:
        """The runs this run was derived from, as TorchX's ``AppRunTrackableSource``."""

        def read(b: TrackerBase) -> list[AppRunTrackableSource]:
            return [
                AppRunTrackableSource(self._sibling(s.source_run_id), s.artifact_name)
                for s in b.sources(self.id, artifact_name)
            ]

        return self._first("sources", read, [])

    def children(self, artifact_name: str | None = None) -> list[AppRun]:
        """The runs derived directly from this one (TorchX's ``AppRun.children`` is a stub)."""

        def read(b: TrackerBase) -> list[AppRun]:
            ids = dict.fromkeys(c.run_id for c in linked_children(b, self.id, artifact_name))
            return [self._sibling(i) for i in ids]

        return self._first("children", read, [])

    def lineage(
        self,
        *,
        direction: Direction = "both",
        artifact_name: str | None = None,
        depth: int | None = None,
    ) -> RunLineage:
        """Transitive ancestors and descendants of this run (see ``trackers.lineage``)."""

        def read(b: TrackerBase) -> RunLineage:
            return walk_lineage(
                b, self.id, direction=direction, artifact_name=artifact_name, depth=depth
            )

        return self._first("lineage", read, RunLineage(self.id))

    # --- plumbing ---
    def _sibling(self, run_id: str) -> AppRun:
        return AppRun(run_id, self.backends, strict=self.strict)

    def _submit(self, kind: str, *, wait: bool | None = None, **args: Any) -> None:
        """Hand one write to every backend that takes it; strict ones wait for the attempt
        (``wait`` overrides that)."""
        op = Operation(record_name(), kind, args).snapshot()
        for i, backend in enumerate(self.backends):
            if not takes(backend, kind):
                continue
            strict = self.strict or capabilities(backend).strict
            self._delivery(i).submit(op, wait=strict if wait is None else wait)

    def _delivery(self, index: int) -> Delivery:
        delivery = self._deliveries.get(index)
        if delivery is None:
            if self._worker:
                lifecycle.close_at_process_exit(self)
            backend = self._backend(index)
            with self._deliveries_lock:
                delivery = self._deliveries.get(index)
                if delivery is None:
                    name, config = self.refs[index]
                    delivery = Delivery(
                        backend,
                        self.id,
                        name=name,
                        config=config,
                        spool=self.settings.spool_dir,
                        on_error=lambda kind, e: self._report(backend, kind, e),
                    )
                    self._deliveries[index] = delivery
        return delivery

    def _first(self, op: str, call: Callable[[TrackerBase], T], default: T) -> T:
        last_error: Exception | None = None
        for i in range(len(self.backends)):
            backend = self._backend(i)
            delivery = self._deliveries.get(i)
            if delivery is not None:  # read this run's own writes (unless they cannot arrive)
                delivery.flush(self.settings.shutdown_timeout, unless_down=True)
            try:
                return call(backend)
            except Exception as e:
                if self.strict:
                    raise
                self._report(backend, op, e)
                last_error = e
        if last_error is not None:
            logger.error("%s of run %s: no tracker could answer", op, self.id)
        return default

    def _report(self, backend: TrackerBase, op: str, error: Exception) -> None:
        key = (id(backend), op, type(error).__name__)
        if key in self._reported:
            logger.debug("%s failed again on %r: %s", op, backend, error)
            return
        self._reported.add(key)
        what = (
            "kept in the spool and retried until the tracker is back"
            if is_transient(error)
            else "skipped"
        )
        logger.error(
            "tracking: %s failed on %r for run %s: %s; %s (further %s errors of this kind are "
            "logged at debug level; set TORCHX_TRACKER_STRICT=1 to make them fatal)",
            op,
            backend,
            self.id,
            error,
            what,
            type(error).__name__,
            exc_info=None if is_transient(error) else error,  # an outage needs no traceback
        )

    # --- fork ---
    def _backend(self, index: int) -> TrackerBase:
        """Backend ``index``; in a forked child, first built again from its name and config."""
        if self._stale_backends:
            with self._fork_lock:
                if index in self._stale_backends:
                    self._stale_backends.discard(index)
                    name, config = self.refs[index]
                    try:
                        self.backends[index] = create_tracker(name, config, origin=name)
                    except Exception as e:  # the parent's object still works for most stores
                        logger.warning(
                            "tracking: run %s: could not build tracker %r again in worker "
                            "process %d (%s); using the parent's %r",
                            self.id,
                            name,
                            os.getpid(),
                            e,
                            self.backends[index],
                        )
        return self.backends[index]

    def _after_fork(self) -> None:
        """In the child of a fork: own threads, queue, spool segments and backends from now on.

        Runs inside ``os.fork`` (no I/O, no waiting): the parent's delivery threads and writer
        are not in the child, its locks may have been held by them, and its queued writes are
        the parent's to deliver. Backends are built again lazily, on first use."""
        for delivery in self._deliveries.values():
            delivery.forget_after_fork()
        self._deliveries = {}
        self._deliveries_lock = threading.Lock()
        self._queue = None
        self._queue_lock = threading.Lock()
        self._fork_lock = threading.Lock()
        self._reported = set()
        self._exit_status = None
        self._exit_error = None
        self._closed = False
        self._close_done = threading.Event()
        self._worker = True
        self._stale_backends = set(range(len(self.backends)))


def _after_fork_in_child() -> None:
    global _current_lock
    _current_lock = threading.Lock()
    for run in list(_live_runs.values()):
        try:
            run._after_fork()
        except Exception:  # never let tracking break a fork
            logger.exception("tracking: run %s: resetting after fork failed", run.id)


os.register_at_fork(after_in_child=_after_fork_in_child)


def tracker_ref(tracker: TrackerBase) -> TrackerRef:
    """How to build ``tracker`` again: its registered name and ``job_config()`` if it has one."""
    able = capabilities(tracker)
    return able.name, able.job_config(False)


#: Lines of a traceback kept in ``error.stack_trace`` (the innermost frames).
STACK_TRACE_LINES = 50


def error_record(error: BaseException | str) -> dict[str, str]:
    """``error.type``/``error.message``/``error.stack_trace`` of how a process failed, masked."""
    if isinstance(error, str):
        return {"error.message": redact(error)}
    lines = "".join(traceback.format_exception(error)).splitlines()[-STACK_TRACE_LINES:]
    return {
        "error.type": type(error).__name__,
        "error.message": redact(str(error)),
        "error.stack_trace": redact("\n".join(lines)),
    }


def current_run() -> AppRun:
    """Same as ``AppRun.run_from_env()``."""
    return AppRun.run_from_env()


def _log_to_current_run(metrics: Mapping[str, float], step: int | None) -> None:
    current_run().log(metrics, step)


def reset_current_run() -> None:
    """Forget the cached run: the next ``run_from_env()`` reads the env again (tests, notebooks)."""
    global _current
    with _current_lock:
        _current = None
        lifecycle.detach()
        lifecycle.release_claim()
