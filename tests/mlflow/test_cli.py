"""``torchx tracker list ... --tracker mlflow=URI`` for every subcommand, in a subprocess.

The store is written in-process through the backend (a small three-run lineage), then read by
the real ``torchx`` CLI of this environment, the way a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli_support import job_ids
from tests.mlflow.server import MLFLOW_ENV_TO_DROP, MlflowServer, free_port
from trackers.backends.mlflow import create_tracker
from trackers.types import MetricPoint

pytestmark = pytest.mark.mlflow

TORCHX = str(Path(sys.executable).parent / "torchx")
PREPARE = "local_cwd://torchx/prepare-c1"
TRAIN = "local_cwd://torchx/train-c1"
EVALUATE = "local_cwd://torchx/evaluate-c1"


@dataclass(frozen=True)
class Store:
    """A written experiment and how to point the CLI at it."""

    uri: str
    experiment: str
    cwd: Path

    def cli(
        self, *args: str, tracker: str | None = None, expect: int = 0
    ) -> subprocess.CompletedProcess[str]:
        """``torchx tracker list ARGS --tracker mlflow=URI`` (experiment from the env)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("TORCHX_") and k not in MLFLOW_ENV_TO_DROP
        }
        env.update(HOME=str(self.cwd), MLFLOW_EXPERIMENT_NAME=self.experiment)
        cmd = [TORCHX, "tracker", "list", *args, "--tracker", tracker or f"mlflow={self.uri}"]
        done = subprocess.run(
            cmd, cwd=self.cwd, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == expect, (
            f"{' '.join(cmd)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
        )
        return done

    def json(self, *args: str) -> object:
        return json.loads(self.cli(*args, "--format", "json").stdout)


@pytest.fixture(scope="module")
def store(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> Store:
    experiment = f"cli-{time.time_ns()}"
    tracker = create_tracker(json.dumps({"uri": mlflow_server.uri, "experiment": experiment}))
    tracker.add_metadata(PREPARE, step="prepare", rows=200)
    tracker.add_artifact(PREPARE, "dataset", "/data/dataset.csv", {"rows": 200})
    tracker.add_source(TRAIN, PREPARE)  # the launcher's --parent-run-id link
    tracker.add_source(TRAIN, PREPARE, "dataset")
    tracker.add_metadata(TRAIN, step="train", lr=0.1, cfg={"layers": [4, 4]})
    tracker.add_metadata(TRAIN, lr=0.05)  # a second value: MLflow params cannot change
    tracker.add_metrics(TRAIN, [MetricPoint("loss", 1.0 / (i + 1), i, 1e9 + i) for i in range(5)])
    tracker.add_summary(TRAIN, best_loss=0.2)
    tracker.set_status(TRAIN, "SUCCEEDED")
    tracker.add_source(EVALUATE, TRAIN, "model")
    tracker.add_source(EVALUATE, "hf://datasets/external", "dataset")
    return Store(mlflow_server.uri, experiment, tmp_path_factory.mktemp("cli"))


def test_list_jobs(store: Store) -> None:
    assert sorted(job_ids(store.json("jobs"))) == sorted([PREPARE, TRAIN, EVALUATE])
    assert job_ids(store.json("jobs", "--parent-run-id", PREPARE)) == [TRAIN]
    assert TRAIN in store.cli("jobs").stdout  # the table


def test_list_metadata_is_last_write_wins(store: Store) -> None:
    assert store.json("metadata", TRAIN) == {"step": "train", "lr": 0.05, "cfg": {"layers": [4, 4]}}


def test_list_artifacts(store: Store) -> None:
    assert store.json("artifacts", PREPARE) == [
        {"name": "dataset", "path": "/data/dataset.csv", "metadata": {"rows": 200}}
    ]


def test_list_lineage_json_and_tree(store: Store) -> None:
    lineage = store.json("lineage", TRAIN)
    assert lineage["ancestors"] == {PREPARE: 1}
    assert lineage["descendants"] == {EVALUATE: 1}
    edges = {(e["parent"], e["child"], e["artifact_name"]) for e in lineage["edges"]}
    assert edges == {(PREPARE, TRAIN, "dataset"), (TRAIN, EVALUATE, "model")}
    down = store.json("lineage", PREPARE, "--descendants-only")
    assert down["descendants"] == {TRAIN: 1, EVALUATE: 2}
    up = store.json("lineage", EVALUATE, "--sources-only", "--artifact", "dataset")
    assert up["ancestors"] == {"hf://datasets/external": 1}
    tree = store.cli("lineage", PREPARE).stdout
    assert PREPARE in tree and TRAIN in tree and EVALUATE in tree and "[dataset]" in tree


def test_list_metrics_and_summary(store: Store) -> None:
    points = store.json("metrics", TRAIN, "--name", "loss")
    assert [(p["step"], p["value"]) for p in points] == [(i, 1.0 / (i + 1)) for i in range(5)]
    assert store.json("summary", TRAIN) == {"status": "SUCCEEDED", "summary": {"best_loss": 0.2}}


def test_mapping_config_form_reads_the_same_store(store: Store) -> None:
    config = json.dumps({"uri": store.uri, "experiment": store.experiment})
    done = store.cli("jobs", "--format", "json", tracker=f"mlflow={config}")
    assert sorted(job_ids(json.loads(done.stdout))) == sorted([PREPARE, TRAIN, EVALUATE])


def test_unknown_run_exits_1_naming_it(store: Store) -> None:
    done = store.cli("metadata", "local_cwd://torchx/nope", expect=1)
    assert "local_cwd://torchx/nope" in done.stderr and "not found" in done.stderr
    assert "Traceback" not in done.stderr


def test_unreachable_server_exits_1_naming_the_uri_quickly(store: Store) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    done = store.cli("jobs", tracker=f"mlflow={uri}", expect=1)
    assert time.monotonic() - start < 30  # mostly interpreter and mlflow import time
    assert uri in done.stderr and "not reachable" in done.stderr
    assert "Traceback" not in done.stderr
