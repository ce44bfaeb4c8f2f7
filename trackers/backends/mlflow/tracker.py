"""The TorchX -> MLflow mapping: one MLflow run per TorchX run, in one experiment.

Metadata become params (tags where params cannot hold them), artifacts, links and summaries are
JSON tags, metrics go out with ``log_batch`` and are kept exactly as JSON artifacts, status maps
onto MLflow's run status. ``docs/mlflow.md`` has the long form.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import posixpath
import tempfile
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from torchx.tracker.api import TrackerArtifact

from trackers.api import LineageTracker
from trackers.backends.mlflow.config import MLflowConfig
from trackers.backends.mlflow.encoding import (
    ARTIFACT_HASHED_PREFIX,
    ARTIFACT_PREFIX,
    BLOBS_DIR,
    JOURNAL_PREFIX,
    LINK_PREFIX,
    MAX_PARAM_VALUE,
    MAX_TAG_VALUE,
    METADATA_HASHED_PREFIX,
    METADATA_PREFIX,
    METRICS_DIR,
    SOURCE_PREFIX,
    SUMMARY_HASHED_PREFIX,
    SUMMARY_METRIC_PREFIX,
    SUMMARY_PREFIX,
    TAG_DATASET_CONTEXT,
    TAG_PARENT_RUN,
    TAG_RUN_ID,
    TAG_RUN_KEY,
    UPLOADS_DIR,
    batches,
    dataset_ref,
    decode_param,
    digest,
    dumps,
    encode_param,
    jsonable,
    keyed_tag,
    millis,
    mlflow_name_ok,
)
from trackers.backends.mlflow.errors import MLflowCalls, retry_insert_race
from trackers.backends.mlflow.run_agreement import RunAgreement, search_runs
from trackers.errors import TrackerConfigError, TrackerError
from trackers.ids import (
    is_torchx_run_id,
    operation_id,
    record_name,
    record_sort_key,
    record_time,
)
from trackers.metric_codec import as_columns, decode_columns, encode_columns
from trackers.redact import redact
from trackers.types import LinkedRun, MetricPoint, RecordedWrite, RunStatus
from trackers.warn_once import WarnOnce

if TYPE_CHECKING:
    from mlflow.entities import Metric, Param, Run, RunTag
    from mlflow.tracking import MlflowClient

logger: logging.Logger = logging.getLogger(__name__)

__all__ = ["MLflowTracker", "create_tracker"]

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


class MLflowTracker(LineageTracker):
    """TorchX runs recorded as MLflow runs of one experiment, through ``MlflowClient``.

    Args:
        config: where and how to record (see :class:`MLflowConfig` and ``docs/mlflow.md``).

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
        self._calls = MLflowCalls(self.uri, MlflowException, on_run_gone=self._forget_runs)
        # MLflow prints "View run ... at: URL" to stdout on some calls (set_terminated): that
        # would land in a job's output and in `torchx tracker sync --format json`.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        self._mlflow_error: type[Exception] = MlflowException
        try:
            self._client: MlflowClient = MlflowClient(tracking_uri=self.uri)
        except MlflowException as e:
            raise TrackerConfigError(
                f"tracking URI {self._calls.display_uri!r}: {e.message}"
            ) from None
        self._lock = threading.RLock()
        self._experiment_id: str | None = None
        self._warn_once = WarnOnce(logger)
        self._nested: set[str] = set()  # MLflow runs whose mlflow.parentRunId is settled
        self._agreement = RunAgreement(
            self._client, self._experiment, where=self._calls.display_uri
        )
        if config.strict:  # fail fast: `torchx run` then refuses to submit
            try:
                with self._calls.calling("connect"):
                    self._experiment(create=False)
            except TrackerError as e:
                raise TrackerConfigError(str(e)) from None

    def _forget_runs(self) -> None:
        self._agreement.forget()

    def __repr__(self) -> str:
        experiment = self.config.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
        suffix = f", experiment={experiment!r}" if experiment else ""
        return f"MLflowTracker({self._calls.display_uri}{suffix})"

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

    # --- plumbing: batching, records in tags ---

    def _log(
        self,
        mlflow_run: str,
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
        metrics: Sequence[Metric] = (),
    ) -> int:
        """``log_batch`` in as few requests as MLflow's limits allow; returns the count."""
        requests = 0
        for batch in batches(params, tags, metrics):
            retry_insert_race(
                functools.partial(
                    self._client.log_batch,
                    mlflow_run,
                    metrics=batch.metrics,
                    params=batch.params,
                    tags=batch.tags,
                    synchronous=True,
                ),
                self._mlflow_error,
            )
            requests += 1
        return requests

    def _tag(self, key: str, record: Mapping[str, object], ident_key: str, run: str) -> RunTag:
        """A tag holding ``record`` as JSON, or pointing to a JSON artifact when too long."""
        from mlflow.entities import RunTag

        text = dumps(record)
        if len(text) > MAX_TAG_VALUE:
            path = posixpath.join(BLOBS_DIR, record_name() + ".json")
            self._client.log_text(run, text, path)
            text = dumps({ident_key: record[ident_key], "blob": path})
        return RunTag(key, text)

    def _journal(self, mlflow_run: str, kind: str, args: Mapping[str, object]) -> RunTag:
        """The journal tag of one write, named by its operation id (so a write delivered twice
        from the spool is one entry, and two writes with the same arguments are two)."""
        op_id = operation_id()
        record = {"id": op_id, "op": kind, "args": jsonable(dict(args))}
        return self._tag(JOURNAL_PREFIX + op_id, record, "id", mlflow_run)

    def _records(self, run: Run, *prefixes: str, blobs: bool = True) -> list[dict[str, Any]]:
        """The JSON records in the run's tags under ``prefixes`` (blobs fetched, or with
        ``blobs=False`` left out)."""
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
                if not blobs:
                    continue
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
                            f"MLflow at {self._calls.display_uri}: experiment {name!r} "
                            "was created but cannot be read back"
                        )
            else:
                experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID") or "0"
                experiment = self._client.get_experiment(experiment_id)
            if experiment.lifecycle_stage != "active":
                raise TrackerConfigError(
                    f"MLflow at {self._calls.display_uri}: experiment {experiment.name!r} "
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

    def _search(self, filter_string: str) -> list[Run]:
        experiment = self._experiment(create=False)
        if experiment is None:
            return []
        return search_runs(self._client, experiment, filter_string)

    # --- metadata ---

    def add_metadata(self, run_id: str, **kwargs: object) -> None:
        from mlflow.entities import Param

        with self._calls.calling("add_metadata"):
            mlflow_run = self._agreement.ensure(run_id)
            if not kwargs:
                return
            journal = self._journal(mlflow_run, "add_metadata", {"values": kwargs})
            for attempt in range(3):
                run = self._client.get_run(mlflow_run)
                params, tags = run.data.params, run.data.tags
                new_params: list[Param] = []
                new_tags: list[RunTag] = [journal]
                for key, value in kwargs.items():
                    tag_key = keyed_tag(METADATA_PREFIX, METADATA_HASHED_PREFIX, key)
                    text = encode_param(value)
                    if (
                        key not in params
                        and tag_key not in tags
                        and mlflow_name_ok(key)
                        and len(text) <= MAX_PARAM_VALUE
                    ):
                        new_params.append(Param(key, text))
                    else:
                        record = {"key": key, "value": jsonable(value)}
                        new_tags.append(self._tag(tag_key, record, "key", mlflow_run))
                try:
                    self._log(mlflow_run, params=new_params, tags=new_tags)
                    return
                except self._mlflow_error as e:
                    # Another process logged one of these params first: read again, retry.
                    if attempt == 2 or "Changing param values" not in str(e):
                        raise

    def metadata(self, run_id: str) -> Mapping[str, object]:
        with self._calls.calling("metadata"):
            mlflow_run = self._agreement.find(run_id)
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
        with self._calls.calling("add_artifact"):
            mlflow_run = self._agreement.ensure(run_id)
            record: dict[str, object] = {
                "name": name,
                "path": path,
                "metadata": jsonable(dict(metadata)) if metadata else None,
            }
            if self.config.upload_artifacts:
                uri = self._upload(mlflow_run, name, path)
                if uri is not None:
                    record["uri"] = uri
            key = keyed_tag(ARTIFACT_PREFIX, ARTIFACT_HASHED_PREFIX, name)
            args = {"name": name, "path": path, "metadata": record["metadata"]}
            journal = self._journal(mlflow_run, "add_artifact", args)
            self._log(mlflow_run, tags=[self._tag(key, record, "name", mlflow_run), journal])

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
        folder = stripped if mlflow_name_ok(stripped) else f"{UPLOADS_DIR}/{digest(name)}"
        if os.path.isdir(local):
            self._client.log_artifacts(mlflow_run, local, artifact_path=folder)
            return f"runs:/{mlflow_run}/{folder}"
        self._client.log_artifact(mlflow_run, local, artifact_path=folder)
        return f"runs:/{mlflow_run}/{folder}/{os.path.basename(local)}"

    def artifacts(self, run_id: str) -> Mapping[str, TrackerArtifact]:
        with self._calls.calling("artifacts"):
            mlflow_run = self._agreement.find(run_id)
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

        with self._calls.calling("add_source"):
            mlflow_run = self._agreement.ensure(run_id)
            link = {"run_id": source_id, "artifact_name": artifact_name}
            tags = [
                RunTag(SOURCE_PREFIX + digest(source_id), source_id[:MAX_TAG_VALUE]),
                self._tag(
                    LINK_PREFIX + digest(source_id, artifact_name or ""),
                    link,
                    "run_id",
                    mlflow_run,
                ),
                self._journal(
                    mlflow_run,
                    "add_source",
                    {"source_id": source_id, "artifact_name": artifact_name},
                ),
            ]
            # (an empty id names no run and no dataset: the link tags alone, as before)
            source_run = self._agreement.find(source_id) if source_id else None
            if source_run is not None and artifact_name is None:
                parent = self._nesting_parent(mlflow_run, source_run)
                if parent is not None:
                    tags.append(RunTag(TAG_PARENT_RUN, parent))
            self._log(mlflow_run, tags=tags)
            if source_run is None and source_id and not is_torchx_run_id(source_id):
                self._log_dataset_input(mlflow_run, source_id, artifact_name)

    def _nesting_parent(self, mlflow_run: str, source_run: str) -> str | None:
        """``source_run`` if the child should be nested under it (``mlflow.parentRunId``).

        MLflow nests a run under one parent only; the launcher's parent is the first source
        linked without an artifact name (``AppRun`` records it when the run starts), so a run
        that already has a parent keeps it. ``None`` when nothing is to be set.
        """
        if source_run == mlflow_run or mlflow_run in self._nested:
            return None
        current = self._client.get_run(mlflow_run).data.tags.get(TAG_PARENT_RUN)
        if current is not None:
            self._nested.add(mlflow_run)
            return None
        self._nested.add(mlflow_run)
        return source_run

    def _log_dataset_input(self, mlflow_run: str, url: str, artifact_name: str | None) -> None:
        """Log a source that is not a run (a dataset URL) as a dataset input of the run.

        The link tags above already hold the link; a server without dataset inputs (an older
        MLflow, a store that refuses them) only costs this view, with a warning once.
        """
        from mlflow.entities import Dataset, DatasetInput, InputTag

        ref = dataset_ref(url)
        dataset = Dataset(ref.name, ref.digest, ref.source_type, ref.source)
        context = InputTag(TAG_DATASET_CONTEXT, (artifact_name or "source")[:MAX_TAG_VALUE])
        try:
            self._client.log_inputs(mlflow_run, datasets=[DatasetInput(dataset, tags=[context])])
        except self._mlflow_error as e:
            if self.config.strict:
                raise
            self._warn_once(
                "log_inputs",
                "MLflow at %s did not take a dataset input (%s); the source %s is recorded "
                "as a link only",
                self._calls.display_uri,
                getattr(e, "error_code", type(e).__name__),
                redact(url),
            )

    def _links(self, run: Run) -> list[LinkedRun]:
        links = []
        for record in self._records(run, LINK_PREFIX):
            other, name = record.get("run_id"), record.get("artifact_name")
            if isinstance(other, str):
                links.append(LinkedRun(other, name if isinstance(name, str) else None))
        return sorted(links, key=lambda x: (x.run_id, x.artifact_name or ""))

    def _source_links(self, run_id: str) -> list[LinkedRun]:
        with self._calls.calling("sources"):
            mlflow_run = self._agreement.find(run_id)
            if mlflow_run is None:
                return []
            return self._links(self._client.get_run(mlflow_run))

    def _descendant_links(self, run_id: str) -> list[LinkedRun]:
        with self._calls.calling("descendants"):
            found: list[LinkedRun] = []
            for child in self._search(f"tags.`{SOURCE_PREFIX}{digest(run_id)}` LIKE '%'"):
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
        with self._calls.calling("has_run"):
            return self._agreement.exists(run_id)

    def _all_run_ids(self) -> list[str]:
        with self._calls.calling("run_ids"):
            runs = self._search(f"tags.`{TAG_RUN_KEY}` LIKE '%'")
            return list({r.data.tags[TAG_RUN_ID] for r in runs if TAG_RUN_ID in r.data.tags})

    # --- metrics and summaries ---

    def add_metrics(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        from mlflow.entities import Metric

        if not points:
            return
        cols = as_columns(points)
        with self._calls.calling("add_metrics"):
            rejected = sorted({n for n in set(cols.names) if not mlflow_name_ok(n)})
            if rejected and self.config.strict:
                raise TrackerError(
                    f"MLflow cannot name metric(s) {rejected}: names may only contain letters, "
                    "digits, '_', '-', '.', ' ', ':' and '/', and must be relative paths"
                )
            mlflow_run = self._agreement.ensure(run_id)
            if rejected:
                self._warn_once(
                    f"names:{rejected}",
                    "MLflow cannot name metric(s) %s: kept in torchx/metrics/ only, "
                    "not in MLflow's metric view",
                    rejected,
                )
            metrics = [
                Metric(name, float(value), millis(t), step or 0)
                for name, value, step, t in zip(
                    cols.names, cols.values, cols.steps, cols.times, strict=True
                )
                if not rejected or name not in rejected
            ]
            self._log(mlflow_run, metrics=metrics)
            # The exact batch (MLflow's metrics have no rank, no "no step", ms times and
            # collapse identical points), in the MLflow form of the metric codec.
            record = encode_columns(cols, times="s")
            path = posixpath.join(METRICS_DIR, record_name() + ".json")
            self._client.log_text(mlflow_run, dumps({"points": record}), path)

    def metrics(self, run_id: str, name: str | None = None) -> list[MetricPoint]:
        with self._calls.calling("metrics"):
            mlflow_run = self._agreement.find(run_id)
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
                    points.extend(
                        MetricPoint._make(row)
                        for row in decode_columns(cols, times="s")
                        if name is None or row[0] == name
                    )
            return points

    def add_summary(self, run_id: str, **values: object) -> None:
        from mlflow.entities import Metric

        with self._calls.calling("add_summary"):
            mlflow_run = self._agreement.ensure(run_id)
            now = millis(record_time())
            tags: list[RunTag] = []
            metrics: list[Metric] = []
            for key, value in values.items():
                tag_key = keyed_tag(SUMMARY_PREFIX, SUMMARY_HASHED_PREFIX, key)
                record = {"key": key, "value": jsonable(value)}
                tags.append(self._tag(tag_key, record, "key", mlflow_run))
                metric_key = SUMMARY_METRIC_PREFIX + key
                if isinstance(value, bool) or not mlflow_name_ok(metric_key):
                    continue
                if isinstance(value, int | float):
                    metrics.append(Metric(metric_key, float(value), now, 0))
            self._log(mlflow_run, tags=tags, metrics=metrics)

    def summary(self, run_id: str) -> Mapping[str, object]:
        with self._calls.calling("summary"):
            mlflow_run = self._agreement.find(run_id)
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
        with self._calls.calling("set_status"):
            mlflow_run = self._agreement.ensure(run_id)
            target = _STATUS_TO_MLFLOW[status]
            # first, so a status MLflow shows is in the journal (rewriting an entry is harmless)
            self._log(
                mlflow_run, tags=[self._journal(mlflow_run, "set_status", {"status": status})]
            )
            if target == "RUNNING":
                self._client.update_run(mlflow_run, status=target)
            else:  # also sets the end time
                # The operation's own time: a status delivered late (from the spool) still
                # ends the run when the job ended, not when it was delivered.
                end = millis(record_time())
                self._client.set_terminated(mlflow_run, status=target, end_time=end)

    def status(self, run_id: str) -> RunStatus | None:
        with self._calls.calling("status"):
            mlflow_run = self._agreement.find(run_id)
            if mlflow_run is None:
                return None
            return _STATUS_FROM_MLFLOW.get(self._client.get_run(mlflow_run).info.status)

    def status_history(self, run_id: str) -> list[tuple[float | None, str]]:
        """Every status the journal holds, with its operation's time; for a run recorded before
        the journal, MLflow's last status with the run's end time when it ended
        (:meth:`_set_status` sets it to when the job ended, also for a late delivery)."""
        with self._calls.calling("status"):
            mlflow_run = self._agreement.find(run_id)
            if mlflow_run is None:
                return []
            run = self._client.get_run(mlflow_run)
            journaled = [
                (record_sort_key(w.op_id)[0] / 1e9 or None, str(w.args["status"]))
                for w in self._journal_writes(run, blobs=False)  # a status is never a blob
                if w.kind == "set_status" and w.args.get("status") in _STATUS_FROM_MLFLOW.values()
            ]
        if journaled:
            return journaled
        info = run.info
        status = _STATUS_FROM_MLFLOW.get(info.status)
        if status is None:
            return []
        ended = info.end_time if status != "RUNNING" and info.end_time else None
        return [(ended / 1000 if ended is not None else None, status)]

    def write_history(self, run_id: str) -> list[RecordedWrite] | None:
        """The run's journal (one tag per metadata, artifact, link and status write, named by
        its operation id), oldest first; ``None`` for a run recorded before the journal existed
        (or not in this store), whose past writes only the current values tell."""
        with self._calls.calling("write_history"):
            mlflow_run = self._agreement.find(run_id)
            if mlflow_run is None:
                return None
            return self._journal_writes(self._client.get_run(mlflow_run)) or None

    def _journal_writes(self, run: Run, *, blobs: bool = True) -> list[RecordedWrite]:
        writes = []
        for record in self._records(run, JOURNAL_PREFIX, blobs=blobs):
            op_id, kind, args = record.get("id"), record.get("op"), record.get("args")
            if isinstance(op_id, str) and kind in _JOURNALED and isinstance(args, dict):
                writes.append(RecordedWrite(str(kind), args, op_id))
        return sorted(writes, key=lambda w: record_sort_key(w.op_id))


#: The writes the journal keeps: the ones a run's history is told by (not metrics, summaries).
_JOURNALED = frozenset({"add_metadata", "add_artifact", "add_source", "set_status"})


def create_tracker(config: str | None) -> MLflowTracker:
    """Entry-point factory: ``config`` is empty, a tracking URI, or a YAML/JSON mapping."""
    return MLflowTracker(MLflowConfig.parse(config))
