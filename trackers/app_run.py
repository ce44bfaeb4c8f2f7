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
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from torchx.tracker.api import AppRunTrackableSource, TrackerArtifact, TrackerBase

from trackers.env import (
    ENV_TORCHX_JOB_ID,
    ENV_TORCHX_PARENT_RUN_ID,
    ENV_TORCHX_TRACKERS,
    UNDEFINED_JOB_ID,
    parse_tracker_names,
    strict_from_env,
    tracker_config_env_var_name,
)
from trackers.errors import TrackerError
from trackers.lineage import linked_children, walk_lineage
from trackers.registry import create_tracker
from trackers.types import Direction, RunLineage

logger: logging.Logger = logging.getLogger(__name__)

T = TypeVar("T")

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


@dataclass
class AppRun:
    """One run (``id``) recorded into every tracker in ``backends``.

    Args:
        id: the run id, normally the TorchX app handle (``TORCHX_JOB_ID``).
        backends: the trackers to write to; reads use the first that answers.
        strict: raise tracking failures instead of logging them.
    """

    id: str
    backends: list[TrackerBase] = field(default_factory=list)
    strict: bool = False
    _reported: set[tuple[int, str, str]] = field(default_factory=set, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.backends = list(self.backends)

    # --- construction ---
    @staticmethod
    def run_from_env() -> AppRun:
        """The run this process belongs to, built once from the env that TorchX set.

        Without ``TORCHX_JOB_ID``/``TORCHX_TRACKERS`` (not launched by TorchX) it is a no-op run
        with id ``<UNDEFINED>``, as in TorchX. ``TORCHX_PARENT_RUN_ID`` is recorded as a source.
        """
        global _current
        with _current_lock:
            if _current is None:
                _current = AppRun.from_env()
            return _current

    @staticmethod
    def from_env(environ: Mapping[str, str] | None = None) -> AppRun:
        """A new (not cached) run from ``environ`` (default ``os.environ``)."""
        env = os.environ if environ is None else environ
        strict = strict_from_env(env)
        run = AppRun(
            id=env.get(ENV_TORCHX_JOB_ID, UNDEFINED_JOB_ID),
            backends=trackers_from_env(env, strict=strict),
            strict=strict,
        )
        parent = env.get(ENV_TORCHX_PARENT_RUN_ID)
        if parent and run.backends:
            logger.info("run %s: recording parent run %s", run.id, parent)
            run.add_source(parent)
        return run

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
