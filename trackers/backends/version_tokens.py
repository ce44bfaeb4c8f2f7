"""Version tokens of listed objects: what tells a reader that an object changed in place.

Only TorchX's link files are ever rewritten in place (our records never are), so a reader
that kept a copy of one checks its token in a fresh listing before trusting the copy.
"""

from __future__ import annotations

#: A listing's version token of one object (``RecordStoreTracker._list_versions``): text (an
#: S3 ETag; a remote filesystem's mtime and size) or, on the local disk, the stat fields
#: (inode, mtime, size), formatted (:func:`version_text`) only where a snapshot stores them:
#: a repeat link read compares 1000 of them and needs no text. ``None``: the store cannot
#: tell (the object is fetched every time).
Version = str | tuple[int, int, int] | None


def version_text(version: Version) -> str | None:
    """``version`` as the text a snapshot stores (``inode-mtime-size`` for stat fields)."""
    if version is None or isinstance(version, str):
        return version
    inode, mtime, size = version
    return f"{inode}-{mtime}-{size}"
