"""End to end on a real MLflow server: the example pipeline and job statuses.

The three-step pipeline (``examples/pipeline/run_pipeline.py``) runs as real ``torchx run -s
local_cwd --tracker mlflow=http://127.0.0.1:PORT`` jobs, once recording through our ``AppRun``
and once through TorchX's own (which finds this backend through the ``torchx.tracker`` entry
point ``mlflow``). The lineage is then checked through ``torchx tracker list`` and directly
through ``MlflowClient``. Each pipeline gets its own experiment through ``MLFLOW_EXPERIMENT_NAME``
in the launcher's env, which ``local_cwd`` jobs inherit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from tests.cli_support import clean_env, job_ids
from tests.e2e.test_pipeline import HANDLE_LINE, STEPS
from tests.mlflow.server import MLFLOW_ENV_TO_DROP, MlflowServer
from trackers.backends.mlflow import create_tracker, run_key

pytestmark = [pytest.mark.mlflow, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "examples" / "pipeline" / "run_pipeline.py"
TORCHX = str(Path(sys.executable).parent / "torchx")


def job_env(home: Path, experiment: str) -> dict[str, str]:
    env = {k: v for k, v in clean_env(home).items() if k not in MLFLOW_ENV_TO_DROP}
    env["MLFLOW_EXPERIMENT_NAME"] = experiment
    return env


@dataclass(frozen=True)
class Pipeline:
    cwd: Path
    uri: str
    experiment: str
    apprun: str
    stdout: str
    handles: dict[str, str]

    def cli(self, *args: str) -> object:
        """``torchx tracker list ARGS --tracker mlflow=URI --format json``, parsed."""
        cmd = [TORCHX, "tracker", "list", *args, "--tracker", f"mlflow={self.uri}"]
        done = subprocess.run(
            [*cmd, "--format", "json"],
            cwd=self.cwd,
            env=job_env(self.cwd, self.experiment),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout}\n{done.stderr}"
        return json.loads(done.stdout)

    def runs(self, client: MlflowClient) -> dict[str, Run]:
        """The experiment's active MLflow runs by TorchX run id."""
        exp = client.get_experiment_by_name(self.experiment)
        assert exp is not None
        runs = client.search_runs([exp.experiment_id], max_results=100)
        return {r.data.tags["torchx.run_id"]: r for r in runs}


@pytest.fixture(scope="module", params=["ours", "torchx"])
def pipeline(
    request: pytest.FixtureRequest,
    mlflow_server: MlflowServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Pipeline:
    cwd = tmp_path_factory.mktemp(f"mlflow-pipeline-{request.param}")
    experiment = f"pipeline-{request.param}-{time.time_ns()}"
    done = subprocess.run(
        [
            sys.executable,
            str(DRIVER),
            "--tracker",
            f"mlflow={mlflow_server.uri}",
            "--apprun",
            request.param,
        ],
        cwd=cwd,
        env=job_env(cwd, experiment),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"driver failed\n{done.stdout}\n{done.stderr}"
    handles = dict(HANDLE_LINE.findall(done.stdout))
    assert sorted(handles) == sorted(STEPS), done.stdout
    return Pipeline(cwd, mlflow_server.uri, experiment, request.param, done.stdout, handles)


# --- through our CLI ---


def test_cli_lists_exactly_the_three_runs(pipeline: Pipeline) -> None:
    assert sorted(job_ids(pipeline.cli("jobs"))) == sorted(pipeline.handles.values())


def test_cli_lineage_from_both_ends(pipeline: Pipeline) -> None:
    h = pipeline.handles
    down = pipeline.cli("lineage", h["prepare"], "--descendants-only")
    assert down == {
        "run_id": h["prepare"],
        "ancestors": {},
        "descendants": {h["train"]: 1, h["evaluate"]: 2},
        "edges": down["edges"],  # type: ignore[index]
    }
    up = pipeline.cli("lineage", h["evaluate"], "--sources-only")
    assert up["ancestors"] == {h["train"]: 1, h["prepare"]: 2}  # type: ignore[index]
    named = {(e["parent"], e["child"], e["artifact_name"]) for e in up["edges"]}  # type: ignore[index]
    assert (h["prepare"], h["train"], "dataset") in named
    assert (h["train"], h["evaluate"], "model") in named
    model_only = pipeline.cli("lineage", h["train"], "--descendants-only", "--artifact", "model")
    assert model_only["descendants"] == {h["evaluate"]: 1}  # type: ignore[index]
    assert job_ids(pipeline.cli("jobs", "--parent-run-id", h["train"])) == [h["evaluate"]]
    assert "lineage (" in pipeline.stdout and h["evaluate"] in pipeline.stdout  # driver's tree


def test_cli_metadata_and_artifacts_of_train(pipeline: Pipeline) -> None:
    h = pipeline.handles
    md = pipeline.cli("metadata", h["train"])
    assert md["step"] == "train" and md["apprun"] == pipeline.apprun  # type: ignore[index]
    assert md["dataset_run_id"] == h["prepare"]  # type: ignore[index]
    assert md["launch.component"] == "lineage.python"  # type: ignore[index]
    assert md["launch.parent_run_id"] == h["prepare"]  # type: ignore[index]
    artifacts = pipeline.cli("artifacts", h["train"])
    model = str(pipeline.cwd / "pipeline-out" / "train" / "model.json")
    assert [(a["name"], a["path"]) for a in artifacts] == [("model", model)]  # type: ignore[union-attr, index]


# --- through MlflowClient directly ---


def test_mlflow_has_one_named_run_per_step(pipeline: Pipeline, client: MlflowClient) -> None:
    runs = pipeline.runs(client)
    assert sorted(runs) == sorted(pipeline.handles.values())
    for handle, run in runs.items():
        assert run.info.run_name == handle
    train = runs[pipeline.handles["train"]]
    assert train.data.params["step"] == "train"
    assert train.data.params["launch.component"] == "lineage.python"


def test_mlflow_links_found_with_search_runs(pipeline: Pipeline, client: MlflowClient) -> None:
    h = pipeline.handles
    runs = pipeline.runs(client)
    for parent, child, artifact in (
        ("prepare", "train", "dataset"),
        ("train", "evaluate", "model"),
    ):
        links = [
            json.loads(v)
            for k, v in runs[h[child]].data.tags.items()
            if k.startswith("torchx.link.")
        ]
        assert {"run_id": h[parent], "artifact_name": artifact} in links
        (marker,) = [
            k
            for k, v in runs[h[child]].data.tags.items()
            if k.startswith("torchx.source.") and v == h[parent]
        ]
        found = client.search_runs([runs[h[child]].info.experiment_id], f"tags.`{marker}` LIKE '%'")
        assert [r.data.tags["torchx.run_id"] for r in found] == [h[child]]


def test_mlflow_nests_each_step_under_its_launcher_parent(
    pipeline: Pipeline, client: MlflowClient
) -> None:
    """``--parent-run-id`` becomes MLflow's own nesting tag, read back from the server."""
    h = pipeline.handles
    runs = pipeline.runs(client)
    assert "mlflow.parentRunId" not in runs[h["prepare"]].data.tags
    for parent, child in (("prepare", "train"), ("train", "evaluate")):
        nested = runs[h[child]].data.tags.get("mlflow.parentRunId")
        assert nested == runs[h[parent]].info.run_id, (child, nested)


def test_mlflow_status_of_the_steps(pipeline: Pipeline, client: MlflowClient) -> None:
    runs = pipeline.runs(client).values()
    assert {run.info.status for run in runs} == {"FINISHED"}
    reconciled = {run.data.params.get("reconciled.from_scheduler") for run in runs}
    if pipeline.apprun == "ours":
        assert reconciled == {None}  # our AppRun: RUNNING at start, SUCCEEDED at exit
    else:  # TorchX's AppRun records no status: `torchx run` waited and wrote the scheduler's
        assert reconciled == {"SUCCEEDED"}


# --- job status through a real job: normal exit, exception, SIGTERM ---

JOB = textwrap.dedent(
    """
    import sys, time
    from trackers import AppRun
    run = AppRun.run_from_env()
    run.add_metadata(mode=sys.argv[1])
    if sys.argv[1] == "raise":
        raise RuntimeError("the job failed on purpose")
    if sys.argv[1] == "wait":
        run.flush()  # writes are delivered in the background; RUNNING is stored after this
        print("ready", flush=True)
        time.sleep(120)
    """
)


@pytest.fixture
def job_script(tmp_path: Path) -> Path:
    script = tmp_path / "job.py"
    script.write_text(JOB)
    return script


@pytest.mark.parametrize(("mode", "status"), [("exit", "FINISHED"), ("raise", "FAILED")])
def test_torchx_run_job_ends_finished_or_failed(
    mode: str,
    status: str,
    mlflow_server: MlflowServer,
    client: MlflowClient,
    experiment: str,
    job_script: Path,
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [
            TORCHX,
            "run",
            "-s",
            "local_cwd",
            "--tracker",
            f"mlflow={mlflow_server.uri}",
            "lineage.python",
            "--script",
            str(job_script),
            "--",
            mode,
        ],
        cwd=tmp_path,
        env=job_env(tmp_path, experiment),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert (done.returncode == 0) == (mode == "exit"), done.stdout + done.stderr
    handle = next(line for line in done.stdout.splitlines() if line.startswith("local_cwd://"))
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id], f"tags.`torchx.run_key` = '{run_key(handle)}'")
    assert run.info.status == status
    assert run.info.end_time is not None
    assert run.data.params["mode"] == mode


def test_sigterm_marks_the_run_killed(
    config: str, client: MlflowClient, experiment: str, job_script: Path
) -> None:
    run_id = f"local_cwd://torchx/job-{time.time_ns()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCHX_")}
    env.update(TORCHX_JOB_ID=run_id, TORCHX_TRACKERS="mlflow", TORCHX_TRACKER_MLFLOW_CONFIG=config)
    proc = subprocess.Popen(
        [sys.executable, str(job_script), "wait"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        tracker = create_tracker(config)
        assert tracker.status(run_id) == "RUNNING"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert tracker.status(run_id) == "KILLED"
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "KILLED" and run.info.end_time is not None
