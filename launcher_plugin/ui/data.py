"""What the web view (and ``torchx tracker list jobs``) reads from a store, as JSON-ready values.

Everything goes through the tracker interface (:class:`trackers.api.LineageTracker`, or any
TorchX ``TrackerBase`` for what it has). Each part of a page is read on its own and guarded: a
part that raises is reported by name with its error, and records the store skipped as damaged
are listed with the run they belong to, so a broken record shows on the page, never as a
server error. No web library is imported here.

The view must not change the store it shows: :func:`make_read_only` turns off what our
record-store readers would otherwise write while reading (snapshots, catalog entries, catalog
merges, S3's read cache), so browsing leaves every object as it was.

A **runs table row** is the catalog's part (status and its time, start, parents, and the launch
record's component and user: one :meth:`~trackers.api.LineageTracker.runs_summary` for the whole
store) plus what only the run's own records hold: its damaged records, and for runs the catalog
has no launch record of (not launched through the plugin, or launched by a release whose catalog
did not keep users) the launch record itself (one metadata read) and the status history (one
:meth:`~trackers.api.LineageTracker.status_history` read). :func:`read_row` reads all of it;
:func:`summary_row` is the catalog's part alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from torchx.tracker.api import TrackerArtifact, TrackerBase

from launcher_plugin.cli.render import to_jsonable
from trackers.api import LineageTracker, RunSummary
from trackers.backends.catalog import LAUNCH_TIME_KEY, parse_iso_time
from trackers.backends.record_store import RecordStoreTracker
from trackers.ids import encode_run_id
from trackers.jsonsafe import text_of
from trackers.lineage import walk_lineage
from trackers.redact import redact

__all__ = [
    "LAUNCH_PREFIX",
    "TERMINAL",
    "RunRow",
    "compare_metadata",
    "damaged_for",
    "final_in_catalog",
    "has_run",
    "lineage_graph",
    "make_read_only",
    "read_row",
    "run_detail",
    "status_history",
]

T = TypeVar("T")

#: Metadata keys of the launch record (``launcher_plugin.launch_record``) start with this.
LAUNCH_PREFIX = "launch."
#: Statuses after which a run's row no longer changes.
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "KILLED"})


def describe_error(e: BaseException) -> str:
    """One line naming the error, safe to show (credentials redacted)."""
    return f"{type(e).__name__}: {redact(text_of(str(e)))}"


def guarded(errors: dict[str, str], part: str, read: Callable[[], T], default: T) -> T:
    """``read()``, or ``default`` with the error recorded under ``part``.

    Any exception: a value from the store must never turn a page into a server error.
    """
    try:
        return read()
    except Exception as e:  # noqa: BLE001 - see the docstring
        errors[part] = describe_error(e)
        return default


def has_run(tracker: TrackerBase, run_id: str) -> bool:
    """Whether the store has anything for ``run_id``."""
    if isinstance(tracker, LineageTracker):
        return tracker.has_run(run_id)
    return run_id in set(tracker.run_ids())


def damaged_for(tracker: TrackerBase, run_id: str) -> list[dict[str, str]]:
    """The records of ``run_id`` that reads of ``tracker`` skipped as unreadable."""
    found = getattr(tracker, "damaged", None)
    if not isinstance(found, list):
        return []
    segment = f"/{encode_run_id(run_id)}/"
    return [
        {"path": text_of(str(path)), "why": text_of(str(why))}
        for path, why in found
        if segment in f"{path}"
    ]


def make_read_only(tracker: TrackerBase) -> TrackerBase:
    """``tracker`` set up so that reading writes nothing to its store; returns it.

    Our record stores cache what a read derived, for the next reader: per-run snapshots,
    catalog entries of runs the catalog lacks, merges of many catalog segments, and on S3 a
    read cache of fetched records. ``cache_on_read`` off stops every one of those writes; the
    caches and packs already there are still read. A viewer must leave the store as it found
    it; where nothing was cached, its reads cost what an uncached first read costs. MLflow and
    foreign trackers are not touched: their reads do not write.
    """
    if isinstance(tracker, RecordStoreTracker):
        tracker.cache_on_read = False
    return tracker


def status_history(tracker: TrackerBase, run_id: str) -> list[dict[str, object]] | None:
    """Every status the store kept for the run, oldest first, each with its time or ``None``.

    :meth:`~trackers.api.LineageTracker.status_history`: all of them for the record stores,
    the last for MLflow; ``None`` for a tracker that is not ours (it records no status).
    """
    if not isinstance(tracker, LineageTracker):
        return None
    return [{"status": s, "time": t} for t, s in tracker.status_history(run_id)]


def _status(tracker: TrackerBase, run_id: str) -> str | None:
    return tracker.status(run_id) if isinstance(tracker, LineageTracker) else None


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _text(value: object) -> str | None:
    return text_of(value) if isinstance(value, str) and value else None


@dataclass
class RunRow:
    """One line of the runs table (and of ``torchx tracker list jobs``)."""

    run_id: str
    status: str | None = None
    start_time: float | None = None
    end_time: float | None = None
    scheduler: str | None = None
    component: str | None = None
    user: str | None = None
    parents: list[str] = field(default_factory=list)
    #: Parts that could not be read, and damaged records of the run: ``what: why``.
    problems: list[str] = field(default_factory=list)
    #: When it was read (``time.monotonic()``), to refresh rows of runs still going.
    read_at: float = 0.0

    @property
    def duration(self) -> float | None:
        """Seconds from start to the final status, when both are known."""
        if self.start_time is None or self.end_time is None:
            return None
        return max(0.0, self.end_time - self.start_time)

    def to_json(self) -> dict[str, object]:
        """The row as the runs API sends it."""
        return {
            "run_id": text_of(self.run_id),
            "status": self.status,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "duration": self.duration,
            "scheduler": self.scheduler,
            "component": self.component,
            "user": self.user,
            "parents": [text_of(p) for p in self.parents],
            "problems": self.problems,
        }


def read_row(tracker: TrackerBase, run_id: str, summary: RunSummary | None = None) -> RunRow:
    """The run's row: launch record, status history (status, its times) and parents.

    With the run's ``summary`` (from :meth:`~trackers.api.LineageTracker.runs_summary`) its
    parents are taken from there: one read fewer per row.
    """
    errors: dict[str, str] = {}
    md: dict[str, object] = guarded(errors, "metadata", lambda: dict(tracker.metadata(run_id)), {})
    history = guarded(errors, "status", lambda: status_history(tracker, run_id), None)
    status = str(history[-1]["status"]) if history else None
    if summary is not None:
        parents = _unique(link.run_id for link in summary.parents)
    else:
        parents = guarded(
            errors,
            "sources",
            lambda: _unique(s.source_run_id for s in tracker.sources(run_id)),
            [],
        )
    start = parse_iso_time(md.get(LAUNCH_TIME_KEY))
    times = [h["time"] for h in history or () if isinstance(h["time"], float)]
    if start is None:
        start = summary.start_time if summary is not None and summary.start_time else None
    if start is None and times:
        start = times[0]
    end = None
    if history and status in TERMINAL and isinstance(history[-1]["time"], float):
        end = history[-1]["time"]
    scheduler = _text(md.get(f"{LAUNCH_PREFIX}scheduler"))
    if scheduler is None and "://" in run_id:
        scheduler = run_id.split("://", 1)[0]
    problems = [f"{part}: {why}" for part, why in errors.items()]
    problems += [f"damaged record {d['path']}: {d['why']}" for d in damaged_for(tracker, run_id)]
    return RunRow(
        run_id=run_id,
        status=status,
        start_time=start,
        end_time=end,
        scheduler=scheduler,
        component=_text(md.get(f"{LAUNCH_PREFIX}component")),
        user=_text(md.get(f"{LAUNCH_PREFIX}user")),
        parents=parents,
        problems=problems,
        read_at=time.monotonic(),
    )


def summary_row(summary: RunSummary) -> RunRow:
    """A row with only what the catalog knows (status and its time, start, parents, component,
    user), shown and sorted until the run's own records are read; all of the row but its
    damaged records where the run ended and the catalog keeps its launch record
    (:func:`final_in_catalog`)."""
    scheduler = summary.run_id.split("://", 1)[0] if "://" in summary.run_id else None
    ended = summary.status in TERMINAL
    return RunRow(
        run_id=summary.run_id,
        status=summary.status,
        start_time=summary.start_time,
        end_time=summary.status_time if ended else None,
        scheduler=scheduler,
        component=_text(summary.component),
        user=_text(summary.user),
        parents=_unique(link.run_id for link in summary.parents),
        read_at=time.monotonic(),
    )


def final_in_catalog(summary: RunSummary | None) -> bool:
    """Whether ``summary`` holds the run's whole row (:func:`summary_row` equals
    :func:`read_row` but for damaged records): the run ended, so its status and times no
    longer change, and the catalog keeps its launch record's component and user."""
    return summary is not None and summary.launch_known and summary.status in TERMINAL


def _links(tracker: TrackerBase, links: Iterable[tuple[str, str | None]]) -> list[object]:
    return [
        {"run_id": text_of(r), "artifact_name": _maybe_text(a), "in_store": has_run(tracker, r)}
        for r, a in links
    ]


def _maybe_text(value: str | None) -> str | None:
    return None if value is None else text_of(value)


def run_detail(tracker: TrackerBase, run_id: str) -> dict[str, object]:
    """Everything the run page shows but the metric points, each part read on its own."""
    errors: dict[str, str] = {}
    exists = guarded(errors, "run", lambda: has_run(tracker, run_id), False)
    if not exists:
        return {"run_id": text_of(run_id), "exists": False, "errors": errors, "damaged": []}
    md: dict[str, object] = guarded(errors, "metadata", lambda: dict(tracker.metadata(run_id)), {})
    launch = {k: v for k, v in md.items() if k.startswith(LAUNCH_PREFIX)}
    other = {k: v for k, v in md.items() if not k.startswith(LAUNCH_PREFIX)}
    artifacts: list[TrackerArtifact] = guarded(
        errors, "artifacts", lambda: list(tracker.artifacts(run_id).values()), []
    )
    history = guarded(errors, "status", lambda: status_history(tracker, run_id), None)
    status = str(history[-1]["status"]) if history else None
    summary: Mapping[str, object] = {}
    children: list[object] = []
    if isinstance(tracker, LineageTracker):
        summary = guarded(errors, "summary", lambda: dict(tracker.summary(run_id)), {})
        store = tracker
        children = guarded(
            errors,
            "children",
            lambda: _links(store, ((c.run_id, c.artifact_name) for c in store.descendants(run_id))),
            [],
        )
    sources: list[object] = guarded(
        errors,
        "sources",
        lambda: _links(
            tracker, ((s.source_run_id, s.artifact_name) for s in tracker.sources(run_id))
        ),
        [],
    )
    return {
        "run_id": text_of(run_id),
        "exists": True,
        "status": status,
        "status_history": history,
        "launch": to_jsonable(launch),
        "metadata": to_jsonable(other),
        "artifacts": [
            {"name": text_of(a.name), "path": text_of(a.path), "metadata": to_jsonable(a.metadata)}
            for a in artifacts
        ],
        "summary": to_jsonable(dict(summary)),
        "sources": sources,
        "children": children,
        "errors": errors,
        "damaged": damaged_for(tracker, run_id),
    }


def lineage_graph(tracker: TrackerBase, run_id: str, depth: int | None) -> dict[str, object]:
    """The run's ancestors and descendants up to ``depth`` links away, as nodes and edges."""
    errors: dict[str, str] = {}
    exists = guarded(errors, "run", lambda: has_run(tracker, run_id), False)
    if not exists:
        return {"run_id": text_of(run_id), "exists": False, "errors": errors}
    walked = guarded(errors, "lineage", lambda: walk_lineage(tracker, run_id, depth=depth), None)
    if walked is None:
        return {"run_id": text_of(run_id), "exists": True, "nodes": [], "edges": [], **_e(errors)}
    distance: dict[str, int] = {run_id: 0}
    distance.update({r: -d for r, d in walked.ancestors.items()})
    distance.update(walked.descendants)
    for edge in walked.edges:
        distance.setdefault(edge.parent, 0)
        distance.setdefault(edge.child, 0)
    nodes = []
    for node, d in distance.items():
        node_errors: dict[str, str] = {}
        known = guarded(node_errors, "run", partial(has_run, tracker, node), False)
        status = guarded(node_errors, "status", partial(_status, tracker, node), None)
        nodes.append(
            {
                "run_id": text_of(node),
                "distance": d,
                "status": status if known else None,
                "in_store": known,
                "problem": "; ".join(node_errors.values()) or None,
            }
        )
    edges = [
        {
            "parent": text_of(e.parent),
            "child": text_of(e.child),
            "artifact_name": None if e.artifact_name is None else text_of(e.artifact_name),
        }
        for e in walked.edges
    ]
    return {
        "run_id": text_of(run_id),
        "exists": True,
        "depth": depth,
        "nodes": nodes,
        "edges": edges,
        "errors": errors,
    }


def _e(errors: dict[str, str]) -> dict[str, object]:
    return {"errors": errors}


def compare_metadata(metadata: Mapping[str, Mapping[str, object]]) -> list[dict[str, object]]:
    """One row per key across runs: each run's value (``None`` where absent) and ``same``."""
    keys = sorted({k for md in metadata.values() for k in md})
    rows: list[dict[str, object]] = []
    for key in keys:
        values = [to_jsonable(md.get(key)) for md in metadata.values()]
        present = [key in md for md in metadata.values()]
        same = all(present) and all(_equal(v, values[0]) for v in values)
        rows.append({"key": text_of(key), "values": values, "present": present, "same": same})
    return rows


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)
