"""Run-id encoding and record naming shared by the key/value store backends.

Run directories are named ``base32(run_id)`` exactly as TorchX's ``FsspecTracker`` names them, so
both read each other's stores. Record files are named ``<time_ns:020d>-<uuid4 hex>``: unique across
processes and hosts (TorchX's bare ``time.time_ns()`` names can collide between replicas) and
sorted by time. TorchX's names (digits only) sort into the same order through
:func:`record_sort_key`.
"""

from __future__ import annotations

import binascii
import time
import uuid
from base64 import b32decode, b32encode


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
    """A new record name: time-ordered, and unique without any coordination between writers."""
    return f"{time.time_ns():020d}-{uuid.uuid4().hex}"


def record_sort_key(name: str) -> tuple[int, str]:
    """Order records by their time prefix (ours are zero-padded, TorchX's are not)."""
    head = name.split("-", 1)[0]
    return (int(head) if head.isdigit() else 0, name)
