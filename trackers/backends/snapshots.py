"""Per-run snapshots: a run's records of one category gathered into one object.

A snapshot is a cache of immutable records, never the truth: the listing of a category is. A
reader lists the category, takes the bodies of listed records from the snapshot and fetches only
the records written after it (or that it misses for any other reason), then merges them all in
record-name order, exactly as without a snapshot. So last-write-wins is unchanged, a record
written while a snapshot was made is read anyway, and a stale, lost or broken snapshot only costs
requests. The same holds for TorchX's mutable link files (``sources/``, ``descendants/``): the
snapshot keeps each with the version token the listing showed (S3 ETag, local mtime and size),
and a file whose token changed is fetched again.

Format (``<run>/.snapshot/<group>``, version 4): three lines of JSON, a header, the views'
listings and the body::

    {"version": 4, "views": {"sources": {"runs": [...], "artifacts": [name or null, ...],
                                          "stamp": [links token, dir token, ctime, size, count]}}}
    {"sources": {"names": [...], "files": {name: token}}}
    {"origins": [origin, ...], "records": {name: [origin index or -1, record]},
     "files": {"sources": {name: [token, [lines]]}, ...}}

Records are kept in name order (a reader whose listing holds exactly the snapshot's names takes
that order without sorting) and without their ``origin``, which is stored once in ``origins``:
the writers of a run are few, so this halves the bytes a reader parses.

The ``views`` (links snapshots only, one per TorchX directory) hold the answer of a link read
(:meth:`RecordStoreTracker.sources` or ``descendants``) with what it was derived from, two ways:

- on local disk, a ``stamp`` (:data:`~trackers.backends.version_tokens.ListingStamp`): two
  directory stats and one ``stat`` per TorchX file tell a reader whose stamp is equal that
  nothing changed, so it reads only the header (a new ``torchx tracker list`` process reading
  a run with 1000 links parses ~40 KB, not ~500 KB). ``null`` where none could vouch (files
  changed within the racy window when the snapshot was written; any store but a local disk).
- everywhere, the second line: the ``links/`` names and the directory's file tokens. A reader
  whose fresh listing equals them takes the answer without parsing the body.

Lines are parsed on first use. Version 3 snapshots (the views, listings included, in the
header; no stamps) and version 2 (one document, the body with ``"version": 2``, no views) are
still read; a links read rewrites them. Older versions of this package cannot read version 4
and read the records one by one instead (snapshots are only a cache); version 1 (origins
inline) is ignored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from trackers.backends.link_memo import Pairs
from trackers.backends.version_tokens import ListingStamp, Version, parse_stamp, version_text

logger: logging.Logger = logging.getLogger(__name__)

SNAPSHOT_DIR = ".snapshot"
SNAPSHOT_VERSION = 4
#: Views with their listings in the header, no stamps; read, and rewritten by a links read.
SNAPSHOT_VERSION_3 = 3
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
    #: Where the store could vouch for the listing by a stamp (local disk), that stamp.
    stamp: ListingStamp | None = None

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

    def answer_json(self) -> dict[str, Any]:
        """The header's part: the answer and its stamp."""
        return {
            "runs": [run for run, _ in self.pairs],
            "artifacts": [name for _, name in self.pairs],
            "stamp": None if self.stamp is None else list(self.stamp),
        }

    def listing_json(self) -> dict[str, Any]:
        """The second line's part: the listing the answer was derived from."""
        return {"names": sorted(self.names), "files": self.files}

    @classmethod
    def from_json(cls, body: object) -> LinkView | None:
        """The view stored as ``body`` (both parts in one mapping); ``None`` where it is not
        one (type checks run over whole columns: a run's view holds thousands of names)."""
        if not isinstance(body, dict):
            return None
        names, files = body.get("names"), body.get("files")
        pairs = _stored_pairs(body)
        if not (
            pairs is not None
            and isinstance(names, list)
            and isinstance(files, dict)
            and set(map(type, names)) <= _STR
            and set(map(type, files.values())) <= _STR
        ):
            return None
        return cls(frozenset(names), files, pairs, parse_stamp(body.get("stamp")))


def _stored_pairs(answer: Mapping[str, Any]) -> Pairs | None:
    """The pairs of a stored answer (its ``runs`` and ``artifacts`` columns); ``None`` where
    they are not two columns of run ids and artifact names (or nulls) of one length."""
    runs, artifacts = answer.get("runs"), answer.get("artifacts")
    if not (
        isinstance(runs, list)
        and isinstance(artifacts, list)
        and len(runs) == len(artifacts)
        and set(map(type, runs)) <= _STR
        and set(map(type, artifacts)) <= _STR_OR_NONE
    ):
        return None
    return tuple(zip(runs, artifacts, strict=True))


_STR: frozenset[type] = frozenset({str})
_STR_OR_NONE: frozenset[type] = frozenset({str, type(None)})


class Snapshot:
    """The parsed snapshot of one group of a run (empty when there is none or it is broken).

    Each part is parsed on first use: a read answered by a view's stamp parses the header
    only, one answered by a view's listing parses the second line too, and only a read that
    merges records parses ``records`` and ``files`` from the body."""

    def __init__(
        self,
        *,
        version: str | None = None,
        exists: bool = False,
        answers: dict[str, dict[str, Any]] | None = None,
        listings: bytes | memoryview | None = None,
        body: bytes | memoryview | None = None,
        where: str = "",
    ) -> None:
        #: The store's version token of the snapshot object (S3 ETag), for a conditional rewrite.
        self.version = version
        self.exists = exists
        #: The header's views as stored (answer and stamp per TorchX directory), unchecked.
        self._answers = answers or {}
        self._listings = listings
        self._views: dict[str, LinkView] | None = None if self._answers else {}
        self._body = body
        self._where = where
        self._records: dict[str, dict[str, Any]] = {}
        self._files: dict[str, dict[str, tuple[str, list[str]]]] = {}

    def stamped_pairs(self, torchx_dir: str, stamp: ListingStamp) -> Pairs | None:
        """The stored answer of ``torchx_dir`` if its stamp is ``stamp`` (from the header
        alone); ``None`` otherwise."""
        answer = self._answers.get(torchx_dir)
        if answer is None or parse_stamp(answer.get("stamp")) != stamp:
            return None
        return _stored_pairs(answer)

    @property
    def views(self) -> dict[str, LinkView]:
        if self._views is None:
            self._views = self._parse_views()
        return self._views

    @views.setter
    def views(self, views: dict[str, LinkView]) -> None:
        self._views = views

    def _parse_views(self) -> dict[str, LinkView]:
        listings, self._listings = self._listings, None
        found: Any = {}
        if listings is not None:
            try:
                found = json.loads(bytes(listings))
            except (ValueError, RecursionError) as e:
                logger.info("ignoring the unreadable views of snapshot %s (%s)", self._where, e)
        if not isinstance(found, dict):
            found = {}
        views = {}
        for torchx_dir, answer in self._answers.items():
            listing = found.get(torchx_dir)  # none in version 3: the answer holds it
            view = LinkView.from_json({**answer, **(listing if isinstance(listing, dict) else {})})
            if view is not None:
                views[torchx_dir] = view
        return views

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
            parsed = json.loads(bytes(body))
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
            "views": {d: view.answer_json() for d, view in self.views.items()},
        }
        listings = {d: view.listing_json() for d, view in self.views.items()}
        body = {
            "origins": origin_list,
            "records": records,
            "files": {
                d: {n: [tok, lines] for n, (tok, lines) in entries.items()}
                for d, entries in self.files.items()
            },
        }
        data = b"\n".join(
            json.dumps(part, separators=(",", ":")).encode("ascii")
            for part in (header, listings, body)
        )
        return data if len(data) <= SNAPSHOT_MAX_BYTES else None


def parse_snapshot(data: bytes | None, version: str | None, where: str) -> Snapshot:
    """A snapshot object's content; an empty one (logged) when it cannot be read. Only the
    header is parsed here (JSON escapes line breaks, so each line is one part)."""
    if data is None:
        return Snapshot()
    # Only the header is copied out of ``data`` here: the other lines stay views of it until
    # they are parsed (copying ~500 KB of a 1000-link run's snapshot cost more than the read).
    end = data.find(b"\n")
    newline = end >= 0
    head = data[:end] if newline else data
    try:
        header = json.loads(head)
        if not isinstance(header, dict):
            raise ValueError("not a mapping")
        found = header.get("version")
        if found == SNAPSHOT_VERSION_2 and not newline:
            snap = Snapshot(version=version, exists=True, where=where)
            snap.records, files = _parse_body(header)
            snap.files.update(files)
            return snap
        if found not in (SNAPSHOT_VERSION, SNAPSHOT_VERSION_3) or not newline:
            raise ValueError(f"not a version {SNAPSHOT_VERSION} snapshot")
        views = header.get("views") or {}
        if not isinstance(views, dict):
            raise ValueError("views is not a mapping")
    except (ValueError, RecursionError) as e:
        logger.info("ignoring unreadable snapshot %s (%s): records are read one by one", where, e)
        return Snapshot(version=version, exists=True)
    answers = {str(d): v for d, v in views.items() if isinstance(v, dict)}
    rest = memoryview(data)[end + 1 :]
    listings: memoryview | None = None
    if found == SNAPSHOT_VERSION_3:  # each view's listing is in the header, the body follows
        body = rest
    else:
        second = data.find(b"\n", end + 1)
        second = len(data) if second < 0 else second
        listings, body = rest[: second - end - 1], memoryview(data)[second + 1 :]
    return Snapshot(
        version=version,
        exists=True,
        answers=answers,
        listings=listings,
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
