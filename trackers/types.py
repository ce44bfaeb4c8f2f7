"""Value types returned by trackers. TorchX's own types are reused where they exist."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from torchx.tracker.api import Lineage, TrackerArtifact, TrackerSource

__all__ = [
    "Direction",
    "LineageEdge",
    "LinkedRun",
    "MetricPoint",
    "RUN_STATUSES",
    "RunLineage",
    "RunStatus",
    "TrackerArtifact",
    "TrackerSource",
]

#: A run's state as the job reports it (MLflow: RUNNING, FINISHED, FAILED, KILLED).
RunStatus = Literal["RUNNING", "SUCCEEDED", "FAILED", "KILLED"]
RUN_STATUSES: tuple[RunStatus, ...] = ("RUNNING", "SUCCEEDED", "FAILED", "KILLED")

#: Which way :meth:`~trackers.api.LineageTracker.lineage` walks from the run.
Direction = Literal["both", "sources", "descendants"]


@dataclass(frozen=True)
class LinkedRun:
    """A run linked to another one, with the artifact the link is about (if any)."""

    run_id: str
    artifact_name: str | None = None


@dataclass(frozen=True)
class MetricPoint:
    """One value of a time series.

    Attributes:
        name: the metric (``loss``, ``eval/acc``).
        value: the value (a float; NaN and inf are kept as such).
        step: the training step, if the caller gave one.
        timestamp: seconds since the epoch when it was logged.
        rank: the global rank that logged it, when logging from every rank.
    """

    name: str
    value: float
    step: int | None = None
    timestamp: float = 0.0
    rank: int | None = None


@dataclass(frozen=True)
class LineageEdge:
    """``child`` was derived from ``parent`` (through ``artifact_name`` when given)."""

    parent: str
    child: str
    artifact_name: str | None = None


@dataclass
class RunLineage(Lineage):
    """The runs a run came from and the runs derived from it, with the links between them.

    Subclasses TorchX's placeholder ``Lineage`` so it is what ``TrackerBase.lineage`` promises.

    Attributes:
        run_id: the run the walk started from.
        ancestors: every run reached by following sources, with its distance (1 = direct source).
        descendants: every run reached by following children, with its distance.
        edges: every link crossed, each once, in the order the walk found them.
    """

    run_id: str
    ancestors: dict[str, int] = field(default_factory=dict)
    descendants: dict[str, int] = field(default_factory=dict)
    edges: list[LineageEdge] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form (used by ``torchx tracker list lineage --format json``)."""
        return {
            "run_id": self.run_id,
            "ancestors": dict(self.ancestors),
            "descendants": dict(self.descendants),
            "edges": [
                {"parent": e.parent, "child": e.child, "artifact_name": e.artifact_name}
                for e in self.edges
            ],
        }
