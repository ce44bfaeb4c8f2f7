"""The last answer of a run's link reads, kept by a reader for its next read of that run.

A lineage read (``sources()``, ``descendants()``) must list the run's ``links/`` records and
every TorchX link file with its version token (a ``stat`` each on local disk, the listing's
ETag on S3): TorchX rewrites its files in place, so nothing short of that tells a reader what
changed. What a repeat read can skip is everything after the listing: loading the snapshot,
decoding names, merging records and files into pairs. A long-lived reader (``torchx tracker
ui``, a notebook, a lineage walk that comes back to a run) asks for the same runs again, so it
keeps, per run and direction, the listing it read and the pairs it derived. The next read
lists again and returns the kept pairs only when the new listing is equal, name for name and
token for token (on local disk a ``stat`` of ``links/`` stands in for listing its names: its
mtime changes with every entry added or removed). Records are immutable and keep their names,
so equal listings mean equal contents; an entry without a token (a store that cannot tell, a
file changed too recently for its stat to tell) is never kept.

The memo lives in one tracker object and is bounded (:data:`MEMO_RUNS` runs and
:data:`MEMO_ITEMS` names, tokens and pairs, least recently used dropped first); a new process
starts without it (``bench_reads.py`` times both).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass

from trackers.backends.version_tokens import Version

#: Runs (per direction) a tracker object keeps the last link answer of.
MEMO_RUNS = 256
#: And at most this many names, tokens and pairs in all: a run with 1000 links keeps ~3000
#: (about 0.5 MiB), so a reader of big runs keeps ~16 of them, not 256 (130 MiB).
MEMO_ITEMS = 50_000

Pairs = tuple[tuple[str, str | None], ...]


@dataclass(frozen=True)
class LinkListing:
    """What a link read listed: the ``links/`` names, the ``links/`` directory's own version
    where the store has one (local disk: an entry added or removed changes it), and TorchX's
    files with their tokens."""

    names: list[str]
    versions: dict[str, Version]
    directory: Version = None

    def trusted(self) -> bool:
        """Whether every file has a token (else the listing cannot vouch for its contents)."""
        return None not in self.versions.values()


class LinkMemo:
    """Per ``(run id, direction)``: the last trusted listing and the pairs read with it.

    No lock: each ``OrderedDict`` call is one step under the interpreter lock, and a race
    between two readers at worst drops or re-adds an entry. (A lock held by another thread
    when a worker forks would stay held in the child forever.)"""

    def __init__(self, size: int = MEMO_RUNS, items: int = MEMO_ITEMS) -> None:
        self._size = size
        self._items = items
        self._entries: OrderedDict[tuple[str, str], tuple[LinkListing, Pairs]] = OrderedDict()
        self._held = 0  # names, tokens and pairs kept (approximate under concurrent use)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._entries

    def unchanged_names(self, key: tuple[str, str], directory: Version) -> list[str] | None:
        """The kept ``links/`` names when ``directory`` (a fresh version of ``links/``) is the
        one they were listed with: no new listing is needed. ``None`` otherwise."""
        found = self._entries.get(key)
        if directory is None or found is None or found[0].directory != directory:
            return None
        return found[0].names

    def get(self, key: tuple[str, str], listing: LinkListing) -> Pairs | None:
        """The kept pairs when ``listing`` equals the one they were read with (names and every
        token), else ``None``."""
        found = self._entries.get(key)
        if found is None:
            return None
        kept, pairs = found
        if kept.names != listing.names or kept.versions != listing.versions:
            return None
        with contextlib.suppress(KeyError):  # dropped by another thread meanwhile
            self._entries.move_to_end(key)
        return pairs

    def put(self, key: tuple[str, str], listing: LinkListing, pairs: Pairs) -> None:
        """Keep ``pairs`` for ``listing`` (only a trusted one; an untrusted one drops the key)."""
        self._drop(key)
        weight = _weight(listing, pairs)
        if not listing.trusted() or weight > self._items:
            return
        self._entries[key] = (listing, pairs)
        self._held += weight
        while len(self._entries) > self._size or self._held > self._items:
            try:
                oldest = next(iter(self._entries))
            except (StopIteration, RuntimeError):  # emptied, or changed by another thread
                break
            self._drop(oldest)

    def _drop(self, key: tuple[str, str]) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self._held -= _weight(*found)


def _weight(listing: LinkListing, pairs: Pairs) -> int:
    return len(listing.names) + len(listing.versions) + len(pairs)
