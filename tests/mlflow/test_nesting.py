"""MLflow shows the pipeline: ``mlflow.parentRunId`` for the launcher's parent, dataset inputs.

Against the session's real ``mlflow server``, read back with ``MlflowClient``. The real
``torchx run`` pipeline (with ``--parent-run-id``) is in ``test_pipeline.py``.
"""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from tests.mlflow.server import MlflowServer
from trackers.backends.mlflow import MLflowTracker, create_tracker
from trackers.backends.mlflow.encoding import dataset_ref

pytestmark = pytest.mark.mlflow

CHILD = "local_cwd://torchx/train-n1"
PARENT = "local_cwd://torchx/prepare-n1"
OTHER = "local_cwd://torchx/other-n1"
NEST = "mlflow.parentRunId"


def run_of(client: MlflowClient, experiment: str, run_id: str) -> Run:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id], f"attributes.run_name = '{run_id}'")
    return client.get_run(run.info.run_id)  # get_run carries the run's inputs


def test_child_is_nested_under_its_launcher_parent(
    tracker: MLflowTracker, client: MlflowClient, experiment: str
) -> None:
    tracker.set_status(PARENT, "RUNNING")
    tracker.add_source(CHILD, PARENT)  # what AppRun records from TORCHX_PARENT_RUN_ID at start
    parent, child = run_of(client, experiment, PARENT), run_of(client, experiment, CHILD)
    assert child.data.tags[NEST] == parent.info.run_id
    assert NEST not in parent.data.tags
    assert tracker.sources(CHILD)[0].source_run_id == PARENT  # our own links are still there


def test_a_later_source_does_not_replace_the_parent(
    tracker: MLflowTracker, client: MlflowClient, experiment: str, config: str
) -> None:
    tracker.set_status(PARENT, "RUNNING")
    tracker.set_status(OTHER, "RUNNING")
    tracker.add_source(CHILD, PARENT)
    create_tracker(config).add_source(CHILD, OTHER)  # another process: reads the tag back
    tracker.add_source(CHILD, OTHER)
    parent = run_of(client, experiment, PARENT)
    assert run_of(client, experiment, CHILD).data.tags[NEST] == parent.info.run_id
    assert {link.source_run_id for link in tracker.sources(CHILD)} == {PARENT, OTHER}


def test_a_source_named_by_artifact_does_not_nest(
    tracker: MLflowTracker, client: MlflowClient, experiment: str
) -> None:
    tracker.set_status(PARENT, "RUNNING")
    tracker.add_source(CHILD, PARENT, "dataset")
    assert NEST not in run_of(client, experiment, CHILD).data.tags


def test_a_parent_in_another_experiment_is_not_nested(
    mlflow_server: MlflowServer, client: MlflowClient, experiment: str
) -> None:
    elsewhere = json.dumps({"uri": mlflow_server.uri, "experiment": f"x-{uuid.uuid4().hex[:8]}"})
    create_tracker(elsewhere).set_status(PARENT, "RUNNING")
    here = create_tracker(json.dumps({"uri": mlflow_server.uri, "experiment": experiment}))
    here.add_source(CHILD, PARENT)  # no error: the parent is simply not in this store
    child = run_of(client, experiment, CHILD)
    assert NEST not in child.data.tags
    assert [d.dataset.name for d in child.inputs.dataset_inputs] == []  # a run, not a dataset
    assert [link.source_run_id for link in here.sources(CHILD)] == [PARENT]


def test_a_parent_in_another_store_is_not_nested(
    tracker: MLflowTracker, client: MlflowClient, experiment: str, tmp_path: object
) -> None:
    other = create_tracker(f"sqlite:///{tmp_path}/other.db")
    other.set_status(PARENT, "RUNNING")
    tracker.add_source(CHILD, PARENT)
    assert NEST not in run_of(client, experiment, CHILD).data.tags


def test_dataset_url_sources_are_dataset_inputs(
    tracker: MLflowTracker, client: MlflowClient, experiment: str
) -> None:
    tracker.add_source(CHILD, "s3://bucket/data/train.csv")
    tracker.add_source(CHILD, "https://example.org/eval.jsonl", "eval")
    tracker.add_source(CHILD, "s3://bucket/data/train.csv")  # again: still one input
    child = run_of(client, experiment, CHILD)
    found = {
        d.dataset.name: (
            d.dataset.source_type,
            json.loads(d.dataset.source),
            {t.key: t.value for t in d.tags},
        )
        for d in child.inputs.dataset_inputs
    }
    assert found == {
        "s3://bucket/data/train.csv": (
            "s3",
            {"uri": "s3://bucket/data/train.csv"},
            {"mlflow.data.context": "source"},
        ),
        "https://example.org/eval.jsonl": (
            "http",
            {"url": "https://example.org/eval.jsonl"},
            {"mlflow.data.context": "eval"},
        ),
    }
    assert NEST not in child.data.tags
    links = {(link.source_run_id, link.artifact_name) for link in tracker.sources(CHILD)}
    assert links == {
        ("s3://bucket/data/train.csv", None),
        ("https://example.org/eval.jsonl", "eval"),
    }


def test_a_store_refusing_dataset_inputs_keeps_the_link(
    tracker: MLflowTracker,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import ENDPOINT_NOT_FOUND

    def refuse(*args: object, **kwargs: object) -> None:
        raise MlflowException("log_inputs is not supported here", error_code=ENDPOINT_NOT_FOUND)

    monkeypatch.setattr(tracker._client, "log_inputs", refuse)
    with caplog.at_level(logging.WARNING):
        tracker.add_source(CHILD, "/data/train.csv")
    assert [link.source_run_id for link in tracker.sources(CHILD)] == ["/data/train.csv"]
    assert "did not take a dataset input (ENDPOINT_NOT_FOUND)" in caplog.text


@pytest.mark.parametrize(
    ("url", "source_type", "source"),
    [
        ("s3://b/k.csv", "s3", {"uri": "s3://b/k.csv"}),
        ("gs://b/k", "gs", {"uri": "gs://b/k"}),
        ("HTTPS://h/x.csv", "http", {"url": "HTTPS://h/x.csv"}),
        ("/data/x.csv", "local", {"uri": "/data/x.csv"}),
        ("file:///data/x.csv", "local", {"uri": "file:///data/x.csv"}),
        ("C:\\data\\x.csv", "local", {"uri": "C:\\data\\x.csv"}),
        ("http://[::1/x", "local", {"uri": "http://[::1/x"}),  # urlsplit refuses it
    ],
)
def test_dataset_ref_follows_mlflows_source_types(
    url: str, source_type: str, source: dict[str, str]
) -> None:
    ref = dataset_ref(url)
    assert (ref.name, ref.source_type, json.loads(ref.source)) == (url, source_type, source)
    assert len(ref.digest) <= 36 and ref.digest == dataset_ref(url).digest


def test_an_empty_source_id_is_a_link_only(
    tracker: MLflowTracker, client: MlflowClient, experiment: str
) -> None:
    tracker.add_source(CHILD, "")  # as before: no run lookup, no dataset input
    child = run_of(client, experiment, CHILD)
    assert NEST not in child.data.tags and not child.inputs.dataset_inputs
    assert [(s.source_run_id, s.artifact_name) for s in tracker.sources(CHILD)] == [("", None)]
