"""The spool: per-run, per-tracker segment files of the writes a backend has not confirmed yet.

A segment is appended to by one process, which holds its ``flock`` while it lives, and starts
with a header naming its tracker, so a restarted job or ``torchx tracker sync`` can adopt it and
deliver the rest anywhere. ``.acked`` counts what is delivered. Layout, format and guarantees:
``docs/delivery.md``; the lines themselves are :class:`trackers.operations.Operation`.
"""

from __future__ import annotations

import codecs
import fcntl
import hashlib
import json
import logging
import os
import socket
import stat
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from trackers.env import ENV_TORCHX_TRACKER_SPOOL_DIR
from trackers.ids import decode_run_id, encode_run_id
from trackers.operations import Operation

# Codecs are imported on first use. A delivery thread that is importing one (`encodings.ascii`
# for the .acked files) when the process forks leaves that import's lock held in the child,
# whose first use of the codec then fails ("unknown encoding: ascii") or hangs: seen in forked
# Pool jobs. Looked up here, at import, they are loaded before any fork.
for _codec in ("ascii", "utf-8"):
    codecs.lookup(_codec)

logger: logging.Logger = logging.getLogger(__name__)

SPOOL_FORMAT = 1
ACK_INTERVAL_S = 0.5
SEGMENT_SUFFIX = ".jsonl"
ACKED_SUFFIX = ".acked"
#: Values of TORCHX_TRACKER_SPOOL_DIR that turn the spool off (operations kept in memory only).
SPOOL_OFF = frozenset({"off", "none", "0", "false"})


def spool_root(environ: Mapping[str, str] | None = None) -> Path | None:
    """The spool directory from ``TORCHX_TRACKER_SPOOL_DIR``; ``None`` when it is turned off."""
    env = os.environ if environ is None else environ
    raw = env.get(ENV_TORCHX_TRACKER_SPOOL_DIR, "").strip()
    if raw.lower() in SPOOL_OFF:
        return None
    if raw:
        return Path(raw).expanduser().absolute()
    cache = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache).absolute() / "torchx-lineage" / "spool"


def tracker_key(name: str, config: str | None) -> str:
    """The directory of one tracker (name and config) inside a run's spool directory."""
    digest = hashlib.sha256(f"{name}\0{config if config is not None else ''}".encode()).hexdigest()
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:40] or "tracker"
    return f"{safe}-{digest[:12]}"


def _lock(handle: IO[bytes], block: bool) -> bool:
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
        return True
    except BlockingIOError:
        return False


def _write_acked(segment: Path, count: int) -> None:
    acked = segment.with_suffix(ACKED_SUFFIX)
    tmp = acked.with_name(f".{acked.name}.{uuid.uuid4().hex}")
    tmp.write_text(str(count), encoding="ascii")
    os.replace(tmp, acked)


def _read_acked(segment: Path) -> int:
    try:
        return max(0, int(segment.with_suffix(ACKED_SUFFIX).read_text(encoding="ascii")))
    except (OSError, ValueError):
        return 0


def _remove(segment: Path) -> None:
    for path in (segment, segment.with_suffix(ACKED_SUFFIX)):
        path.unlink(missing_ok=True)
    for directory in (segment.parent, segment.parent.parent):
        try:
            directory.rmdir()  # only when empty
        except OSError:
            break


class Segment:
    """One spool file: written by this process (:meth:`create`) or adopted from a finished one
    (:meth:`adopt`); in both cases this process holds its lock until :meth:`release`."""

    def __init__(self, path: Path, handle: IO[bytes], header: Mapping[str, Any]) -> None:
        self.path = path
        self.header = dict(header)
        self._handle = handle  # holds the lock; appends go through it
        self._reader: IO[bytes] | None = None
        self._read_index = 0  # operations read so far through _reader
        self.acked = _read_acked(path)
        self._acked_written = self.acked
        self._acked_at = 0.0
        self.count = 0  # operations in the file (known for own segments and after a scan)

    @staticmethod
    def create(root: Path, run_id: str, name: str, config: str | None) -> Segment:
        """A new segment for ``run_id`` and tracker ``name``/``config``, locked by this process."""
        directory = root / encode_run_id(run_id) / tracker_key(name, config)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = directory / f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        path = path.with_suffix(SEGMENT_SUFFIX)
        # Made under a hidden name and renamed once locked: no other process (a parent's sweep
        # for ended workers, sync) can take an unlocked, header-less segment for an orphan.
        hidden = path.with_name(f".{path.name}.new")
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        handle = os.fdopen(fd, "ab", buffering=0)
        _lock(handle, block=True)
        header = {
            "spool": SPOOL_FORMAT,
            "run_id": run_id,
            "tracker": name,
            "config": config,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        handle.write(json.dumps(header).encode("utf-8") + b"\n")
        os.rename(hidden, path)
        return Segment(path, handle, header)

    @staticmethod
    def adopt(path: Path) -> Segment | None:
        """Lock a segment whose writer is gone; ``None`` if a live process holds it (or it is
        not a readable segment, which is logged)."""
        try:
            handle = open(path, "rb+", buffering=0)  # noqa: SIM115 - kept open to hold the lock
        except FileNotFoundError:
            return None
        if not _lock(handle, block=False) or os.fstat(handle.fileno()).st_nlink == 0:
            handle.close()  # held by a live writer, or deleted by it once delivered
            return None
        try:
            header = json.loads(handle.readline())
            if not isinstance(header, dict) or header.get("spool") != SPOOL_FORMAT:
                raise ValueError("no spool header")
        except ValueError as e:
            logger.error("spool: %s is not a spool segment (%s); left as it is", path, e)
            handle.close()
            return None
        segment = Segment(path, handle, header)
        segment.count = sum(1 for _ in segment._lines())
        return segment

    @property
    def run_id(self) -> str:
        return str(self.header.get("run_id"))

    @property
    def remaining(self) -> int:
        return max(0, self.count - self.acked)

    def append(self, line: bytes) -> int:
        """Append one encoded operation; returns its index in the segment."""
        self._handle.write(line)
        self.count += 1
        return self.count - 1

    def _lines(self) -> Iterator[bytes]:
        with open(self.path, "rb") as f:
            f.readline()  # header
            for line in f:
                if line.endswith(b"\n"):  # a torn last line (the writer died mid-write) is skipped
                    yield line

    def read(self, index: int) -> Operation:
        """Operation ``index`` (reads are expected in increasing order, as delivery goes)."""
        if self._reader is None or index < self._read_index:
            if self._reader is not None:
                self._reader.close()
            self._reader = open(self.path, "rb")  # noqa: SIM115 - closed in release()
            self._reader.readline()
            self._read_index = 0
        while True:
            line = self._reader.readline()
            if not line:
                raise ValueError(f"{self.path}: operation {index} is missing")
            self._read_index += 1
            if self._read_index - 1 == index:
                return Operation.decode(line)

    def mark_delivered(self, count: int, *, force: bool = False) -> None:
        """Record that the first ``count`` operations are delivered (persisted now and then)."""
        self.acked = max(self.acked, count)
        now = time.monotonic()
        if self.acked != self._acked_written and (force or now - self._acked_at >= ACK_INTERVAL_S):
            try:
                _write_acked(self.path, self.acked)
                self._acked_written, self._acked_at = self.acked, now
            except OSError as e:  # only costs a repeat delivery later
                logger.debug("spool: could not record progress of %s: %s", self.path, e)

    def forget(self) -> None:
        """Close this process's descriptors without touching the files (a forked child's
        copies of its parent's segment: the lock stays with the parent's descriptor)."""
        for handle in (self._reader, self._handle):
            if handle is not None:
                handle.close()
        self._reader = None

    def release(self) -> bool:
        """Delete the segment if everything is delivered, else record progress; unlock it.

        Returns whether it was deleted.
        """
        done = self.acked >= self.count
        if self._reader is not None:
            self._reader.close()
        try:
            if done:
                _remove(self.path)
            else:
                self.mark_delivered(self.acked, force=True)
        finally:
            self._handle.close()  # closing the descriptor drops the lock
        return done


def segment_paths(root: Path, run_id: str | None = None) -> list[Path]:
    """Spool segments under ``root`` (of one run, or all), oldest first within each tracker."""
    if not root.is_dir():
        return []
    runs = [root / encode_run_id(run_id)] if run_id is not None else sorted(root.iterdir())
    found: list[Path] = []
    for run_dir in runs:
        if not run_dir.is_dir() or decode_run_id(run_dir.name) is None:
            continue
        for tracker_dir in sorted(run_dir.iterdir()):
            if tracker_dir.is_dir():
                found.extend(sorted(tracker_dir.glob("*" + SEGMENT_SUFFIX)))
    return found


def segment_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a readable spool segment, or ``None`` when it looks like one
    (a regular file starting with a spool header). Never opens anything but a regular file."""
    try:
        mode = os.lstat(path).st_mode
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    try:
        with open(path, "rb") as f:
            header = json.loads(f.readline(1 << 20))
    except (OSError, ValueError) as e:
        return f"no spool header ({type(e).__name__}: {e})"
    if not isinstance(header, dict) or header.get("spool") != SPOOL_FORMAT:
        return "no spool header"
    return None


def leftover_segments(
    root: Path, run_id: str, name: str, config: str | None, *, exclude: Path | None = None
) -> list[Segment]:
    """Adoptable segments of ``run_id`` for one tracker, oldest first (locked by the caller)."""
    directory = root / encode_run_id(run_id) / tracker_key(name, config)
    adopted = []
    for path in sorted(directory.glob("*" + SEGMENT_SUFFIX)) if directory.is_dir() else []:
        if path != exclude and path.is_file():  # never a directory or FIFO named *.jsonl
            segment = Segment.adopt(path)
            if segment is not None:
                adopted.append(segment)
    return adopted
