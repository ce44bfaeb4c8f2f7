"""Per-run snapshots: a run's records of one category gathered into one object.

A snapshot is a cache of immutable records, never the truth: the listing of a category is. A
reader lists the category, takes the bodies of listed records from the snapshot and fetches only
the records written after it (or that it misses for any other reason), then merges them all in
record-name order, exactly as without a snapshot. So last-write-wins is unchanged, a record
written while a snapshot was made is read anyway, and a stale, lost or broken snapshot only costs
requests. The same holds for TorchX's mutable link files (``sources/``, ``descendants/``): the
snapshot keeps each with the version token the listing showed (S3 ETag, local mtime and size),
and a file whose token changed is fetched again.

Format (``<run>/.snapshot/<group>``, JSON)::

    {"version": 2, "origins": [origin, ...], "records": {name: [origin index or -1, record]},
     "files": {"sources": {name: [token, [lines]]}, ...}}

Records are kept in name order (a reader whose listing holds exactly the snapshot's names takes
that order without sorting) and without their ``origin``, which is stored once in ``origins``:
the writers of a run are few, so this halves the bytes a reader parses. Snapshots of another
version (version 1 kept the origin inline) are ignored and rewritten: they are only a cache.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

logger: logging.Logger = logging.getLogger(__name__)

SNAPSHOT_DIR = ".snapshot"
SNAPSHOT_VERSION = 2
#: A read that had to fetch this many records the snapshot did not hold writes a new snapshot.
SNAPSHOT_MIN_NEW = 16
#: No snapshot larger than this is written (it is read whole).
SNAPSHOT_MAX_BYTES = 64 * 1024 * 1024


@dataclass
class Snapshot:
    """The parsed snapshot of one group of a run (empty when there is none or it is broken)."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, dict[str, tuple[str, list[str]]]] = field(default_factory=dict)
    #: The store's version token of the snapshot object (S3 ETag), for a conditional rewrite.
    version: str | None = None
    exists: bool = False

    def encode(self) -> bytes | None:
        """The object's bytes; ``None`` when it would exceed :data:`SNAPSHOT_MAX_BYTES`."""
        origins: dict[str, int] = {}
        origin_list: list[Any] = []
        records: dict[str, list[Any]] = {}
        for name, record in self.records.items():
            if "origin" in record:
                body_only = {k: v for k, v in record.items() if k != "origin"}
                tag = json.dumps(record["origin"], sort_keys=True)
                index = origins.get(tag)
                if index is None:
                    index = origins[tag] = len(origin_list)
                    origin_list.append(record["origin"])
                records[name] = [index, body_only]
            else:
                records[name] = [-1, record]
        body = {
            "version": SNAPSHOT_VERSION,
            "origins": origin_list,
            "records": records,
            "files": {
                d: {n: [tok, lines] for n, (tok, lines) in entries.items()}
                for d, entries in self.files.items()
            },
        }
        data = json.dumps(body, separators=(",", ":")).encode("ascii")
        return data if len(data) <= SNAPSHOT_MAX_BYTES else None


def parse_snapshot(data: bytes | None, version: str | None, where: str) -> Snapshot:
    """A snapshot object's content; an empty one (logged) when it cannot be read."""
    if data is None:
        return Snapshot()
    try:
        body = json.loads(data)
        if not isinstance(body, dict) or body.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"not a version {SNAPSHOT_VERSION} snapshot")
        records = body.get("records") or {}
        files = body.get("files") or {}
        origins = body.get("origins") or []
        if not isinstance(records, dict) or not isinstance(files, dict):
            raise ValueError("records or files is not a mapping")
        if not isinstance(origins, list):
            raise ValueError("origins is not a list")
    except (ValueError, RecursionError) as e:
        logger.info("ignoring unreadable snapshot %s (%s): records are read one by one", where, e)
        return Snapshot(version=version, exists=True)
    snap = Snapshot(version=version, exists=True)
    for name, entry in records.items():
        if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], dict):
            index, record = entry
            if isinstance(index, int) and 0 <= index < len(origins):
                record["origin"] = origins[index]
            snap.records[name] = record
    for directory, entries in files.items():
        if isinstance(entries, Mapping):
            snap.files[str(directory)] = {
                name: (entry[0], [str(x) for x in entry[1]])
                for name, entry in entries.items()
                if isinstance(entry, list)
                and len(entry) == 2
                and isinstance(entry[0], str)
                and isinstance(entry[1], list)
            }
    return snap
