"""Fixtures for the MLflow backend tests: one real ``mlflow server`` for the whole session.

The server (``tests/mlflow/server.py``) listens on a free port of 127.0.0.1 with a SQLite store
and a local artifact root in a temp dir, one worker, in its own process group; it is stopped
(SIGTERM, then SIGKILL) when the session ends. Each test gets a fresh experiment, so runs of one
test never show up in another.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from mlflow.tracking import MlflowClient

from tests.mlflow.server import MLFLOW_ENV_TO_DROP, MlflowServer, running_mlflow_server
from trackers.backends.mlflow import MLflowTracker, create_tracker


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A real ``mlflow server`` on 127.0.0.1, shared by every test of the session."""
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server


@pytest.fixture(autouse=True)
def clean_mlflow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No tracking URI, experiment or credential from the developer's shell leaks in."""
    for key in MLFLOW_ENV_TO_DROP:
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def experiment() -> str:
    """A new experiment name per test (created on the first write)."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def config(mlflow_server: MlflowServer, experiment: str) -> str:
    """A mapping config for the test's own experiment on the session's server."""
    return json.dumps({"uri": mlflow_server.uri, "experiment": experiment})


@pytest.fixture
def client(mlflow_server: MlflowServer) -> MlflowClient:
    """An ``MlflowClient`` of the session's server (how an MLflow user reads it back)."""
    return MlflowClient(tracking_uri=mlflow_server.uri)


@pytest.fixture
def tracker(config: str) -> MLflowTracker:
    """The backend on the test's own experiment."""
    return create_tracker(config)
