"""Value types returned by trackers. TorchX's own types are reused where they exist."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Literal, NamedTuple, overload

from torchx.tracker.api import Lineage, TrackerArtifact, TrackerSource

__all__ = [
    "Direction",
    "LineageEdge",
    "LinkedRun",
    "MetricColumns",
    "MetricPoint",
    "RUN_STATUSES",
    "RecordedWrite",
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
class RecordedWrite:
    """One write of a run as a store kept it: the tracker method (``kind``), its arguments as
    the write-operation model holds them (``{"values": ...}`` for metadata, ``name``/``path``/
    ``metadata`` for an artifact, ``source_id``/``artifact_name`` for a link, ``status``) and the
    operation id, whose time prefix says when the job made it."""

    kind: str
    args: Mapping[str, Any]
    op_id: str


@dataclass(frozen=True)
class LinkedRun:
    """A run linked to another one, with the artifact the link is about (if any)."""

    run_id: str
    artifact_name: str | None = None


class MetricPoint(NamedTuple):
    """One value of a time series (a named tuple: millions are made, so it must be cheap).

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


class MetricColumns(Sequence[MetricPoint]):
    """A batch of points kept as columns: what the background writer hands to backends.

    It is a ``Sequence[MetricPoint]`` (points are made on access), so any backend can iterate
    it; a backend that stores columns reads :attr:`names`, :attr:`values`... directly and skips
    making a million tuples.
    """

    __slots__ = ("names", "values", "steps", "times", "ranks")

    def __init__(
        self,
        names: list[str],
        values: list[float],
        steps: list[int | None],
        times: list[float],
        ranks: list[int | None],
    ) -> None:
        self.names, self.values, self.steps, self.times, self.ranks = (
            names,
            values,
            steps,
            times,
            ranks,
        )

    @staticmethod
    def from_rows(
        rows: Sequence[tuple[str, float, int | None, float, int | None]],
    ) -> MetricColumns:
        """Columns from ``(name, value, step, timestamp, rank)`` rows (or MetricPoints)."""
        return MetricColumns(*(list(map(itemgetter(i), rows)) for i in range(5)))

    def __len__(self) -> int:
        return len(self.values)

    @overload
    def __getitem__(self, index: int) -> MetricPoint: ...
    @overload
    def __getitem__(self, index: slice) -> list[MetricPoint]: ...
    def __getitem__(self, index: int | slice) -> MetricPoint | list[MetricPoint]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return MetricPoint(
            self.names[index],
            self.values[index],
            self.steps[index],
            self.times[index],
            self.ranks[index],
        )

    def __iter__(self) -> Iterator[MetricPoint]:
        return map(
            MetricPoint._make,
            zip(self.names, self.values, self.steps, self.times, self.ranks, strict=True),
        )


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
