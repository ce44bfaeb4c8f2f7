"""The MLflow backend's own behaviour, checked through ``MlflowClient`` on a real server.

What the contract suite cannot see: how TorchX's data looks to an MLflow user (params, tags,
status, metrics, artifacts), request batching within MLflow's limits, config forms, the lazy
import, unreachable servers, and several processes creating one run at the same moment.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from mlflow.entities import Metric, Param, Run, RunTag, ViewType
from mlflow.tracking import MlflowClient

from tests.mlflow.server import MlflowServer, free_port
from trackers.backends.mlflow import (
    MAX_REQUEST_BYTES,
    MLflowConfig,
    MLflowTracker,
    create_tracker,
    decode_param,
    encode_param,
    run_key,
)
from trackers.backends.mlflow.encoding import batches as log_batches
from trackers.errors import TrackerConfigError, TrackerError
from trackers.types import MetricPoint

pytestmark = pytest.mark.mlflow

RUN = "local_cwd://torchx/train-7"
PARENT = "local_cwd://torchx/prepare-7"
REPO = Path(__file__).resolve().parents[2]


def mlflow_runs(client: MlflowClient, experiment: str, deleted_too: bool = False) -> list[Run]:
    """Every run of ``experiment`` as MLflow lists it."""
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"experiment {experiment} was not created"
    view = ViewType.ALL if deleted_too else ViewType.ACTIVE_ONLY
    return list(client.search_runs([exp.experiment_id], run_view_type=view, max_results=1000))


def the_run(client: MlflowClient, experiment: str, run_id: str) -> Run:
    """The one active MLflow run of TorchX run ``run_id``."""
    found = [r for r in mlflow_runs(client, experiment) if r.info.run_name == run_id]
    assert len(found) == 1, [r.info.run_name for r in mlflow_runs(client, experiment)]
    return found[0]


@pytest.fixture
def http_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every HTTP request made through ``requests`` from now on, as (method, path)."""
    calls: list[tuple[str, str]] = []
    original = requests.Session.request

    def counting(self: requests.Session, method: str, url: str, *a: Any, **k: Any) -> Any:
        calls.append((method, url.split("://", 1)[-1].split("/", 1)[-1]))
        return original(self, method, url, *a, **k)

    monkeypatch.setattr(requests.Session, "request", counting)
    return calls


# --- the mapping, as an MLflow user sees it ---


def test_one_run_named_and_tagged_by_run_id(
    tracker: MLflowTracker, client: MlflowClient, experiment: str
) -> None:
    tracker.add_metadata(RUN, lr=0.1)
    tracker.add_metadata(RUN, epochs=3)
    run = the_run(client, experiment, RUN)
    assert run.data.tags["torchx.run_id"] == RUN
    assert run.data.tags["torchx.run_key"] == run_key(RUN)
    assert run.data.tags["torchx.canonical"] == "true"
    assert run.info.status == "SCHEDULED"  # created by a write; the job says RUNNING
    assert tracker.status(RUN) is None


def test_metadata_values_are_params_as_text(
    tracker: MLflowTracker, client: MlflowClient, experiment: str
) -> None:
    values = {"lr": 0.1, "name": "résumé", "cfg": {"x": [1, 2]}, "flag": True, "digits": "3"}
    tracker.add_metadata(RUN, **values)
    params = the_run(client, experiment, RUN).data.params
    assert params == {
        "lr": "0.1",
        "name": "résumé",
        "cfg": '{"x": [1, 2]}',
        "flag": "true",
        "digits": '"3"',  # a string that reads as JSON is quoted, so it comes back a string
    }
    assert tracker.metadata(RUN) == values


@pytest.mark.parametrize(
    "value", ["plain", "3", '"q"', "", " 1", "NaN", 7, -0.5, None, [1, "a"], {"k": None}]
)
def test_param_text_encoding_round_trips(value: object) -> None:
    assert decode_param(encode_param(value)) == value


def test_changed_value_overrides_in_a_tag_and_wins(
    tracker: MLflowTracker, client: MlflowClient, experiment: str
) -> None:
    tracker.add_metadata(RUN, bs=16)
    tracker.add_metadata(RUN, bs=32)
    run = the_run(client, experiment, RUN)
    assert run.data.params["bs"] == "16"  # MLflow params are write-once
    assert json.loads(run.data.tags["torchx.metadata.bs"]) == {"key": "bs", "value": 32}
    assert tracker.metadata(RUN)["bs"] == 32
    tracker.add_metadata(RUN, bs=16)  # back to the first value: still last write wins
    assert tracker.metadata(RUN)["bs"] == 16


def test_long_nested_and_odd_keyed_values_are_kept_whole(
    tracker: MLflowTracker, client: MlflowClient, experiment: str
) -> None:
    # MLflow itself silently truncates params to 6000 and tags to 8000 characters.
    medium = "m" * 7000
    huge = {"rows": ["x" * 100] * 300}  # ~31 kB of JSON: a blob artifact
    odd = {"../up": 1, "a" * 300: 2, "semi;colon": 3}
    tracker.add_metadata(RUN, medium=medium, huge=huge, **odd)
    run = the_run(client, experiment, RUN)
    assert "medium" not in run.data.params
    assert json.loads(run.data.tags["torchx.metadata.medium"])["value"] == medium
    blob = json.loads(run.data.tags["torchx.metadata.huge"])
    assert blob["key"] == "huge" and blob["blob"].startswith("torchx/blobs/")
    assert any(
        a.path == blob["blob"] for a in client.list_artifacts(run.info.run_id, "torchx/blobs")
    )
    assert "../up" not in run.data.params and "torchx.metadata.../up" in run.data.tags
    assert sum(k.startswith("torchx.metadata_h.") for k in run.data.tags) == 2  # long, ';'
    assert tracker.metadata(RUN) == {"medium": medium, "huge": huge, **odd}
    huge2 = {"rows": ["y" * 100] * 300}
    tracker.add_metadata(RUN, huge=huge2)  # a blob overridden by a newer blob
    assert tracker.metadata(RUN)["huge"] == huge2


def test_artifacts_are_references_by_default(
    tracker: MLflowTracker, client: MlflowClient, experiment: str, tmp_path: Path
) -> None:
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")
    tracker.add_artifact(RUN, "model", str(model), {"epoch": 3})
    run = the_run(client, experiment, RUN)
    record = json.loads(run.data.tags["torchx.artifact.model"])
    assert record == {"name": "model", "path": str(model), "metadata": {"epoch": 3}}
    assert client.list_artifacts(run.info.run_id) == []  # nothing uploaded


def test_upload_artifacts_uploads_local_files_and_dirs(
    mlflow_server: MlflowServer,
    client: MlflowClient,
    experiment: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracker = create_tracker(
        json.dumps({"uri": mlflow_server.uri, "experiment": experiment, "upload_artifacts": True})
    )
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")
    ckpt = tmp_path / "ckpt"
    (ckpt / "shard").mkdir(parents=True)
    (ckpt / "shard" / "0.bin").write_bytes(b"0")
    tracker.add_artifact(RUN, "model", str(model), {"epoch": 3})
    tracker.add_artifact(RUN, "checkpoints/best", f"file://{ckpt}")
    tracker.add_artifact(RUN, "../evil", str(model))
    with caplog.at_level(logging.WARNING):
        tracker.add_artifact(RUN, "remote", "s3://bucket/data.csv")
    assert "only recorded, not uploaded" in caplog.text

    mlflow_id = the_run(client, experiment, RUN).info.run_id
    arts = tracker.artifacts(RUN)
    assert arts["model"].path == str(model)
    assert arts["model"].metadata == {
        "epoch": 3,
        "mlflow.artifact_uri": f"runs:/{mlflow_id}/model/model.pt",
    }
    assert arts["checkpoints/best"].metadata == {
        "mlflow.artifact_uri": f"runs:/{mlflow_id}/checkpoints/best"
    }
    assert arts["remote"].metadata is None
    evil_uri = arts["../evil"].metadata["mlflow.artifact_uri"]  # type: ignore[index]
    assert evil_uri.startswith(f"runs:/{mlflow_id}/torchx/artifacts/")
    assert [a.path for a in client.list_artifacts(mlflow_id, "model")] == ["model/model.pt"]
    assert [a.path for a in client.list_artifacts(mlflow_id, "checkpoints/best/shard")] == [
        "checkpoints/best/shard/0.bin"
    ]
    local = client.download_artifacts(mlflow_id, "model/model.pt", str(tmp_path / "dl"))
    assert Path(local).read_bytes() == b"weights"


def test_upload_of_a_missing_file_raises_when_strict(
    mlflow_server: MlflowServer, experiment: str
) -> None:
    tracker = create_tracker(
        json.dumps(
            {
                "uri": mlflow_server.uri,
                "experiment": experiment,
                "upload_artifacts": True,
                "strict": True,
            }
        )
    )
    with pytest.raises(TrackerError, match="not a local file"):
        tracker.add_artifact(RUN, "model", "/nonexistent/model.pt")


def test_links_live_on_the_child_and_are_found_from_the_parent_with_search_runs(
    tracker: MLflowTracker, client: MlflowClient, experiment: str
) -> None:
    tracker.add_metadata(PARENT, step="prepare")
    tracker.add_source(RUN, PARENT, "dataset")
    tracker.add_source(RUN, PARENT)
    parent, child = the_run(client, experiment, PARENT), the_run(client, experiment, RUN)
    assert not any(k.startswith(("torchx.link.", "torchx.source.")) for k in parent.data.tags)
    links = [json.loads(v) for k, v in child.data.tags.items() if k.startswith("torchx.link.")]
    assert sorted(links, key=str) == sorted(
        [{"run_id": PARENT, "artifact_name": "dataset"}, {"run_id": PARENT, "artifact_name": None}],
        key=str,
    )
    (marker,) = [k for k in child.data.tags if k.startswith("torchx.source.")]
    assert child.data.tags[marker] == PARENT
    found = client.search_runs([child.info.experiment_id], f"tags.`{marker}` LIKE '%'")
    assert [r.info.run_name for r in found] == [RUN]
    assert tracker.run_ids(parent_run_id=PARENT) == [RUN]


def test_metrics_go_through_log_batch_in_chunks_within_limits(
    tracker: MLflowTracker,
    client: MlflowClient,
    experiment: str,
    http_calls: list[tuple[str, str]],
) -> None:
    tracker.add_metadata(RUN, x=1)
    points = [
        MetricPoint("loss" if i % 2 else "acc", 1.0 / (i + 1), i // 2, 1000.0 + i / 1000)
        for i in range(2500)
    ]
    points.append(MetricPoint("loss", float("nan"), None, 2000.0, rank=1))
    http_calls.clear()
    tracker.add_metrics(RUN, points)
    log_batches = [c for c in http_calls if c[1].endswith("runs/log-batch")]
    assert len(log_batches) == 3  # 2501 points, at most 1000 per request
    assert len(http_calls) <= 5  # plus one upload of the exact record (+ artifact root lookup)
    run = the_run(client, experiment, RUN)
    history = client.get_metric_history(run.info.run_id, "loss")
    assert len(history) == 1251
    assert history[-1].step == 0 and history[-1].timestamp == 2_000_000  # step None -> 0
    exact = tracker.metrics(RUN)
    assert exact[:-1] == points[:-1]  # order, float timestamps and steps exactly as written
    last = exact[-1]
    assert last.value != last.value and last.step is None and last.rank == 1


def test_metadata_of_1000_keys_takes_a_few_requests(
    tracker: MLflowTracker, http_calls: list[tuple[str, str]]
) -> None:
    tracker.add_metadata(RUN, first=1)
    http_calls.clear()
    tracker.add_metadata(RUN, **{f"k{i}": i for i in range(1000)})
    # one read of the run, then 100 params per request; the write's journal entry is too long
    # for a tag, so it is a JSON artifact (the upload and MLflow's lookup of the run's
    # artifact location) and rides in the first batch
    uploads = [c for c in http_calls if c[0] == "PUT"]
    assert len(uploads) == 1 and "torchx/blobs/" in uploads[0][1]
    assert len(http_calls) == 1 + 10 + 2
    assert len(tracker.metadata(RUN)) == 1001


def test_each_write_has_one_journal_entry_in_the_same_request(
    tracker: MLflowTracker, http_calls: list[tuple[str, str]]
) -> None:
    tracker.add_metadata(RUN, first=1)
    http_calls.clear()
    tracker.add_metadata(RUN, second=2)
    tracker.add_artifact(RUN, "model", "/ckpt/model.pt")
    tracker.add_source(RUN, "s3://bucket/data")
    # one LogBatch per write, holding its journal entry; no upload
    assert sum("log-batch" in path for _, path in http_calls) == 3
    assert not [c for c in http_calls if c[0] == "PUT"]
    history = tracker.write_history(RUN)
    assert history is not None
    assert [(w.kind, dict(w.args)) for w in history] == [
        ("add_metadata", {"values": {"first": 1}}),
        ("add_metadata", {"values": {"second": 2}}),
        ("add_artifact", {"name": "model", "path": "/ckpt/model.pt", "metadata": None}),
        ("add_source", {"source_id": "s3://bucket/data", "artifact_name": None}),
    ]
    assert [w.op_id for w in history] == sorted(w.op_id for w in history)
    # the same arguments again are a second write (two events live), not a rewrite
    tracker.add_metadata(RUN, second=2)
    again = tracker.write_history(RUN)
    assert again is not None and len(again) == 5


def test_batches_respect_every_limit() -> None:
    params = [Param(f"p{i}", "v" * 5000) for i in range(250)]
    tags = [RunTag(f"t{i}", "w" * 7000) for i in range(150)]
    metrics = [Metric(f"m{i % 7}", 1.0, 0, i) for i in range(2600)]
    batches = list(log_batches(params, tags, metrics))
    for b in batches:
        assert len(b.params) <= 100 and len(b.tags) <= 100 and len(b.metrics) <= 1000
        assert len(b.params) + len(b.tags) + len(b.metrics) <= 1000
        body = json.dumps(
            {
                "params": [{"key": p.key, "value": p.value} for p in b.params],
                "tags": [{"key": t.key, "value": t.value} for t in b.tags],
                "metrics": [
                    {"key": m.key, "value": m.value, "timestamp": m.timestamp, "step": m.step}
                    for m in b.metrics
                ],
            }
        )
        assert len(body) < 1_000_000
    assert sum(len(b.params) for b in batches) == 250
    assert sum(len(b.tags) for b in batches) == 150
    assert sum(len(b.metrics) for b in batches) == 2600
    # Non-ASCII counts by its escaped size on the wire.
    wide = [Param(f"u{i}", "日" * 5000) for i in range(100)]
    assert all(
        sum(6 * len(p.value) for p in b.params) <= MAX_REQUEST_BYTES
        for b in log_batches(wide, [], [])
    )


def test_summaries_are_tags_with_numbers_mirrored_as_metrics(
    tracker: MLflowTracker, client: MlflowClient, experiment: str
) -> None:
    tracker.add_summary(RUN, best_acc=0.8, note="first", done=False)
    tracker.add_summary(RUN, best_acc=0.9)
    assert tracker.summary(RUN) == {"best_acc": 0.9, "note": "first", "done": False}
    run = the_run(client, experiment, RUN)
    assert json.loads(run.data.tags["torchx.summary.best_acc"])["value"] == 0.9
    assert run.data.metrics == {"summary/best_acc": 0.9}


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [("RUNNING", "RUNNING"), ("SUCCEEDED", "FINISHED"), ("FAILED", "FAILED"), ("KILLED", "KILLED")],
)
def test_status_maps_to_mlflow_run_status(
    tracker: MLflowTracker, client: MlflowClient, experiment: str, ours: Any, theirs: str
) -> None:
    tracker.set_status(RUN, "RUNNING")
    tracker.set_status(RUN, ours)
    info = the_run(client, experiment, RUN).info
    assert info.status == theirs
    assert (info.end_time is not None) == (theirs != "RUNNING")
    assert tracker.status(RUN) == ours
    assert create_tracker(tracker.config.to_string()).status(RUN) == ours


def test_status_written_in_mlflow_reads_back(
    tracker: MLflowTracker, client: MlflowClient, experiment: str
) -> None:
    tracker.add_metadata(RUN, x=1)
    client.set_terminated(the_run(client, experiment, RUN).info.run_id, "KILLED")
    assert tracker.status(RUN) == "KILLED"


def test_metric_names_mlflow_rejects(
    mlflow_server: MlflowServer, experiment: str, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = create_tracker(json.dumps({"uri": mlflow_server.uri, "experiment": experiment}))
    point = MetricPoint("loss@rank0", 1.0, 1, 1.0)
    with caplog.at_level(logging.WARNING):
        tracker.add_metrics(RUN, [point])
    assert "kept in torchx/metrics/ only" in caplog.text
    assert tracker.metrics(RUN) == [point]
    strict = create_tracker(
        json.dumps({"uri": mlflow_server.uri, "experiment": experiment, "strict": True})
    )
    with pytest.raises(TrackerError, match="loss@rank0"):
        strict.add_metrics(RUN, [point])


def test_reads_never_create_runs_or_experiments(
    tracker: MLflowTracker, client: MlflowClient, experiment: str
) -> None:
    assert tracker.metadata(RUN) == {}
    assert tracker.run_ids() == []
    assert tracker.lineage(RUN).ancestors == {}
    assert tracker.status(RUN) is None
    assert client.get_experiment_by_name(experiment) is None


def test_a_run_deleted_in_mlflow_is_looked_up_again(
    tracker: MLflowTracker, client: MlflowClient, experiment: str
) -> None:
    tracker.add_metadata(RUN, x=1)
    client.delete_run(the_run(client, experiment, RUN).info.run_id)
    with pytest.raises(TrackerError, match="add_metadata failed"):
        tracker.add_metadata(RUN, x=2)
    tracker.add_metadata(RUN, x=3)  # a new run
    assert tracker.metadata(RUN) == {"x": 3}


# --- config forms ---


def test_config_forms() -> None:
    assert MLflowConfig.parse(None) == MLflowConfig()
    assert MLflowConfig.parse("  ") == MLflowConfig()
    assert MLflowConfig.parse("http://h:5000") == MLflowConfig(uri="http://h:5000")
    parsed = MLflowConfig.parse(
        '{uri: "sqlite:////x/m.db", experiment: e, artifact_location: "s3://b/a", '
        "upload_artifacts: true, strict: true}"
    )
    assert parsed == MLflowConfig("sqlite:////x/m.db", "e", "s3://b/a", True, True)
    assert MLflowConfig.parse(parsed.to_string()) == parsed
    assert MLflowConfig(uri="http://h").to_string() == "http://h"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("{uri: http://h, bogus: 1}", "unknown key.*bogus"),
        ("{uri: 5}", "'uri' must be a non-empty string"),
        ("{strict: yes please}", "'strict' must be true or false"),
        ("{uri: [unclosed", "not a valid YAML/JSON mapping"),
        ("[1, 2]", None),  # not a mapping and not a URI MLflow knows
        ("http://user:s3cret@h:5000", "contains a password.*MLFLOW_TRACKING_PASSWORD"),
        ("{uri: 'https://h/?token=abc'}", "contains a credential.*MLFLOW_TRACKING_TOKEN"),
        ("nosuchscheme://x", "nosuchscheme"),
    ],
)
def test_malformed_configs_say_what_was_expected(config: str, expected: str | None) -> None:
    with pytest.raises(TrackerConfigError) as info:
        create_tracker(config)
    if expected is not None:
        import re

        assert re.search(expected, str(info.value)), str(info.value)
    assert "s3cret" not in str(info.value) and "abc" not in str(info.value)


def test_file_store_is_refused_by_recent_mlflow_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(TrackerConfigError, match="MLFLOW_ALLOW_FILE_STORE"):
        create_tracker(f"file://{tmp_path / 'mlruns'}")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    tracker = create_tracker(f"file://{tmp_path / 'mlruns'}")
    tracker.add_metadata(RUN, a=1)
    tracker.add_source(RUN, PARENT, "data")
    assert create_tracker(f"file://{tmp_path / 'mlruns'}").metadata(RUN) == {"a": 1}
    assert tracker.sources(RUN)[0].source_run_id == PARENT


@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")
def test_sqlite_uri_without_a_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # MLflow puts a SQLite store's artifacts under ./mlruns
    config = '{uri: "sqlite:///runs.db", experiment: direct}'
    tracker = create_tracker(config)
    tracker.add_metadata(PARENT, a=1)
    tracker.add_source(RUN, PARENT, "data")
    tracker.add_metrics(RUN, [MetricPoint("loss", 0.5, 1, 1.0)])
    tracker.set_status(RUN, "SUCCEEDED")
    again = create_tracker(config)
    assert again.run_ids() == sorted([PARENT, RUN])
    assert again.descendants(PARENT)[0].run_id == RUN
    assert again.metrics(RUN) == [MetricPoint("loss", 0.5, 1, 1.0)]
    assert again.status(RUN) == "SUCCEEDED"
    job = json.loads(tracker.job_config())
    assert job == {"uri": f"sqlite:///{tmp_path / 'runs.db'}", "experiment": "direct"}


def test_no_config_uses_mlflow_env_vars(
    mlflow_server: MlflowServer,
    client: MlflowClient,
    experiment: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", experiment)
    tracker = create_tracker(None)
    assert tracker.uri == mlflow_server.uri
    tracker.add_metadata(RUN, a=1)
    assert the_run(client, experiment, RUN).data.params == {"a": "1"}
    # The job gets the experiment written in, so it does not depend on the job's env.
    assert json.loads(tracker.job_config()) == {"uri": mlflow_server.uri, "experiment": experiment}


def test_plain_uri_uses_mlflows_default_experiment(
    mlflow_server: MlflowServer, client: MlflowClient
) -> None:
    run_id = f"local_cwd://torchx/default-{time.time_ns()}"
    create_tracker(mlflow_server.uri).add_metadata(run_id, a=1)
    found = client.search_runs(["0"], f"tags.`torchx.run_key` = '{run_key(run_id)}'")
    assert [r.info.run_name for r in found] == [run_id]


def test_repr_names_the_store_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-secret")
    tracker = create_tracker('{uri: "http://127.0.0.1:1", experiment: x}')
    assert repr(tracker) == "MLflowTracker(http://127.0.0.1:1, experiment='x')"


# --- mlflow is imported only when used ---


def test_mlflow_is_not_imported_unless_an_mlflow_tracker_is_built(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import os, sys
        import trackers, trackers.backends.mlflow, trackers.registry
        from trackers import AppRun
        os.environ.update({{
            "TORCHX_JOB_ID": "local_cwd://torchx/x-1",
            "TORCHX_TRACKERS": "fsspec",
            "TORCHX_TRACKER_FSSPEC_CONFIG": {str(tmp_path / "store")!r},
        }})
        run = AppRun.run_from_env()
        run.add_metadata(a=1)
        assert run.metadata()["a"] == 1
        assert "mlflow" not in sys.modules, "mlflow imported"
        trackers.registry.create_tracker("mlflow", "http://127.0.0.1:1", origin="test")
        assert "mlflow" in sys.modules
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --- unreachable servers: a TrackerError naming the URI, in seconds ---


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def timed(call: Callable[[], object]) -> tuple[BaseException, float]:
    start = time.monotonic()
    with pytest.raises(TrackerError) as info:
        call()
    return info.value, time.monotonic() - start


def test_refused_port_fails_fast_naming_the_uri() -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    tracker = create_tracker(uri)
    for op in (lambda: tracker.has_run(RUN), lambda: tracker.add_metadata(RUN, a=1)):
        error, seconds = timed(op)
        assert uri in str(error) and "not reachable" in str(error)
        assert "Connection refused" in str(error)
        # no traceback from deep inside requests: nothing chained
        assert error.__cause__ is None
        assert error.__context__ is None or error.__suppress_context__
        assert seconds < 5


def test_silent_server_times_out_in_bounded_time(
    silent_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    tracker = create_tracker(silent_server)
    error, seconds = timed(lambda: tracker.metadata(RUN))
    assert silent_server in str(error) and "timed out" in str(error)
    assert seconds < 6
    error, seconds = timed(lambda: tracker.add_metadata(RUN, a=1))  # fails at once for a while
    assert "next attempt in" in str(error) and seconds < 0.5


def test_silent_server_with_mlflows_own_retries_is_still_bounded(
    silent_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the probe (server went silent mid-job): MLflow's own timeout and retries apply."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    tracker = create_tracker(silent_server)
    tracker._calls.reachable = True  # as if the probe had succeeded before the server hung
    error, seconds = timed(lambda: tracker.run_ids())
    assert silent_server in str(error) and "not reachable" in str(error)
    assert seconds < 8


def test_http_timeouts_get_bounded_defaults_unless_set() -> None:
    code = textwrap.dedent(
        """
        import os
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "5"
        from trackers.backends.mlflow import create_tracker
        create_tracker("http://127.0.0.1:1")
        env = os.environ
        print(env["MLFLOW_HTTP_REQUEST_TIMEOUT"], env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP")}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["10", "5"]


def test_strict_config_checks_the_server_when_built() -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(TrackerConfigError, match=f"{uri}.*not reachable"):
        create_tracker(json.dumps({"uri": uri, "strict": True}))
    assert time.monotonic() - start < 5
    create_tracker(uri)  # not strict: building does no I/O


def test_in_a_job_an_unreachable_server_is_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    from trackers import AppRun

    uri = f"http://127.0.0.1:{free_port()}"
    env = {
        "TORCHX_JOB_ID": RUN,
        "TORCHX_TRACKERS": "mlflow",
        "TORCHX_TRACKER_MLFLOW_CONFIG": uri,
        "TORCHX_PARENT_RUN_ID": PARENT,
    }
    start = time.monotonic()
    with caplog.at_level(logging.ERROR):
        run = AppRun.from_env(env)
        run.add_metadata(a=1)
        assert run.metadata() == {}
    assert time.monotonic() - start < 5
    assert uri in caplog.text and "not reachable" in caplog.text
    with pytest.raises(TrackerError, match="not reachable"):
        AppRun.from_env({**env, "TORCHX_TRACKER_STRICT": "1"}).add_metadata(a=1)


# --- one MLflow run per TorchX run, however many processes start at once ---

_RACER = textwrap.dedent(
    """
    import json, sys
    from trackers.backends.mlflow import create_tracker
    tracker = create_tracker(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.readline()                      # everyone starts on the same "go"
    tracker.add_metadata(sys.argv[2], **{"proc_" + sys.argv[3]: int(sys.argv[3])})
    print(json.dumps({"mlflow_run": tracker._agreement.find(sys.argv[2])}), flush=True)
    """
)


def race(config: str, run_id: str, n: int, ranks: bool) -> list[str]:
    """Start ``n`` processes that write to ``run_id`` at the same moment; their MLflow runs."""
    procs = []
    for i in range(n):
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "SLURM_PROCID")}
        if ranks:
            env["RANK"] = str(i)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _RACER, config, run_id, str(i)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
                cwd=REPO,
            )
        )
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = []
        for p in procs:
            out, _ = p.communicate(timeout=120)
            assert p.returncode == 0
            results.append(json.loads(out.strip().splitlines()[-1])["mlflow_run"])
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_processes_starting_together_create_one_run(
    config: str, client: MlflowClient, experiment: str
) -> None:
    n = 6
    raced = 0
    # On a loaded machine the processes may not overlap; each attempt must be correct, and at
    # least one of three must have really raced (several runs created, duplicates removed).
    for attempt in range(3):
        run_id = f"{RUN}-attempt{attempt}"
        chosen = race(config, run_id, n, ranks=False)
        assert len(set(chosen)) == 1, chosen
        mine = [
            r
            for r in mlflow_runs(client, experiment, deleted_too=True)
            if r.info.run_name == run_id
        ]
        active = [r for r in mine if r.info.lifecycle_stage == "active"]
        assert [r.info.run_id for r in active] == chosen[:1]
        losers = [r for r in mine if r.info.lifecycle_stage == "deleted"]
        assert all(r.data.tags["torchx.duplicate_of"] == chosen[0] for r in losers)
        assert create_tracker(config).metadata(run_id) == {f"proc_{i}": i for i in range(n)}
        raced += len(mine) >= 2
        if raced:
            break
    assert raced, "in three attempts the processes never raced (each found the other's run)"


def test_ranks_wait_for_rank_zero_to_create_the_run(
    config: str, client: MlflowClient, experiment: str
) -> None:
    chosen = race(config, RUN, 4, ranks=True)
    assert len(set(chosen)) == 1
    assert len(mlflow_runs(client, experiment, deleted_too=True)) == 1  # nobody else created
    assert create_tracker(config).metadata(RUN) == {f"proc_{i}": i for i in range(4)}


# --- TorchX's own AppRun resolves `mlflow` to this backend ---


def test_torchx_resolves_the_mlflow_entry_point_to_this_backend(
    config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchx.tracker.api import AppRun as TorchxAppRun
    from torchx.tracker.api import trackers_from_environ

    monkeypatch.setenv("TORCHX_JOB_ID", RUN)
    monkeypatch.setenv("TORCHX_TRACKERS", "mlflow")
    monkeypatch.setenv("TORCHX_TRACKER_MLFLOW_CONFIG", config)
    (tracker,) = trackers_from_environ()
    assert isinstance(tracker, MLflowTracker)
    run = TorchxAppRun(RUN, [tracker])
    run.add_metadata(lr=0.1)
    run.add_source(PARENT, "dataset")
    assert [(s.parent.job_id(), s.artifact_name) for s in run.sources()] == [(PARENT, "dataset")]
    assert create_tracker(config).metadata(RUN) == {"lr": 0.1}
