"""The MLflow backend: TorchX runs as MLflow runs, on a tracking server or a database.

``--tracker mlflow=CONFIG``, where CONFIG is one of:

* empty / no config: MLflow's own defaults - ``MLFLOW_TRACKING_URI`` (MLflow 3.x falls back to
  ``sqlite:///mlflow.db`` in the working directory) and the experiment from
  ``MLFLOW_EXPERIMENT_NAME`` / ``MLFLOW_EXPERIMENT_ID``, else MLflow's ``Default`` experiment;
* a tracking URI: ``http://host:5000``, ``https://mlflow.example.com``,
  ``sqlite:////abs/mlflow.db``, ``postgresql://db/mlflow``, ``databricks``, ``file:///abs/mlruns``
  (MLflow >= 3.x refuses file stores unless ``MLFLOW_ALLOW_FILE_STORE=true``; the error says so);
* a YAML/JSON mapping (flow style, one line)::

      {uri: "http://host:5000", experiment: "pipelines", artifact_location: "s3://b/mlflow",
       upload_artifacts: true, strict: false}

  ``uri`` (as above; default as above), ``experiment`` (name; created if missing, with
  ``artifact_location`` if given), ``upload_artifacts`` (default false: upload the file or
  directory of every ``add_artifact`` whose path is local, with MLflow's artifact API),
  ``strict`` (default false: see below). Any other key is an error.

Credentials never go into the config (it travels in env vars and TorchX logs it): a URI with a
password or a token is refused. Use MLflow's own env vars (``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD``, ``MLFLOW_TRACKING_TOKEN``, ...; for a database with a password,
``MLFLOW_TRACKING_URI`` in the job's env and no ``uri`` in the config).

How TorchX's interface maps onto MLflow (``docs/mlflow.md`` has the long form):

* **run** - one MLflow run per TorchX run id, in one experiment (the "store"): run name = run id,
  tags ``torchx.run_id`` (the id) and ``torchx.run_key`` (its SHA-256, what searches use).
  Created on the first write, never by a read. Many processes may create it at once (every
  replica shares the run id, and the launcher writes its launch record while the job starts):
  each creator creates its own run, waits a short settle time, then all pick the same one (marked
  runs first, then the earliest ``start_time``, then the smallest MLflow run id), mark it
  ``torchx.canonical=true`` and delete their own if it lost (MLflow soft delete, tagged
  ``torchx.duplicate_of``). Ranks > 0 (``RANK``, ``SLURM_PROCID``...) first wait for the run
  instead of creating one. A new run is ``SCHEDULED`` until ``set_status``.
* **metadata** - params, as text (strings as they are, anything else as JSON; a string that
  would read back as JSON is quoted). MLflow params are write-once and at most 6000 characters,
  so a key written again, a key MLflow cannot name, or a longer value goes into the tag
  ``torchx.metadata.<key>`` (``torchx.metadata_h.<sha>`` for odd keys) holding
  ``{"key", "value"}``; a tag that would pass 8000 characters becomes a JSON artifact under
  ``torchx/blobs/`` and the tag points to it. ``metadata()`` = params overlaid by those tags, so
  the last write wins and nothing is truncated (MLflow itself would silently truncate).
* **artifacts** - tag ``torchx.artifact.<name>`` = ``{"name", "path", "metadata"}`` (last write
  wins). With ``upload_artifacts`` the local file/directory is uploaded to artifact path
  ``<name>/`` (``torchx/artifacts/<sha>/`` for names MLflow cannot take) and its ``runs:/`` URI
  is added to the returned metadata as ``mlflow.artifact_uri``.
* **sources** - on the child only: tag ``torchx.link.<sha(source, artifact)>`` =
  ``{"run_id", "artifact_name"}`` per link and a marker ``torchx.source.<sha(source)>`` = source
  id. ``descendants(P)`` is one ``search_runs`` for runs carrying ``P``'s marker, so the parent is
  never written and an external source never becomes a run.
* **metrics** - ``log_batch`` in requests within MLflow's limits (1000 metrics, 100 params,
  100 tags, 1000 items, 1 MB); step ``None`` is logged as MLflow's default step 0. Each batch is
  also kept exactly (names, values incl. NaN/inf, steps incl. ``None``, float timestamps, ranks)
  as one JSON artifact ``torchx/metrics/<time>-<uuid>.json``, which is what ``metrics()`` reads.
* **summaries** - tag ``torchx.summary.<key>`` = ``{"key", "value"}`` (last write wins);
  numbers are also logged as the metric ``summary/<key>`` so they can be sorted on in the UI.
* **status** - RUNNING -> ``RUNNING``, SUCCEEDED -> ``FINISHED``, FAILED -> ``FAILED``,
  KILLED -> ``KILLED`` (terminal states also set the end time); ``status()`` maps back and is
  ``None`` for a ``SCHEDULED`` run or no run.

Failures: every MLflow error becomes a :class:`~trackers.errors.TrackerError` naming the
tracking URI. For HTTP URIs the server is probed once (``GET /health``, one attempt, timeout
``MLFLOW_HTTP_REQUEST_TIMEOUT``) before the first call and again after a connection failure; an
unreachable server fails the call at once for the next 2 s (the job's delivery thread retries
with backoff: :mod:`trackers.delivery`). Connection failures and 5xx answers that outlast the
retries raise :class:`~trackers.errors.BackendUnavailable`. Unless already set, the first
tracker for an HTTP URI sets ``MLFLOW_HTTP_REQUEST_TIMEOUT=10``,
``MLFLOW_HTTP_REQUEST_MAX_RETRIES=2`` and ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR=1`` in this
process (MLflow's defaults - 120 s, 7 retries, factor 2 - keep a call to a dead server going for
minutes). ``strict: true`` probes the server when the tracker is built (so ``torchx run`` refuses
to submit when it is down) and raises where the non-strict backend warns: a metric name MLflow
rejects (otherwise kept only in the exact record), an artifact that cannot be uploaded
(otherwise only recorded).

``mlflow`` is imported only when a tracker is built: importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.client
import json
import logging
import math
import os
import posixpath
import random
import re
import socket
import ssl
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torchx.tracker.api import TrackerArtifact

from trackers import jsonsafe
from trackers._ids import id_bytes, record_name, record_time
from trackers.api import LineageTracker
from trackers.config_text import load_mapping_config
from trackers.errors import BackendUnavailable, TrackerConfigError, TrackerError
from trackers.origin import global_rank
from trackers.redact import looks_like_credential, redact
from trackers.types import LinkedRun, MetricColumns, MetricPoint, RunStatus
from trackers.warn_once import WarnOnce

if TYPE_CHECKING:
    from mlflow.entities import Metric, Param, Run, RunTag
    from mlflow.tracking import MlflowClient

logger: logging.Logger = logging.getLogger(__name__)

__all__ = ["MLflowConfig", "MLflowTracker", "create_tracker"]

# --- tags and artifact paths this backend owns ---
TAG_RUN_ID = "torchx.run_id"
TAG_RUN_KEY = "torchx.run_key"
TAG_CANONICAL = "torchx.canonical"
TAG_DUPLICATE_OF = "torchx.duplicate_of"
SOURCE_PREFIX = "torchx.source."
LINK_PREFIX = "torchx.link."
METADATA_PREFIX = "torchx.metadata."
METADATA_HASHED_PREFIX = "torchx.metadata_h."
ARTIFACT_PREFIX = "torchx.artifact."
ARTIFACT_HASHED_PREFIX = "torchx.artifact_h."
SUMMARY_PREFIX = "torchx.summary."
SUMMARY_HASHED_PREFIX = "torchx.summary_h."
SUMMARY_METRIC_PREFIX = "summary/"
METRICS_DIR = "torchx/metrics"
BLOBS_DIR = "torchx/blobs"
UPLOADS_DIR = "torchx/artifacts"

# --- MLflow's limits (mlflow.utils.validation), kept here so the module imports nothing ---
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250
MAX_PARAMS_PER_REQUEST = 100
MAX_TAGS_PER_REQUEST = 100
MAX_METRICS_PER_REQUEST = 1000
MAX_ITEMS_PER_REQUEST = 1000
#: MLflow refuses a LogBatch body over 1 MB; we stay under this many bytes of JSON.
MAX_REQUEST_BYTES = 900_000

#: Set in the process (unless already set) by the first tracker for an HTTP(S) URI.
HTTP_ENV_DEFAULTS: Mapping[str, str] = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}
#: After a failed probe, calls fail at once for this long before the server is probed again.
UNREACHABLE_RETRY_AFTER_S = 2.0
#: A creator waits at least this long (or 4x its create latency) before choosing the run.
SETTLE_MIN_S = 0.3
#: How long a process waits for another's unmarked run to be marked before adopting it.
CREATOR_GRACE_S = 10.0
#: How long a rank > 0 waits for the run to appear before creating one itself.
RANK_WAIT_S = 20.0
_POLL_S = 0.1

_STATUS_TO_MLFLOW: Mapping[str, str] = {
    "RUNNING": "RUNNING",
    "SUCCEEDED": "FINISHED",
    "FAILED": "FAILED",
    "KILLED": "KILLED",
}
_STATUS_FROM_MLFLOW: Mapping[str, RunStatus] = {
    "RUNNING": "RUNNING",
    "FINISHED": "SUCCEEDED",
    "FAILED": "FAILED",
    "KILLED": "KILLED",
}

_CONFIG_KEYS = ("uri", "experiment", "artifact_location", "upload_artifacts", "strict")
#: How MLflow's SQL stores report two writers inserting the same row (SQLite, MySQL, Postgres).
_INSERT_RACE = re.compile(r"UNIQUE constraint failed|IntegrityError|Duplicate entry|duplicate key")
_NAME_CHARS = re.compile(r"[/\w.\- :]*")


# --- config ---


@dataclass(frozen=True)
class MLflowConfig:
    """Where runs go: a tracking URI and experiment, plus two behaviour switches.

    ``None`` for ``uri``/``experiment`` means MLflow's own defaults and ``MLFLOW_*`` env vars.
    """

    uri: str | None = None
    experiment: str | None = None
    artifact_location: str | None = None
    upload_artifacts: bool = False
    strict: bool = False

    @classmethod
    def parse(cls, config: str | None) -> MLflowConfig:
        """Read a config string: empty, a tracking URI, or a YAML/JSON mapping (module doc)."""
        text = (config or "").strip()
        if not text:
            return cls()
        if text.startswith("{"):
            return cls._from_mapping(text)
        return cls(uri=_checked_uri(text))

    @classmethod
    def _from_mapping(cls, text: str) -> MLflowConfig:
        example = '{uri: "http://host:5000", experiment: "my-experiment", upload_artifacts: true}'
        data = load_mapping_config(text, example)
        unknown = sorted(str(k) for k in set(data) - set(_CONFIG_KEYS))
        if unknown:
            raise TrackerConfigError(
                f"unknown key(s) {unknown} in mapping config; known: {', '.join(_CONFIG_KEYS)}"
            )
        strings: dict[str, str | None] = {}
        for key in ("uri", "experiment", "artifact_location"):
            value = data.get(key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise TrackerConfigError(f"{key!r} must be a non-empty string, got {value!r}")
            strings[key] = value.strip() if isinstance(value, str) else None
        flags: dict[str, bool] = {}
        for key in ("upload_artifacts", "strict"):
            value = data.get(key, False)
            if not isinstance(value, bool):
                raise TrackerConfigError(f"{key!r} must be true or false, got {value!r}")
            flags[key] = value
        uri = strings["uri"]
        return cls(
            uri=_checked_uri(uri) if uri is not None else None,
            experiment=strings["experiment"],
            artifact_location=strings["artifact_location"],
            upload_artifacts=flags["upload_artifacts"],
            strict=flags["strict"],
        )

    def to_string(self) -> str:
        """This config as a config string (the plain URI when nothing else is set)."""
        extras = {
            "experiment": self.experiment,
            "artifact_location": self.artifact_location,
            "upload_artifacts": self.upload_artifacts or None,
            "strict": self.strict or None,
        }
        mapping = {k: v for k, v in {"uri": self.uri, **extras}.items() if v is not None}
        if set(mapping) <= {"uri"}:
            return self.uri or ""
        return json.dumps(mapping, ensure_ascii=False)


def _checked_uri(uri: str) -> str:
    """``uri`` if it carries no credentials; otherwise a TrackerConfigError saying what to use."""
    hint = (
        "keep credentials out of the tracker config (it is passed in env vars and logged): use "
        "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN, or for a "
        "database with a password set MLFLOW_TRACKING_URI in the job's environment"
    )
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError as e:
        raise TrackerConfigError(f"tracking URI {redact(uri)!r} is not a valid URI: {e}") from None
    if parts.password is not None:
        raise TrackerConfigError(f"tracking URI {redact(uri)!r} contains a password; {hint}")
    if any(looks_like_credential(k) for k, _ in urllib.parse.parse_qsl(parts.query)):
        raise TrackerConfigError(f"tracking URI {redact(uri)!r} contains a credential; {hint}")
    return uri


# --- value encoding ---


def _jsonable(value: object) -> Any:
    """``value`` as JSON types (what the other backends return): tuples -> lists, the fallback
    forms of :mod:`trackers.jsonsafe` for the rest (text-safe: MLflow takes valid Unicode only)."""
    safe, notes = jsonsafe.json_safe(value, surrogates="text")
    jsonsafe.log_fallbacks(notes)
    return safe


def _dumps(value: object) -> str:
    return jsonsafe.dumps(value, surrogates="text")


def encode_param(value: object) -> str:
    """A metadata value as MLflow param text: strings as they are, other values as JSON.

    A string that would read back as a JSON value (``"3"``, ``"true"``, ``'"x"'``) is quoted,
    so :func:`decode_param` returns exactly what was written.
    """
    plain = _jsonable(value)
    if isinstance(plain, str):
        try:
            json.loads(plain)
        except ValueError:
            return plain
    return _dumps(plain)


def decode_param(text: str) -> object:
    """Inverse of :func:`encode_param` (any text that is not JSON is a string)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _digest(*parts: str) -> str:
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


def _keyed_tag(prefix: str, hashed_prefix: str, ident: str) -> str:
    """``prefix + ident`` when MLflow can take it as a tag key, else ``hashed_prefix + sha``."""
    readable = prefix + ident
    return readable if mlflow_name_ok(readable) else hashed_prefix + _digest(ident)


def _json_size(value: str) -> int:
    return len(json.dumps(value))  # ensure_ascii: the escaped size on the wire


# --- errors ---


def _error_chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, then its causes (``__cause__``, else ``__context__``), each once."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _connection_error(error: BaseException) -> BaseException | None:
    """The network-level cause (refused, timeout, DNS...) in ``error``'s chain, if any."""
    for current in _error_chain(error):
        module = type(current).__module__.split(".")[0]
        name = type(current).__name__
        if name == "RetryError":  # the server kept answering 5xx: it is reachable
            return None
        if isinstance(current, ConnectionError | TimeoutError | socket.gaierror) or (
            module in ("requests", "urllib3") and name != "HTTPError"
        ):
            return current
    return None


def _gave_up_on_5xx(error: BaseException) -> bool:
    """Whether ``error``'s chain shows the client retried 5xx answers until it gave up."""
    return any(
        type(current).__name__ in ("RetryError", "MaxRetryError")
        or "too many 5" in str(current).lower()
        for current in _error_chain(error)
    )


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    reason = re.search(
        r"(Connection refused|timed out|Name or service not known|"
        r"Temporary failure in name resolution|Connection reset by peer|"
        r"No route to host|Network is unreachable|Remote end closed connection|"
        r"Connection aborted)",
        text,
    )
    if reason:
        return reason.group(1)
    return text if len(text) <= 300 else text[:300] + "..."


def _probe(url: str, timeout: float) -> None:
    """One GET of ``url``; raises OSError only when nothing answers (any HTTP reply is fine)."""
    request = urllib.request.Request(url, method="GET", headers={"User-Agent": "torchx-lineage"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read(64)
    except urllib.error.HTTPError:
        return  # it answered (401/404/...): reachable; MLflow reports what the answer means
    except urllib.error.URLError as e:
        if isinstance(e.reason, ssl.SSLError):
            return  # TLS settings are MLflow's business (MLFLOW_TRACKING_SERVER_CERT_PATH...)
        if isinstance(e.reason, OSError):
            raise e.reason from None
        raise OSError(str(e.reason)) from None
    except (ssl.SSLError, http.client.HTTPException):
        return  # something answered, in a way urllib does not like: let MLflow deal with it


# --- the tracker ---


@dataclass
class _Batch:
    params: list[Param]
    tags: list[RunTag]
    metrics: list[Metric]


class MLflowTracker(LineageTracker):
    """TorchX runs recorded as MLflow runs of one experiment, through ``MlflowClient``.

    Args:
        config: where and how to record (see :class:`MLflowConfig` and the module doc).

    Building it does no network I/O unless ``config.strict`` (a database URI is opened by
    MLflow right away). Safe to share between threads; several can live in one process.
    """

    registry_name = "mlflow"

    def __init__(self, config: MLflowConfig) -> None:
        try:
            import mlflow
            from mlflow.exceptions import MlflowException
            from mlflow.tracking import MlflowClient
        except ImportError as e:
            raise TrackerConfigError(
                f"the mlflow tracker needs the mlflow package ({e}); "
                "pip install 'torchx-lineage[mlflow]'"
            ) from None
        self.config = config
        self.strict = config.strict
        self.uri: str = config.uri or mlflow.get_tracking_uri()
        self._display_uri = redact(self.uri)
        scheme = urllib.parse.urlsplit(self.uri).scheme.lower()
        self._http = scheme in ("http", "https")
        if self._http:
            for key, value in HTTP_ENV_DEFAULTS.items():
                os.environ.setdefault(key, value)
        # MLflow prints "View run ... at: URL" to stdout on some calls (set_terminated): that
        # would land in a job's output and in `torchx tracker sync --format json`.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        self._mlflow_error: type[Exception] = MlflowException
        try:
            self._client: MlflowClient = MlflowClient(tracking_uri=self.uri)
        except MlflowException as e:
            raise TrackerConfigError(f"tracking URI {self._display_uri!r}: {e.message}") from None
        self._lock = threading.RLock()
        self._run_locks: dict[str, threading.Lock] = {}
        self._runs: dict[str, str] = {}  # TorchX run id -> MLflow run id (canonical only)
        self._experiment_id: str | None = None
        self._reachable = False
        self._down_until = 0.0
        self._down_reason = ""
        self._warn_once = WarnOnce(logger)
        if config.strict:  # fail fast: `torchx run` then refuses to submit
            try:
                with self._calling("connect"):
                    self._experiment(create=False)
            except TrackerError as e:
                raise TrackerConfigError(str(e)) from None

    def __repr__(self) -> str:
        experiment = self.config.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
        suffix = f", experiment={experiment!r}" if experiment else ""
        return f"MLflowTracker({self._display_uri}{suffix})"

    def job_config(self, torchx_compatible: bool = False) -> str:
        """A config string that opens the same store from another process (a job).

        Relative ``sqlite:`` paths and plain paths are made absolute, and the experiment chosen
        through ``MLFLOW_EXPERIMENT_NAME`` here is written in, so the job does not depend on its
        working directory or env. ``torchx_compatible`` is accepted for symmetry with the fsspec
        backend: TorchX has no MLflow factory of its own, so both ``AppRun``\\ s read this form.
        """
        del torchx_compatible
        uri = self.uri
        if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
            path = uri[len("sqlite:///") :]
            if path and not path.startswith(":memory:"):
                uri = "sqlite:///" + os.path.abspath(path)
        elif "://" not in uri and not uri.startswith(("databricks", "uc")):
            uri = os.path.abspath(uri)
        experiment = self.config.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or None
        return MLflowConfig(
            uri=uri,
            experiment=experiment,
            artifact_location=self.config.artifact_location,
            upload_artifacts=self.config.upload_artifacts,
            strict=self.config.strict,
        ).to_string()

    # --- plumbing: errors, reachability, batching ---

    @contextlib.contextmanager
    def _calling(self, op: str) -> Iterator[None]:
        """Run MLflow calls for ``op``; any failure becomes a TrackerError naming the URI."""
        self._ensure_reachable(op)
        try:
            yield
        except TrackerError:
            raise
        except Exception as e:
            cause = _connection_error(e) if self._http else None
            if cause is not None:
                self._reachable = False
                raise BackendUnavailable(
                    f"MLflow tracking server {self._display_uri} is not reachable ({op}): "
                    f"{_short(cause)}. Check the URI and that the server is running "
                    "(timeouts and retries: MLFLOW_HTTP_REQUEST_TIMEOUT, "
                    "MLFLOW_HTTP_REQUEST_MAX_RETRIES)"
                ) from None
            if self._http and _gave_up_on_5xx(e):
                raise BackendUnavailable(
                    f"MLflow tracking server {self._display_uri} kept failing ({op}): {_short(e)}"
                ) from None
            if isinstance(e, self._mlflow_error):
                if "must be in the 'active' state" in str(e) or getattr(e, "error_code", "") in (
                    "RESOURCE_DOES_NOT_EXIST",
                    "INVALID_STATE",
                ):
                    with self._lock:  # a run was deleted behind our back: look runs up again
                        self._runs.clear()
                message = getattr(e, "message", str(e))
                raise TrackerError(f"MLflow at {self._display_uri}: {op} failed: {message}") from e
            raise

    def _ensure_reachable(self, op: str) -> None:
        if not self._http or self._reachable:
            return
        now = time.monotonic()
        if now < self._down_until:
            raise BackendUnavailable(
                f"MLflow tracking server {self._display_uri} is not reachable ({op}): "
                f"{self._down_reason} (next attempt in {self._down_until - now:.0f} s)"
            )
        timeout = _env_float("MLFLOW_HTTP_REQUEST_TIMEOUT", 10.0)
        try:
            _probe(self.uri.rstrip("/") + "/health", timeout)
        except OSError as e:
            self._down_reason = _short(e)
            self._down_until = time.monotonic() + UNREACHABLE_RETRY_AFTER_S
            raise BackendUnavailable(
                f"MLflow tracking server {self._display_uri} is not reachable ({op}): "
                f"{self._down_reason} (waited at most {timeout:g} s; "
                "set MLFLOW_HTTP_REQUEST_TIMEOUT to change that)"
            ) from None
        self._reachable = True

    def _log(
        self,
        mlflow_run: str,
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
        metrics: Sequence[Metric] = (),
    ) -> int:
        """``log_batch`` in as few requests as MLflow's limits allow; returns the count."""
        requests = 0
        for batch in _batches(params, tags, metrics):
            self._retry_insert_race(
                functools.partial(
                    self._client.log_batch,
                    mlflow_run,
                    metrics=batch.metrics,
                    params=batch.params,
                    tags=batch.tags,
                    synchronous=True,
                )
            )
            requests += 1
        return requests

    def _retry_insert_race(self, call: Callable[[], object]) -> None:
        """Run ``call``, again if the store lost a race inserting the same row (tag, param).

        MLflow's SQL store writes a tag by "look, then insert": two processes setting one tag
        key of one run at the same moment make one of them fail on the unique constraint.
        """
        for attempt in range(5):
            try:
                call()
                return
            except self._mlflow_error as e:
                if attempt == 4 or not _INSERT_RACE.search(str(e)):
                    raise
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))

    def _tag(self, key: str, record: Mapping[str, object], ident_key: str, run: str) -> RunTag:
        """A tag holding ``record`` as JSON, or pointing to a JSON artifact when too long."""
        from mlflow.entities import RunTag

        text = _dumps(record)
        if len(text) > MAX_TAG_VALUE:
            path = posixpath.join(BLOBS_DIR, record_name() + ".json")
            self._client.log_text(run, text, path)
            text = _dumps({ident_key: record[ident_key], "blob": path})
        return RunTag(key, text)

    def _records(self, run: Run, *prefixes: str) -> list[dict[str, Any]]:
        """The JSON records in the run's tags under ``prefixes`` (blobs fetched)."""
        found = []
        for key, value in run.data.tags.items():
            if not key.startswith(prefixes):
                continue
            try:
                record = json.loads(value)
            except ValueError:
                self._warn_once(f"bad:{key}", "MLflow tag %s is not JSON; ignored", key)
                continue
            if isinstance(record, dict) and isinstance(record.get("blob"), str):
                record = self._blob(run.info.run_id, record["blob"])
            if isinstance(record, dict):
                found.append(record)
        return found

    def _blob(self, mlflow_run: str, path: str) -> dict[str, Any] | None:
        with tempfile.TemporaryDirectory(prefix="torchx-mlflow-") as tmp:
            local = self._client.download_artifacts(mlflow_run, path, tmp)
            with open(local, encoding="utf-8") as f:
                record = json.load(f)
        return record if isinstance(record, dict) else None

    # --- experiment and run identity ---

    def _experiment(self, create: bool) -> str | None:
        """The experiment id; ``None`` if it does not exist and ``create`` is false."""
        if self._experiment_id is not None:
            return self._experiment_id
        with self._lock:
            if self._experiment_id is not None:
                return self._experiment_id
            name = self.config.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or None
            if name is not None:
                experiment = self._client.get_experiment_by_name(name)
                if experiment is None:
                    if not create:
                        return None
                    try:
                        self._client.create_experiment(
                            name, artifact_location=self.config.artifact_location
                        )
                    except self._mlflow_error as e:
                        if getattr(e, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                            raise
                    experiment = self._client.get_experiment_by_name(name)
                    if experiment is None:
                        raise TrackerError(
                            f"MLflow at {self._display_uri}: experiment {name!r} "
                            "was created but cannot be read back"
                        )
            else:
                experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID") or "0"
                experiment = self._client.get_experiment(experiment_id)
            if experiment.lifecycle_stage != "active":
                raise TrackerConfigError(
                    f"MLflow at {self._display_uri}: experiment {experiment.name!r} "
                    f"(id {experiment.experiment_id}) is deleted; restore it "
                    "(mlflow experiments restore) or configure another experiment"
                )
            if (
                self.config.artifact_location
                and experiment.artifact_location != self.config.artifact_location
            ):
                self._warn_once(
                    "artifact_location",
                    "MLflow experiment %r already exists with artifact location %s; "
                    "artifact_location=%s is ignored",
                    experiment.name,
                    experiment.artifact_location,
                    self.config.artifact_location,
                )
            self._experiment_id = str(experiment.experiment_id)
            return self._experiment_id

    def _search(self, filter_string: str, *, deleted_too: bool = False) -> list[Run]:
        from mlflow.entities import ViewType

        experiment = self._experiment(create=False)
        if experiment is None:
            return []
        runs: list[Run] = []
        token: str | None = None
        while True:
            page = self._client.search_runs(
                [experiment],
                filter_string=filter_string,
                run_view_type=ViewType.ALL if deleted_too else ViewType.ACTIVE_ONLY,
                max_results=1000,
                order_by=["attributes.start_time ASC"],
                page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def _runs_of(self, run_id: str) -> list[Run]:
        return self._search(f"tags.`{TAG_RUN_KEY}` = '{run_key(run_id)}'")

    def _run_lock(self, run_id: str) -> threading.Lock:
        with self._lock:
            return self._run_locks.setdefault(run_id, threading.Lock())

    def _mlflow_run(self, run_id: str, create: bool) -> str | None:
        """The MLflow run id for ``run_id``: found, or (``create``) created exactly once."""
        if not run_id:
            raise ValueError("run id must be a non-empty string")
        known = self._runs.get(run_id)
        if known is not None:
            return known
        with self._run_lock(run_id):
            known = self._runs.get(run_id)
            if known is not None:
                return known
            if create:
                self._experiment(create=True)
            chosen = self._resolve(run_id, create)
            if chosen is not None and (create or self._is_marked(chosen)):
                self._runs[run_id] = chosen.info.run_id
            return chosen.info.run_id if chosen is not None else None

    @staticmethod
    def _is_marked(run: Run) -> bool:
        return run.data.tags.get(TAG_CANONICAL) == "true"

    @staticmethod
    def _order(run: Run) -> tuple[int, str]:
        return (run.info.start_time or 0, run.info.run_id)

    def _resolve(self, run_id: str, create: bool) -> Run | None:
        """Find the run, or create it so that concurrent creators end up sharing one.

        See the module doc: a creator settles, then every process picks the same run - marked
        runs first, then the smallest (start_time, MLflow run id) - and losers delete theirs.
        """
        own: Run | None = None
        settle = SETTLE_MIN_S
        started = time.monotonic()
        rank = global_rank()
        rank_deadline = started + RANK_WAIT_S if create and rank not in (None, 0) else started
        while True:
            runs = self._runs_of(run_id)
            marked = [r for r in runs if self._is_marked(r)]
            if len(marked) > 1:
                self._warn_once(
                    f"split:{run_id}",
                    "run %s has %d MLflow runs marked canonical; using the earliest",
                    run_id,
                    len(marked),
                )
            chosen: Run | None = min(marked, key=self._order) if marked else None
            if chosen is None and runs:
                if not create:
                    return min(runs, key=self._order)  # someone is settling; not cached
                newest_age = time.time() - max(r.info.start_time or 0 for r in runs) / 1000
                waited = time.monotonic() - started
                if (
                    own is not None
                    or waited > settle + CREATOR_GRACE_S
                    or (newest_age > settle + CREATOR_GRACE_S)
                ):
                    chosen = min(runs, key=self._order)
                    self._retry_insert_race(
                        functools.partial(
                            self._client.set_tag, chosen.info.run_id, TAG_CANONICAL, "true"
                        )
                    )
                else:
                    time.sleep(_POLL_S)
                    continue
            if chosen is not None:
                if own is not None and own.info.run_id != chosen.info.run_id:
                    self._client.set_tag(own.info.run_id, TAG_DUPLICATE_OF, chosen.info.run_id)
                    self._client.delete_run(own.info.run_id)
                    logger.debug(
                        "run %s: MLflow run %s lost the creation race to %s and was deleted",
                        run_id,
                        own.info.run_id,
                        chosen.info.run_id,
                    )
                return chosen
            if not create:
                return None
            if own is not None:
                raise TrackerError(
                    f"MLflow at {self._display_uri}: the run created for {run_id!r} "
                    f"({own.info.run_id}) disappeared while it was being set up"
                )
            if time.monotonic() < rank_deadline:
                time.sleep(_POLL_S)  # rank > 0: give rank 0 the chance to create it
                continue
            t0 = time.monotonic()
            own = self._create_run(run_id)
            settle = max(SETTLE_MIN_S, 4 * (time.monotonic() - t0))
            time.sleep(settle)

    def _create_run(self, run_id: str) -> Run:
        experiment = self._experiment(create=True)
        assert experiment is not None  # create=True never returns None
        if len(run_id) > MAX_TAG_VALUE:
            raise TrackerError(f"run id of {len(run_id)} characters is too long for MLflow")
        run = self._client.create_run(
            experiment,
            run_name=run_id,
            tags={TAG_RUN_ID: run_id, TAG_RUN_KEY: run_key(run_id)},
        )
        # Not started yet as far as we know: the job says RUNNING through set_status.
        self._client.update_run(run.info.run_id, status="SCHEDULED")
        return run

    # --- metadata ---

    def add_metadata(self, run_id: str, **kwargs: object) -> None:
        from mlflow.entities import Param

        with self._calling("add_metadata"):
            mlflow_run = self._mlflow_run(run_id, create=True)
            assert mlflow_run is not None
            if not kwargs:
                return
            for attempt in range(3):
                run = self._client.get_run(mlflow_run)
                params, tags = run.data.params, run.data.tags
                new_params: list[Param] = []
                new_tags: list[RunTag] = []
                for key, value in kwargs.items():
                    tag_key = _keyed_tag(METADATA_PREFIX, METADATA_HASHED_PREFIX, key)
                    text = encode_param(value)
                    if (
                        key not in params
                        and tag_key not in tags
                        and mlflow_name_ok(key)
                        and len(text) <= MAX_PARAM_VALUE
                    ):
                        new_params.append(Param(key, text))
                    else:
                        record = {"key": key, "value": _jsonable(value)}
                        new_tags.append(self._tag(tag_key, record, "key", mlflow_run))
                try:
                    self._log(mlflow_run, params=new_params, tags=new_tags)
                    return
                except self._mlflow_error as e:
                    # Another process logged one of these params first: read again, retry.
                    if attempt == 2 or "Changing param values" not in str(e):
                        raise

    def metadata(self, run_id: str) -> Mapping[str, object]:
        with self._calling("metadata"):
            mlflow_run = self._mlflow_run(run_id, create=False)
            if mlflow_run is None:
                return {}
            run = self._client.get_run(mlflow_run)
            merged: dict[str, object] = {k: decode_param(v) for k, v in run.data.params.items()}
            for record in self._records(run, METADATA_PREFIX, METADATA_HASHED_PREFIX):
                if isinstance(record.get("key"), str):
                    merged[record["key"]] = record.get("value")
            return merged

    # --- artifacts ---

    def add_artifact(
        self, run_id: str, name: str, path: str, metadata: Mapping[str, object] | None = None
    ) -> None:
        with self._calling("add_artifact"):
            mlflow_run = self._mlflow_run(run_id, create=True)
            assert mlflow_run is not None
            record: dict[str, object] = {
                "name": name,
                "path": path,
                "metadata": _jsonable(dict(metadata)) if metadata else None,
            }
            if self.config.upload_artifacts:
                uri = self._upload(mlflow_run, name, path)
                if uri is not None:
                    record["uri"] = uri
            key = _keyed_tag(ARTIFACT_PREFIX, ARTIFACT_HASHED_PREFIX, name)
            self._log(mlflow_run, tags=[self._tag(key, record, "name", mlflow_run)])

    def _upload(self, mlflow_run: str, name: str, path: str) -> str | None:
        local = path[len("file://") :] if path.startswith("file://") else path
        if "://" in local or not os.path.exists(local):
            message = (
                f"artifact {name!r}: {path!r} is not a local file or directory, so it is only "
                "recorded, not uploaded"
            )
            if self.config.strict:
                raise TrackerError(message)
            self._warn_once(f"upload:{name}", "%s", message)
            return None
        stripped = name.strip("/")
        folder = stripped if mlflow_name_ok(stripped) else f"{UPLOADS_DIR}/{_digest(name)}"
        if os.path.isdir(local):
            self._client.log_artifacts(mlflow_run, local, artifact_path=folder)
            return f"runs:/{mlflow_run}/{folder}"
        self._client.log_artifact(mlflow_run, local, artifact_path=folder)
        return f"runs:/{mlflow_run}/{folder}/{os.path.basename(local)}"

    def artifacts(self, run_id: str) -> Mapping[str, TrackerArtifact]:
        with self._calling("artifacts"):
            mlflow_run = self._mlflow_run(run_id, create=False)
            if mlflow_run is None:
                return {}
            run = self._client.get_run(mlflow_run)
            found: dict[str, TrackerArtifact] = {}
            for record in self._records(run, ARTIFACT_PREFIX, ARTIFACT_HASHED_PREFIX):
                name = record.get("name")
                if not isinstance(name, str):
                    continue
                metadata = record.get("metadata")
                if isinstance(record.get("uri"), str):
                    metadata = {**(metadata or {}), "mlflow.artifact_uri": record["uri"]}
                found[name] = TrackerArtifact(name, str(record.get("path")), metadata)
            return dict(sorted(found.items()))

    # --- links ---

    def add_source(self, run_id: str, source_id: str, artifact_name: str | None = None) -> None:
        from mlflow.entities import RunTag

        with self._calling("add_source"):
            mlflow_run = self._mlflow_run(run_id, create=True)
            assert mlflow_run is not None
            link = {"run_id": source_id, "artifact_name": artifact_name}
            tags = [
                RunTag(SOURCE_PREFIX + _digest(source_id), source_id[:MAX_TAG_VALUE]),
                self._tag(
                    LINK_PREFIX + _digest(source_id, artifact_name or ""),
                    link,
                    "run_id",
                    mlflow_run,
                ),
            ]
            self._log(mlflow_run, tags=tags)

    def _links(self, run: Run) -> list[LinkedRun]:
        links = []
        for record in self._records(run, LINK_PREFIX):
            other, name = record.get("run_id"), record.get("artifact_name")
            if isinstance(other, str):
                links.append(LinkedRun(other, name if isinstance(name, str) else None))
        return sorted(links, key=lambda x: (x.run_id, x.artifact_name or ""))

    def _source_links(self, run_id: str) -> list[LinkedRun]:
        with self._calling("sources"):
            mlflow_run = self._mlflow_run(run_id, create=False)
            if mlflow_run is None:
                return []
            return self._links(self._client.get_run(mlflow_run))

    def _descendant_links(self, run_id: str) -> list[LinkedRun]:
        with self._calling("descendants"):
            found: list[LinkedRun] = []
            for child in self._search(f"tags.`{SOURCE_PREFIX}{_digest(run_id)}` LIKE '%'"):
                child_id = child.data.tags.get(TAG_RUN_ID)
                if child_id is None:
                    continue
                found.extend(
                    LinkedRun(child_id, link.artifact_name)
                    for link in self._links(child)
                    if link.run_id == run_id
                )
            return found

    # --- runs ---

    def has_run(self, run_id: str) -> bool:
        with self._calling("has_run"):
            return run_id in self._runs or bool(self._runs_of(run_id))

    def _all_run_ids(self) -> list[str]:
        with self._calling("run_ids"):
            runs = self._search(f"tags.`{TAG_RUN_KEY}` LIKE '%'")
            return list({r.data.tags[TAG_RUN_ID] for r in runs if TAG_RUN_ID in r.data.tags})

    # --- metrics and summaries ---

    def add_metrics(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        from mlflow.entities import Metric

        if not points:
            return
        cols = points if isinstance(points, MetricColumns) else MetricColumns.from_rows(points)
        with self._calling("add_metrics"):
            rejected = sorted({n for n in set(cols.names) if not mlflow_name_ok(n)})
            if rejected and self.config.strict:
                raise TrackerError(
                    f"MLflow cannot name metric(s) {rejected}: names may only contain letters, "
                    "digits, '_', '-', '.', ' ', ':' and '/', and must be relative paths"
                )
            mlflow_run = self._mlflow_run(run_id, create=True)
            assert mlflow_run is not None
            if rejected:
                self._warn_once(
                    f"names:{rejected}",
                    "MLflow cannot name metric(s) %s: kept in torchx/metrics/ only, "
                    "not in MLflow's metric view",
                    rejected,
                )
            metrics = [
                Metric(name, float(value), _millis(t), step or 0)
                for name, value, step, t in zip(
                    cols.names, cols.values, cols.steps, cols.times, strict=True
                )
                if not rejected or name not in rejected
            ]
            self._log(mlflow_run, metrics=metrics)
            # The exact batch (MLflow's metrics have no rank, no "no step", ms times and
            # collapse identical points): column-wise, names as indices into distinct names.
            distinct = list(dict.fromkeys(cols.names))
            index = {n: i for i, n in enumerate(distinct)}
            record: dict[str, object] = {
                "names": distinct,
                "name": [index[n] for n in cols.names],
                "value": list(cols.values),
                "step": list(cols.steps),
                "time": list(cols.times),
            }
            if any(r is not None for r in cols.ranks):
                record["rank"] = list(cols.ranks)
            path = posixpath.join(METRICS_DIR, record_name() + ".json")
            self._client.log_text(mlflow_run, _dumps({"points": record}), path)

    def metrics(self, run_id: str, name: str | None = None) -> list[MetricPoint]:
        with self._calling("metrics"):
            mlflow_run = self._mlflow_run(run_id, create=False)
            if mlflow_run is None:
                return []
            if not self._client.list_artifacts(mlflow_run, METRICS_DIR):
                return []
            points: list[MetricPoint] = []
            with tempfile.TemporaryDirectory(prefix="torchx-mlflow-") as tmp:
                local = self._client.download_artifacts(mlflow_run, METRICS_DIR, tmp)
                for file_name in sorted(os.listdir(local)):
                    if not file_name.endswith(".json"):
                        continue
                    with open(os.path.join(local, file_name), encoding="utf-8") as f:
                        cols = json.load(f).get("points") or {}
                    distinct, values = cols.get("names", []), cols.get("value", [])
                    ranks = cols.get("rank") or [None] * len(values)
                    rows = zip(
                        (distinct[i] for i in cols.get("name", [])),
                        values,
                        cols.get("step", []),
                        cols.get("time", []),
                        ranks,
                        strict=True,
                    )
                    points.extend(
                        MetricPoint(*row) for row in rows if name is None or row[0] == name
                    )
            return points

    def add_summary(self, run_id: str, **values: object) -> None:
        from mlflow.entities import Metric

        with self._calling("add_summary"):
            mlflow_run = self._mlflow_run(run_id, create=True)
            assert mlflow_run is not None
            now = _millis(record_time())
            tags: list[RunTag] = []
            metrics: list[Metric] = []
            for key, value in values.items():
                tag_key = _keyed_tag(SUMMARY_PREFIX, SUMMARY_HASHED_PREFIX, key)
                record = {"key": key, "value": _jsonable(value)}
                tags.append(self._tag(tag_key, record, "key", mlflow_run))
                metric_key = SUMMARY_METRIC_PREFIX + key
                if isinstance(value, bool) or not mlflow_name_ok(metric_key):
                    continue
                if isinstance(value, int | float):
                    metrics.append(Metric(metric_key, float(value), now, 0))
            self._log(mlflow_run, tags=tags, metrics=metrics)

    def summary(self, run_id: str) -> Mapping[str, object]:
        with self._calling("summary"):
            mlflow_run = self._mlflow_run(run_id, create=False)
            if mlflow_run is None:
                return {}
            run = self._client.get_run(mlflow_run)
            return {
                record["key"]: record.get("value")
                for record in self._records(run, SUMMARY_PREFIX, SUMMARY_HASHED_PREFIX)
                if isinstance(record.get("key"), str)
            }

    # --- status ---

    def _set_status(self, run_id: str, status: RunStatus) -> None:
        with self._calling("set_status"):
            mlflow_run = self._mlflow_run(run_id, create=True)
            assert mlflow_run is not None
            target = _STATUS_TO_MLFLOW[status]
            if target == "RUNNING":
                self._client.update_run(mlflow_run, status=target)
            else:  # also sets the end time
                # The operation's own time: a status delivered late (from the spool) still
                # ends the run when the job ended, not when it was delivered.
                end = _millis(record_time())
                self._client.set_terminated(mlflow_run, status=target, end_time=end)

    def status(self, run_id: str) -> RunStatus | None:
        with self._calling("status"):
            mlflow_run = self._mlflow_run(run_id, create=False)
            if mlflow_run is None:
                return None
            return _STATUS_FROM_MLFLOW.get(self._client.get_run(mlflow_run).info.status)


def _millis(seconds: float) -> int:
    return int(round(seconds * 1000)) if math.isfinite(seconds) else 0


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def _batches(
    params: Sequence[Param], tags: Sequence[RunTag], metrics: Sequence[Metric]
) -> Iterator[_Batch]:
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
        yield _Batch(params=taken[0], tags=taken[1], metrics=taken[2])


def create_tracker(config: str | None) -> MLflowTracker:
    """Entry-point factory: ``config`` is empty, a tracking URI, or a YAML/JSON mapping."""
    return MLflowTracker(MLflowConfig.parse(config))
