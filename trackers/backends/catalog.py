"""The store catalog: every run's status, start and sources in a few objects at the store's root.

Objects (files at the root, never directories: TorchX's ``run_ids()`` decodes every directory
name there as a run id)::

    <root>/.catalog                  the merged catalog (rewritten by compaction)
    <root>/.catalog-<record name>    a segment: what one write added (append-only)

Each holds ``{"version": 1, "runs": {run_id: entry}}`` where an entry has any of ``status``
(``[status, record name]``: the newest record name wins), ``start`` (seconds; the earliest
wins) and ``sources`` (``[[source id, artifact name or null], ...]``: a union). Merging is
idempotent and order-free, so a segment merged twice, or by two compactors, changes nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from trackers.ids import record_sort_key
from trackers.types import RUN_STATUSES, LinkedRun, RunStatus

logger: logging.Logger = logging.getLogger(__name__)

CATALOG = ".catalog"
SEGMENT_PREFIX = ".catalog-"
CATALOG_VERSION = 1
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

    def merge(self, other: CatalogEntry) -> None:
        if other.status is not None and (
            self.status is None
            or record_sort_key(other.status[1]) > record_sort_key(self.status[1])
        ):
            self.status = other.status
        if other.start is not None and (self.start is None or other.start < self.start):
            self.start = other.start
        self.sources.update(other.sources)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.status is not None:
            out["status"] = list(self.status)
        if self.start is not None:
            out["start"] = self.start
        if self.sources:
            out["sources"] = [[s.run_id, s.artifact_name] for s in self.sources]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CatalogEntry:
        entry = cls()
        status = data.get("status")
        if (
            isinstance(status, list)
            and len(status) == 2
            and status[0] in RUN_STATUSES
            and isinstance(status[1], str)
        ):
            entry.status = (status[0], status[1])
        start = data.get("start")
        if isinstance(start, int | float) and not isinstance(start, bool):
            entry.start = float(start)
        for item in data.get("sources") or ():
            if isinstance(item, list) and len(item) == 2 and isinstance(item[0], str):
                name = item[1] if isinstance(item[1], str) else None
                entry.sources[LinkedRun(item[0], name)] = None
        return entry


@dataclass
class Catalog:
    """Runs by id; :meth:`merge_json` folds in one object's content."""

    runs: dict[str, CatalogEntry] = field(default_factory=dict)

    def add(self, run_id: str, entry: CatalogEntry) -> None:
        self.runs.setdefault(run_id, CatalogEntry()).merge(entry)

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
