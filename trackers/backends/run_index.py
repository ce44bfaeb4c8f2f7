"""The run index: a store's root listing with the run ids decoded from it, kept in one file.

``<root>/.run-index`` (a file at the root, never a directory: TorchX's ``run_ids()`` takes
every directory there as a run) holds::

    {"version": 1, "listing": "<name>/<name>/...", "run_ids": [run ids, sorted]}

Why: ``run_ids()`` over 10,000 runs is a listing (about 4 ms locally) and decoding 10,000
base32 names and sorting the ids (about 6 ms). A long-lived reader keeps the decoded listing in
memory; every ``torchx tracker list`` is a new process, so the index keeps it on disk for the
next one. It is a cache of a pure function of the listing: a reader uses it only when its
``listing`` equals the directory names it has just listed, name for name and in order, so a
run added, removed or renamed since (or a directory listed in another order) makes it unused,
never wrong. It is rewritten whole (an atomic replace) by the reader that found it unusable,
so concurrent readers and writers need no coordination. An unreadable index is ignored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

RUN_INDEX = ".run-index"
RUN_INDEX_VERSION = 1


def encode_run_index(names: Sequence[str], run_ids: Sequence[str]) -> bytes:
    """The index of a listing (``names``: directory names, in listing order) and its ids."""
    listing = "/".join(names)  # "/" is the one character no name holds
    return json.dumps(
        {"version": RUN_INDEX_VERSION, "listing": listing, "run_ids": list(run_ids)},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8", "surrogatepass")


def parse_run_index(data: bytes | None, names: Sequence[str]) -> list[str] | None:
    """The sorted run ids the index holds for exactly ``names``; ``None`` when it is absent,
    unreadable, of another version or made for another listing."""
    if not data:
        return None
    try:
        index = json.loads(data.decode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError):
        return None
    if not isinstance(index, dict) or index.get("version") != RUN_INDEX_VERSION:
        return None
    listing, run_ids = index.get("listing"), index.get("run_ids")
    if not isinstance(listing, str) or not isinstance(run_ids, list):
        return None
    if listing != "/".join(names):
        return None
    try:
        "".join(run_ids)  # every entry a string (one C loop, not an isinstance per id)
    except TypeError:
        return None
    return run_ids
