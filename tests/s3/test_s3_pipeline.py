"""End to end on S3: the three-step example pipeline with ``--tracker s3=...`` on ``local_cwd``,
through both AppRun classes, then queried with ``torchx tracker list ... --tracker s3=...``.

With ``--apprun torchx`` the steps use TorchX's own ``torchx.tracker.api.AppRun``, which finds
``s3`` through the ``torchx.tracker`` entry point and so builds our backend. The jobs get the
endpoint in the tracker config and the (fake) credentials from the env, as a real job would.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cli_support import clean_env, job_ids
from tests.s3.conftest import BUCKET
from tests.s3.support import MotoServer, aws_test_env

pytestmark = [pytest.mark.s3, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "examples" / "pipeline" / "run_pipeline.py"
BIN = Path(sys.executable).parent
HANDLE_LINE = re.compile(r"^step (prepare|train|evaluate): (local_cwd://\S+) ", re.MULTILINE)


def job_env(home: Path) -> dict[str, str]:
    """Fake AWS credentials, no TORCHX_* from the test's env, no ~/.torchxconfig."""
    return clean_env(home, base=aws_test_env())


@dataclass(frozen=True)
class Pipeline:
    cwd: Path
    tracker: str
    apprun: str
    stdout: str
    handles: dict[str, str]

    def json(self, *args: str) -> Any:
        cmd = [str(BIN / "torchx"), "tracker", "list", *args, "--tracker", self.tracker]
        cmd += ["--format", "json"]
        done = subprocess.run(
            cmd,
            cwd=self.cwd,
            env=job_env(self.cwd),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{cmd}\n{done.stdout}\n{done.stderr}"
        return json.loads(done.stdout)


@pytest.fixture(scope="module", params=["ours", "torchx"])
def pipeline(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    moto_server: MotoServer,
    s3_admin: Any,
) -> Pipeline:
    cwd = tmp_path_factory.mktemp(f"s3-pipeline-{request.param}")
    config = json.dumps(
        {
            "url": f"s3://{BUCKET}/pipeline-{request.param}-{uuid.uuid4().hex[:8]}",
            "endpoint_url": moto_server.endpoint,
            "strict": True,
        }
    )
    tracker = f"s3={config}"
    done = subprocess.run(
        [sys.executable, str(DRIVER), "--tracker", tracker, "--apprun", request.param],
        cwd=cwd,
        env=job_env(cwd),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"driver failed\n{done.stdout}\n{done.stderr}"
    handles = dict(HANDLE_LINE.findall(done.stdout))
    assert sorted(handles) == ["evaluate", "prepare", "train"], done.stdout
    return Pipeline(cwd, tracker, request.param, done.stdout, handles)


def test_jobs_are_the_three_runs(pipeline: Pipeline) -> None:
    assert sorted(job_ids(pipeline.json("jobs"))) == sorted(pipeline.handles.values())
    assert job_ids(pipeline.json("jobs", "--parent-run-id", pipeline.handles["train"])) == [
        pipeline.handles["evaluate"]
    ]


def test_lineage_through_the_cli(pipeline: Pipeline) -> None:
    prepare, train, evaluate = (pipeline.handles[s] for s in ("prepare", "train", "evaluate"))
    down = pipeline.json("lineage", prepare, "--descendants-only")
    assert down["ancestors"] == {}
    assert down["descendants"] == {train: 1, evaluate: 2}
    up = pipeline.json("lineage", evaluate, "--sources-only")
    assert up["ancestors"] == {train: 1, prepare: 2}
    named = {(e["parent"], e["child"], e["artifact_name"]) for e in up["edges"]}
    assert {(prepare, train, "dataset"), (train, evaluate, "model")} <= named
    model = pipeline.json("lineage", train, "--descendants-only", "--artifact", "model")
    assert model["descendants"] == {evaluate: 1}


def test_metadata_from_the_job_and_the_launcher(pipeline: Pipeline) -> None:
    train = pipeline.handles["train"]
    md = pipeline.json("metadata", train)
    assert md["step"] == "train" and md["apprun"] == pipeline.apprun
    assert md["dataset_run_id"] == pipeline.handles["prepare"]
    assert md["launch.run_id"] == train and md["launch.component"] == "lineage.python"
    artifacts = pipeline.json("artifacts", train)
    assert [a["name"] for a in artifacts] == ["model"]
