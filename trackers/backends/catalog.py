"""The store catalog: every run's status, start and sources in a few objects at the store's root.

Objects (files at the root, never directories: TorchX's ``run_ids()`` decodes every directory
name there as a run id)::

    <root>/.catalog                  the merged catalog (rewritten by compaction)
    <root>/.catalog-<record name>    a segment: what one write added (append-only)

Each holds ``{"version": 1, "runs": {run_id: entry}}`` where an entry has any of ``status``
(``[status, record name]``: the newest record name wins), ``start`` (seconds; the earliest
wins), ``sources`` (``[[source id, artifact name or null], ...]``: a union), ``component``
(``[component, record name]``, the launch record's :data:`COMPONENT_KEY`; the newest wins) and
``user`` (``[user or null, record name]``, :data:`USER_KEY`; the newest wins; written with every
launch record, null where it names no user, so its presence says the entry was written by a
release that keeps it). Merging is idempotent and order-free, so a segment merged twice, or by
two compactors, changes nothing. A reader that does not know a key ignores it (an older release
merging segments drops ``component`` and ``user``: its runs then show them from their own
metadata, read per run).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from trackers.ids import record_sort_key
from trackers.types import RUN_STATUSES, LinkedRun, RunStatus

logger: logging.Logger = logging.getLogger(__name__)

CATALOG = ".catalog"
SEGMENT_PREFIX = ".catalog-"
CATALOG_VERSION = 1
#: The launch record's keys (``launcher_plugin.launch_record``) the catalog keeps per run, so
#: ``torchx tracker list jobs`` shows every run's component and start from the catalog alone:
#: the component, and the launch time as the run's start (the earliest start wins).
COMPONENT_KEY = "launch.component"
LAUNCH_TIME_KEY = "launch.time"
#: ... and who launched it, so the web view's rows of ended runs need no read of their own.
USER_KEY = "launch.user"
#: A reader that finds more segments than this merges them into ``.catalog``. Every pending
#: segment is one more GET for each reader until then, so this bounds a read of the catalog to
#: a listing and at most 7 GETs (``torchx tracker list jobs --status`` over 1000 runs on S3 in
#: at most 10 requests); merging costs the merging reader about two requests per segment.
MERGE_SEGMENTS_AT = 6
#: How many runs the catalog lacks are read side by side when their entries are derived.
DERIVE_WORKERS = 8


@dataclass
class CatalogEntry:
    """What the catalog knows of one run."""

    status: tuple[RunStatus, str] | None = None
    start: float | None = None
    sources: dict[LinkedRun, None] = field(default_factory=dict)
    component: tuple[str, str] | None = None
    #: ``(user or None, record name)``; ``None``: not known (no launch record, or an entry
    #: written before the catalog kept users).
    user: tuple[str | None, str] | None = None

    def merge(self, other: CatalogEntry) -> None:
        self.status = _newest(self.status, other.status)
        if other.start is not None and (self.start is None or other.start < self.start):
            self.start = other.start
        self.sources.update(other.sources)
        self.component = _newest(self.component, other.component)
        self.user = _newest(self.user, other.user)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.status is not None:
            out["status"] = list(self.status)
        if self.start is not None:
            out["start"] = self.start
        if self.sources:
            out["sources"] = [[s.run_id, s.artifact_name] for s in self.sources]
        if self.component is not None:
            out["component"] = list(self.component)
        if self.user is not None:
            out["user"] = list(self.user)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CatalogEntry:
        entry = cls()
        entry.status = _stored_pair(data.get("status"), lambda v: v in RUN_STATUSES)
        start = data.get("start")
        if isinstance(start, int | float) and not isinstance(start, bool):
            entry.start = float(start)
        for item in data.get("sources") or ():
            if isinstance(item, list) and len(item) == 2 and isinstance(item[0], str):
                name = item[1] if isinstance(item[1], str) else None
                entry.sources[LinkedRun(item[0], name)] = None
        entry.component = _stored_pair(data.get("component"), lambda v: isinstance(v, str))
        entry.user = _stored_pair(data.get("user"), lambda v: v is None or isinstance(v, str))
        return entry


def _stored_pair(stored: object, valid: Callable[[object], bool]) -> tuple[Any, str] | None:
    """A stored ``[value, record name]`` pair whose value is ``valid``; ``None`` where it is
    missing or malformed (ignored, as an unknown key is)."""
    if isinstance(stored, list) and len(stored) == 2 and isinstance(stored[1], str):
        if valid(stored[0]):
            return (stored[0], stored[1])
    return None


def parse_iso_time(value: object) -> float | None:
    """Seconds since the epoch from an ISO 8601 text (``launch.time``; UTC where it names no
    zone), else ``None``."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()


def launch_entry(metadata: Mapping[str, object], record: str) -> CatalogEntry | None:
    """The catalog entry a metadata record named ``record`` adds: the component, start and
    user of a launch record (it holds :data:`COMPONENT_KEY`; its user is ``None`` where it
    names none), the user of any other record that sets :data:`USER_KEY` (a later write wins,
    as in the run's merged metadata); else ``None``."""
    component = metadata.get(COMPONENT_KEY)
    if USER_KEY not in metadata and not isinstance(component, str):
        return None
    value = metadata.get(USER_KEY)
    user = (value if isinstance(value, str) and value else None, record)
    if not isinstance(component, str):
        return CatalogEntry(user=user)
    return CatalogEntry(
        start=parse_iso_time(metadata.get(LAUNCH_TIME_KEY)),
        component=(component, record),
        user=user,
    )


_Named = TypeVar("_Named", tuple[RunStatus, str], tuple[str, str], tuple[str | None, str])


def _newest(mine: _Named | None, other: _Named | None) -> _Named | None:
    """Of two ``(value, record name)`` pairs the one with the newer record name (last write
    wins, whichever order segments are merged in)."""
    if other is None:
        return mine
    if mine is None or record_sort_key(other[1]) > record_sort_key(mine[1]):
        return other
    return mine


@dataclass
class Catalog:
    """Runs by id; :meth:`merge_json` folds in one object's content."""

    runs: dict[str, CatalogEntry] = field(default_factory=dict)

    def add(self, run_id: str, entry: CatalogEntry) -> None:
        """Merge ``entry`` in (taken as it is where the run has none yet: the caller gives it
        up)."""
        mine = self.runs.get(run_id)
        if mine is None:
            self.runs[run_id] = entry
        else:
            mine.merge(entry)

    def merge_json(self, data: bytes | None, where: str) -> None:
        if data is None:
            return
        try:
            body = json.loads(data)
            runs = body["runs"] if body.get("version") == CATALOG_VERSION else None
            if not isinstance(runs, dict):
                raise ValueError(f"not a version {CATALOG_VERSION} catalog")
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
            logger.warning("ignoring unreadable catalog object %s (%s)", where, e)
            return
        for run_id, entry in runs.items():
            if isinstance(run_id, str) and isinstance(entry, dict):
                self.add(run_id, CatalogEntry.from_json(entry))

    def encode(self) -> bytes:
        body = {
            "version": CATALOG_VERSION,
            "runs": {run: entry.to_json() for run, entry in self.runs.items()},
        }
        return json.dumps(body, separators=(",", ":")).encode("ascii")


def segment(entries: Mapping[str, CatalogEntry]) -> bytes:
    """A segment object holding ``entries``."""
    return Catalog(dict(entries)).encode()


class CatalogGraph:
    """Sources and children from a catalog, with the interface :func:`walk_lineage` walks."""

    def __init__(self, runs: Mapping[str, CatalogEntry]) -> None:
        self._sources = {run: list(entry.sources) for run, entry in runs.items()}
        self._children: dict[str, list[LinkedRun]] = {}
        for run, links in self._sources.items():
            for link in links:
                self._children.setdefault(link.run_id, []).append(
                    LinkedRun(run, link.artifact_name)
                )

    def source_links(self, run_id: str) -> Iterable[LinkedRun]:
        return self._sources.get(run_id, ())

    def child_links(self, run_id: str) -> Iterable[LinkedRun]:
        return self._children.get(run_id, ())
