"""Run-id encoding and record naming shared by the key/value store backends.

Run directories are named ``base32(run_id)`` exactly as TorchX's ``FsspecTracker`` names them, so
both read each other's stores. Record files are named ``<time_ns:020d>-<uuid4 hex>``: unique across
processes and hosts (TorchX's bare ``time.time_ns()`` names can collide between replicas) and
sorted by time. TorchX's names (digits only) sort into the same order through
:func:`record_sort_key`.

Replays must not duplicate: the delivery worker (:mod:`trackers.delivery`) gives each write
operation an id when it is made (a record name) and delivers it inside
:func:`deterministic_record_names`, so the records one operation writes get the same names every
time it is delivered, and a second delivery overwrites instead of adding.
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import time
import uuid
from base64 import b32decode, b32encode
from collections.abc import Iterator
from contextvars import ContextVar

#: The operation being delivered, and how many record names it has taken so far.
_operation: ContextVar[tuple[str, list[int]] | None] = ContextVar("_operation", default=None)


def encode_run_id(run_id: str) -> str:
    """``local_cwd://torchx/a-1`` -> a base32 name that is safe as a file or object key."""
    if not run_id:
        raise ValueError("run id must be a non-empty string")
    return b32encode(run_id.encode("utf-8")).decode("ascii")


def decode_run_id(name: str) -> str | None:
    """Inverse of :func:`encode_run_id`; ``None`` for names that are not encoded run ids."""
    try:
        return b32decode(name.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        return None


def record_name() -> str:
    """A new record name: time-ordered, and unique without any coordination between writers.

    Inside :func:`deterministic_record_names` the names derive from the operation's id instead.
    """
    current = _operation.get()
    if current is None:
        return f"{time.time_ns():020d}-{uuid.uuid4().hex}"
    op_id, taken = current
    n = taken[0]
    taken[0] += 1
    if n == 0:
        return op_id
    head = op_id.split("-", 1)[0]
    return f"{head}-{hashlib.sha256(f'{op_id}/{n}'.encode()).hexdigest()[:32]}"


def record_time() -> float:
    """Seconds since the epoch: the operation's own time while one is delivered, else now."""
    current = _operation.get()
    if current is not None:
        head = current[0].split("-", 1)[0]
        if head.isdigit():
            return int(head) / 1e9
    return time.time()


@contextlib.contextmanager
def deterministic_record_names(op_id: str) -> Iterator[None]:
    """Within the block, :func:`record_name` yields ``op_id``, then names derived from it."""
    token = _operation.set((op_id, [0]))
    try:
        yield
    finally:
        _operation.reset(token)


def record_sort_key(name: str) -> tuple[int, str]:
    """Order records by their time prefix (ours are zero-padded, TorchX's are not)."""
    head = name.split("-", 1)[0]
    return (int(head) if head.isdigit() else 0, name)
