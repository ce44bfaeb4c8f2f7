"""Version tokens of listed objects: what tells a reader that an object changed in place.

Only TorchX's link files are ever rewritten in place (our records never are), so a reader
that kept a copy of one checks its token in a fresh listing before trusting the copy.
"""

from __future__ import annotations

#: A listing's version token of one object (``RecordStoreTracker._list_versions``): text (an
#: S3 ETag; a remote filesystem's mtime and size) or, on the local disk, the stat fields
#: (inode, mtime, size, status change time), formatted (:func:`version_text`) only where a
#: snapshot stores them: a repeat link read compares 1000 of them and needs no text. ``None``:
#: the store cannot tell (the object is fetched every time).
#:
#: Why the status change time (``st_ctime_ns``) too: a file rewritten in place to the same
#: length and given its old mtime back (``cp -p`` or ``rsync --inplace -t`` restoring an
#: older copy, ``touch -d``) keeps inode, size and mtime, but every such call sets the status
#: change time to "now", and nothing sets it back. The racy window still goes by the mtime
#: (see ``trackers.backends.fsspec.RACY_NS``), so what is left unseen is two such rewrites
#: within one tick of the status change clock around a read.
Version = str | tuple[int, int, int, int] | None


def version_text(version: Version) -> str | None:
    """``version`` as the text a snapshot stores (``inode-mtime-size-ctime`` for stat
    fields; snapshots written before the status change time was added hold
    ``inode-mtime-size``, which never equals it: such a token reads as changed, once)."""
    if version is None or isinstance(version, str):
        return version
    inode, mtime, size, ctime = version
    return f"{inode}-{mtime}-{size}-{ctime}"


#: A local directory pair's stamp (``FsspecTracker._listing_stamp``): the tokens of ``links/``
#: and of a TorchX directory (``"absent"`` when there is none), then over the TorchX directory's
#: files the newest status change (``st_ctime_ns``), the total size and the count. A directory's
#: token changes with every entry added or removed; a file rewritten in place, whatever it keeps
#: (even an mtime set back), gets a status change time of "now", which no clock can set back.
#: So a stamp taken when that newest change was older than the racy window (see
#: ``trackers.backends.fsspec.RACY_NS``) equals a later one only if nothing there changed since.
ListingStamp = tuple[str, str, int, int, int]

#: The token of a directory that does not exist (yet).
ABSENT = "absent"


def parse_stamp(value: object) -> ListingStamp | None:
    """A stamp as stored in JSON (a list); ``None`` where ``value`` is not one."""
    if not isinstance(value, list) or len(value) != 5:
        return None
    links, files, ctime, size, count = value
    if not (isinstance(links, str) and isinstance(files, str)):
        return None
    if not all(type(n) is int for n in (ctime, size, count)):
        return None
    return (links, files, ctime, size, count)
