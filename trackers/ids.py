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

Long run ids. A file name holds at most 255 bytes, and base32 takes 8 characters per 5 bytes, so
TorchX's form fits only ids of up to :data:`MAX_PATH_ID_BYTES` (155) bytes; TorchX could never
write a longer one. Such an id is kept in paths in a *shortened* form: its first bytes (cut on a
character boundary), ``~~sha256-`` and 32 hex digits of the SHA-256 of the whole id, base32-encoded
like any id (at most 248 characters, so TorchX's own ``run_ids()`` still lists it, shortened).
The store keeps the whole id in ``<run>/.run_id`` and reads it back; ids up to 155 bytes keep
exactly TorchX's name.

Ids are encoded to bytes with ``surrogateescape``: an id holding bytes that are not UTF-8 (what
``os.environ`` gives for them) is stored as those bytes and decoded back to the same string.
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import os
import re
import string
import time
from base64 import b32decode, b32encode
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from functools import cache, lru_cache
from itertools import accumulate, repeat
from operator import add, sub

#: The operation being delivered, and how many record names it has taken so far.
_operation: ContextVar[tuple[str, list[int]] | None] = ContextVar("_operation", default=None)


#: The longest id (in bytes) whose base32 form fits a 255-byte file name (TorchX's limit too).
MAX_PATH_ID_BYTES = 155
#: Separates the kept head of a shortened id from the digest of the whole id.
LONG_ID_MARK = "~~sha256-"
_DIGEST_CHARS = 32
_LONG_ID = re.compile(re.escape(LONG_ID_MARK) + f"([0-9a-f]{{{_DIGEST_CHARS}}})$")


def id_bytes(run_id: str) -> bytes:
    """The bytes of a run id: UTF-8, with undecodable bytes (``surrogateescape``) restored."""
    try:
        return run_id.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is not an escaped byte
        return run_id.encode("utf-8", "surrogatepass")


def id_digest(run_id: str) -> str:
    """The digest a shortened path id ends with."""
    return hashlib.sha256(id_bytes(run_id)).hexdigest()[:_DIGEST_CHARS]


def path_id(run_id: str) -> str:
    """The id as it appears (base32-encoded) in paths: itself when short enough for TorchX's
    form, else its head plus ``~~sha256-<digest of the whole id>`` (at most 155 bytes)."""
    if not run_id:
        raise ValueError("run id must be a non-empty string")
    raw = id_bytes(run_id)
    if len(raw) <= MAX_PATH_ID_BYTES:
        return run_id
    cut = MAX_PATH_ID_BYTES - len(LONG_ID_MARK) - _DIGEST_CHARS
    while cut > 0 and raw[cut] & 0xC0 == 0x80:  # not inside a UTF-8 character
        cut -= 1
    head = raw[:cut].decode("utf-8", "surrogateescape")
    return f"{head}{LONG_ID_MARK}{id_digest(run_id)}"


def shortened_digest(name_id: str) -> str | None:
    """For a path id in the shortened form, the digest of the whole id it stands for."""
    if LONG_ID_MARK not in name_id:  # most ids: one substring search (a listing asks each)
        return None
    if len(id_bytes(name_id)) > MAX_PATH_ID_BYTES:
        return None
    found = _LONG_ID.search(name_id)
    return found.group(1) if found else None


@lru_cache(maxsize=65536)
def encode_run_id(run_id: str) -> str:
    """``local_cwd://torchx/a-1`` -> a base32 name that is safe as a file or object key
    (TorchX's name for ids up to 155 bytes; see the module docstring for longer ones)."""
    return b32encode(id_bytes(path_id(run_id))).decode("ascii")


#: ASCII -> the digit ``int(..., 32)`` reads for a base32 character; every other ASCII character
#: -> ``z``, which ``int`` refuses (so one C call both checks and decodes a whole name).
_B32_DIGITS = {i: "z" for i in range(128)} | {
    ord(c): d
    for c, d in zip(
        string.ascii_uppercase + "234567", string.digits + string.ascii_lowercase[:22], strict=True
    )
}
#: Padding ('=' count) of a valid base32 group -> bytes short of the group's 5.
_B32_PAD_BYTES = {0: 0, 1: 1, 3: 2, 4: 3, 6: 4}


def _b32decode(name: str) -> bytes:
    """``base64.b32decode`` for a string, several times as fast on valid names (a store listing
    decodes every run's name; :mod:`base64` goes 8 characters at a time in Python). Anything
    that is not plainly valid goes to :mod:`base64`, which raises as it always did."""
    body = name.rstrip("=")
    short = _B32_PAD_BYTES.get(len(name) - len(body))
    if len(name) % 8 or short is None or not name.isascii():
        return b32decode(name.encode("ascii"))
    size = len(name) // 8 * 5 - short
    if not size:
        return b""
    try:
        value = int(body.translate(_B32_DIGITS), 32)
    except ValueError:  # a character outside the alphabet
        return b32decode(name.encode("ascii"))
    # the bits past the last whole byte are padding; b32decode ignores them too
    return (value >> (len(body) * 5 - size * 8)).to_bytes(size, "big")


#: :data:`_B32_DIGITS` as a bytes table for a whole listing at once: padding reads as zero bits.
_B32_BATCH_DIGITS = bytes(
    ord("0") if i == ord("=") else ord(_B32_DIGITS[i]) if i < 128 else ord("z") for i in range(256)
)
#: Padding followed by anything but padding or the end of a name: padding in the middle.
_INNER_PADDING = re.compile("=[^=/]")
#: Name length -> the bytes its 8-character groups decode to (a length not a multiple of 8 has
#: no entry: such a name is not base32).
_B32_GROUP_BYTES = {n: n // 8 * 5 for n in range(8, 4096, 8)}


def decode_run_ids(names: Sequence[str]) -> list[str | None]:
    """``[decode_run_id(n) for n in names]``, for a whole listing of run names at once.

    A store's ``run_ids()`` decodes every run's name: one at a time that is most of the call
    (about 1.3 µs a name here). Names that are all plainly valid base32 are decoded as one
    string - one ``int(..., 32)`` over the joined names, each name taking whole 5-byte groups -
    and cut apart by their lengths, every step a C loop. A listing with any name that is not
    plainly valid (an invalid character, inner padding, a bad length) goes name by name, which
    refuses exactly what :mod:`base64` refuses.
    """
    if not names:
        return []
    joined = "".join(names)
    if not joined.isascii() or _INNER_PADDING.search("/".join(names)):
        return [decode_run_id(n) for n in names]
    try:
        groups = list(map(_B32_GROUP_BYTES.__getitem__, map(len, names)))
        padding = map(_B32_PAD_BYTES.__getitem__, map(str.count, names, repeat("=")))
        sizes = list(map(sub, groups, padding))
        raw = int(joined.encode("ascii").translate(_B32_BATCH_DIGITS), 32).to_bytes(
            len(joined) // 8 * 5, "big"
        )
    except (KeyError, ValueError):  # a bad length or padding, a character outside the alphabet
        return [decode_run_id(n) for n in names]
    starts = list(accumulate(groups, initial=0))[:-1]
    spans = map(slice, starts, map(add, starts, sizes))
    if raw.isascii():  # ids are nearly always ASCII: one decode, then str slices
        return list(map(raw.decode("ascii").__getitem__, spans))
    return [raw[span].decode("utf-8", "surrogateescape") for span in spans]


@lru_cache(maxsize=65536)
def decode_run_id(name: str) -> str | None:
    """Inverse of :func:`encode_run_id` (a shortened id comes back shortened); ``None`` for names
    that are not encoded run ids."""
    try:
        raw = _b32decode(name)
    except (binascii.Error, UnicodeError, ValueError):
        return None
    if not raw:
        return None
    return raw.decode("utf-8", "surrogateescape")


#: What splits a line for TorchX's reader (bytes ``readlines``) or ours (``str.splitlines``).
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def check_artifact_name(name: str | None) -> None:
    """Raise ``ValueError`` for a link's artifact name that TorchX's ``sources/`` file (artifact
    names one a line, each stripped) cannot hold as it is: it would read back as other names."""
    if name is None or name == "":
        return
    if not isinstance(name, str):
        raise ValueError(f"artifact name {name!r}: expected a string or None")
    problem = None
    if any(c in _LINE_BREAKS for c in name):
        problem = "holds a line break"
    elif name != name.strip() or name != name.strip(" \t\n\r\x0b\x0c"):
        problem = "starts or ends with whitespace"
    else:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            problem = "holds bytes that are not UTF-8"
    if problem:
        raise ValueError(
            f"artifact name {name!r} {problem}; refused, since TorchX stores link names one a "
            "line, stripped (it would read back as other names). Expected a name without line "
            "breaks or edge whitespace"
        )


def record_name() -> str:
    """A new record name: time-ordered, and unique without any coordination between writers.

    Inside :func:`deterministic_record_names` the names derive from the operation's id instead.
    """
    current = _operation.get()
    if current is None:
        return f"{time.time_ns():020d}-{os.urandom(16).hex()}"  # uuid4's randomness, no object
    op_id, taken = current
    n = taken[0]
    taken[0] += 1
    if n == 0:
        return op_id
    head = op_id.split("-", 1)[0]
    return f"{head}-{hashlib.sha256(f'{op_id}/{n}'.encode()).hexdigest()[:32]}"


def operation_id() -> str:
    """The id of the operation being delivered (without taking a record name from it), else a
    new :func:`record_name`: a backend that keeps a journal names each entry by it."""
    current = _operation.get()
    return current[0] if current is not None else record_name()


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


#: Schedulers TorchX ships (``SCHEME`` of ``SCHEME://SESSION/APP_ID``), besides the registered.
BUILTIN_SCHEDULERS = frozenset(
    {
        "local_cwd",
        "local_docker",
        "slurm",
        "kubernetes",
        "kubernetes_mpi",
        "aws_batch",
        "aws_sagemaker",
        "gcp_batch",
        "lsf",
        "ray",
    }
)
#: A TorchX run id (app handle): ``SCHEDULER://SESSION/APP_ID``.
RUN_ID_PATTERN = re.compile(
    r"^(?P<scheduler>[A-Za-z_][A-Za-z0-9_]*)://(?P<session>[^/]*)/(?P<app>.+)$", re.DOTALL
)


@cache
def _scheduler_names() -> frozenset[str]:
    try:
        from torchx.schedulers import get_scheduler_factories

        return BUILTIN_SCHEDULERS | frozenset(get_scheduler_factories())
    except Exception:  # a broken scheduler plugin must not stop a write
        return BUILTIN_SCHEDULERS


def is_torchx_run_id(value: str) -> bool:
    """Whether ``value`` reads as a TorchX run id: ``SCHEDULER://SESSION/APP_ID`` with a scheduler
    TorchX knows (``s3://bucket/key`` is a dataset URL, not a run)."""
    found = RUN_ID_PATTERN.match(value)
    return found is not None and found["scheduler"] in _scheduler_names()
