"""The backend interface: TorchX's ``TrackerBase`` plus the lineage it lacks.

Every backend subclasses :class:`LineageTracker`, which subclasses TorchX's
``torchx.tracker.api.TrackerBase``: TorchX's own ``AppRun`` can drive our backends, and our
``AppRun`` can drive TorchX's. A backend implements storage primitives; the base class derives the
rest (``lineage``, ``run_ids`` argument checks).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from torchx.tracker.api import TrackerArtifact, TrackerBase, TrackerSource

from trackers.lineage import walk_lineage
from trackers.types import Direction, LinkedRun, MetricPoint, RunLineage, RunStatus

__all__ = ["LineageTracker"]


class LineageTracker(TrackerBase):
    """A tracker that also records the reverse link (parent -> child), so lineage can go down."""

    #: The name the backend is registered under in ``torchx.tracker`` (labels its spool).
    registry_name: ClassVar[str] = ""

    # --- TorchX's interface (repeated here with exact signatures, for readers and mypy) ---
    @abstractmethod
    def add_artifact(
        self, run_id: str, name: str, path: str, metadata: Mapping[str, object] | None = None
    ) -> None:
        """Record artifact ``name`` at ``path``; re-adding a name makes the newest one win."""

    @abstractmethod
    def artifacts(self, run_id: str) -> Mapping[str, TrackerArtifact]:
        """The run's artifacts by name (the newest record of each name)."""

    @abstractmethod
    def add_metadata(self, run_id: str, **kwargs: object) -> None:
        """Record metadata; a key written again later wins."""

    @abstractmethod
    def metadata(self, run_id: str) -> Mapping[str, object]:
        """All metadata of the run, merged in write order (last write wins)."""

    @abstractmethod
    def add_source(self, run_id: str, source_id: str, artifact_name: str | None = None) -> None:
        """Record that ``run_id`` was derived from ``source_id`` (and the reverse link)."""

    @abstractmethod
    def sources(self, run_id: str, artifact_name: str | None = None) -> Iterable[TrackerSource]:
        """The direct sources of the run, optionally only those for ``artifact_name``."""

    # --- our additions ---
    @abstractmethod
    def descendants(self, run_id: str, artifact_name: str | None = None) -> list[LinkedRun]:
        """The runs that name ``run_id`` as a source (direct children)."""

    @abstractmethod
    def has_run(self, run_id: str) -> bool:
        """Whether anything was recorded for ``run_id`` in this store."""

    @abstractmethod
    def _run_ids(self, parent_run_id: str | None) -> list[str]:
        """Every run id in the store, or only the children of ``parent_run_id``."""

    @abstractmethod
    def add_metrics(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        """Store a batch of metric points; they are durable when this returns."""

    @abstractmethod
    def metrics(self, run_id: str, name: str | None = None) -> list[MetricPoint]:
        """The run's metric points in the order they were stored, optionally one metric."""

    @abstractmethod
    def add_summary(self, run_id: str, **values: object) -> None:
        """Record summary values (final or best results); a key written again later wins."""

    @abstractmethod
    def summary(self, run_id: str) -> Mapping[str, object]:
        """The run's summary values, merged in write order."""

    @abstractmethod
    def set_status(self, run_id: str, status: RunStatus) -> None:
        """Record the run's state: RUNNING when it starts, then SUCCEEDED, FAILED or KILLED."""

    @abstractmethod
    def status(self, run_id: str) -> RunStatus | None:
        """The last recorded state of the run, ``None`` if none was recorded."""

    # --- derived ---
    def run_ids(self, **kwargs: str) -> list[str]:
        """Run ids in the store; ``parent_run_id=ID`` keeps only the runs derived from ``ID``."""
        parent_run_id = kwargs.pop("parent_run_id", None)
        if kwargs:
            raise TypeError(
                f"{type(self).__name__}.run_ids got unknown filter(s) {sorted(kwargs)}; "
                "supported: parent_run_id"
            )
        return self._run_ids(parent_run_id)

    def lineage(
        self,
        run_id: str,
        *,
        direction: Direction = "both",
        artifact_name: str | None = None,
        depth: int | None = None,
    ) -> RunLineage:
        """Ancestors and descendants of ``run_id``, transitively; see :func:`walk_lineage`."""
        return walk_lineage(
            self, run_id, direction=direction, artifact_name=artifact_name, depth=depth
        )
