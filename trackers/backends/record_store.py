"""Runs as immutable JSON records under a root: the logic shared by the fsspec and S3 backends.

A subclass supplies six storage primitives (put a new object whole, read several, list names,
list sub-directories, tell whether a run exists, make a directory where the store has them);
everything else - the layout, merging, links, lineage, metrics - lives here once.

Layout (TorchX 0.7.0's ``FsspecTracker`` layout, plus ``links/``, ``metrics/``, ``summary/``)::

    <root>/<base32(run_id)>/metadata/<record>        {"metadata": {...}}
    <root>/<base32(run_id)>/artifacts/<record>       {"name": ..., "path": ..., "metadata": ...}
    <root>/<base32(run_id)>/sources/<base32(src)>    artifact names, one a line (TorchX's format)
    <root>/<base32(run_id)>/descendants/<b32(c)>     artifact names, one a line (TorchX's format)
    <root>/<base32(run_id)>/links/<record>           {"kind": "edge", "source": ..., "descendant":
                                                      ..., "artifact_name": ..., "version",
                                                      "runs"} (older: "kind": "source" or
                                                      "descendant", "run_id": the other run)
    <root>/<base32(run_id)>/metrics/<record>         {"points": {"names": [distinct names],
                                                      "name": [index...] (or one index),
                                                      "value": [...], "step": [...],
                                                      "time_us": [...], "rank": [...]?}}
    <root>/<base32(run_id)>/summary/<record>         {"summary": {...}}
    <root>/<base32(run_id)>/status/<record>          {"status": "RUNNING"|"SUCCEEDED"|...}

Every record also carries ``origin`` (host, pid, rank, restart count; see ``trackers.origin``).

Why it is shaped this way:

* Records are named ``<time_ns:020d>-<128 random bits, hex>`` (unique across replicas and
  hosts) and read back sorted by that name, so the last write wins (TorchX merges in
  directory-listing order). No record is ever rewritten: object stores have no append and no
  safe read-modify-write.
* ``add_source`` writes one immutable link record (``"kind": "edge"``) into both runs'
  ``links/`` (the parent's only when it is a run of this store) and, as the same bytes, as the
  catalog segment of the edge (the record carries the segment's ``version`` and ``runs``), so
  children and lineage are found without scanning the store. On a local disk that is one file
  and two hard links: a synchronous ``add_source`` creates as many files as TorchX's does.
  TorchX's ``sources/`` file is kept too, so TorchX's ``AppRun.sources()`` and
  ``run_ids(parent_run_id=...)`` see the link. A run's first link to a source creates that
  file in one step where the store can (``O_EXCL`` in place locally, ``If-None-Match`` on S3);
  later ones read, merge and write it back. Readers skip an empty link file: TorchX always
  writes at least a line break, so empty means a write in progress. Link records of earlier
  versions (one per side, ``"kind": "source"`` / ``"descendant"``) are read as before.
* Every run directory we create gets an empty ``descendants/``: TorchX's ``add_source`` writes
  the reverse link into a parent only when that directory already exists (nothing in TorchX
  creates it), so this makes links added by TorchX's own ``AppRun`` findable from the parent.
* The run id only ever appears base32-encoded in a key, and record names are generated, so no
  input can make a write land outside the store's root.
* An id too long for TorchX's form (over 155 bytes: its base32 would exceed a 255-byte name) is
  kept under a shortened name (:func:`trackers.ids.path_id`) and its whole text in
  ``<run>/.run_id`` (``{"run_id": ...}``), which :meth:`run_ids` reads back. TorchX's
  ``sources/`` file is written only for source ids short enough for TorchX to have written it.
* Metrics are stored a batch per record, column-wise (one record per flush, not per point);
  times are kept to the microsecond.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import posixpath
import random
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple, TypeVar, cast, overload

from torchx.tracker.api import TrackerArtifact, TrackerBase, TrackerSource

from trackers import jsonsafe
from trackers.api import LineageTracker, RunSummary, dedupe_links, dedupe_pairs
from trackers.backends.catalog import (
    CATALOG,
    CATALOG_VERSION,
    MERGE_SEGMENTS_AT,
    SEGMENT_PREFIX,
    Catalog,
    CatalogEntry,
    CatalogGraph,
    launch_entry,
    segment,
)
from trackers.backends.link_memo import LinkListing, LinkMemo, Pairs
from trackers.backends.run_index import RUN_INDEX, encode_run_index, parse_run_index
from trackers.backends.snapshots import (
    SNAPSHOT_DIR,
    SNAPSHOT_MIN_NEW,
    LinkView,
    Snapshot,
    parse_snapshot,
)
from trackers.backends.version_tokens import ListingStamp, Version, version_text
from trackers.errors import TrackerError
from trackers.helper_threads import leave_signals_to_main_thread
from trackers.ids import (
    LONG_ID_MARK,
    MAX_PATH_ID_BYTES,
    check_artifact_name,
    decode_run_ids,
    encode_run_id,
    id_bytes,
    path_id,
    record_name,
    record_sort_key,
    shortened_digest,
)
from trackers.lineage import walk_lineage
from trackers.metric_codec import as_columns, decode_columns, encode_columns
from trackers.origin import record_origin
from trackers.types import (
    RUN_STATUSES,
    Direction,
    LinkedRun,
    MetricPoint,
    RecordedWrite,
    RunLineage,
    RunStatus,
)

logger: logging.Logger = logging.getLogger(__name__)
T = TypeVar("T")

METADATA = "metadata"
ARTIFACTS = "artifacts"
SOURCES = "sources"
DESCENDANTS = "descendants"
LINKS = "links"
METRICS = "metrics"
SUMMARY = "summary"
STATUS = "status"
#: ``<run>/.run_id``: the whole id of a run kept under a shortened name.
RUN_ID_FILE = ".run_id"

#: TorchX's link directories and the kind of link each holds, as our ``links/`` records name it.
LINK_KINDS: dict[str, str] = {SOURCES: "source", DESCENDANTS: "descendant"}
#: The categories a run's snapshots hold (metrics stay out: they are read by name and grow).
SNAPSHOT_CATEGORIES = frozenset({METADATA, ARTIFACTS, LINKS, SUMMARY, STATUS})

#: ``kind`` of the link record :meth:`RecordStoreTracker.add_source` writes (one for both runs).
EDGE = "edge"
#: Per view of a run's links (its sources, its descendants): the edge record's field that must
#: name the run, and the field naming the linked run.
EDGE_FIELDS = {"source": ("descendant", "source"), "descendant": ("source", "descendant")}

#: How many times a conditional write of a shared object is retried before giving up.
CONDITIONAL_WRITE_ROUNDS = 25


class GroupRead(NamedTuple):
    """What :meth:`RecordStoreTracker._read_group` read."""

    records: list[dict[str, Any]]
    #: Per TorchX directory: (linked run id, artifact-name lines) of each link file.
    files: dict[str, list[tuple[str, list[str]]]]
    #: The listings it read: the category's names, and each TorchX directory's versions.
    names: list[str]
    link_versions: list[dict[str, Version]]
    #: Whether every listed record was read (none skipped as damaged or gone).
    complete: bool


class RecordStoreTracker(LineageTracker):
    """A :class:`LineageTracker` over a store of immutable objects under ``self.root``."""

    root: str

    # --- storage primitives (keys are "/"-joined paths under the root) ---
    @abstractmethod
    def _put(self, run_id: str, key: str, data: bytes) -> None:
        """Write ``data`` at ``key`` so that a reader sees all of it or nothing."""

    @abstractmethod
    def _get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The contents of ``keys`` in order, ``None`` for a key that does not exist."""

    @abstractmethod
    def _list_names(self, prefix: str) -> list[str]:
        """Names (last key segment) of the objects directly under ``prefix``; [] if none."""

    def _list_versions(self, prefix: str) -> dict[str, Version]:
        """Names under ``prefix`` with a token that changes when the object is rewritten.

        ``None`` where the store cannot tell (such objects are always fetched again). Only
        TorchX's link files are ever rewritten; records never are.
        """
        return dict.fromkeys(self._list_names(prefix))

    def _directory_version(self, prefix: str) -> Version:
        """A token of ``prefix`` that changes whenever an object is added under it or removed,
        so a reader that kept its names needs no new listing; ``None`` where the store cannot
        tell (S3: it has no directories). Records are never rewritten in place, so for our
        own directories a changed token is the only change there is."""
        del prefix
        return None

    def _listing_stamp(
        self, links_dir: str, files_dir: str
    ) -> tuple[ListingStamp, Callable[[], dict[str, Version]]] | None:
        """A stamp of ``links_dir`` and the TorchX directory ``files_dir`` that a later
        stamp equals only if nothing under them changed (:data:`ListingStamp`: a local disk's
        directory stats and file status changes, far cheaper to compare than a listing's
        names and tokens), and :meth:`_list_versions` of ``files_dir`` from the same stats
        (made when called: a read the stamp answers needs none); ``None`` where the store has
        no stamps (object stores)."""
        del links_dir, files_dir
        return None

    def _vouched_stamp(
        self, links_dir: str, files_dir: str, names: frozenset[str], files: Mapping[str, str]
    ) -> ListingStamp | None:
        """:meth:`_listing_stamp` where it vouches for the listing a link view was derived
        from (``names`` in ``links_dir``, ``files``: the TorchX files' tokens) and nothing in
        it changed too recently to tell; ``None`` otherwise."""
        del links_dir, files_dir, names, files
        return None

    @abstractmethod
    def _list_dirs(self, prefix: str) -> list[str]:
        """Names of the sub-directories (common prefixes) directly under ``prefix``."""

    @abstractmethod
    def _is_dir(self, prefix: str) -> bool:
        """Whether anything exists under ``prefix``."""

    def _mkdir(self, prefix: str) -> None:
        """Make an empty directory where the store has directories (default: nothing)."""

    def _put_copies(self, run_id: str, keys: Sequence[str], data: bytes) -> None:
        """:meth:`_put` of the same ``data`` at every key (a store may share one object)."""
        for key in keys:
            self._put(run_id, key, data)

    def _side_by_side(self, calls: Sequence[Callable[[], T]]) -> list[T]:
        """The results of independent reads (listings, a snapshot GET), in order.

        One after the other by default (a local disk gains nothing from threads); a store
        where each request is a round trip (S3) runs them at once, so a read that needs two
        listings and a snapshot waits for one round trip, not three.
        """
        return [call() for call in calls]

    # --- damage: what reads skipped ---
    @property
    def damaged(self) -> list[tuple[str, str]]:
        """``(path, why)`` of every record the reads of this object skipped as unreadable."""
        found: list[tuple[str, str]] = self.__dict__.setdefault("_damaged", [])
        return found

    def _skip(self, key: str, why: str) -> None:
        """Report an unreadable record (once per path) and go on without it."""
        if any(path == key for path, _ in self.damaged):
            return
        self.damaged.append((key, why))
        logger.warning("skipping unreadable record %s: %s", key, why)

    # --- layout ---
    def _run_dir(self, run_id: str) -> str:
        return f"{self._root_slash}{encode_run_id(run_id)}"

    @functools.cached_property
    def _root_slash(self) -> str:
        """The root as a key prefix (``posixpath.join`` per key is a visible share of a write)."""
        return posixpath.join(self.root, "")

    def _write_record(
        self,
        run_id: str,
        category: str,
        payload: Mapping[str, object],
        catalog: CatalogEntry | None = None,
        *,
        starts: bool = True,
        status: RunStatus | None = None,
        launch: Mapping[str, object] | None = None,
        as_segment: bool = False,
        shared_with: Sequence[str] = (),
    ) -> str:
        """Write one record; also a catalog segment with ``catalog``, and with the run's start
        the first time this object writes to a run (when the write ``starts`` it), with the
        ``status`` this record sets (named by the record, so the newest status wins), and with
        the component and launch time of ``launch``, metadata that may be a launch record
        (:func:`~trackers.backends.catalog.launch_entry`).

        With ``as_segment`` the record is its own catalog segment (it carries the segment's
        ``version`` and ``runs``; the same bytes are stored as the segment), and with
        ``shared_with`` (runs of this store) also under the same name in each of those runs'
        ``category``: a link is one record for both of its runs (see the module docstring).
        """
        self._mkdir(f"{self._run_dir(run_id)}/{DESCENDANTS}")
        if path_id(run_id) != run_id:
            self._write_run_id_file(run_id)
        name = record_name()
        if status is not None:
            catalog = catalog or CatalogEntry()
            catalog.status = (status, name)
        started: set[str] = self.__dict__.setdefault("_catalog_started", set())
        if starts and run_id not in started:
            catalog = catalog or CatalogEntry()
            catalog.start = record_sort_key(name)[0] / 1e9 or None
        launched = launch_entry(launch, name) if launch is not None else None
        if launched is not None:
            catalog = catalog or CatalogEntry()
            catalog.merge(launched)
        record: dict[str, object] = {**payload, "origin": record_origin()}
        if as_segment:
            catalog = catalog or CatalogEntry()
            record.update(version=CATALOG_VERSION, runs={run_id: catalog.to_json()})
        data, notes = jsonsafe.encode(record, where=f"{category} record of run {run_id!r}")
        jsonsafe.log_fallbacks(notes)
        keys = [f"{self._run_dir(r)}/{category}/{name}" for r in (run_id, *shared_with)]
        if as_segment:
            keys.append(self._segment_key())
        self._put_copies(run_id, keys, data)  # one key: one _put
        if catalog is not None and not as_segment:
            self._append_catalog(run_id, {run_id: catalog})
        if catalog is not None and catalog.start is not None:
            started.add(run_id)
        return name

    def _write_run_id_file(self, run_id: str) -> None:
        """``<run>/.run_id`` for an id kept under a shortened name (once per tracker object)."""
        written: set[str] = self.__dict__.setdefault("_run_id_files", set())
        if run_id in written:
            return
        key = posixpath.join(self._run_dir(run_id), RUN_ID_FILE)
        self._put(run_id, key, json.dumps({"run_id": run_id}).encode("ascii"))
        written.add(run_id)

    def _read_records(
        self, run_id: str, category: str, *, compact: bool = False
    ) -> list[dict[str, Any]]:
        return self._read_group(run_id, category, (), compact=compact)[0]

    def _read_group(
        self,
        run_id: str,
        category: str,
        torchx_dirs: Sequence[str],
        *,
        compact: bool = False,
        keyed: bool = True,
        listings: tuple[list[str], list[dict[str, Version]]] | None = None,
        snapshot: Snapshot | None = None,
    ) -> GroupRead:
        """A category's records in write order, and the link files of ``torchx_dirs``.

        Bodies come from the run's snapshot of the category where it has them (see
        :mod:`trackers.backends.snapshots`); the listings decide what exists. A read that had to
        fetch :data:`SNAPSHOT_MIN_NEW` or more (or ``compact``) writes a new snapshot. With
        ``keyed`` each record is a copy carrying its object's key as ``"_key"``; without, the
        records are the snapshot's own (read-only for the caller: a lineage read of a run with
        thousands of links makes no copies). An edge record's ``"runs"`` (its catalog entry, read
        from catalog segments only) is not kept in the snapshot: it would double its size.
        ``listings``: the listings (:meth:`_list_group`) when the caller already made them,
        ``snapshot`` the snapshot when it loaded that too. A links snapshot that holds every
        record is also rewritten where that gives a directory read here a view that answers
        (:meth:`_views_renewable`).
        """
        run_dir = self._run_dir(run_id)
        directory = f"{run_dir}/{category}"
        snapped = category in SNAPSHOT_CATEGORIES
        # The listings and the snapshot are independent reads: fetched side by side. The
        # snapshot only holds copies of records that stay where they are, so whichever of them
        # lands first, the listing alone decides what exists.
        load = partial(self._load_snapshot, run_id, category) if snapped else Snapshot
        if listings is None:
            list_names, *list_versions = self._group_listings(run_id, category, torchx_dirs)
            reads = [list_names, load, *list_versions]
            names_listed, snap, *link_listings = self._side_by_side(reads)
        else:
            snap = load() if snapshot is None else snapshot
            names_listed, link_listings = listings
        listed = [n for n in names_listed if n[:1] != "."]
        held = snap.records
        missing = [n for n in listed if n not in held]
        if not missing and len(listed) == len(held):
            names = list(held)  # the snapshot keeps name order: nothing to sort
        else:
            names = sorted(listed, key=record_sort_key)
        fetched = dict(
            zip(missing, self._get_many([f"{directory}/{n}" for n in missing]), strict=True)
        )
        new_records = 0
        records = []
        kept: dict[str, dict[str, Any]] = {}
        for name in names:
            key = f"{directory}/{name}"
            record = held.get(name)
            if record is None:
                record = self._parse_record(key, fetched.get(name))
                if record is None:
                    continue
                if "runs" in record and record.get("kind") == EDGE:
                    del record["runs"]
                new_records += 1
            kept[name] = record
            records.append({**record, "_key": key} if keyed else record)
        snap.records = kept
        files: dict[str, list[tuple[str, list[str]]]] = {}
        for torchx_dir, versions in zip(torchx_dirs, link_listings, strict=True):
            files[torchx_dir], changed = self._read_link_files(run_id, torchx_dir, snap, versions)
            new_records += changed
        complete = len(records) == len(listed)
        worth_it = new_records >= SNAPSHOT_MIN_NEW or (
            snap.exists
            and complete
            and not missing
            and self._views_renewable(run_id, snap, names_listed, torchx_dirs, link_listings)
        )
        if snapped and (compact or (worth_it and self._reader_snapshots())):
            self._write_snapshot(run_id, category, snap)
        return GroupRead(records, files, names_listed, link_listings, complete)

    def _group_listings(
        self, run_id: str, category: str, torchx_dirs: Sequence[str]
    ) -> list[Callable[[], Any]]:
        """The listing reads of :meth:`_read_group`: the category's names, then each of
        ``torchx_dirs`` with version tokens."""
        run_dir = self._run_dir(run_id)
        reads: list[Callable[[], Any]] = [partial(self._list_names, f"{run_dir}/{category}")]
        reads.extend(partial(self._list_versions, f"{run_dir}/{d}") for d in torchx_dirs)
        return reads

    def _list_group(
        self, run_id: str, category: str, torchx_dirs: Sequence[str]
    ) -> tuple[list[str], list[dict[str, Version]]]:
        """:meth:`_group_listings`, made (side by side): ``listings`` for :meth:`_read_group`."""
        names, *versions = self._side_by_side(self._group_listings(run_id, category, torchx_dirs))
        return names, versions

    def _parse_record(self, key: str, data: bytes | None) -> dict[str, Any] | None:
        if data is None:
            return None
        try:
            record = json.loads(data)
        except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
            why = "empty" if not data else f"not JSON ({type(e).__name__}: {e})"
            self._skip(key, why)
            return None
        if not isinstance(record, dict):
            self._skip(key, f"a JSON {type(record).__name__}, not a record (an object)")
            return None
        return record

    # --- snapshots ---
    #: Whether reads may store what they derived for later readers: a snapshot after fetching
    #: many records, catalog entries of runs the catalog lacked, a merge of many catalog
    #: segments. Off for a viewer that must not write to the store (``torchx tracker ui``);
    #: reads then cost what the first read of an uncompacted store costs, every time.
    cache_on_read: bool = True

    def _reader_snapshots(self) -> bool:
        """Whether a read may store a snapshot or catalog entries (``compact`` always does)."""
        return self.cache_on_read

    def _snapshot_key(self, run_id: str, category: str) -> str:
        return posixpath.join(self._run_dir(run_id), SNAPSHOT_DIR, category)

    def _load_snapshot(self, run_id: str, category: str) -> Snapshot:
        key = self._snapshot_key(run_id, category)
        data, version = self._read_versioned(key)
        snap = parse_snapshot(data, version, key)
        snap.exists = data is not None
        return snap

    def _write_snapshot(self, run_id: str, category: str, snap: Snapshot) -> bool:
        """Store ``snap`` if the snapshot object is still the one it was built on.

        On S3 a conditional PUT (``If-Match``/``If-None-Match``), elsewhere one atomic
        write (a rename on local disk). Losing the race to another compactor loses nothing:
        snapshots only hold copies of records that stay where they are.
        """
        if category == LINKS:
            snap.views = {
                torchx_dir: self._link_view_of(run_id, snap, torchx_dir, stamped=True)
                for torchx_dir in LINK_KINDS
                if torchx_dir in snap.files
            }
        data = snap.encode()
        if data is None:
            return False
        key = self._snapshot_key(run_id, category)
        write = partial(self._put_if, run_id, key, data, snap.version, exists=snap.exists)
        return bool(self._store_derived(f"write the snapshot {key}", write))

    def _store_derived(self, what: str, write: Callable[[], T]) -> T | None:
        """``write()``, which stores something derived from records (a snapshot, catalog
        entries, the run index); ``None`` when it failed (read-only credentials, a full disk):
        logged, and reads still work without it."""
        try:
            return write()
        except (TrackerError, OSError) as e:
            logger.info("could not %s (reads still work): %s", what, e)
            return None

    def _link_view_of(
        self, run_id: str, snap: Snapshot, torchx_dir: str, *, stamped: bool = False
    ) -> LinkView:
        """The answer of the link read of ``torchx_dir`` as ``snap`` holds it, with its listing
        (and, ``stamped``, the store's stamp where one vouches for that listing now)."""
        entries = snap.files.get(torchx_dir, {})
        others = _linked_file_runs(entries)
        files = [(others[n], lines) for n, (_, lines) in entries.items() if n in others]
        names = frozenset(snap.records)
        tokens = {n: token for n, (token, _) in entries.items()}
        run_dir = self._run_dir(run_id)
        return LinkView(
            names=names,
            files=tokens,
            pairs=_link_answer(snap.records.values(), files, run_id, LINK_KINDS[torchx_dir]),
            stamp=(
                self._vouched_stamp(f"{run_dir}/{LINKS}", f"{run_dir}/{torchx_dir}", names, tokens)
                if stamped
                else None
            ),
        )

    def _views_renewable(
        self,
        run_id: str,
        snap: Snapshot,
        names: Sequence[str],
        torchx_dirs: Sequence[str],
        listings: Sequence[Mapping[str, Version]],
    ) -> bool:
        """Whether rewriting ``snap`` (as just read) gives a directory read here a view that
        answers its listing where the stored view does not (missing: a version 2 snapshot; or
        behind: a run compacted at its close, when the TorchX files it had just written were
        too recent for a token). A listing no view can answer (a file without a token, an empty
        or foreign file) rewrites nothing, so such a run is not rewritten on every read."""
        for torchx_dir, versions in zip(torchx_dirs, listings, strict=True):
            view = snap.views.get(torchx_dir)
            if view is not None and view.answers(names, versions):
                continue
            if self._link_view_of(run_id, snap, torchx_dir).answers(names, versions):
                return True
        return False

    def _read_link_files(
        self, run_id: str, torchx_dir: str, snap: Snapshot, versions: Mapping[str, Version]
    ) -> tuple[list[tuple[str, list[str]]], int]:
        """TorchX's link files of a run (``versions``: the listing of ``torchx_dir``) as (linked
        run id, artifact-name lines), and how many were fetched. The listing's names are decoded
        as one batch (a run may hold thousands). An empty file is skipped, not read as a link
        without artifact names: TorchX writes at least a line break, so empty is a file being
        created (ours are created in place, see :meth:`_create_if_absent`) or truncated by
        TorchX's rewrite; its token changes when the write lands, so the next read takes it."""
        directory = posixpath.join(self._run_dir(run_id), torchx_dir)
        others = _linked_file_runs(versions)
        listed = {n: version_text(versions[n]) for n in others}
        known = snap.files.get(torchx_dir, {})
        stale = [n for n, v in listed.items() if v is None or known.get(n, ("",))[0] != v]
        fetched = self._get_many([posixpath.join(directory, n) for n in stale])
        stale_set = set(stale)
        kept = {n: known[n] for n in listed if n not in stale_set}
        for name, data in zip(stale, fetched, strict=True):
            if not data:  # gone, or created and not yet written (TorchX never leaves one empty)
                continue
            try:
                lines = _lines(data)
            except UnicodeDecodeError as e:
                self._skip(
                    posixpath.join(directory, name), f"artifact names that are not UTF-8 ({e})"
                )
                continue
            version = listed[name]
            if version is not None:
                kept[name] = (version, lines)
            else:
                kept.setdefault(name, ("", lines))
        snap.files[torchx_dir] = {n: kept[n] for n in listed if n in kept and kept[n][0]}
        return [(others[n], kept[n][1]) for n in listed if n in kept], len(stale)

    def compact(self, run_id: str) -> None:
        """Write the run's snapshots (every category readers merge) from what is stored now,
        and its catalog entry as its records say (also what TorchX's own tracker wrote)."""
        metadata = self._read_records(run_id, METADATA, compact=True)
        for category in (ARTIFACTS, SUMMARY):
            self._read_records(run_id, category, compact=True)
        self._read_group(run_id, LINKS, (SOURCES, DESCENDANTS), compact=True)
        if self.has_run(run_id):
            entries = self._derive_entries(run_id, compact=True, metadata=metadata)
            self._append_catalog(run_id, entries)

    # --- the catalog (see trackers.backends.catalog) ---
    @overload
    def _list_catalog(self) -> list[str]: ...

    @overload
    def _list_catalog(self, *, at_most: int) -> list[str] | None: ...

    def _list_catalog(self, *, at_most: int | None = None) -> list[str] | None:
        """Names of the catalog objects at the root: ``.catalog`` and its segments; ``None``
        when there are more than ``at_most``."""
        names = [
            n for n in self._list_names(self.root) if n == CATALOG or n.startswith(SEGMENT_PREFIX)
        ]
        return None if at_most is not None and len(names) > at_most else names

    def _delete(self, keys: Sequence[str]) -> None:
        """Remove objects; only catalog segments already merged into ``.catalog`` ever are."""

    def _catalog_lock(self) -> contextlib.AbstractContextManager[object]:
        """Held while the catalog is merged (stores without conditional writes lock here)."""
        return contextlib.nullcontext()

    def _append_catalog(self, run_id: str, entries: Mapping[str, CatalogEntry]) -> None:
        # A name of its own, outside deterministic_record_names: a replayed segment may be
        # written twice, and merging it twice changes nothing.
        self._put(run_id, self._segment_key(), segment(entries))

    def _segment_key(self) -> str:
        return f"{self._root_slash}{SEGMENT_PREFIX}{time.time_ns():020d}-{os.urandom(16).hex()}"

    def _read_catalog(self, names: Sequence[str]) -> Catalog | None:
        """The catalog objects ``names`` (from :meth:`_list_catalog`) fetched and merged;
        ``None`` when one is gone (merged and removed since the listing)."""
        keys = [posixpath.join(self.root, n) for n in names]
        found = self._get_many(keys)
        if any(data is None for data in found):
            return None
        catalog = Catalog()
        for key, data in zip(keys, found, strict=True):
            catalog.merge_json(data, key)
        return catalog

    def _load_catalog(self) -> Catalog:
        """The catalog as stored now (merged first when it has many segments)."""
        for _ in range(3):
            names = self._list_catalog()
            if sum(1 for n in names if n != CATALOG) > MERGE_SEGMENTS_AT:
                if self._reader_snapshots() and self.compact_catalog():
                    names = self._list_catalog()
            catalog = self._read_catalog(names)
            if catalog is None:
                continue  # merged and removed while read: read it again
            return catalog
        raise TrackerError(f"{self.root}: the catalog kept changing while it was read")

    def compact_catalog(self) -> bool:
        """Merge the catalog's segments into ``.catalog`` and remove them; ``False`` if another
        compactor changed ``.catalog`` first (then it did the work)."""
        with self._catalog_lock():
            base_key = posixpath.join(self.root, CATALOG)
            base, version = self._read_versioned(base_key)
            catalog = Catalog()
            catalog.merge_json(base, base_key)
            keys = [
                posixpath.join(self.root, n)
                for n in self._list_catalog()
                if n.startswith(SEGMENT_PREFIX)
            ]
            merged = []
            for key, data in zip(keys, self._get_many(keys), strict=True):
                if data is not None:
                    catalog.merge_json(data, key)
                    merged.append(key)
            if not self._put_if("", base_key, catalog.encode(), version, exists=base is not None):
                return False
            self._delete(merged)
            return True

    def _derive_entry(
        self,
        run_id: str,
        *,
        compact: bool = False,
        metadata: list[dict[str, Any]] | None = None,
    ) -> CatalogEntry:
        """A run's catalog entry from its own records (snapshots make this a few reads;
        ``metadata``: the run's metadata records, when the caller has just read them)."""
        entry = CatalogEntry()
        records = self._read_records(run_id, STATUS, compact=compact)
        for record in records:
            value = record.get("status")
            if value in RUN_STATUSES:
                entry.status = (value, posixpath.basename(record["_key"]))
        if records:
            entry.start = record_sort_key(posixpath.basename(records[0]["_key"]))[0] / 1e9 or None
        entry.sources = dict.fromkeys(dedupe_links(self._source_links(run_id)))
        if metadata is None:
            metadata = self._read_records(run_id, METADATA, compact=compact)
        for record in metadata:
            values = record.get("metadata")
            launched = None
            if isinstance(values, dict):
                launched = launch_entry(values, posixpath.basename(record["_key"]))
            if launched is not None:
                entry.merge(launched)
        return entry

    def _derive_entries(
        self,
        run_id: str,
        *,
        compact: bool = False,
        metadata: list[dict[str, Any]] | None = None,
    ) -> dict[str, CatalogEntry]:
        """:meth:`_derive_entry`, plus the edges only the run's own descendant links hold (TorchX
        appends to the parent's ``descendants/`` file but overwrites the child's ``sources/``)."""
        entries = {run_id: self._derive_entry(run_id, compact=compact, metadata=metadata)}
        for child in dedupe_links(self._descendant_links(run_id)):
            edge = LinkedRun(run_id, child.artifact_name)
            entries.setdefault(child.run_id, CatalogEntry()).sources[edge] = None
        # and the names the run's parents hold for it (TorchX's second add_source of a pair)
        for parent in {link.run_id for link in entries[run_id].sources}:
            if self.has_run(parent):
                for child in dedupe_links(self._descendant_links(parent)):
                    if child.run_id == run_id:
                        entries[run_id].sources[LinkedRun(parent, child.artifact_name)] = None
        entries[run_id].sources = dict.fromkeys(dedupe_links(entries[run_id].sources))
        return entries

    def _catalog_for(self, run_ids: Sequence[str]) -> Catalog:
        """The catalog, with entries derived (and stored) for the ``run_ids`` it lacks."""
        from concurrent.futures import ThreadPoolExecutor

        from trackers.backends.catalog import DERIVE_WORKERS

        catalog = self._load_catalog()
        missing = [r for r in run_ids if r not in catalog.runs]
        if missing:
            derived = Catalog()
            # Each run costs about ten sequential requests on S3 (listings, snapshots, link
            # files): runs are derived side by side so their round trips overlap. Merging
            # entries is order-free, so the order they come back in does not matter.
            workers = min(DERIVE_WORKERS, len(missing))
            with ThreadPoolExecutor(
                workers,
                thread_name_prefix="catalog-derive",
                initializer=leave_signals_to_main_thread,
            ) as pool:
                for entries in pool.map(self._derive_entries, missing):
                    for other, entry in entries.items():
                        derived.add(other, entry)
            for run, entry in derived.runs.items():
                catalog.add(run, entry)
            if self._reader_snapshots():
                write = partial(self._append_catalog, missing[0], derived.runs)
                self._store_derived("store catalog entries", write)
        return catalog

    runs_summary_is_cheap = True

    def runs_summary(self, run_ids: Iterable[str] | None = None) -> list[RunSummary]:
        """Status (and its time), start, parents, component and user of runs from the catalog
        (a few reads for the store).

        Runs the catalog lacks (written by TorchX's own tracker or an older version of ours)
        are read one by one once, and their entries stored for the next reader.
        """
        ids = sorted(self._all_run_ids()) if run_ids is None else list(run_ids)
        runs = self._catalog_for([r for r in ids if r]).runs
        return [_summary(run, runs.get(run, CatalogEntry())) for run in ids]

    def stored_runs_summary(self) -> list[RunSummary] | None:
        """The catalog as stored, when it is ``.catalog`` and at most
        :data:`~trackers.backends.catalog.MERGE_SEGMENTS_AT` segments: a listing that stops
        there and a GET each (S3: a listing of at most 8 keys, so a store of unmerged segments
        costs one small request to find out). ``None`` otherwise, or when it changed while
        read. Runs it lacks are left out; nothing is merged or derived."""
        names = self._list_catalog(at_most=MERGE_SEGMENTS_AT + 1)
        catalog = None if names is None else self._read_catalog(names)
        if catalog is None:
            return None
        return [_summary(run, entry) for run, entry in sorted(catalog.runs.items())]

    def lineage(
        self,
        run_id: str,
        *,
        direction: Direction = "both",
        artifact_name: str | None = None,
        depth: int | None = None,
    ) -> RunLineage:
        """Ancestors and descendants of ``run_id`` walked over the catalog, in memory."""
        catalog = self._catalog_for(self._all_run_ids())
        view = _GraphView(CatalogGraph(catalog.runs))
        return walk_lineage(
            cast(TrackerBase, view),
            run_id,
            direction=direction,
            artifact_name=artifact_name,
            depth=depth,
        )

    # --- metadata and artifacts ---
    def add_metadata(self, run_id: str, **kwargs: object) -> None:
        self._write_record(run_id, METADATA, {"metadata": kwargs}, launch=kwargs)

    def metadata(self, run_id: str) -> Mapping[str, object]:
        return self._merged(run_id, METADATA, "metadata")

    def _merged(self, run_id: str, category: str, field: str) -> dict[str, object]:
        """The ``field`` mappings of a category's records, merged in write order."""
        merged: dict[str, object] = {}
        for record in self._read_records(run_id, category):
            values = record.get(field)
            if isinstance(values, dict):
                merged.update(values)
            else:
                self._skip(record["_key"], f"its {field!r} is not a mapping")
        return merged

    def add_artifact(
        self, run_id: str, name: str, path: str, metadata: Mapping[str, object] | None = None
    ) -> None:
        payload = {"name": name, "path": path, "metadata": dict(metadata) if metadata else None}
        self._write_record(run_id, ARTIFACTS, payload)

    def artifacts(self, run_id: str) -> Mapping[str, TrackerArtifact]:
        found: dict[str, TrackerArtifact] = {}
        for record in self._read_records(run_id, ARTIFACTS):
            name = record.get("name")
            if isinstance(name, str):
                found[name] = TrackerArtifact(name, str(record.get("path")), record.get("metadata"))
            else:
                self._skip(record["_key"], "its 'name' is not a string")
        return found

    # --- links ---
    def add_source(self, run_id: str, source_id: str, artifact_name: str | None = None) -> None:
        check_artifact_name(artifact_name)
        self._write_edge(run_id, source_id, artifact_name)
        self._update_torchx_sources_file(run_id, source_id, artifact_name)

    def _write_edge(self, run_id: str, source_id: str, artifact_name: str | None) -> None:
        """One link record, stored in the run's ``links/``, in the source's (when the source is
        a run of this store) and as the edge's catalog segment (see the module docstring)."""
        # The reverse link goes only into runs of this store; an external source (a dataset
        # URL, a run elsewhere) is not turned into a run by linking to it.
        parents = [source_id] if source_id != run_id and self.has_run(source_id) else []
        for parent in parents:
            self._mkdir(f"{self._run_dir(parent)}/{DESCENDANTS}")
        self._write_record(
            run_id,
            LINKS,
            {
                "kind": EDGE,
                "source": source_id,
                "descendant": run_id,
                "artifact_name": artifact_name,
            },
            CatalogEntry(sources={LinkedRun(source_id, artifact_name or None): None}),
            as_segment=True,
            shared_with=parents,
        )

    def _read_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        """An object and a version token for :meth:`_put_if` (default: no versioning)."""
        return self._get_many([key])[0], None

    def _put_if(
        self, run_id: str, key: str, data: bytes, version: str | None, *, exists: bool
    ) -> bool:
        """Write only if ``key`` is still at ``version`` (absent when not ``exists``).

        ``False`` when someone else changed it first. The default cannot tell and just writes;
        stores with conditional writes (S3's ``If-Match``/``If-None-Match``) override it.
        """
        self._put(run_id, key, data)
        return True

    def _create_if_absent(self, run_id: str, key: str, data: bytes) -> bool:
        """Create ``key`` holding ``data`` in one step if nothing is there; ``False`` when
        something is, or when the store cannot tell without reading first (the default), so
        the caller reads, merges and writes instead. Only TorchX's link files come here: a
        reader must skip such a file while it is empty (see :meth:`_read_link_files`)."""
        return False

    def _update_torchx_sources_file(
        self, run_id: str, source_id: str, artifact_name: str | None
    ) -> None:
        """Add ``artifact_name`` to TorchX's ``sources/<b32(src)>`` file, the one shared object.

        A read-modify-write, so it goes through :meth:`_put_if` and is retried when another
        writer got there first. Our own ``links/`` records hold every link regardless.
        """
        if len(id_bytes(source_id)) > MAX_PATH_ID_BYTES:
            return  # TorchX cannot have a file for it (its name would exceed 255 bytes)
        key = f"{self._run_dir(run_id)}/{SOURCES}/{encode_run_id(source_id)}"
        name = artifact_name or ""
        if self._create_if_absent(run_id, key, f"{name}\n".encode()):
            return  # the usual case, a run's first link to this source: nothing to merge
        for attempt in range(CONDITIONAL_WRITE_ROUNDS):
            current, version = self._read_versioned(key)
            lines = None if current is None else _lines(current)
            if lines is not None and (not name or name in lines):
                return  # already there (also when our own earlier attempt landed)
            merged = [n for n in (lines or []) if n] + ([name] if name else [])
            data = ("\n".join(merged) + "\n").encode("utf-8")
            if self._put_if(run_id, key, data, version, exists=current is not None):
                return
            time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))
        raise TrackerError(
            f"{key}: TorchX's sources/ file kept changing under {CONDITIONAL_WRITE_ROUNDS} "
            "conditional writes; the link itself is recorded (links/), only that file misses "
            f"the artifact name {artifact_name!r}"
        )

    def _link_view(self, run_id: str, torchx_dir: str) -> list[LinkedRun]:
        """Our ``links/`` records of the kind ``torchx_dir`` holds (:data:`LINK_KINDS`), then
        TorchX's link files in ``torchx_dir``."""
        return [LinkedRun(run, name) for run, name in self._link_pairs(run_id, torchx_dir)]

    @functools.cached_property
    def _link_memo(self) -> LinkMemo:
        return LinkMemo()

    def _link_pairs(self, run_id: str, torchx_dir: str) -> Pairs:
        """:meth:`_link_view` as ``(run id, artifact name)`` pairs (no object per link),
        deduplicated (:func:`dedupe_pairs`: what every reader of links does).

        On a local disk a read first takes the run's stamp (:meth:`_listing_stamp`: two
        directory stats and a stat per TorchX file) and answers from the reader's memo or the
        snapshot's header when the stamp is the one kept or stored there. Otherwise (and on
        any other store) it lists the run's ``links/`` and ``torchx_dir`` (with tokens): a
        repeat read answers from :class:`LinkMemo` when nothing listed changed; a first read
        lists and loads the snapshot side by side and answers from the snapshot's stored view
        when the listing is the one it was derived from, else merges the records and files."""
        kind = LINK_KINDS[torchx_dir]
        memo_key = (run_id, kind)
        memo = self._link_memo
        run_dir = self._run_dir(run_id)
        links_dir, files_dir = f"{run_dir}/{LINKS}", f"{run_dir}/{torchx_dir}"
        # A reader that kept a listing (no stamp could vouch for it when it read) lists again.
        kept_listing = memo.holds_listing(memo_key)
        stamped = None if kept_listing else self._listing_stamp(links_dir, files_dir)
        snap: Snapshot | None = None
        list_files: Callable[[], dict[str, Version]] = partial(self._list_versions, files_dir)
        if stamped is not None:
            stamp, list_files = stamped  # the stamp's stats are the directory's listing too
            kept = memo.get_stamped(memo_key, stamp)
            if kept is not None:
                return kept
            snap = self._load_snapshot(run_id, LINKS)
            kept = snap.stamped_pairs(torchx_dir, stamp)
            if kept is not None:
                memo.put_stamped(memo_key, stamp, kept)
                return kept
        directory = self._directory_version(links_dir)  # before anything is listed
        if snap is None and memo_key in memo:
            names = memo.unchanged_names(memo_key, directory)
            if names is not None:  # links/ as it was: only TorchX's files to list
                versions = self._list_versions(files_dir)
            else:
                names, (versions,) = self._list_group(run_id, LINKS, (torchx_dir,))
            kept = memo.get(memo_key, LinkListing(names, versions, directory))
            if kept is not None:
                return kept
            snap = self._load_snapshot(run_id, LINKS)
        elif snap is None:
            list_names, list_versions = self._group_listings(run_id, LINKS, (torchx_dir,))
            load_links = partial(self._load_snapshot, run_id, LINKS)
            reads: list[Callable[[], Any]] = [list_names, load_links, list_versions]
            names, snap, versions = self._side_by_side(reads)
        else:
            names, versions = self._list_names(links_dir), list_files()
        listing = LinkListing(names, versions, directory)
        view = snap.views.get(torchx_dir)
        if view is not None and view.answers(names, versions):
            memo.put(memo_key, listing, view.pairs)
            if self._reader_snapshots():
                vouched = self._stamp_view(run_id, snap, torchx_dir, view)
                if vouched is not None:
                    memo.put_stamped(memo_key, vouched, view.pairs)
            return view.pairs
        read = self._read_group(
            run_id, LINKS, (torchx_dir,), keyed=False, listings=(names, [versions]), snapshot=snap
        )
        answer = _link_answer(read.records, read.files[torchx_dir], run_id, kind)
        if read.complete:
            memo.put(memo_key, listing, answer)
            # A view is its stamp's answer, whenever it was stamped: one this read's rewrite
            # of the snapshot just stamped (it vouched for what was read) is the next read's.
            # The stored view did not answer; its stamp would only displace the listing kept.
            renewed = snap.views.get(torchx_dir)
            if renewed is not None and renewed is not view and renewed.stamp is not None:
                memo.put_stamped(memo_key, renewed.stamp, renewed.pairs)
        return answer

    def _stamp_view(
        self, run_id: str, snap: Snapshot, torchx_dir: str, view: LinkView
    ) -> ListingStamp | None:
        """Rewrite ``snap``, whose ``view`` answers the listing but whose stamp does not (a
        version 3 snapshot; a run compacted at its close, its files too recent to vouch for),
        once a stamp vouches for that listing: later readers then take the answer from two
        directory stats, a stat per file and the header. Nothing is written while no stamp can
        vouch, so a run whose stamp never settles is not rewritten on every read. The stamp
        that vouched, or ``None``."""
        run_dir = self._run_dir(run_id)
        links_dir, files_dir = f"{run_dir}/{LINKS}", f"{run_dir}/{torchx_dir}"
        stamp = self._vouched_stamp(links_dir, files_dir, view.names, view.files)
        # A reader that kept a listing did not look at the stored stamp: it may be this one.
        if stamp is not None and snap.stamped_pairs(torchx_dir, stamp) is None:
            self._write_snapshot(run_id, LINKS, snap)
        return stamp

    def _source_links(self, run_id: str) -> list[LinkedRun]:
        return self._link_view(run_id, SOURCES)

    def _descendant_links(self, run_id: str) -> list[LinkedRun]:
        return self._link_view(run_id, DESCENDANTS)

    def sources(self, run_id: str, artifact_name: str | None = None) -> list[TrackerSource]:
        """:meth:`LineageTracker.sources`, merged on pairs (a run may hold thousands)."""
        return [
            TrackerSource(run, name)
            for run, name in self._link_pairs(run_id, SOURCES)
            if artifact_name is None or name == artifact_name
        ]

    def descendants(self, run_id: str, artifact_name: str | None = None) -> list[LinkedRun]:
        """:meth:`LineageTracker.descendants`, merged on pairs (a run may hold thousands)."""
        return [
            LinkedRun(run, name)
            for run, name in self._link_pairs(run_id, DESCENDANTS)
            if artifact_name is None or name == artifact_name
        ]

    # --- runs ---
    def has_run(self, run_id: str) -> bool:
        return self._is_dir(self._run_dir(run_id))

    #: The last root listing and the run ids decoded from it (sorted): a long-lived reader (the
    #: UI, a notebook) listing an unchanged store skips decoding 10,000 names again.
    _decoded_listing: tuple[list[str], list[str]] | None = None

    def _keeps_run_index(self) -> bool:
        """Whether ``run_ids()`` keeps the decoded root listing in the store's run index (see
        :mod:`trackers.backends.run_index`) for readers in other processes. Off by default: on
        an object store the listing's requests dwarf decoding, and the index would add one."""
        return False

    def _decoded_run_ids(self, names: list[str]) -> list[str]:
        """The run ids (sorted; shortened ones as their names give them) of a root listing."""
        last = self._decoded_listing
        if last is not None and last[0] == names:
            return last[1]
        keep = self._keeps_run_index() and bool(names)
        key = posixpath.join(self.root, RUN_INDEX)
        ids = parse_run_index(self._get_many([key])[0], names) if keep else None
        if ids is None:
            ids = sorted(filter(None, decode_run_ids(names)))
            if keep and self._reader_snapshots():
                write = partial(self._put, "", key, encode_run_index(names, ids))
                self._store_derived(f"write the run index {key}", write)
        self._decoded_listing = (names, ids)
        return ids

    def _all_run_ids(self) -> list[str]:
        ids = list(self._decoded_run_ids(self._list_dirs(self.root)))
        if LONG_ID_MARK not in "\n".join(ids):  # one search for the whole listing
            return ids
        shortened = [i for i in ids if shortened_digest(i) is not None]
        if not shortened:
            return ids
        keys = [posixpath.join(self.root, encode_run_id(i), RUN_ID_FILE) for i in shortened]
        whole = dict(zip(shortened, self._get_many(keys), strict=True))
        return [_whole_id(i, whole.get(i)) for i in ids]

    # --- metrics and summaries ---
    def add_metrics(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        if not points:
            return
        # Column-wise and compact (the record-store form of trackers.metric_codec).
        columns = encode_columns(as_columns(points), times="us")
        self._write_record(run_id, METRICS, {"points": columns})

    def metrics(self, run_id: str, name: str | None = None) -> list[MetricPoint]:
        points: list[MetricPoint] = []
        for record in self._read_records(run_id, METRICS):
            try:
                rows = decode_columns(record["points"], times="us")
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
                self._skip(record["_key"], f"malformed metric columns ({type(e).__name__}: {e})")
                continue
            if name is None:
                points.extend(map(MetricPoint._make, rows))
            else:
                points.extend(MetricPoint._make(r) for r in rows if r[0] == name)
        return points

    def add_summary(self, run_id: str, **values: object) -> None:
        self._write_record(run_id, SUMMARY, {"summary": values})

    def summary(self, run_id: str) -> Mapping[str, object]:
        return self._merged(run_id, SUMMARY, "summary")

    def _set_status(self, run_id: str, status: RunStatus) -> None:
        self._write_record(run_id, STATUS, {"status": status}, status=status)

    def status(self, run_id: str) -> RunStatus | None:
        found: RunStatus | None = None
        for record in self._read_records(run_id, STATUS):
            value = record.get("status")
            if value in RUN_STATUSES:
                found = value
        return found

    def status_history(self, run_id: str) -> list[tuple[float | None, str]]:
        """Every status record, in write order, with the time its name carries (one read of the
        category, as :meth:`status` makes); records of unknown statuses are left out."""
        history: list[tuple[float | None, str]] = []
        for record in self._read_records(run_id, STATUS):
            value = record.get("status")
            if value in RUN_STATUSES:
                nanos = record_sort_key(posixpath.basename(record["_key"]))[0]
                history.append((nanos / 1e9 if nanos else None, value))
        return history

    def write_history(self, run_id: str) -> list[RecordedWrite]:
        """One write per record, named by the record's name (the operation id of the write that
        made it), oldest first. Links that only TorchX's own ``AppRun`` wrote (its ``sources/``
        files) have no record and no time, and are not in it."""
        writes: list[RecordedWrite] = []

        def add(record: Mapping[str, Any], kind: str, args: dict[str, Any]) -> None:
            writes.append(RecordedWrite(kind, args, posixpath.basename(str(record["_key"]))))

        for record in self._read_records(run_id, METADATA):
            if isinstance(record.get("metadata"), dict):
                add(record, "add_metadata", {"values": record["metadata"]})
        for record in self._read_records(run_id, ARTIFACTS):
            if isinstance(record.get("name"), str):
                add(
                    record, "add_artifact", {k: record.get(k) for k in ("name", "path", "metadata")}
                )
        for record in self._read_records(run_id, LINKS):
            source = _linked_run(record, run_id, "source")
            if source is not None:
                args = {"source_id": source, "artifact_name": record.get("artifact_name")}
                add(record, "add_source", args)
        for record in self._read_records(run_id, STATUS):
            if isinstance(record.get("status"), str):
                add(record, "set_status", {"status": record["status"]})
        return sorted(writes, key=lambda w: record_sort_key(w.op_id))


class _GraphView:
    """The two reads :func:`walk_lineage` makes, answered from a :class:`CatalogGraph`."""

    def __init__(self, graph: CatalogGraph) -> None:
        self._graph = graph

    def sources(self, run_id: str, artifact_name: str | None = None) -> list[TrackerSource]:
        return [
            TrackerSource(link.run_id, link.artifact_name)
            for link in _named(self._graph.source_links(run_id), artifact_name)
        ]

    def descendants(self, run_id: str, artifact_name: str | None = None) -> list[LinkedRun]:
        return _named(self._graph.child_links(run_id), artifact_name)


def _summary(run_id: str, entry: CatalogEntry) -> RunSummary:
    """The run's :class:`RunSummary` from its catalog entry."""
    status, status_time = None, None
    if entry.status is not None:
        status = entry.status[0]
        status_time = record_sort_key(entry.status[1])[0] / 1e9 or None
    return RunSummary(
        run_id,
        status,
        entry.start,
        tuple(dedupe_links(entry.sources)) if entry.sources else (),
        component=entry.component[0] if entry.component is not None else None,
        user=entry.user[0] if entry.user is not None else None,
        launch_known=entry.component is not None and entry.user is not None,
        status_time=status_time,
    )


def _named(links: Iterable[LinkedRun], artifact_name: str | None) -> list[LinkedRun]:
    return [
        link
        for link in dedupe_links(links)
        if artifact_name is None or link.artifact_name == artifact_name
    ]


def _linked_run(record: Mapping[str, Any], run_id: str, kind: str) -> str | None:
    """The run a link record links ``run_id`` to as its ``kind`` (``"source"`` or
    ``"descendant"``), or ``None`` when the record is no such link of ``run_id``."""
    found = record.get("kind")
    if found == EDGE:
        this_side, other_side = EDGE_FIELDS[kind]
        other = record.get(other_side) if record.get(this_side) == run_id else None
    else:  # an earlier version's record: one per side
        other = record.get("run_id") if found == kind else None
    return other if isinstance(other, str) else None


def _whole_id(shortened: str, data: bytes | None) -> str:
    """The id a shortened run name stands for, from its ``.run_id`` (else the name's own id)."""
    if shortened_digest(shortened) is None or data is None:
        return shortened
    try:
        whole = json.loads(data).get("run_id")
    except (ValueError, AttributeError):
        whole = None
    if isinstance(whole, str) and whole and path_id(whole) == shortened:
        return whole
    logger.warning(
        "%s of run %r does not hold its whole id; listed shortened", RUN_ID_FILE, shortened
    )
    return shortened


def _lines(data: bytes) -> list[str]:
    """The non-empty lines of a TorchX link file."""
    return [line.strip() for line in data.decode("utf-8").splitlines() if line.strip()]


def _linked_file_runs(names: Iterable[str]) -> dict[str, str]:
    """TorchX link file names (base32 run ids) and the run each names; a name that is no run
    id, or a shortened one (TorchX cannot have written it), is left out."""
    listed = list(names)
    return {
        name: other
        for name, other in zip(listed, decode_run_ids(listed), strict=True)
        if other is not None and shortened_digest(other) is None
    }


def _link_answer(
    records: Iterable[Mapping[str, Any]],
    files: Iterable[tuple[str, list[str]]],
    run_id: str,
    kind: str,
) -> Pairs:
    """The ``kind`` links of ``run_id`` as deduplicated pairs: our link records first, then
    TorchX's files (linked run, artifact-name lines; no line is a link without a name)."""
    pairs: list[tuple[str, str | None]] = []
    for record in records:
        other = _linked_run(record, run_id, kind)
        if other is not None:
            name = record.get("artifact_name")
            pairs.append((other, name if isinstance(name, str) else None))
    for other, lines in files:
        if len(lines) == 1:  # the usual file: one artifact name
            pairs.append((other, lines[0]))
        elif lines:
            pairs.extend((other, n) for n in lines)
        else:
            pairs.append((other, None))
    return tuple(dedupe_pairs(pairs))
