"""Per-run snapshots: a run's records of one category gathered into one object.

A snapshot is a cache of immutable records, never the truth: the listing of a category is. A
reader lists the category, takes the bodies of listed records from the snapshot and fetches only
the records written after it (or that it misses for any other reason), then merges them all in
record-name order, exactly as without a snapshot. So last-write-wins is unchanged, a record
written while a snapshot was made is read anyway, and a stale, lost or broken snapshot only costs
requests. The same holds for TorchX's mutable link files (``sources/``, ``descendants/``): the
snapshot keeps each with the version token the listing showed (S3 ETag, local mtime and size),
and a file whose token changed is fetched again.

Format (``<run>/.snapshot/<group>``): two lines of JSON, a header and the body::

    {"version": 3, "views": {"sources": {"names": [...], "files": {name: token},
                                          "runs": [...], "artifacts": [name or null, ...]}}}
    {"origins": [origin, ...], "records": {name: [origin index or -1, record]},
     "files": {"sources": {name: [token, [lines]]}, ...}}

Records are kept in name order (a reader whose listing holds exactly the snapshot's names takes
that order without sorting) and without their ``origin``, which is stored once in ``origins``:
the writers of a run are few, so this halves the bytes a reader parses.

The header's ``views`` (links snapshots only, one per TorchX directory) hold the answer of a
link read (:meth:`RecordStoreTracker.sources` or ``descendants``) with the listing it was
derived from: the ``links/`` names and the directory's file tokens. A reader whose fresh
listing equals them takes the answer as it is and never parses the body, which is most of
the bytes (a new ``torchx tracker list`` process reading a run with 1000 links). The body is
parsed on first use. Version 2 snapshots (one JSON document, the body with ``"version": 2``,
no views) are still read; a links read of one rewrites it with views. Older versions of this
package cannot read version 3 and read the records one by one instead (snapshots are only a
cache); version 1 (origins inline) is ignored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from trackers.backends.link_memo import Pairs
from trackers.backends.version_tokens import Version, version_text

logger: logging.Logger = logging.getLogger(__name__)

SNAPSHOT_DIR = ".snapshot"
SNAPSHOT_VERSION = 3
#: The one-document format before views; read, and rewritten by a links read.
SNAPSHOT_VERSION_2 = 2
#: A read that had to fetch this many records the snapshot did not hold writes a new snapshot.
SNAPSHOT_MIN_NEW = 16
#: No snapshot larger than this is written (it is read whole).
SNAPSHOT_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class LinkView:
    """A stored answer of a link read: the pairs, and the listing they were derived from."""

    names: frozenset[str]
    files: dict[str, str]
    pairs: Pairs

    def answers(self, names: Iterable[str], versions: Mapping[str, Version]) -> bool:
        """Whether a fresh listing (``links/`` names, the TorchX directory's versions) is the
        one this view was derived from: then its pairs are the answer (records are immutable;
        TorchX's files are vouched for by their tokens, and one without a token never is)."""
        if len(versions) != len(self.files):
            return False
        tokens = {n: version_text(v) for n, v in versions.items()}
        if tokens != self.files:  # a None token never equals the stored text
            return False
        listed = set(names)
        if listed != self.names:
            listed = {n for n in listed if n[:1] != "."}
        return listed == self.names

    def to_json(self) -> dict[str, Any]:
        return {
            "names": sorted(self.names),
            "files": self.files,
            "runs": [run for run, _ in self.pairs],
            "artifacts": [name for _, name in self.pairs],
        }

    @classmethod
    def from_json(cls, body: object) -> LinkView | None:
        """The view stored as ``body``; ``None`` where it is not one (type checks run over
        whole columns: a run's view holds thousands of names)."""
        if not isinstance(body, dict):
            return None
        names, files = body.get("names"), body.get("files")
        runs, artifacts = body.get("runs"), body.get("artifacts")
        if not (
            isinstance(names, list)
            and isinstance(files, dict)
            and isinstance(runs, list)
            and isinstance(artifacts, list)
            and len(runs) == len(artifacts)
            and set(map(type, names)) <= _STR
            and set(map(type, files.values())) <= _STR
            and set(map(type, runs)) <= _STR
            and set(map(type, artifacts)) <= _STR_OR_NONE
        ):
            return None
        return cls(frozenset(names), files, tuple(zip(runs, artifacts, strict=True)))


_STR: frozenset[type] = frozenset({str})
_STR_OR_NONE: frozenset[type] = frozenset({str, type(None)})


class Snapshot:
    """The parsed snapshot of one group of a run (empty when there is none or it is broken).

    ``records`` and ``files`` are parsed from the body on first use: a read answered by one of
    the ``views`` never parses them."""

    def __init__(
        self,
        *,
        version: str | None = None,
        exists: bool = False,
        views: dict[str, LinkView] | None = None,
        body: bytes | None = None,
        where: str = "",
    ) -> None:
        #: The store's version token of the snapshot object (S3 ETag), for a conditional rewrite.
        self.version = version
        self.exists = exists
        self.views: dict[str, LinkView] = views or {}
        self._body = body
        self._where = where
        self._records: dict[str, dict[str, Any]] = {}
        self._files: dict[str, dict[str, tuple[str, list[str]]]] = {}

    @property
    def records(self) -> dict[str, dict[str, Any]]:
        self._parse_body()
        return self._records

    @records.setter
    def records(self, records: dict[str, dict[str, Any]]) -> None:
        self._parse_body()
        self._records = records

    @property
    def files(self) -> dict[str, dict[str, tuple[str, list[str]]]]:
        self._parse_body()
        return self._files

    def _parse_body(self) -> None:
        body, self._body = self._body, None
        if body is None:
            return
        try:
            parsed = json.loads(body)
            if not isinstance(parsed, dict):
                raise ValueError("the body is not a mapping")
            self._records, self._files = _parse_body(parsed)
        except (ValueError, RecursionError) as e:
            logger.info(
                "ignoring unreadable snapshot %s (%s): records are read one by one", self._where, e
            )

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
        header = {
            "version": SNAPSHOT_VERSION,
            "views": {d: view.to_json() for d, view in self.views.items()},
        }
        body = {
            "origins": origin_list,
            "records": records,
            "files": {
                d: {n: [tok, lines] for n, (tok, lines) in entries.items()}
                for d, entries in self.files.items()
            },
        }
        data = b"\n".join(
            json.dumps(part, separators=(",", ":")).encode("ascii") for part in (header, body)
        )
        return data if len(data) <= SNAPSHOT_MAX_BYTES else None


def parse_snapshot(data: bytes | None, version: str | None, where: str) -> Snapshot:
    """A snapshot object's content; an empty one (logged) when it cannot be read. Only the
    header is parsed here (JSON escapes line breaks, so the first one ends it)."""
    if data is None:
        return Snapshot()
    head, newline, body = data.partition(b"\n")
    try:
        header = json.loads(head)
        if not isinstance(header, dict):
            raise ValueError("not a mapping")
        if header.get("version") == SNAPSHOT_VERSION_2 and not newline:
            snap = Snapshot(version=version, exists=True, where=where)
            snap.records, files = _parse_body(header)
            snap.files.update(files)
            return snap
        if header.get("version") != SNAPSHOT_VERSION or not newline:
            raise ValueError(f"not a version {SNAPSHOT_VERSION} snapshot")
        views = header.get("views") or {}
        if not isinstance(views, dict):
            raise ValueError("views is not a mapping")
    except (ValueError, RecursionError) as e:
        logger.info("ignoring unreadable snapshot %s (%s): records are read one by one", where, e)
        return Snapshot(version=version, exists=True)
    kept = {str(d): LinkView.from_json(v) for d, v in views.items()}
    return Snapshot(
        version=version,
        exists=True,
        views={d: v for d, v in kept.items() if v is not None},
        body=body,
        where=where,
    )


def _parse_body(
    body: dict[str, Any],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, tuple[str, list[str]]]]]:
    """The records and TorchX link files of a snapshot's body."""
    records = body.get("records") or {}
    files = body.get("files") or {}
    origins = body.get("origins") or []
    if not isinstance(records, dict) or not isinstance(files, dict):
        raise ValueError("records or files is not a mapping")
    if not isinstance(origins, list):
        raise ValueError("origins is not a list")
    found: dict[str, dict[str, Any]] = {}
    for name, entry in records.items():
        if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], dict):
            index, record = entry
            if isinstance(index, int) and 0 <= index < len(origins):
                record["origin"] = origins[index]
            found[name] = record
    found_files: dict[str, dict[str, tuple[str, list[str]]]] = {}
    for directory, entries in files.items():
        if isinstance(entries, Mapping):
            found_files[str(directory)] = {
                name: (entry[0], [str(x) for x in entry[1]])
                for name, entry in entries.items()
                if isinstance(entry, list)
                and len(entry) == 2
                and isinstance(entry[0], str)
                and isinstance(entry[1], list)
            }
    return found, found_files
