"""The fsspec backend: a run store on any fsspec filesystem (local disk, ``memory://``, S3, GCS...).

The layout and its guarantees are :mod:`trackers.backends.record_store`'s (TorchX 0.7.0's
``FsspecTracker`` layout, so each reads the other's stores). This module adds the config forms
and the fsspec storage primitives: on a local disk a record is written to
``<root>/.tmp-<random hex>`` and renamed into place (a reader never sees half a record), and a
record kept in several places (a link) is one file with hard links to it; on object stores and
``memory://`` each is a PUT.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import posixpath
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import Any, TypeVar, cast
from urllib.parse import quote

import fsspec
from fsspec.implementations.local import LocalFileSystem

from trackers.backends.record_store import RecordStoreTracker
from trackers.backends.version_tokens import ABSENT, ListingStamp, Version, version_text
from trackers.config_options import check_known, load_mapping_config
from trackers.errors import TrackerConfigError
from trackers.helper_threads import leave_signals_to_main_thread

logger: logging.Logger = logging.getLogger(__name__)
T = TypeVar("T")

#: Where a job or the launcher keeps runs when the fsspec tracker is given no config.
DEFAULT_ROOT = "torchx-runs"

_TMP = ".tmp"


@dataclass(frozen=True)
class FsspecConfig:
    """Where the store is: an fsspec URL plus the options for its filesystem."""

    url: str
    storage_options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, config: str | None) -> FsspecConfig:
        """Read the three accepted forms (see the README, "fsspec tracker config").

        * an fsspec URL or path of the store root: ``file:///data/runs``, ``memory://runs``,
          ``s3://bucket/runs``, ``/data/runs``; empty or ``None`` means ``./torchx-runs``;
        * a mapping in YAML/JSON flow style: ``{url: s3://b/runs, storage_options: {anon: false}}``;
        * TorchX's properties file (``protocol=...``, ``root_path=...``, other keys become
          storage options), as a path or inline as a ``data:`` URL.
        """
        text = (config or "").strip()
        if not text:
            return cls(os.path.abspath(DEFAULT_ROOT))
        if text.startswith("{"):
            return cls._from_mapping(text)
        if text.startswith("data:") or _is_properties_file(text):
            return cls._from_properties(text)
        return cls(text)

    @classmethod
    def _from_mapping(cls, text: str) -> FsspecConfig:
        data = load_mapping_config(text, "{url: s3://bucket/runs, storage_options: {anon: false}}")
        if not isinstance(data.get("url"), str):
            raise TrackerConfigError(
                "a mapping config needs a string 'url' key, e.g. {url: file:///data/runs}"
            )
        check_known(data, ("url", "storage_options"))
        options = data.get("storage_options") or {}
        if not isinstance(options, dict):
            raise TrackerConfigError("'storage_options' must be a mapping")
        return cls(data["url"], options)

    @classmethod
    def _from_properties(cls, location: str) -> FsspecConfig:
        try:
            with fsspec.open(location, "rt", encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (OSError, ValueError) as e:
            raise TrackerConfigError(f"cannot read properties file {location!r}: {e}") from None
        props: dict[str, Any] = {}
        for line in lines:
            if line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if key.strip() and sep:
                _put_nested(props, key.strip(), value.strip())
        protocol, root = props.pop("protocol", None), props.pop("root_path", None)
        if not isinstance(protocol, str) or not isinstance(root, str):
            raise TrackerConfigError(
                "a TorchX properties config needs both 'protocol=' and 'root_path=' lines"
            )
        return cls(f"{protocol}://{root}" if protocol not in ("file", "local") else root, props)

    def to_properties_data_url(self) -> str | None:
        """This config as an inline TorchX properties file (``data:`` URL), if it can be one.

        TorchX's own ``fsspec`` factory reads such a file, so a job that uses TorchX's ``AppRun``
        opens the same store. ``None`` when TorchX's format cannot carry it (non-string storage
        options, or a line break in a value).
        """
        fs, root = _filesystem(self)
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        items = {"protocol": protocol, "root_path": root}
        for key, value in _flatten(self.storage_options).items():
            if not isinstance(value, str):
                return None
            items[key] = value
        if any("\n" in v or "\r" in v or v != v.strip() for v in items.values()):
            return None
        text = "".join(f"{k}={v}\n" for k, v in items.items())
        return "data:," + quote(text, safe="")


def _is_properties_file(text: str) -> bool:
    if text.endswith(".properties"):
        return True
    try:
        fs, path = fsspec.core.url_to_fs(text)
        return bool(fs.isfile(path))
    except Exception:  # an unknown protocol etc. is reported when the store is opened
        return False


def _put_nested(target: dict[str, Any], dotted: str, value: str) -> None:
    head, _, rest = dotted.partition(".")
    if not rest:
        target[head] = value
    else:
        _put_nested(target.setdefault(head, {}), rest, value)


def _flatten(options: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _filesystem(config: FsspecConfig) -> tuple[fsspec.AbstractFileSystem, str]:
    try:
        fs, root = fsspec.core.url_to_fs(config.url, **dict(config.storage_options))
    except ImportError as e:
        raise TrackerConfigError(
            f"store {config.url!r} needs a package that is not installed ({e}); "
            "for s3:// install s3fs, or use the boto3-based `s3` tracker"
        ) from None
    except ValueError as e:  # fsspec: "Protocol not known: xyz"
        raise TrackerConfigError(
            f"store {config.url!r}: {e}; expected an fsspec URL such as file:///data/runs, "
            "memory://runs or s3://bucket/runs"
        ) from None
    return fs, root.rstrip("/") or root


class FsspecTracker(RecordStoreTracker):
    """Runs kept as small immutable JSON records under a root on any fsspec filesystem.

    Construction does no I/O; the root is created by the first write (or :meth:`ensure_root`).
    """

    registry_name = "lineage_fsspec"

    def __init__(
        self, fs: fsspec.AbstractFileSystem, root: str, config: FsspecConfig | None = None
    ) -> None:
        self.fs = fs
        self.config = config
        self.root = root.rstrip("/") or root
        self._local = isinstance(fs, LocalFileSystem)
        self._made_dirs: set[str] = set()

    @classmethod
    def from_config(cls, config: FsspecConfig) -> FsspecTracker:
        """The tracker for a parsed config."""
        fs, root = _filesystem(config)
        return cls(fs, root, config)

    def job_config(self, torchx_compatible: bool = False) -> str:
        """A config string that opens this same store from another process (a job).

        With ``torchx_compatible``, TorchX's own ``fsspec`` factory must read it too, so it is an
        inline properties file (``data:`` URL) when TorchX's format can hold the settings.
        Otherwise it is the absolute store URL, or a JSON mapping when storage options are set.
        """
        config = self.config or FsspecConfig(self._url())
        if torchx_compatible:
            inline = config.to_properties_data_url()
            if inline is not None:
                return inline
            logger.warning(
                "%r: TorchX's properties format cannot hold this config (a storage option that "
                "is not a string, or a line break or edge whitespace in a value); jobs that use "
                "torchx.tracker's AppRun will not record into it (trackers.AppRun will)",
                self,
            )
        if config.storage_options:
            return json.dumps({"url": self._url(), "storage_options": dict(config.storage_options)})
        return self._url()

    def _url(self) -> str:
        if self._local:
            return self.root
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return f"{protocol}://{self.root}"

    def __repr__(self) -> str:
        return f"FsspecTracker({self._url()})"

    def ensure_root(self) -> None:
        """Create the root (TorchX's ``FsspecTracker`` refuses a root that does not exist)."""
        self._mkdir(self.root)

    # --- storage primitives ---
    def _mkdir(self, prefix: str) -> None:
        if prefix in self._made_dirs:
            return
        if self._local:
            # One mkdir per directory (os.makedirs would stat the parent first): the parent is
            # made first unless this object made it already.
            parent = posixpath.dirname(prefix)
            if parent != prefix and parent not in self._made_dirs:
                self._mkdir(parent)
            try:
                os.mkdir(prefix)
            except FileExistsError:
                if not os.path.isdir(prefix):
                    raise
        else:
            self.fs.makedirs(prefix, exist_ok=True)
        self._made_dirs.add(prefix)

    def _put(self, run_id: str, key: str, data: bytes) -> None:
        self._mkdir(posixpath.dirname(key))
        if self._local:
            tmp = self._write_temporary(data)
            try:
                os.replace(tmp, key)
            except BaseException:
                with contextlib.suppress(OSError):  # no half-written file left behind
                    os.unlink(tmp)
                raise
        else:  # object stores and memory: one PUT is atomic
            self.fs.pipe_file(key, data)

    def _write_temporary(self, data: bytes) -> str:
        """A new file at the root holding ``data``, to be renamed into place.

        At the root, never in a run or category directory: TorchX's readers open every file of
        a category, and its ``run_ids()`` takes only directories. One directory for every run
        also saves creating a temporary directory in each new run.
        """
        self._mkdir(self.root)
        tmp = f"{self.root}/{_TMP}-{os.urandom(16).hex()}"
        _write_new_file(tmp, data)
        return tmp

    def _create_if_absent(self, run_id: str, key: str, data: bytes) -> bool:
        """On a local disk one ``O_EXCL`` create in place (no temporary file, no rename): only
        TorchX's link files come here, and readers skip such a file while it is still empty
        (TorchX never writes one empty; see :meth:`RecordStoreTracker._read_link_files`)."""
        if not self._local:
            return False
        self._mkdir(posixpath.dirname(key))
        try:
            _write_new_file(key, data)
        except FileExistsError:
            return False
        return True

    def _put_copies(self, run_id: str, keys: Sequence[str], data: bytes) -> None:
        """On a local disk one file and hard links to it (creating a file costs several times
        what a link does); a copy wherever a link cannot be made (a file system without hard
        links, or a replay finding its record there: the copy replaces it, as :meth:`_put`)."""
        if not self._local or len(keys) < 2:
            super()._put_copies(run_id, keys, data)
            return
        for key in keys:
            self._mkdir(posixpath.dirname(key))
        tmp = self._write_temporary(data)
        try:
            for key in keys[:-1]:
                try:
                    os.link(tmp, key)
                except OSError:
                    self._put(run_id, key, data)
            os.replace(tmp, keys[-1])
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _side_by_side(self, calls: Sequence[Callable[[], T]]) -> list[T]:
        """On an asynchronous filesystem (s3fs, gcsfs, adlfs...) the reads run at once: each
        thread's call goes to fsspec's one event loop, so a run's listings and its snapshot
        wait one round trip. A local disk gains nothing from threads, and a synchronous
        remote filesystem (sftp, ftp...) may not be safe to call from several threads."""
        if self._local or len(calls) <= 1 or not getattr(self.fs, "async_impl", False):
            return super()._side_by_side(calls)
        with ThreadPoolExecutor(
            len(calls), thread_name_prefix="fsspec-read", initializer=leave_signals_to_main_thread
        ) as pool:
            futures = [pool.submit(call) for call in calls]
            return [f.result() for f in futures]

    def _get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        if self._local:
            return [self._read_local(key) for key in keys]
        if len(keys) == 1:
            try:
                return [self.fs.cat_file(keys[0])]
            except FileNotFoundError:
                return [None]
        # Remote filesystems fetch a list of paths concurrently.
        found = self.fs.cat(list(keys), on_error="omit")
        return [found.get(k) for k in keys]

    def _read_local(self, key: str) -> bytes | None:
        """A record file's bytes; ``None`` (and reported) when it is not a readable regular file.

        Checked before it is opened, so a FIFO, device or socket is never opened (a FIFO would
        block the reader forever), and again on the open descriptor.
        """
        try:
            mode = os.stat(key).st_mode
            if not stat.S_ISREG(mode):
                self._skip(key, f"a {_file_kind(mode)}, not a record file")
                return None
            fd = os.open(key, os.O_RDONLY | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    self._skip(key, "replaced by something other than a file while read")
                    return None
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as e:  # a symlink loop, no permission, an I/O error...
            self._skip(key, f"cannot be read ({e.strerror or e})")
            return None

    def _list_names(self, prefix: str) -> list[str]:
        if self._local:
            try:
                return os.listdir(prefix)
            except (FileNotFoundError, NotADirectoryError):
                return []
            except OSError as e:
                self._skip(prefix, f"cannot be listed ({e.strerror or e})")
                return []
        try:
            entries = self.fs.ls(prefix, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [posixpath.basename(str(e).rstrip("/")) for e in entries]

    def _delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            try:
                if self._local:
                    os.unlink(key)
                else:
                    self.fs.rm_file(key)
            except FileNotFoundError:
                pass

    @contextlib.contextmanager
    def _catalog_lock(self) -> Iterator[object]:
        """On a local disk an ``flock`` on ``<root>/.catalog.lock`` (renames cannot compare)."""
        if not self._local:
            yield None
            return
        self._mkdir(self.root)
        with open(posixpath.join(self.root, ".catalog.lock"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield f
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _list_versions(self, prefix: str) -> dict[str, Version]:
        if not self._local:
            return self._list_remote_versions(prefix)
        scan = _stat_entries(prefix, self._skip)
        return {} if scan is None else _scan_versions(scan)

    def _listing_stamp(
        self, links_dir: str, files_dir: str
    ) -> tuple[ListingStamp, Callable[[], dict[str, Version]]] | None:
        if not self._local:
            return None
        parts = _stamp_parts(links_dir, files_dir)
        if parts is None:
            return None
        stamp, _, scan = parts
        return stamp, partial(_scan_versions, scan)

    def _vouched_stamp(
        self, links_dir: str, files_dir: str, names: frozenset[str], files: Mapping[str, str]
    ) -> ListingStamp | None:
        # The stamp, taken where nothing it covers changed within the racy window before the
        # stats (so any later change gets a later time than it saw), of exactly the listing
        # the view was derived from: its links/ names and its files' tokens.
        if not self._local:
            return None
        now = time.time_ns()
        parts = _stamp_parts(links_dir, files_dir)
        if parts is None:
            return None
        stamp, times, scan = parts
        if any(_racy(t, now) for t in times):
            return None
        if {n for n in self._list_names(links_dir) if n[:1] != "."} != names:
            return None
        tokens = {n: version_text(_file_version(st, now)) for n, st in scan if st is not None}
        return stamp if tokens == files else None

    def _directory_version(self, prefix: str) -> Version:
        # A directory's mtime changes with every entry added or removed (the kernel's rule for
        # link, rename, unlink); inode and size as for files. Not trusted while racy.
        if not self._local:
            return None
        try:
            st = os.stat(prefix)
        except OSError:
            return None
        if not stat.S_ISDIR(st.st_mode) or _racy(st.st_mtime_ns, time.time_ns()):
            return None
        return _stat_version(st)

    def _list_remote_versions(self, prefix: str) -> dict[str, Version]:
        """Names with the token the listing itself carries (s3fs/gcsfs: the ETag; others: the
        modification time and size where given), so an unchanged TorchX link file is not fetched
        again; ``None`` where the listing gives neither."""
        try:
            entries = self.fs.ls(prefix, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return {}
        found: dict[str, Version] = {}
        now = time.time()
        for info in entries:
            name = posixpath.basename(str(info.get("name", "")).rstrip("/"))
            if not name or info.get("type") == "directory":
                continue
            etag = info.get("ETag") or info.get("etag") or info.get("md5Hash")
            mtime = info.get("mtime") or info.get("LastModified") or info.get("updated")
            if etag:
                found[name] = f"etag-{etag}"
            elif (
                mtime is not None and info.get("size") is not None and not _remote_racy(mtime, now)
            ):
                found[name] = f"mtime-{mtime}-{info['size']}"
            else:
                found[name] = None
        return found

    def _keeps_run_index(self) -> bool:
        # Locally decoding the names is more than half of run_ids(); remotely the listing's
        # round trips dominate and the index would be one more.
        return self._local

    def _list_dirs(self, prefix: str) -> list[str]:
        if self._local:
            # The directory entry's own type: no stat() per run, unlike fs.ls(detail=True).
            try:
                with os.scandir(prefix) as entries:
                    found = list(entries)
                try:
                    return [e.name for e in found if e.is_dir()]
                except OSError:  # a symlink loop: named and skipped, entry by entry
                    return [e.name for e in found if self._entry_is_dir(e)]
            except (FileNotFoundError, NotADirectoryError):
                return []
            except OSError as e:
                self._skip(prefix, f"cannot be listed ({e.strerror or e})")
                return []
        try:
            entries = self.fs.ls(prefix, detail=True)
        except FileNotFoundError:
            return []
        return [
            posixpath.basename(str(e["name"]).rstrip("/"))
            for e in entries
            if e.get("type") == "directory"
        ]

    def _entry_is_dir(self, entry: os.DirEntry[str]) -> bool:
        try:
            return entry.is_dir()
        except OSError as e:  # a symlink loop
            self._skip(entry.path, f"cannot be read ({e.strerror or e})")
            return False

    def _is_dir(self, prefix: str) -> bool:
        return os.path.isdir(prefix) if self._local else bool(self.fs.isdir(prefix))


def _write_new_file(path: str, data: bytes) -> None:
    """Create ``path`` (it must not exist) holding ``data``; removed again if the write fails.

    Raw descriptor calls: :func:`open` adds a buffer object and three system calls (fstat,
    ioctl, lseek) to each of the two files a synchronous ``add_source`` creates.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)


#: How recent a link file's modification time may be for its stat to stand for its contents.
#: A kernel without fine-grained timestamps (Linux before 6.13, most cluster nodes) stamps
#: files with a clock that ticks every 1-10 ms, and some filesystems (ext3, small-inode ext4,
#: FAT) keep whole seconds: TorchX rewriting a file in place (same inode) to a name of the
#: same length within one tick leaves inode, size and mtime as they were. A file changed
#: this recently gets no version token: it is read again every time, and no snapshot or
#: memo keeps its copy, until its timestamp can tell a later change apart (git's "racily
#: clean" entries, the same problem).
RACY_NS = 100_000_000
#: The window where timestamps are whole seconds (a nanosecond part of exactly zero).
RACY_COARSE_NS = 2_000_000_000


#: The same window for a remote filesystem's modification times (sftp, ftp, webdav...): most
#: keep whole seconds, and they come from the server's clock, not ours, hence wider.
REMOTE_RACY_S = 10.0


def _remote_racy(mtime: object, now: float) -> bool:
    """:func:`_racy` for a remote listing's ``mtime`` (seconds, a datetime or ISO text); a
    form it cannot read counts as racy: the file is fetched every time, never trusted."""
    if isinstance(mtime, datetime):
        stamped = mtime if mtime.tzinfo else mtime.replace(tzinfo=timezone.utc)
        seconds = stamped.timestamp()
    elif isinstance(mtime, int | float) and not isinstance(mtime, bool):
        seconds = float(mtime)
    elif isinstance(mtime, str):
        try:
            return _remote_racy(datetime.fromisoformat(mtime.replace("Z", "+00:00")), now)
        except ValueError:
            return True
    else:
        return True
    return now - seconds < REMOTE_RACY_S


def _stat_entries(
    prefix: str, report: Callable[[str, str], None] | None = None, *, strict: bool = False
) -> list[tuple[str, os.stat_result | None]] | None:
    """Each entry of the directory ``prefix`` with its ``lstat`` (``None`` for one that
    vanished meanwhile; ``strict``: then no listing at all); ``[]`` when there is no such
    directory, ``None`` (reported) when it cannot be listed. Listed through a descriptor of
    the directory, so each stat resolves one name instead of the whole path (a third of the
    listing's time for a run's 1000 files)."""
    try:
        fd = os.open(prefix, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as e:
        if report is not None:
            report(prefix, f"cannot be listed ({e.strerror or e})")
        return None
    try:
        with os.scandir(fd) as entries:
            if strict:
                return [(entry.name, entry.stat(follow_symlinks=False)) for entry in entries]
            return [(entry.name, _lstat(entry)) for entry in entries]
    except OSError as e:
        if report is not None:
            report(prefix, f"cannot be listed ({e.strerror or e})")
        return None
    finally:
        os.close(fd)


def _scan_versions(scan: list[tuple[str, os.stat_result | None]]) -> dict[str, Version]:
    """The version tokens of a directory's scan (:func:`_stat_entries`), as of now."""
    now = time.time_ns()
    return {name: None if st is None else _file_version(st, now) for name, st in scan}


def _lstat(entry: os.DirEntry[str]) -> os.stat_result | None:
    try:
        return entry.stat(follow_symlinks=False)
    except OSError:
        return None


def _stamp_parts(
    links_dir: str, files_dir: str
) -> tuple[ListingStamp, list[int], list[tuple[str, os.stat_result | None]]] | None:
    """A local :data:`ListingStamp` of ``links_dir`` and ``files_dir``, the times it rests on
    (the directories' mtimes, the files' newest status change) and the files' scan; ``None``
    where it cannot be taken. The directories are stat'ed first, then the files: an entry
    added or removed after the first stat shows in the scan (a status change time, the count),
    one before it in the directory's token."""
    times: list[int] = []
    tokens: list[str] = []
    for directory in (links_dir, files_dir):
        try:
            st = os.stat(directory)
        except FileNotFoundError:
            tokens.append(ABSENT)
            continue
        except OSError:
            return None
        if not stat.S_ISDIR(st.st_mode):
            return None
        tokens.append(str(version_text(_stat_version(st))))
        times.append(st.st_mtime_ns)
    scan = _stat_entries(files_dir, strict=True) if tokens[1] != ABSENT else []
    if scan is None:
        return None
    stats = cast(list[os.stat_result], [st for _, st in scan])  # strict: none is None
    newest = max([st.st_ctime_ns for st in stats], default=0)
    times.append(newest)
    size = sum([st.st_size for st in stats])
    return (tokens[0], tokens[1], newest, size, len(stats)), times, scan


def _file_version(st: os.stat_result, now_ns: int) -> Version:
    """A listed file's token (:func:`_stat_version`; our rewrites are renames, a new inode;
    TorchX's change the size, the mtime, and always the status change time); ``None`` for one
    changed within the racy window or that is no regular file."""
    if not stat.S_ISREG(st.st_mode):
        return None
    mtime = st.st_mtime_ns
    if mtime >= now_ns - RACY_COARSE_NS and _racy(mtime, now_ns):
        return None
    return _stat_version(st)


def _stat_version(st: os.stat_result) -> tuple[int, int, int, int]:
    """The local token of a file or directory: inode, mtime, size and status change time
    (see :data:`trackers.backends.version_tokens.Version`)."""
    return (st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns)


def _racy(mtime_ns: int, now_ns: int) -> bool:
    """Whether a file or directory stamped ``mtime_ns`` may still change without its stat
    changing (see :data:`RACY_NS`)."""
    window = RACY_COARSE_NS if mtime_ns % 1_000_000_000 == 0 else RACY_NS
    return now_ns - mtime_ns < window


def _file_kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ]
    return next((name for test, name in kinds if test(mode)), "special file")


def create_tracker(config: str | None) -> FsspecTracker:
    """Entry-point factory: ``config`` is a store URL, a mapping, or a TorchX properties file."""
    return FsspecTracker.from_config(FsspecConfig.parse(config))
