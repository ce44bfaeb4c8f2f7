"""The backend interface: TorchX's ``TrackerBase`` plus lineage, metrics, summaries and status.

A backend implements a few storage primitives; :class:`LineageTracker` derives the rest, as
fsspec's ``AbstractFileSystem`` does: link dedupe and artifact filtering, run ids with a parent
filter, status validation, lineage, and defaults for the optional capabilities. It subclasses
TorchX's ``TrackerBase``, so each ``AppRun`` can drive the other's trackers;
:func:`capabilities` answers for any ``TrackerBase``, ours or not.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from torchx.tracker.api import TrackerArtifact, TrackerBase, TrackerSource

from trackers.lineage import walk_lineage
from trackers.types import (
    RUN_STATUSES,
    Direction,
    LinkedRun,
    MetricPoint,
    RecordedWrite,
    RunLineage,
    RunStatus,
)

__all__ = [
    "Capabilities",
    "LineageTracker",
    "RunSummary",
    "capabilities",
    "dedupe_links",
    "dedupe_pairs",
]


@dataclass(frozen=True)
class RunSummary:
    """One row of :meth:`LineageTracker.runs_summary`."""

    run_id: str
    #: The last recorded state, ``None`` if none was recorded.
    status: RunStatus | None
    #: Seconds since the epoch when the run was first recorded, ``None`` where unknown.
    start_time: float | None
    #: The run's direct sources (each once, as :meth:`LineageTracker.sources` gives them).
    parents: tuple[LinkedRun, ...]
    #: The TorchX component the run was launched from (its launch record's
    #: ``launch.component``) where the summary keeps it; ``None`` where it does not (no launch
    #: record, or a store written before the catalog kept it): the run's metadata then tells.
    component: str | None = None
    #: Who launched the run (``launch.user``, the newest record setting it), where the summary
    #: keeps it; see :attr:`launch_known`.
    user: str | None = None
    #: Whether :attr:`component` and :attr:`user` are the run's launch record as the summary
    #: keeps it (a ``None`` user then means the record names none). ``False``: no launch
    #: record, or one kept before the summary held users; the run's metadata tells.
    launch_known: bool = False
    #: Seconds since the epoch when :attr:`status` was recorded, ``None`` where unknown.
    status_time: float | None = None


class LineageTracker(TrackerBase):
    """A tracker that also records the reverse link (parent -> child), so lineage can go down.

    Primitives are the abstract methods; every other method is derived from them and may be
    overridden only to do the same thing faster.
    """

    #: The name the backend is registered under in ``torchx.tracker`` (labels its spool).
    registry_name: ClassVar[str] = ""
    #: Whether failures should raise where the backend would otherwise log and go on.
    strict: bool = False
    #: Whether :meth:`runs_summary` is a few reads for the whole store (a catalog) rather than
    #: reads per run: listings then take status, start and component from it.
    runs_summary_is_cheap: ClassVar[bool] = False
    #: ``False`` for a write-only backend (OpenLineage): its reads raise ``UnsupportedOperation``,
    #: so commands that read a store write to it only what a readable store told them.
    readable: ClassVar[bool] = True

    # --- primitives: TorchX's interface (exact signatures, for readers and mypy) ---
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

    # --- primitives: ours ---
    @abstractmethod
    def _source_links(self, run_id: str) -> Iterable[LinkedRun]:
        """Every recorded link from ``run_id`` to a source (repeats allowed)."""

    @abstractmethod
    def _descendant_links(self, run_id: str) -> Iterable[LinkedRun]:
        """Every recorded link from ``run_id`` to a run derived from it (repeats allowed)."""

    @abstractmethod
    def _all_run_ids(self) -> list[str]:
        """Every run id in the store, in any order."""

    @abstractmethod
    def has_run(self, run_id: str) -> bool:
        """Whether anything was recorded for ``run_id`` in this store."""

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
    def _set_status(self, run_id: str, status: RunStatus) -> None:
        """Record a state :meth:`set_status` has checked."""

    @abstractmethod
    def status(self, run_id: str) -> RunStatus | None:
        """The last recorded state of the run, ``None`` if none was recorded."""

    # --- derived ---
    def sources(self, run_id: str, artifact_name: str | None = None) -> list[TrackerSource]:
        """The direct sources of the run, each once, optionally only those for ``artifact_name``."""
        return [
            TrackerSource(link.run_id, link.artifact_name)
            for link in _filtered(self._source_links(run_id), artifact_name)
        ]

    def descendants(self, run_id: str, artifact_name: str | None = None) -> list[LinkedRun]:
        """The runs that name ``run_id`` as a source (direct children), each once."""
        return _filtered(self._descendant_links(run_id), artifact_name)

    def run_ids(self, **kwargs: str) -> list[str]:
        """Run ids in the store; ``parent_run_id=ID`` keeps only the runs derived from ``ID``."""
        parent_run_id = kwargs.pop("parent_run_id", None)
        if kwargs:
            raise TypeError(
                f"{type(self).__name__}.run_ids got unknown filter(s) {sorted(kwargs)}; "
                "supported: parent_run_id"
            )
        return self._run_ids(parent_run_id)

    def _run_ids(self, parent_run_id: str | None) -> list[str]:
        """Every run id, sorted, or only the children of ``parent_run_id``."""
        if parent_run_id is not None:
            return sorted({link.run_id for link in self.descendants(parent_run_id)})
        return sorted(self._all_run_ids())

    def runs_summary(self, run_ids: Iterable[str] | None = None) -> list[RunSummary]:
        """Status, start time and parents of ``run_ids`` (default: every run, sorted) in one call.

        The default asks :meth:`status` and :meth:`sources` per run and knows no start time;
        the record stores answer from their catalog in a few reads.
        """
        ids = self.run_ids() if run_ids is None else list(run_ids)
        return [
            RunSummary(
                run,
                self.status(run),
                None,
                tuple(LinkedRun(s.source_run_id, s.artifact_name) for s in self.sources(run)),
            )
            for run in ids
        ]

    def stored_runs_summary(self) -> list[RunSummary] | None:
        """:meth:`runs_summary` of the runs a stored summary holds, where reading it as it is
        stored takes a few requests (the record stores: their catalog once merged), else
        ``None`` (the default: there is no such summary). Runs it lacks are left out, not
        read; nothing is written. For a first look at a store (the web view's first page)
        that must not wait for a read per run."""
        return None

    def status_history(self, run_id: str) -> list[tuple[float | None, str]]:
        """Every recorded state of the run, oldest first: ``(seconds since the epoch, status)``.

        Viewers show when a run started, failed or was retried without reaching into a
        backend's storage. The default knows only :meth:`status`, with no time (``[]`` when
        none was recorded); backends that keep each status (the record stores) or its time
        (MLflow's end time) override it.
        """
        status = self.status(run_id)
        return [] if status is None else [(None, status)]

    def write_history(self, run_id: str) -> list[RecordedWrite] | None:
        """The run's metadata, artifact, link and status writes as they were made, oldest first,
        each under its operation id; ``None`` when the store keeps no such history.

        What ``torchx tracker export openlineage`` rebuilds past events from: with the history
        each event is the live one, time included. The default keeps none; the record stores
        have one record per write, MLflow a journal tag per write.
        """
        del run_id
        return None

    def set_status(self, run_id: str, status: RunStatus) -> None:
        """Record the run's state: RUNNING when it starts, then SUCCEEDED, FAILED or KILLED."""
        if status not in RUN_STATUSES:
            raise ValueError(f"status={status!r}: expected one of {', '.join(RUN_STATUSES)}")
        self._set_status(run_id, status)

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

    # --- optional capabilities (defaults) ---
    def job_config(self, torchx_compatible: bool = False) -> str | None:
        """A config string that opens this store from another process; ``None``: keep the given one.

        With ``torchx_compatible``, TorchX's own factory of the same name must read it too.
        """
        del torchx_compatible
        return None

    def ensure_root(self) -> None:
        """Create what the store needs before a job starts (default: nothing)."""

    def close(self) -> None:
        """Release threads and connections; it may still be used after (default: nothing)."""


def dedupe_links(links: Iterable[LinkedRun]) -> list[LinkedRun]:
    """Drop repeated links, and an unnamed link where the same pair also has named ones."""
    pairs = dedupe_pairs((link.run_id, link.artifact_name) for link in links)
    return [LinkedRun(run, name) for run, name in pairs]


def dedupe_pairs(pairs: Iterable[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    """:func:`dedupe_links` on ``(run id, artifact name)`` pairs, in first-seen order (tuples
    hash in C: the record stores merge thousands of links per read this way)."""
    ordered = list(dict.fromkeys(pairs))
    named = {run for run, name in ordered if name is not None}
    return [(run, name) for run, name in ordered if name is not None or run not in named]


def _filtered(links: Iterable[LinkedRun], artifact_name: str | None) -> list[LinkedRun]:
    return [
        link
        for link in dedupe_links(links)
        if artifact_name is None or link.artifact_name == artifact_name
    ]


class Capabilities:
    """The optional capabilities of any TorchX tracker, with :class:`LineageTracker`'s defaults.

    Our backends answer through their methods. A tracker that is not ours (TorchX's
    ``FsspecTracker``, a third party's) is asked only for what it defines under the same name,
    as the README allows a custom ``TrackerBase`` to: this is the one place that looks.
    """

    __slots__ = ("tracker",)

    def __init__(self, tracker: TrackerBase) -> None:
        self.tracker = tracker

    @property
    def name(self) -> str:
        """The registered name (``registry_name``), else the class name."""
        name = getattr(self.tracker, "registry_name", "")
        return name if isinstance(name, str) and name else type(self.tracker).__name__

    @property
    def strict(self) -> bool:
        """Whether the tracker asks for failures to raise."""
        return getattr(self.tracker, "strict", False) is True

    @property
    def readable(self) -> bool:
        """Whether the tracker answers reads (see :attr:`LineageTracker.readable`)."""
        return getattr(self.tracker, "readable", True) is not False

    def job_config(self, torchx_compatible: bool = False) -> str | None:
        """See :meth:`LineageTracker.job_config` (``None`` when the tracker has none)."""
        tracker = self.tracker
        if isinstance(tracker, LineageTracker):
            return tracker.job_config(torchx_compatible)
        make = getattr(tracker, "job_config", None)
        made = make(torchx_compatible=torchx_compatible) if callable(make) else None
        return made if isinstance(made, str) else None

    def ensure_root(self) -> None:
        """See :meth:`LineageTracker.ensure_root`."""
        if isinstance(self.tracker, LineageTracker):
            self.tracker.ensure_root()
        else:
            self._foreign_call("ensure_root")

    def close(self) -> None:
        """See :meth:`LineageTracker.close`."""
        if isinstance(self.tracker, LineageTracker):
            self.tracker.close()
        else:
            self._foreign_call("close")

    def _foreign_call(self, method: str) -> None:
        found = getattr(self.tracker, method, None)
        if callable(found):
            found()


def capabilities(tracker: TrackerBase) -> Capabilities:
    """The optional capabilities of ``tracker`` (ours or any ``TrackerBase``), with defaults."""
    return Capabilities(tracker)
