"""The fsspec backend: a run store on any fsspec filesystem (local disk, ``memory://``, S3, GCS...).

Layout (the same as TorchX 0.7.0's ``FsspecTracker``, so each reads the other's stores)::

    <root>/<base32(run_id)>/metadata/<record>      {"metadata": {...}}
    <root>/<base32(run_id)>/artifacts/<record>     {"name": ..., "path": ..., "metadata": ...}
    <root>/<base32(run_id)>/sources/<base32(src)>  artifact names, one a line (TorchX's format)
    <root>/<base32(run_id)>/descendants/<b32(c)>   artifact names, one a line (TorchX's format)
    <root>/<base32(run_id)>/links/<record>         {"kind": "source"|"descendant", ...}  (ours)

What differs from TorchX's class, and why:

* Records are named ``<time_ns:020d>-<uuid4>`` (unique across replicas and hosts) and read back
  sorted by that name, so the last write wins (TorchX merges in directory-listing order).
* Records are written atomically: on a local disk to a temporary file in ``<run>/.tmp`` and
  renamed into place; on object stores with a single PUT. A reader never sees half a record.
* ``add_source`` writes an immutable link record on both sides (child: ``source``, parent:
  ``descendant``) so children and lineage can be found; TorchX's ``sources/`` file is kept up
  to date too, so TorchX's ``AppRun.sources()`` and ``run_ids(parent_run_id=...)`` see the link.
* Every run directory we create gets an empty ``descendants/``: TorchX's ``add_source`` writes the
  reverse link into a parent only when that directory already exists (and nothing in TorchX
  creates it), so this makes links added by TorchX's own ``AppRun`` findable from the parent.
* Each record carries ``origin`` (host, pid, rank, restart count): replicas share a run id, and
  their records stay distinguishable. TorchX's reader ignores the extra key.
* The run id only ever appears base32-encoded in a path, and record names are generated, so no
  input can make a write land outside the store's root.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import fsspec
import yaml
from fsspec.implementations.local import LocalFileSystem
from torchx.tracker.api import TrackerArtifact, TrackerSource

from trackers._ids import decode_run_id, encode_run_id, record_name, record_sort_key
from trackers.api import LineageTracker
from trackers.errors import TrackerConfigError
from trackers.origin import record_origin
from trackers.types import LinkedRun

logger: logging.Logger = logging.getLogger(__name__)

#: Where a job or the launcher keeps runs when the fsspec tracker is given no config.
DEFAULT_ROOT = "torchx-runs"

_METADATA = "metadata"
_ARTIFACTS = "artifacts"
_SOURCES = "sources"
_DESCENDANTS = "descendants"
_LINKS = "links"
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
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise TrackerConfigError(
                f"not a valid YAML/JSON mapping ({e}); expected e.g. "
                "{url: s3://bucket/runs, storage_options: {anon: false}}"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            raise TrackerConfigError(
                "a mapping config needs a string 'url' key, e.g. {url: file:///data/runs}"
            )
        unknown = set(data) - {"url", "storage_options"}
        if unknown:
            raise TrackerConfigError(
                f"unknown key(s) {sorted(unknown)} in mapping config; known: url, storage_options"
            )
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


class FsspecTracker(LineageTracker):
    """Runs kept as small immutable JSON records under a root on any fsspec filesystem.

    Construction does no I/O; the root is created by the first write (or :meth:`ensure_root`).
    """

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

    def job_config(self, torchx_compatible: bool) -> str:
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

    # --- paths ---
    def _run_dir(self, run_id: str) -> str:
        return posixpath.join(self.root, encode_run_id(run_id))

    def ensure_root(self) -> None:
        """Create the root (TorchX's ``FsspecTracker`` refuses a root that does not exist)."""
        self._mkdirs(self.root)

    def _mkdirs(self, path: str) -> None:
        if path not in self._made_dirs:
            self.fs.makedirs(path, exist_ok=True)
            self._made_dirs.add(path)

    # --- writing ---
    def _write_atomic(self, run_id: str, path: str, data: bytes) -> None:
        if self._local:
            tmp_dir = posixpath.join(self._run_dir(run_id), _TMP)
            self._mkdirs(tmp_dir)
            self._mkdirs(posixpath.dirname(path))
            tmp = posixpath.join(tmp_dir, uuid.uuid4().hex)
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        else:  # object stores and memory: one PUT is atomic
            self._mkdirs(posixpath.dirname(path))
            self.fs.pipe_file(path, data)

    def _ensure_run_dir(self, run_id: str) -> None:
        self._mkdirs(posixpath.join(self._run_dir(run_id), _DESCENDANTS))

    def _write_record(self, run_id: str, category: str, payload: Mapping[str, object]) -> None:
        self._ensure_run_dir(run_id)
        path = posixpath.join(self._run_dir(run_id), category, record_name())
        record = {**payload, "origin": record_origin()}
        data = json.dumps(record, default=_json_fallback, allow_nan=True).encode("utf-8")
        self._write_atomic(run_id, path, data)

    # --- reading ---
    def _list(self, path: str) -> list[str]:
        try:
            entries = self.fs.ls(path, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [posixpath.basename(str(e).rstrip("/")) for e in entries]

    def _read_records(self, run_id: str, category: str) -> list[dict[str, Any]]:
        directory = posixpath.join(self._run_dir(run_id), category)
        names = sorted(self._list(directory), key=record_sort_key)
        paths = [posixpath.join(directory, n) for n in names if not n.startswith(".")]
        records = []
        for path, data in zip(paths, self._cat(paths), strict=True):
            if data is None:
                continue
            try:
                record = json.loads(data)
            except ValueError:
                logger.warning("skipping unreadable record %s (not JSON)", path)
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def _cat(self, paths: list[str]) -> list[bytes | None]:
        if not paths:
            return []
        if self._local:
            out: list[bytes | None] = []
            for p in paths:
                try:
                    with open(p, "rb") as f:
                        out.append(f.read())
                except FileNotFoundError:
                    out.append(None)
            return out
        # Remote filesystems fetch a list of paths concurrently.
        found = self.fs.cat(paths, on_error="omit")
        return [found.get(p) for p in paths]

    # --- TrackerBase ---
    def add_metadata(self, run_id: str, **kwargs: object) -> None:
        self._write_record(run_id, _METADATA, {"metadata": kwargs})

    def metadata(self, run_id: str) -> Mapping[str, object]:
        merged: dict[str, object] = {}
        for record in self._read_records(run_id, _METADATA):
            values = record.get("metadata")
            if isinstance(values, dict):
                merged.update(values)
        return merged

    def add_artifact(
        self, run_id: str, name: str, path: str, metadata: Mapping[str, object] | None = None
    ) -> None:
        payload = {"name": name, "path": path, "metadata": dict(metadata) if metadata else None}
        self._write_record(run_id, _ARTIFACTS, payload)

    def artifacts(self, run_id: str) -> Mapping[str, TrackerArtifact]:
        found: dict[str, TrackerArtifact] = {}
        for record in self._read_records(run_id, _ARTIFACTS):
            name = record.get("name")
            if isinstance(name, str):
                found[name] = TrackerArtifact(name, str(record.get("path")), record.get("metadata"))
        return found

    def add_source(self, run_id: str, source_id: str, artifact_name: str | None = None) -> None:
        self._write_record(
            run_id, _LINKS, {"kind": "source", "run_id": source_id, "artifact_name": artifact_name}
        )
        self._update_torchx_sources_file(run_id, source_id, artifact_name)
        # The reverse link goes only into runs of this store; an external source (a dataset
        # URL, a run elsewhere) is not turned into a run by linking to it.
        if self.has_run(source_id):
            self._write_record(
                source_id,
                _LINKS,
                {"kind": "descendant", "run_id": run_id, "artifact_name": artifact_name},
            )

    def _update_torchx_sources_file(
        self, run_id: str, source_id: str, artifact_name: str | None
    ) -> None:
        path = posixpath.join(self._run_dir(run_id), _SOURCES, encode_run_id(source_id))
        lines = self._read_lines(path)
        name = artifact_name or ""
        if lines is not None and (not name or name in lines):
            return
        merged = [n for n in (lines or []) if n] + ([name] if name else [])
        self._write_atomic(run_id, path, ("\n".join(merged) + "\n").encode("utf-8"))

    def _read_lines(self, path: str) -> list[str] | None:
        data = self._cat([path])[0] if self._local else self._cat_one(path)
        if data is None:
            return None
        return [line.strip() for line in data.decode("utf-8").splitlines() if line.strip()]

    def _cat_one(self, path: str) -> bytes | None:
        try:
            data: bytes = self.fs.cat_file(path)
            return data
        except FileNotFoundError:
            return None

    def _links(self, run_id: str, kind: str) -> list[LinkedRun]:
        links = []
        for record in self._read_records(run_id, _LINKS):
            other = record.get("run_id")
            if record.get("kind") == kind and isinstance(other, str):
                name = record.get("artifact_name")
                links.append(LinkedRun(other, name if isinstance(name, str) else None))
        return links

    def sources(self, run_id: str, artifact_name: str | None = None) -> list[TrackerSource]:
        # Our link records, and TorchX's files (written by TorchX's FsspecTracker, or by us).
        found = self._links(run_id, "source") + self._torchx_links(run_id, _SOURCES)
        return [
            TrackerSource(link.run_id, link.artifact_name)
            for link in _dedupe(found)
            if artifact_name is None or link.artifact_name == artifact_name
        ]

    def descendants(self, run_id: str, artifact_name: str | None = None) -> list[LinkedRun]:
        found = self._links(run_id, "descendant") + self._torchx_links(run_id, _DESCENDANTS)
        return [
            link
            for link in _dedupe(found)
            if artifact_name is None or link.artifact_name == artifact_name
        ]

    def _torchx_links(self, run_id: str, category: str) -> list[LinkedRun]:
        """Links in TorchX's own format: one file per linked run, artifact names as lines."""
        directory = posixpath.join(self._run_dir(run_id), category)
        found: list[LinkedRun] = []
        for name in self._list(directory):
            other = decode_run_id(name)
            if other is None:
                continue
            lines = self._read_lines(posixpath.join(directory, name))
            if lines:
                found.extend(LinkedRun(other, n) for n in lines)
            else:
                found.append(LinkedRun(other, None))
        return found

    def has_run(self, run_id: str) -> bool:
        return bool(self.fs.isdir(self._run_dir(run_id)))

    def _run_ids(self, parent_run_id: str | None) -> list[str]:
        if parent_run_id is not None:
            return sorted({link.run_id for link in self.descendants(parent_run_id)})
        ids = (decode_run_id(name) for name in self._list_dirs(self.root))
        return sorted(i for i in ids if i is not None)

    def _list_dirs(self, path: str) -> list[str]:
        """Names of the directories in ``path`` (empty if it does not exist)."""
        if self._local:
            # The directory entry's own type: no stat() per run, unlike fs.ls(detail=True).
            try:
                with os.scandir(path) as entries:
                    return [e.name for e in entries if e.is_dir()]
            except (FileNotFoundError, NotADirectoryError):
                return []
        try:
            entries = self.fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        return [
            posixpath.basename(str(e["name"]).rstrip("/"))
            for e in entries
            if e.get("type") == "directory"
        ]


def _dedupe(links: Iterable[LinkedRun]) -> list[LinkedRun]:
    """Drop repeated links, and an unnamed link where the same pair also has named ones."""
    ordered = list(dict.fromkeys(links))
    named = {link.run_id for link in ordered if link.artifact_name is not None}
    return [link for link in ordered if link.artifact_name is not None or link.run_id not in named]


def _json_fallback(value: object) -> object:
    """Values JSON cannot hold are stored as their ``repr`` rather than failing the write."""
    return repr(value)


def create_tracker(config: str | None) -> FsspecTracker:
    """Entry-point factory: ``config`` is a store URL, a mapping, or a TorchX properties file."""
    return FsspecTracker.from_config(FsspecConfig.parse(config))
