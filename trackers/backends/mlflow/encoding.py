"""How TorchX values and names are written into MLflow, within MLflow's limits.

The tags and artifact paths this backend owns, MLflow's key and size limits, the text form of
metadata values, and the split of writes into ``LogBatch`` requests (see ``docs/mlflow.md``).
"""

from __future__ import annotations

import hashlib
import json
import math
import posixpath
import re
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from trackers import jsonsafe
from trackers.ids import id_bytes

if TYPE_CHECKING:
    from mlflow.entities import Metric, Param, RunTag

# --- tags and artifact paths this backend owns ---
TAG_RUN_ID = "torchx.run_id"
TAG_RUN_KEY = "torchx.run_key"
TAG_CANONICAL = "torchx.canonical"
TAG_DUPLICATE_OF = "torchx.duplicate_of"
#: MLflow's own nesting tag: the UI folds a run under the run it names.
TAG_PARENT_RUN = "mlflow.parentRunId"
#: MLflow's tag on a dataset input saying what the run used it for.
TAG_DATASET_CONTEXT = "mlflow.data.context"
SOURCE_PREFIX = "torchx.source."
LINK_PREFIX = "torchx.link."
METADATA_PREFIX = "torchx.metadata."
METADATA_HASHED_PREFIX = "torchx.metadata_h."
ARTIFACT_PREFIX = "torchx.artifact."
ARTIFACT_HASHED_PREFIX = "torchx.artifact_h."
SUMMARY_PREFIX = "torchx.summary."
SUMMARY_HASHED_PREFIX = "torchx.summary_h."
SUMMARY_METRIC_PREFIX = "summary/"
#: One tag per metadata, artifact, link and status write: ``{"id", "op", "args"}`` (the journal
#: that ``write_history`` reads; MLflow itself keeps no time for params and tags).
JOURNAL_PREFIX = "torchx.write."
METRICS_DIR = "torchx/metrics"
BLOBS_DIR = "torchx/blobs"
UPLOADS_DIR = "torchx/artifacts"

# --- MLflow's limits (mlflow.utils.validation), kept here so importing costs nothing ---
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250
MAX_PARAMS_PER_REQUEST = 100
MAX_TAGS_PER_REQUEST = 100
MAX_METRICS_PER_REQUEST = 1000
MAX_ITEMS_PER_REQUEST = 1000
#: MLflow refuses a LogBatch body over 1 MB; we stay under this many bytes of JSON.
MAX_REQUEST_BYTES = 900_000
#: MLflow's column sizes for a dataset's name and source type.
MAX_DATASET_NAME = 500
MAX_DATASET_SOURCE_TYPE = 36

_NAME_CHARS = re.compile(r"[/\w.\- :]*")


def jsonable(value: object) -> Any:
    """``value`` as JSON types (what the other backends return): tuples -> lists, the fallback
    forms of :mod:`trackers.jsonsafe` for the rest (text-safe: MLflow takes valid Unicode only)."""
    safe, notes = jsonsafe.json_safe(value, surrogates="text")
    jsonsafe.log_fallbacks(notes)
    return safe


def dumps(value: object) -> str:
    return jsonsafe.dumps(value, surrogates="text")


def encode_param(value: object) -> str:
    """A metadata value as MLflow param text: strings as they are, other values as JSON.

    A string that would read back as a JSON value (``"3"``, ``"true"``, ``'"x"'``) is quoted,
    so :func:`decode_param` returns exactly what was written.
    """
    plain = jsonable(value)
    if isinstance(plain, str):
        try:
            json.loads(plain)
        except ValueError:
            return plain
    return dumps(plain)


def decode_param(text: str) -> object:
    """Inverse of :func:`encode_param` (any text that is not JSON is a string)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def digest(*parts: str) -> str:
    return hashlib.sha256(id_bytes("\0".join(parts))).hexdigest()[:32]


def run_key(run_id: str) -> str:
    """The searchable identity of a TorchX run id (hex, so safe in a filter string)."""
    return hashlib.sha256(id_bytes(run_id)).hexdigest()


def mlflow_name_ok(name: str) -> bool:
    """Whether MLflow accepts ``name`` as a param, tag or metric key (its rules, stricter)."""
    if not name or len(name) > MAX_KEY or not _NAME_CHARS.fullmatch(name):
        return False
    norm = posixpath.normpath(name)
    return not (norm != name or norm == "." or norm.startswith("..") or norm.startswith("/"))


def keyed_tag(prefix: str, hashed_prefix: str, ident: str) -> str:
    """``prefix + ident`` when MLflow can take it as a tag key, else ``hashed_prefix + sha``."""
    readable = prefix + ident
    return readable if mlflow_name_ok(readable) else hashed_prefix + digest(ident)


@dataclass(frozen=True)
class DatasetRef:
    """A dataset URL as the fields of MLflow's ``Dataset`` entity (no data is read)."""

    name: str
    digest: str
    source_type: str
    source: str


def dataset_ref(url: str) -> DatasetRef:
    """How a source that is not a run (a dataset URL) is named as an MLflow dataset input.

    The source type and fields follow MLflow's own sources: ``http`` with ``{"url": ...}`` for
    http(s), ``local`` with ``{"uri": ...}`` for a path or ``file:`` URL, else the URL's scheme
    (``s3``, ``gs``...) with ``{"uri": ...}``. The digest is a hash of the URL, so the same
    URL is one dataset however often it is linked.
    """
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:  # e.g. an unclosed "[" in the host: not a URL we can name by scheme
        scheme = ""
    if scheme in ("http", "https"):
        source_type, field = "http", "url"
    elif len(scheme) <= 1 or scheme == "file":  # none, or a Windows drive letter
        source_type, field = "local", "uri"
    else:
        source_type, field = scheme[:MAX_DATASET_SOURCE_TYPE], "uri"
    return DatasetRef(
        name=url[:MAX_DATASET_NAME],
        digest=digest(url),
        source_type=source_type,
        source=dumps({field: url}),
    )


def _json_size(value: str) -> int:
    return len(json.dumps(value))  # ensure_ascii: the escaped size on the wire


def millis(seconds: float) -> int:
    return int(round(seconds * 1000)) if math.isfinite(seconds) else 0


@dataclass
class Batch:
    """One ``LogBatch`` request's worth of params, tags and metrics."""

    params: list[Param]
    tags: list[RunTag]
    metrics: list[Metric]


def batches(
    params: Sequence[Param], tags: Sequence[RunTag], metrics: Sequence[Metric]
) -> Iterator[Batch]:
    """Split into LogBatch requests within MLflow's per-request limits (counts and bytes).

    Each request takes up to 100 params, then up to 100 tags, then metrics, until 1000 items
    or about 900 kB of JSON; an item too large on its own still goes (alone) in a request.
    """
    queues: list[tuple[deque[Any], int, Any]] = [
        (deque(params), MAX_PARAMS_PER_REQUEST, lambda x: _json_size(x.value)),
        (deque(tags), MAX_TAGS_PER_REQUEST, lambda x: _json_size(x.value)),
        (deque(metrics), MAX_METRICS_PER_REQUEST, lambda x: 72),
    ]
    while any(q for q, _, _ in queues):
        taken: list[list[Any]] = [[], [], []]
        items = size = 0
        for (queue, limit, value_size), out in zip(queues, taken, strict=True):
            while queue and len(out) < limit and items < MAX_ITEMS_PER_REQUEST:
                extra = _json_size(queue[0].key) + value_size(queue[0]) + 24
                if items and size + extra > MAX_REQUEST_BYTES:
                    break
                out.append(queue.popleft())
                items += 1
                size += extra
        yield Batch(params=taken[0], tags=taken[1], metrics=taken[2])
