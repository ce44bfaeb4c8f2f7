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
file changed too recently for its stat to tell) is never kept. On a local disk the reader
keeps a stamp instead where one vouched for the answer (a snapshot's, or one it stored):
the next read compares its own stamp, with no listing by name and no token
(``trackers.backends.version_tokens.ListingStamp``).

The memo lives in one tracker object and is bounded (:data:`MEMO_RUNS` runs and
:data:`MEMO_ITEMS` names, tokens and pairs, least recently used dropped first); a new process
starts without it (``bench_reads.py`` times both).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass

from trackers.backends.version_tokens import ListingStamp, Version

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
        #: A listing, or a local stamp standing for one (:meth:`get_stamped`), and its pairs.
        self._entries: OrderedDict[tuple[str, str], tuple[LinkListing | ListingStamp, Pairs]] = (
            OrderedDict()
        )
        self._held = 0  # names, tokens and pairs kept (approximate under concurrent use)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._entries

    def unchanged_names(self, key: tuple[str, str], directory: Version) -> list[str] | None:
        """The kept ``links/`` names when ``directory`` (a fresh version of ``links/``) is the
        one they were listed with: no new listing is needed. ``None`` otherwise."""
        found = self._entries.get(key)
        if directory is None or found is None or not isinstance(found[0], LinkListing):
            return None
        return found[0].names if found[0].directory == directory else None

    def get(self, key: tuple[str, str], listing: LinkListing) -> Pairs | None:
        """The kept pairs when ``listing`` equals the one they were read with (names and every
        token), else ``None``."""
        found = self._entries.get(key)
        if found is None:
            return None
        kept, pairs = found
        if not isinstance(kept, LinkListing):
            return None
        if kept.names != listing.names or kept.versions != listing.versions:
            return None
        with contextlib.suppress(KeyError):  # dropped by another thread meanwhile
            self._entries.move_to_end(key)
        return pairs

    def holds_listing(self, key: tuple[str, str]) -> bool:
        """Whether a listing (not a stamp) is kept for ``key``."""
        found = self._entries.get(key)
        return found is not None and isinstance(found[0], LinkListing)

    def get_stamped(self, key: tuple[str, str], stamp: ListingStamp) -> Pairs | None:
        """The kept pairs when they were kept for ``stamp`` (a local disk's stamp of the same
        directories: equal only if nothing there changed), else ``None``."""
        found = self._entries.get(key)
        if found is None or found[0] != stamp:
            return None
        with contextlib.suppress(KeyError):
            self._entries.move_to_end(key)
        return found[1]

    def put(self, key: tuple[str, str], listing: LinkListing, pairs: Pairs) -> None:
        """Keep ``pairs`` for ``listing`` (only a trusted one; an untrusted one drops the key)."""
        self._drop(key)
        if listing.trusted():
            self._keep(key, listing, pairs)

    def put_stamped(self, key: tuple[str, str], stamp: ListingStamp, pairs: Pairs) -> None:
        """Keep ``pairs`` for ``stamp``."""
        self._drop(key)
        self._keep(key, stamp, pairs)

    def _keep(self, key: tuple[str, str], kept: LinkListing | ListingStamp, pairs: Pairs) -> None:
        weight = _weight(kept, pairs)
        if weight > self._items:
            return
        self._entries[key] = (kept, pairs)
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


def _weight(kept: LinkListing | ListingStamp, pairs: Pairs) -> int:
    if not isinstance(kept, LinkListing):
        return 1 + len(pairs)
    return len(kept.names) + len(kept.versions) + len(pairs)
