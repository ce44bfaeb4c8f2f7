"""End to end: the example pipeline run by its driver, then queried through ``torchx tracker``.

Every test here launches real ``local_cwd`` jobs in subprocesses (``examples/pipeline``), so the
whole module is marked ``e2e``. Each pipeline run is shared by the tests that query it (a
module-scoped fixture per ``--apprun``), which keeps the module to a few seconds per pipeline.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli_support import clean_env, job_ids

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "examples" / "pipeline" / "run_pipeline.py"
BIN = Path(sys.executable).parent
TORCHX = str(BIN / "torchx")
STEPS = ("prepare", "train", "evaluate")
HANDLE_LINE = re.compile(r"^step (prepare|train|evaluate): (local_cwd://\S+) ", re.MULTILINE)


@dataclass(frozen=True)
class Pipeline:
    """A finished driver run: where it ran, its store flag, output and the three handles."""

    cwd: Path
    tracker: str | None
    apprun: str
    stdout: str
    handles: dict[str, str]

    @property
    def prepare(self) -> str:
        return self.handles["prepare"]

    @property
    def train(self) -> str:
        return self.handles["train"]

    @property
    def evaluate(self) -> str:
        return self.handles["evaluate"]

    def cli(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        """``torchx tracker list ARGS [--tracker STORE]`` run in the pipeline's directory."""
        cmd = [TORCHX, "tracker", "list", *args]
        if self.tracker is not None:
            cmd += ["--tracker", self.tracker]
        done = subprocess.run(
            cmd,
            cwd=self.cwd,
            env=clean_env(self.cwd),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == expect, (
            f"{' '.join(cmd)} exited {done.returncode}, expected {expect}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
        return done

    def json(self, *args: str) -> object:
        """The parsed ``--format json`` output of ``torchx tracker list ARGS``."""
        return json.loads(self.cli(*args, "--format", "json").stdout)


def run_driver(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python run_pipeline.py ARGS`` in ``cwd``."""
    return subprocess.run(
        [sys.executable, str(DRIVER), *args],
        cwd=cwd,
        env=clean_env(cwd),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_pipeline(cwd: Path, tracker: str | None, apprun: str = "ours") -> Pipeline:
    """Run the driver, assert it succeeded, and parse the handles it printed.

    ``tracker=None`` runs it with ``--tracker fsspec`` (the default store) and makes
    :meth:`Pipeline.cli` pass no ``--tracker``.
    """
    tracker_flag = tracker if tracker is not None else "fsspec"
    done = run_driver(cwd, "--tracker", tracker_flag, "--apprun", apprun)
    assert done.returncode == 0, f"driver failed\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    handles = dict(HANDLE_LINE.findall(done.stdout))
    assert sorted(handles) == sorted(STEPS), done.stdout
    return Pipeline(cwd, tracker, apprun, done.stdout, handles)


@pytest.fixture(scope="module", params=["ours", "torchx"])
def pipeline(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """The pipeline run once per ``--apprun``, into its own store ``<tmp>/store``."""
    cwd = tmp_path_factory.mktemp(f"pipeline-{request.param}")
    return run_pipeline(cwd, f"fsspec={cwd / 'store'}", request.param)


# --- the component the driver launches ---


def test_lineage_python_component_loads(tmp_path: Path) -> None:
    """``torchx run`` can load ``lineage.python`` (TorchX lints every component module first).

    TorchX 0.7.0's component linter only understands ``Optional[...]`` annotations: a PEP 604
    ``str | None`` in ``components/tracked.py`` makes it crash (``AttributeError: 'BinOp'
    object has no attribute 'value'``) for every component, not only ours.
    """
    done = subprocess.run(
        [TORCHX, "run", "-s", "local_cwd", "lineage.python", "--help"],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--parent_run_id" in done.stdout


# --- what the driver printed and wrote ---


def test_driver_prints_handles_and_lineage_tree(pipeline: Pipeline) -> None:
    assert len(set(pipeline.handles.values())) == 3
    for step, handle in pipeline.handles.items():
        assert handle.startswith(f"local_cwd://torchx/{step}-")
    tree = pipeline.stdout.split("\nlineage (", 1)[1]
    for handle in pipeline.handles.values():
        assert handle in tree
    # train sits under prepare, evaluate under train.
    lines = tree.splitlines()
    depth = {
        step: next(len(line) - len(line.lstrip(" │├└─")) for line in lines if h in line)
        for step, h in pipeline.handles.items()
    }
    assert depth["prepare"] < depth["train"] < depth["evaluate"]


def test_steps_wrote_their_files(pipeline: Pipeline) -> None:
    out = pipeline.cwd / "pipeline-out"
    assert (out / "prepare" / "dataset.csv").read_text().startswith("x,y,split\n")
    model = json.loads((out / "train" / "model.json").read_text())
    assert math.isclose(model["slope"], 3.0, abs_tol=0.2)
    report = json.loads((out / "evaluate" / "report.json").read_text())
    assert 0 < report["mse"] < 0.05 and report["test_rows"] == 40


# --- queried through the CLI ---


def test_list_jobs_has_exactly_the_three_runs(pipeline: Pipeline) -> None:
    assert sorted(job_ids(pipeline.json("jobs"))) == sorted(pipeline.handles.values())


def test_descendants_of_prepare_reach_train_and_evaluate(pipeline: Pipeline) -> None:
    lineage = pipeline.json("lineage", pipeline.prepare, "--descendants-only")
    assert lineage["ancestors"] == {}
    assert lineage["descendants"] == {pipeline.train: 1, pipeline.evaluate: 2}


def test_sources_of_evaluate_reach_both_ancestors(pipeline: Pipeline) -> None:
    lineage = pipeline.json("lineage", pipeline.evaluate, "--sources-only")
    assert lineage["descendants"] == {}
    assert lineage["ancestors"] == {pipeline.train: 1, pipeline.prepare: 2}
    named = {(e["parent"], e["child"], e["artifact_name"]) for e in lineage["edges"]}
    assert (pipeline.prepare, pipeline.train, "dataset") in named
    assert (pipeline.train, pipeline.evaluate, "model") in named


def test_sources_through_artifact_model_is_only_train(pipeline: Pipeline) -> None:
    lineage = pipeline.json("lineage", pipeline.evaluate, "--sources-only", "--artifact", "model")
    assert lineage["ancestors"] == {pipeline.train: 1}
    assert lineage["edges"] == [
        {"parent": pipeline.train, "child": pipeline.evaluate, "artifact_name": "model"}
    ]


def test_descendants_through_artifact_model_is_only_evaluate(pipeline: Pipeline) -> None:
    """The reverse of the test above: train's descendants through ``model`` are evaluate.

    With ``--apprun torchx`` the named link is written by TorchX's own ``FsspecTracker``, which
    writes into the parent's ``descendants/`` only because our store created that directory.
    """
    lineage = pipeline.json("lineage", pipeline.train, "--descendants-only", "--artifact", "model")
    assert lineage["descendants"] == {pipeline.evaluate: 1}


def test_jobs_derived_from_train_is_evaluate(pipeline: Pipeline) -> None:
    assert job_ids(pipeline.json("jobs", "--parent-run-id", pipeline.train)) == [pipeline.evaluate]


def test_train_metadata_has_settings_results_and_launch_record(pipeline: Pipeline) -> None:
    md = pipeline.json("metadata", pipeline.train)
    dataset = str(pipeline.cwd / "pipeline-out" / "prepare" / "dataset.csv")
    # the step's settings
    assert md["step"] == "train"
    assert md["apprun"] == pipeline.apprun
    assert md["method"] == "least_squares"
    assert md["data"] == dataset
    assert md["dataset_run_id"] == pipeline.prepare
    # its results
    assert math.isclose(md["slope"], 3.0, abs_tol=0.2)
    assert md["train_rows"] == 160
    # the launcher's record
    assert md["launch.component"] == "lineage.python"
    assert md["launch.run_id"] == pipeline.train
    assert md["launch.parent_run_id"] == pipeline.prepare


def test_train_artifacts_list_the_model(pipeline: Pipeline) -> None:
    artifacts = pipeline.json("artifacts", pipeline.train)
    model = str(pipeline.cwd / "pipeline-out" / "train" / "model.json")
    assert [(a["name"], a["path"]) for a in artifacts] == [("model", model)]
    assert artifacts[0]["metadata"]["rows"] == 160
    assert Path(model).is_file()


def test_unknown_run_id_exits_1_naming_it(pipeline: Pipeline) -> None:
    done = pipeline.cli("metadata", "local_cwd://torchx/nope", expect=1)
    assert "local_cwd://torchx/nope" in done.stderr
    assert "not found" in done.stderr


# --- the default store and failures ---


def test_default_store_is_torchx_runs_in_cwd(tmp_path: Path) -> None:
    """``--tracker fsspec`` (no config) writes ./torchx-runs; the CLI finds it with no flag."""
    pipeline = run_pipeline(tmp_path, None)
    assert (tmp_path / "torchx-runs").is_dir()
    assert (tmp_path / "pipeline-out" / "evaluate" / "report.json").is_file()
    assert sorted(job_ids(pipeline.json("jobs"))) == sorted(pipeline.handles.values())


def test_failing_step_fails_the_driver_with_its_stderr(tmp_path: Path) -> None:
    """A step that crashes makes the driver exit 1, name the step and show the job's error."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the work directory should be\n")
    store = f"fsspec={tmp_path / 'store'}"
    done = run_driver(tmp_path, "--tracker", store, "--workdir", str(blocker))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "step 'prepare' failed" in done.stderr
    assert "Error" in done.stderr  # the job's traceback, from torchx run's stderr
    assert "step train:" not in done.stdout and "lineage (" not in done.stdout
