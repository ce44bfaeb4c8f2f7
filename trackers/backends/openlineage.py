"""The OpenLineage backend: a run's lifecycle, lineage and artifacts as OpenLineage run events.

``--tracker openlineage=CONFIG`` sends events through the ``openlineage-python`` client (its typed
``RunEvent``/facet classes and its transports); CONFIG is one of

* ``http://HOST[:PORT]`` or ``https://HOST[:PORT]``: the client's HTTP transport, ``POST
  /api/v1/lineage`` (Marquez and every consumer that speaks OpenLineage's HTTP API). An API key
  comes from ``OPENLINEAGE_API_KEY`` in the job's env, never from the config;
* ``file://PATH``: the client's file transport, one event per line appended to PATH;
* empty: the client's own configuration (``openlineage.yml``, ``OPENLINEAGE_URL``,
  ``OPENLINEAGE__...`` env vars), read in the job.

It is write-only: every read raises :class:`~trackers.errors.UnsupportedOperation`, so
``AppRun``'s reads fall over to the next tracker.

Events are a pure function of one write (:func:`event_of`): the run id, the write's kind and
arguments, and its operation id. An operation id is a record name (``<time_ns>-<hex>``,
:func:`trackers._ids.record_name`): the delivery worker applies each write inside
:func:`trackers._ids.deterministic_record_names`, and the record stores name that write's
record by the same id, so a replayed write (``torchx tracker sync``) sends the very same event,
and ``torchx tracker export openlineage`` rebuilds it from the store. Mapping:

========================  =====================================================================
write                     event
========================  =====================================================================
``set_status``            RUNNING -> START, SUCCEEDED -> COMPLETE, FAILED -> FAIL (with an
                          ``errorMessage`` facet), KILLED -> ABORT
``add_source``            RUNNING; ``(source, artifact)`` is an input dataset (namespace the
                          source run id, name the artifact); an unnamed link to anything but a
                          TorchX run (a dataset URL) is an input dataset named after the URL; an
                          unnamed link to a TorchX run (the parent link) sends nothing: the
                          launch record carries the ``parent`` facet
``add_artifact``          RUNNING; output dataset (namespace the run id, name the artifact name),
                          with a ``symlinks`` facet to its path and ``torchx_artifact``
``add_metadata``          OTHER, only for ``launch.*`` keys (facet ``torchx_launch``, and
                          ``parent`` from ``launch.parent_run_id``/``launch.root_run_id``),
                          ``env.*`` keys (``torchx_environment``, ``processing_engine``) or
                          ``error.message`` (``errorMessage``); other metadata sends nothing
metrics, summaries        nothing
========================  =====================================================================

Every event carries the ``torchx_run`` facet (the TorchX run id), ``runId`` =
:func:`run_uuid` (UUIDv5 of the run id) and the job of :func:`job_of`.

Why the parent facet rides on the launch record and not on the link: the facet's ``root`` (the
top of the pipeline) is not in a link write, and an event must be a pure function of its write
so that ``sync`` and the backfill send the very same one. The launch record holds both
``launch.parent_run_id`` and ``launch.root_run_id`` and every store keeps it (MLflow too), so
each run has exactly one parent facet, with the right root, from every path. The job needs no
root of its own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

from torchx.tracker.api import TrackerArtifact

from trackers import jsonsafe
from trackers.api import LineageTracker
from trackers.errors import (
    BackendUnavailable,
    TrackerConfigError,
    TrackerError,
    UnsupportedOperation,
)
from trackers.ids import RUN_ID_PATTERN, id_bytes, is_torchx_run_id, record_name
from trackers.redact import redact
from trackers.types import LinkedRun, MetricPoint, RecordedWrite, RunStatus

if TYPE_CHECKING:
    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import RunEvent

logger: logging.Logger = logging.getLogger(__name__)

#: Namespace of the run UUIDs (:func:`run_uuid`): ``uuid5(NAMESPACE_URL, "torchx-lineage:run")``.
RUN_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "torchx-lineage:run")
#: The path of OpenLineage's HTTP API (Marquez's), under an ``http(s)://HOST[:PORT]`` config.
LINEAGE_ENDPOINT = "api/v1/lineage"
#: Retries inside one send (connect only): the delivery worker retries the rest from the spool.
HTTP_RETRY: Mapping[str, Any] = {
    "total": 2,
    "connect": 2,
    "read": 0,
    "status": 0,
    "status_forcelist": [],
    "backoff_factor": 0.1,
    "allowed_methods": ["POST"],
}
HTTP_TIMEOUT = 10.0
#: TorchX's ``make_unique`` suffix: ``-`` and a 64-bit number in its alphabet (no vowels, no 8).
_UNIQUE_SUFFIX = re.compile(r"-[bcdfghjklmnpqrstvwxz][bcdfghjklmnpqrstvwxz012345679]{7,15}$")

STATUS_EVENTS: Mapping[str, str] = {
    "RUNNING": "START",
    "SUCCEEDED": "COMPLETE",
    "FAILED": "FAIL",
    "KILLED": "ABORT",
}

Kind = Literal["http", "file", "client"]


# --- identities -------------------------------------------------------------------------------


def run_uuid(run_id: str) -> str:
    """The OpenLineage ``runId`` of a TorchX run: UUIDv5 (SHA-1) of the run id's bytes in
    :data:`RUN_UUID_NAMESPACE`, the same in every process (``uuid.uuid5`` for any id that is
    valid UTF-8; ids holding undecodable bytes hash those bytes)."""
    digest = hashlib.sha1(RUN_UUID_NAMESPACE.bytes + id_bytes(run_id)).digest()  # noqa: S324
    return str(uuid.UUID(bytes=digest[:16], version=5))


@dataclass(frozen=True)
class JobName:
    """An OpenLineage job identity (namespace, name)."""

    namespace: str
    name: str


def job_of(run_id: str) -> JobName:
    """The OpenLineage job of a TorchX run ``SCHEDULER://SESSION/APP_ID``.

    Namespace ``SCHEDULER://SESSION`` (the run id up to the app id); name the app id without
    TorchX's unique suffix (``train-bx7k2c9dq1zz`` -> ``train``), so runs of one app are runs of
    one job. A Kubernetes app id ``NAMESPACE:NAME`` keeps its namespace (``default:train``); an
    app id without that suffix (a Slurm job id) is the name itself. Any other id: namespace
    ``torchx``, name the whole id.
    """
    found = RUN_ID_PATTERN.match(run_id)
    if found is None:
        return JobName("torchx", run_id)
    app = found["app"]
    head, colon, tail = app.rpartition(":")
    stripped = _UNIQUE_SUFFIX.sub("", tail) or tail
    return JobName(f"{found['scheduler']}://{found['session']}", f"{head}{colon}{stripped}")


def event_time(op_id: str) -> str:
    """The ``eventTime`` of an operation: the time in its id (``<time_ns>-...``), UTC, to the
    microsecond (integer arithmetic, so every process gets the same text)."""
    head = op_id.split("-", 1)[0]
    ns = int(head) if head.isdigit() else 0
    when = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=ns // 1000)
    return when.isoformat(timespec="microseconds")


def dataset_of_url(url: str) -> tuple[str, str]:
    """OpenLineage's dataset naming for a URL: ``(scheme://authority, path)``; a plain path is
    ``("file", path)``."""
    parts = urlsplit(url)
    if not parts.scheme or len(parts.scheme) == 1:  # no scheme, or a Windows drive letter
        return "file", url
    name = parts.path + (f"?{parts.query}" if parts.query else "")
    return f"{parts.scheme}://{parts.netloc}", name or "/"


# --- the write, as an event ---------------------------------------------------------------------


#: One write of a run, as the event mapping sees it: kind, arguments, operation id (the same
#: value a store's :meth:`~trackers.api.LineageTracker.write_history` gives back).
Write = RecordedWrite


def producer() -> str:
    """The ``producer`` URI of our events (and ``_producer`` of our facets)."""
    return "https://pypi.org/project/torchx-lineage/"


def _facet_schema(name: str) -> str:
    """The ``_schemaURL`` of a custom facet: it names the facet; no schema document is served."""
    return f"{producer()}#/$defs/{name}"


@cache
def _custom_facets() -> dict[str, type[Any]]:
    """Our custom facets, as ``openlineage-python`` facet classes (defined on first use)."""
    import attr
    from openlineage.client.facet_v2 import DatasetFacet, RunFacet

    @attr.define
    class TorchxRunFacet(RunFacet):
        """The TorchX run id of the event's run (the OpenLineage ``runId`` is a hash of it)."""

        runId: str  # noqa: N815

        @staticmethod
        def _get_schema() -> str:
            return _facet_schema("TorchxRunFacet")

    @attr.define
    class TorchxLaunchRunFacet(RunFacet):
        """The launch record (``launch.*`` metadata) without the prefix."""

        launch: dict[str, Any]

        @staticmethod
        def _get_schema() -> str:
            return _facet_schema("TorchxLaunchRunFacet")

    @attr.define
    class TorchxEnvironmentRunFacet(RunFacet):
        """The environment snapshot (``env.*`` metadata) without the prefix."""

        environment: dict[str, Any]

        @staticmethod
        def _get_schema() -> str:
            return _facet_schema("TorchxEnvironmentRunFacet")

    @attr.define
    class TorchxArtifactDatasetFacet(DatasetFacet):
        """An artifact as the run recorded it: its path and metadata."""

        path: str
        metadata: dict[str, Any] | None = None

        @staticmethod
        def _get_schema() -> str:
            return _facet_schema("TorchxArtifactDatasetFacet")

    return {
        "run": TorchxRunFacet,
        "launch": TorchxLaunchRunFacet,
        "environment": TorchxEnvironmentRunFacet,
        "artifact": TorchxArtifactDatasetFacet,
    }


def _plain(value: object) -> Any:
    """``value`` made of JSON types (the spool's fallback forms), as every store keeps it."""
    return jsonsafe.json_safe(value, surrogates="text")[0]


def _prefixed(values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: _plain(v) for k, v in values.items() if k.startswith(prefix)}


def parent_facet(parent_run_id: str, root_run_id: str) -> Any:
    """The ``ParentRunFacet`` of a run launched with ``--parent-run-id PARENT``: the parent's
    run and job, and ``root`` the top-level run of the pipeline (OpenLineage's root of the
    hierarchy: the run at the top of the parent chain, which ``torchx run`` resolves from the
    stores and records as ``launch.root_run_id``; the parent itself when it has no parent)."""
    from openlineage.client.facet_v2 import parent_run

    parent, root = job_of(parent_run_id), job_of(root_run_id)
    return parent_run.ParentRunFacet(
        run=parent_run.Run(runId=run_uuid(parent_run_id)),
        job=parent_run.Job(namespace=parent.namespace, name=parent.name),
        root=parent_run.Root(
            run=parent_run.RootRun(runId=run_uuid(root_run_id)),
            job=parent_run.RootJob(namespace=root.namespace, name=root.name),
        ),
        producer=producer(),
    )


def event_of(run_id: str, write: Write) -> RunEvent | None:
    """The event for one write of ``run_id`` (see the module docstring), ``None`` if it sends
    none. A pure function: the same write gives the same event in any process."""
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.facet_v2 import (
        error_message_run,
        processing_engine_run,
        symlinks_dataset,
    )

    custom = _custom_facets()
    made_by = producer()
    run_facets: dict[str, Any] = {"torchx_run": custom["run"](runId=run_id, producer=made_by)}
    inputs: list[Any] = []
    outputs: list[Any] = []
    args = write.args
    state: str | None = None
    if write.kind == "set_status":
        state = STATUS_EVENTS.get(str(args.get("status")))
        if state == "FAIL":
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=f"TorchX run {run_id} ended FAILED",
                programmingLanguage="python",
                producer=made_by,
            )
    elif write.kind == "add_source":
        state = "RUNNING"
        source = str(args["source_id"])
        artifact = args.get("artifact_name")
        if artifact:
            inputs.append(InputDataset(namespace=source, name=str(artifact)))
        elif is_torchx_run_id(source):
            # The parent link: its facet goes out with the launch record, which also names the
            # pipeline's root (a link alone cannot: see parent_facet).
            return None
        else:
            namespace, name = dataset_of_url(source)
            inputs.append(InputDataset(namespace=namespace, name=name))
    elif write.kind == "add_artifact":
        state = "RUNNING"
        path = str(args["path"])
        namespace, name = dataset_of_url(path)
        metadata = args.get("metadata")
        facets: dict[str, Any] = {
            "symlinks": symlinks_dataset.SymlinksDatasetFacet(
                identifiers=[
                    symlinks_dataset.Identifier(namespace=namespace, name=name, type="FILE")
                ],
                producer=made_by,
            ),
            "torchx_artifact": custom["artifact"](
                path=path,
                metadata=_plain(metadata) if metadata else None,
                producer=made_by,
            ),
        }
        outputs.append(OutputDataset(namespace=run_id, name=str(args["name"]), facets=facets))
    elif write.kind == "add_metadata":
        values = args.get("values") or {}
        launch = _prefixed(values, "launch.")
        environment = _prefixed(values, "env.")
        if launch:
            run_facets["torchx_launch"] = custom["launch"](launch=launch, producer=made_by)
            parent = launch.get("parent_run_id")
            if isinstance(parent, str) and is_torchx_run_id(parent):
                root = launch.get("root_run_id")
                run_facets["parent"] = parent_facet(
                    parent, root if isinstance(root, str) and is_torchx_run_id(root) else parent
                )
        if environment:
            run_facets["torchx_environment"] = custom["environment"](
                environment=environment, producer=made_by
            )
            packages = environment.get("packages")
            torchx_version = (
                packages.get("torchx") or packages.get("torchx-nightly")
                if isinstance(packages, dict)
                else None
            )
            if isinstance(packages, dict) and torchx_version:
                run_facets["processing_engine"] = processing_engine_run.ProcessingEngineRunFacet(
                    version=str(torchx_version),
                    name="torchx",
                    openlineageAdapterVersion=_adapter_version(packages),
                    producer=made_by,
                )
        message = values.get("error.message")
        if message is not None:
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=str(_plain(message)),
                programmingLanguage="python",
                stackTrace=str(_plain(values["error.stack_trace"]))
                if values.get("error.stack_trace") is not None
                else None,
                producer=made_by,
            )
        if len(run_facets) > 1:
            state = "OTHER"
    if state is None:
        return None
    job = job_of(run_id)
    return RunEvent(
        eventType=RunState[state],
        eventTime=event_time(write.op_id),
        run=Run(runId=run_uuid(run_id), facets=run_facets),
        job=Job(namespace=job.namespace, name=job.name),
        inputs=inputs,
        outputs=outputs,
        producer=made_by,
    )


def _adapter_version(packages: Mapping[str, Any]) -> str:
    version = packages.get("torchx-lineage")
    return str(version) if version else "unknown"


# --- config -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenLineageConfig:
    """Where events go: an HTTP endpoint, a file, or the client's own configuration."""

    kind: Kind
    target: str = ""  # the URL (http) or the absolute path (file)

    @classmethod
    def parse(cls, config: str | None) -> OpenLineageConfig:
        """``http(s)://HOST[:PORT]``, ``file://PATH`` or empty (see the module docstring)."""
        text = (config or "").strip()
        if not text:
            return cls("client")
        if text.startswith("file://"):
            path = text[len("file://") :]
            if not path:
                raise TrackerConfigError("openlineage: file:// needs a path, e.g. file:///data/ol")
            return cls("file", os.path.abspath(os.path.expanduser(path)))
        parts = urlsplit(text)
        if parts.scheme in ("http", "https"):
            problem = None
            if "@" in parts.netloc:
                problem = "holds user info: put an API key in OPENLINEAGE_API_KEY, not the config"
            elif not parts.hostname:
                problem = "has no host"
            elif parts.path not in ("", "/") or parts.query or parts.fragment:
                problem = f"has a path, query or fragment (events go to /{LINEAGE_ENDPOINT})"
            else:
                try:
                    parts.port  # noqa: B018 (raises for a malformed port)
                except ValueError:
                    problem = "has a malformed port"
            if problem:
                raise TrackerConfigError(
                    f"openlineage config {redact(text)!r} {problem}; expected http(s)://HOST[:PORT]"
                )
            return cls("http", f"{parts.scheme}://{parts.netloc}")
        raise TrackerConfigError(
            f"openlineage config {redact(text)!r}: expected http(s)://HOST[:PORT], file://PATH, "
            "or empty for the OpenLineage client's own configuration (openlineage.yml, "
            "OPENLINEAGE_URL, OPENLINEAGE__* env vars)"
        )

    def text(self) -> str:
        """The config string that opens this target from another process."""
        if self.kind == "http":
            return self.target
        if self.kind == "file":
            return f"file://{self.target}"
        return ""


# --- the tracker --------------------------------------------------------------------------------


class OpenLineageTracker(LineageTracker):
    """Sends each write of a run as an OpenLineage run event (write-only; see the module)."""

    registry_name: ClassVar[str] = "openlineage"
    readable: ClassVar[bool] = False

    def __init__(self, config: OpenLineageConfig) -> None:
        self.config = config
        self._client: OpenLineageClient | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        where = self.config.target or "the client's configuration"
        return f"OpenLineageTracker({where})"

    def job_config(self, torchx_compatible: bool = False) -> str | None:
        del torchx_compatible
        return self.config.text() if self.config.kind == "file" else None

    # --- sending ---
    def client(self) -> OpenLineageClient:
        """The ``openlineage-python`` client for this target (built on first use)."""
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> OpenLineageClient:
        from openlineage.client import OpenLineageClient

        if self.config.kind == "client":
            return OpenLineageClient()
        if self.config.kind == "file":
            from openlineage.client.transport.file import FileConfig, FileTransport

            os.makedirs(os.path.dirname(self.config.target) or ".", exist_ok=True)
            transport: Any = FileTransport(
                FileConfig(log_file_path=self.config.target, append=True)
            )
            return OpenLineageClient(transport=transport)
        from openlineage.client.transport.http import HttpConfig, HttpTransport

        params: dict[str, Any] = {
            "url": self.config.target,
            "endpoint": LINEAGE_ENDPOINT,
            "timeout": HTTP_TIMEOUT,
            "retry": dict(HTTP_RETRY),
        }
        api_key = os.environ.get("OPENLINEAGE_API_KEY")
        if api_key:
            params["auth"] = {"type": "api_key", "apiKey": api_key}
        return OpenLineageClient(transport=HttpTransport(HttpConfig.from_dict(params)))

    def emit(self, run_id: str, write: Write) -> bool:
        """Send the event of ``write`` (if it has one); ``True`` when one was sent.

        Raises :class:`BackendUnavailable` when the target cannot be reached (the spool keeps the
        write), ``TrackerConfigError`` when it refuses our credentials, and ``TrackerError`` when
        it rejects the event itself.
        """
        event = event_of(run_id, write)
        if event is None:
            return False
        try:
            self.client().emit(event)
        except Exception as e:
            raise self._classify(e) from e
        return True

    def _classify(self, error: Exception) -> Exception:
        where = repr(self)
        response = getattr(error, "response", None)
        code = getattr(response, "status_code", None)
        detail = redact(f"{type(error).__name__}: {error}")
        if isinstance(code, int):
            if code in (401, 403):
                return TrackerConfigError(
                    f"{where} refused the credentials (HTTP {code}); set OPENLINEAGE_API_KEY"
                )
            if code >= 500 or code in (408, 429):
                return BackendUnavailable(f"{where} answered HTTP {code}: {detail}")
            return TrackerError(f"{where} rejected the event (HTTP {code}): {detail}")
        if isinstance(error, ValueError | TypeError) and not isinstance(error, OSError):
            return TrackerError(f"{where} could not send the event: {detail}")
        return BackendUnavailable(f"{where} is not reachable: {detail}")

    def _write(self, run_id: str, kind: str, **args: Any) -> None:
        self.emit(run_id, Write(kind, args, record_name()))

    # --- writes ---
    def add_artifact(
        self, run_id: str, name: str, path: str, metadata: Mapping[str, object] | None = None
    ) -> None:
        self._write(run_id, "add_artifact", name=name, path=path, metadata=metadata)

    def add_metadata(self, run_id: str, **kwargs: object) -> None:
        self._write(run_id, "add_metadata", values=kwargs)

    def add_source(self, run_id: str, source_id: str, artifact_name: str | None = None) -> None:
        self._write(run_id, "add_source", source_id=source_id, artifact_name=artifact_name)

    def _set_status(self, run_id: str, status: RunStatus) -> None:
        self._write(run_id, "set_status", status=status)

    def add_metrics(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        """Metrics are not lineage: nothing is sent."""

    def add_summary(self, run_id: str, **values: object) -> None:
        """Summaries are not lineage: nothing is sent."""

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                client.close(timeout=1.0)
            except Exception as e:  # closing never fails a job
                logger.debug("closing %r: %s", self, e)

    # --- reads: write-only ---
    def _unsupported(self, operation: str) -> UnsupportedOperation:
        return UnsupportedOperation(
            f"{self!r} is write-only: {operation} is not supported (read from a store tracker, "
            "e.g. lineage_fsspec)"
        )

    def artifacts(self, run_id: str) -> Mapping[str, TrackerArtifact]:
        raise self._unsupported("artifacts")

    def metadata(self, run_id: str) -> Mapping[str, object]:
        raise self._unsupported("metadata")

    def _source_links(self, run_id: str) -> Iterable[LinkedRun]:
        raise self._unsupported("sources")

    def _descendant_links(self, run_id: str) -> Iterable[LinkedRun]:
        raise self._unsupported("descendants")

    def _all_run_ids(self) -> list[str]:
        raise self._unsupported("run_ids")

    def has_run(self, run_id: str) -> bool:
        raise self._unsupported("has_run")

    def metrics(self, run_id: str, name: str | None = None) -> list[MetricPoint]:
        raise self._unsupported("metrics")

    def summary(self, run_id: str) -> Mapping[str, object]:
        raise self._unsupported("summary")

    def status(self, run_id: str) -> RunStatus | None:
        raise self._unsupported("status")


def create_tracker(config: str | None) -> OpenLineageTracker:
    """Entry-point factory; needs ``openlineage-python`` (``pip install
    'torchx-lineage[openlineage]'``), checked here so a launch fails before submitting."""
    parsed = OpenLineageConfig.parse(config)
    try:
        import openlineage.client  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "the openlineage tracker needs openlineage-python: "
            "pip install 'torchx-lineage[openlineage]'"
        ) from e
    return OpenLineageTracker(parsed)
