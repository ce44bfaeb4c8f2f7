"""``AppRun``: the job's handle on its run, fanned out to every configured tracker.

It has every method of TorchX's ``torchx.tracker.api.AppRun`` (``run_from_env``,
``add_metadata``, ``add_artifact``, ``add_source``, ``sources``, ``children``, ``job_id``) plus
``lineage``, ``metadata`` and ``artifacts``. Differences from TorchX's class, on purpose:

* A tracking failure never kills the job by accident: each backend call is isolated, and a
  failure is logged with its cause (once per backend, operation and error type) and skipped.
  Set ``TORCHX_TRACKER_STRICT=1`` (or ``AppRun(..., strict=True)``) to make failures raise.
* A tracker that cannot be built from the env (unknown name, malformed config) is logged naming
  the env var and dropped, unless strict.
* ``run_from_env()`` is a process-wide singleton as in TorchX, but :func:`reset_current_run`
  forgets it (TorchX's ``lru_cache`` cannot be reset and ignores later env changes).
* Reads ask the first backend and fall over to the next if it fails.
* Metrics: ``log(metrics, step)`` only appends to a bounded queue; a background thread writes
  batches to every backend (:mod:`trackers.writer`). ``flush()``, ``close()`` and the context
  manager end it; ``run_from_env()`` also closes the run at exit and on SIGTERM, recording the
  terminal status (:mod:`trackers.lifecycle`). By default only global rank 0 logs metrics and
  writes RUNNING/SUCCEEDED; any rank records FAILED or KILLED.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from torchx.tracker.api import AppRunTrackableSource, TrackerArtifact, TrackerBase

from trackers import lifecycle
from trackers.api import LineageTracker
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
from trackers.errors import TrackerConfigError, TrackerError
from trackers.lineage import linked_children, walk_lineage
from trackers.origin import global_rank
from trackers.registry import create_tracker
from trackers.snapshot import environment_snapshot
from trackers.types import Direction, MetricPoint, RunLineage, RunStatus
from trackers.writer import POLICIES, MetricQueue, Policy

logger: logging.Logger = logging.getLogger(__name__)

T = TypeVar("T")
B = TypeVar("B", bound=TrackerBase)

_current: AppRun | None = None
_current_lock = threading.Lock()


def trackers_from_env(
    environ: Mapping[str, str] | None = None, *, strict: bool | None = None
) -> list[TrackerBase]:
    """Build the trackers named in ``TORCHX_TRACKERS``, each from its ``..._CONFIG`` env var.

    A tracker that cannot be built is logged (naming the env var) and skipped, unless strict.
    """
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
            trackers.append(create_tracker(name, env.get(var), origin=var))
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
    """

    id: str
    backends: list[TrackerBase] = field(default_factory=list)
    strict: bool = False
    settings: RunSettings = field(default_factory=RunSettings)
    rank: int | None = field(default_factory=global_rank)
    _reported: set[tuple[int, str, str]] = field(default_factory=set, repr=False, compare=False)
    _queue: MetricQueue | None = field(default=None, repr=False, compare=False)
    _queue_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _exit_status: RunStatus | None = field(default=None, repr=False, compare=False)
    _closed: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.backends = list(self.backends)
        self._lineage_backends = [b for b in self.backends if isinstance(b, LineageTracker)]
        self._logs_metrics = bool(self._lineage_backends) and (
            self.settings.all_ranks or self.rank in (None, 0)
        )

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
        run = AppRun(
            id=env.get(ENV_TORCHX_JOB_ID, UNDEFINED_JOB_ID),
            backends=trackers_from_env(env, strict=strict),
            strict=strict,
            settings=settings,
        )
        parent = env.get(ENV_TORCHX_PARENT_RUN_ID)
        if parent and run.backends:
            logger.info("run %s: recording parent run %s", run.id, parent)
            run.add_source(parent)
        return run

    def start(self) -> None:
        """Record RUNNING and the environment snapshot (rank 0) and hook the process's exit."""
        if self.rank in (None, 0):
            self._set_status("RUNNING")
            self.add_metadata(**environment_snapshot())
        lifecycle.install(self)
        if self.settings.capture_tensorboard:
            from trackers.capture.tensorboard import capture_tensorboard

            capture_tensorboard()

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
        """Wait until every point logged so far is stored; ``False`` if ``timeout`` ran out."""
        return self._queue.flush(timeout) if self._queue is not None else True

    def mark_exit(self, status: RunStatus) -> None:
        """Remember how the process is ending (used by the exit hooks; the first one wins)."""
        if self._exit_status is None:
            self._exit_status = status

    def close(self, status: RunStatus | None = None, timeout: float | None = None) -> None:
        """Flush (within ``timeout``, default the shutdown timeout) and record the final status.

        ``status`` defaults to what the exit hooks saw, else SUCCEEDED. Closing twice is a no-op.
        """
        if self._closed:
            return
        self._closed = True
        final: RunStatus = status or self._exit_status or "SUCCEEDED"
        limit = self.settings.shutdown_timeout if timeout is None else timeout
        queue = self._queue
        if queue is not None and not queue.close(limit):
            logger.error(
                "tracking: run %s closed with %d metric points not yet written after %.0f s",
                self.id,
                queue.queued,
                limit,
            )
        if self.backends and (self.rank in (None, 0) or final in ("FAILED", "KILLED")):
            self._set_status(final)

    def __enter__(self) -> AppRun:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: object, tb: object) -> None:
        if kind is None:
            self.close()
        else:
            self.close("KILLED" if issubclass(kind, KeyboardInterrupt) else "FAILED")

    def _start_queue(self) -> MetricQueue:
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
        for backend in self._lineage_backends:
            if points:
                self._call(backend, "add_metrics", lambda b: b.add_metrics(self.id, points))
            if summary:
                self._call(backend, "add_summary", lambda b: b.add_summary(self.id, **summary))

    def _set_status(self, status: RunStatus) -> None:
        for backend in self._lineage_backends:
            self._call(backend, "set_status", lambda b: b.set_status(self.id, status))

    # --- writes: every backend, each isolated ---
    def add_metadata(self, **kwargs: object) -> None:
        """Record metadata for this run (a key written again later wins)."""
        self._each("add_metadata", lambda b: b.add_metadata(self.id, **kwargs))

    def add_artifact(
        self, name: str, path: str, metadata: Mapping[str, object] | None = None
    ) -> None:
        """Record artifact ``name`` stored at ``path`` with optional ``metadata``."""
        self._each("add_artifact", lambda b: b.add_artifact(self.id, name, path, metadata))

    def add_source(self, source_id: str, artifact_name: str | None = None) -> None:
        """Record that this run was derived from ``source_id`` (another run or any entity)."""
        self._each("add_source", lambda b: b.add_source(self.id, source_id, artifact_name))

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

    def _each(self, op: str, call: Callable[[TrackerBase], object]) -> None:
        for backend in self.backends:
            self._call(backend, op, call)

    def _call(self, backend: B, op: str, call: Callable[[B], object]) -> None:
        try:
            call(backend)
        except Exception as e:
            if self.strict:
                raise
            self._report(backend, op, e)

    def _first(self, op: str, call: Callable[[TrackerBase], T], default: T) -> T:
        last_error: Exception | None = None
        for backend in self.backends:
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
        logger.error(
            "tracking: %s failed on %r for run %s (further %s errors of this kind are logged "
            "at debug level; set TORCHX_TRACKER_STRICT=1 to make them fatal)",
            op,
            backend,
            self.id,
            type(error).__name__,
            exc_info=error,
        )


def current_run() -> AppRun:
    """Same as ``AppRun.run_from_env()``."""
    return AppRun.run_from_env()


def reset_current_run() -> None:
    """Forget the cached run: the next ``run_from_env()`` reads the env again (tests, notebooks)."""
    global _current
    with _current_lock:
        _current = None
        lifecycle.detach()
