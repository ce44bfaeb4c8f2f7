"""Real jobs on a real (local) Slurm cluster, through ``torchx run -s slurm``.

The cluster is ``scripts/slurm.sh`` (fixture ``slurm_cluster``): slurmctld plus two slurmd on
this host, no accounting storage, so ``sacct`` fails and waiting goes through
``launcher_plugin.slurm_status``. Every scenario is submitted at once when the module starts
(``scenarios``: one thread per scenario, each a plain sequence of CLI calls), and the tests then
check what each one left behind:

* the example pipeline (``run_pipeline.py --scheduler slurm``) for both ``--apprun`` values;
* hostile tracking values reaching the job byte for byte, read through both ``AppRun``\\ s;
* a job that fails, is requeued by TorchX's sbatch script and succeeds, in one run;
* two replicas (``num_replicas=2``: a heterogeneous job, one component per Slurm node) writing
  into one run;
* ``torchx run --wait`` and ``torchx status`` without ``sacct``.

Each ``torchx run`` gets ``-cfg job_dir=<dir>`` (the pipeline: its working directory) so the
job's logs land in a known place: ``slurm-<jobid>-<role>-<replica>.out|err``. The store is a
local directory that launcher and job share. The job inherits the launching env (``sbatch``,
``srun --export=ALL``), so the venv of this interpreter comes first on ``PATH``: its ``python``
runs the job.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.cli_support import clean_env, job_ids
from tests.launcher_plugin.hostile_helpers import (
    DATA_URL_SAFE,
    HOSTILE_FRAGMENTS,
    fsspec_data_url_text,
    parent_run_id_for,
    properties_for,
    store_dir,
    tracking_env,
)
from trackers.backends.fsspec import create_tracker
from trackers.ids import encode_run_id

if TYPE_CHECKING:
    from tests.slurm.conftest import SlurmCluster

pytestmark = pytest.mark.slurm

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DRIVER = REPO / "examples" / "pipeline" / "run_pipeline.py"
JOBS = HERE / "jobs"
#: lineage.python with --max_retries: Slurm requeues the failed job under the same run id.
RETRY_COMPONENT = "lineage.python"
VENV_BIN = Path(sys.executable).parent
TORCHX = str(VENV_BIN / "torchx")
HANDLE = re.compile(r"^slurm://torchx/(\d+)$", re.MULTILINE)
STEP_LINE = re.compile(r"^step (prepare|train|evaluate): (slurm://torchx/\d+) ", re.MULTILINE)
#: Longest one CLI call may take (a requeued job waits AuthInfo=cred_expire=10 s to restart).
TIMEOUT = 240
#: Records each replica writes in the multi-replica job.
RECORDS_PER_REPLICA = 25


# --------------------------------------------------------------------------- helpers
def launch_env(home: Path) -> dict[str, str]:
    """This process's env minus TorchX settings, ``HOME`` in scratch, the venv first on PATH."""
    return clean_env(home)


def run(
    cmd: list[str], cwd: Path, timeout: float = TIMEOUT, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd,
        cwd=cwd,
        env=launch_env(cwd),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )


def torchx(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run([TORCHX, *args], cwd)


def list_json(store: str, *args: str, cwd: Path) -> Any:
    """``torchx tracker list ARGS --tracker STORE --format json``, parsed."""
    done = torchx("tracker", "list", *args, "--tracker", store, "--format", "json", cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def describe(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit status {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"


@dataclass
class Job:
    """One ``torchx run -s slurm`` and what it left: handle, job id, logs, status."""

    name: str
    cwd: Path
    job_dir: Path
    done: subprocess.CompletedProcess[str]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def handle(self) -> str:
        match = HANDLE.search(self.done.stdout)
        assert match, f"{self.name}: no slurm:// handle printed\n{describe(self.done)}"
        return match.group(0)

    @property
    def job_id(self) -> str:
        return self.handle.rsplit("/", 1)[1]

    def log(self, replica: int = 0, stream: str = "out") -> str:
        path = self.job_dir / f"slurm-{self.job_id}-python-{replica}.{stream}"
        return path.read_text(encoding="utf-8", errors="replace")

    def status(self) -> subprocess.CompletedProcess[str]:
        return torchx("status", self.handle, cwd=self.cwd)


def submit(base: Path, name: str, *args: str, wait: bool = True) -> Job:
    """``torchx run -s slurm [--wait] -cfg job_dir=... ARGS`` from a directory of its own."""
    cwd = base / name
    cwd.mkdir()
    job_dir = base / f"{name}-job"  # TorchX creates it (and copies the cwd into it)
    cmd = ["run", "-s", "slurm", *(["--wait"] if wait else []), "-cfg", f"job_dir={job_dir}"]
    t0 = time.monotonic()
    done = torchx(*cmd, *args, cwd=cwd)
    return Job(name, cwd, job_dir, done, time.monotonic() - t0)


def run_records(store: Path, handle: str, category: str = "metadata") -> list[dict[str, Any]]:
    """The raw record files of a run (``<store>/<base32(run id)>/<category>/*``), parsed."""
    directory = store / encode_run_id(handle) / category
    return [
        json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(directory.iterdir())
        if not p.name.startswith(".")
    ]


# --------------------------------------------------------------------------- scenarios
@dataclass
class Pipeline:
    apprun: str
    cwd: Path
    store: str
    done: subprocess.CompletedProcess[str]

    @property
    def handles(self) -> dict[str, str]:
        return dict(STEP_LINE.findall(self.done.stdout))


def pipeline_scenario(base: Path, apprun: str) -> Pipeline:
    cwd = base / f"pipeline-{apprun}"
    cwd.mkdir()
    store = f"fsspec={base / f'store-pipeline-{apprun}'}"
    done = run(
        [
            sys.executable,
            str(DRIVER),
            "--scheduler",
            "slurm",
            "--scheduler-args",
            "time=10",
            "--tracker",
            store,
            "--apprun",
            apprun,
            "--timeout",
            str(TIMEOUT),
        ],
        cwd,
        timeout=3 * TIMEOUT,
    )
    return Pipeline(apprun, cwd, store, done)


#: The hostile parent run ids and stores of the two hostile-value jobs. ``lineage_fsspec`` gets
#: every fragment (newline, non-ASCII, ``${app_id}``...); TorchX's own ``fsspec`` factory reads a
#: properties file (no newline in a value) and base32-encodes run ids as ASCII, so its job gets
#: every fragment that can hold.
HOSTILE = {
    "lineage_fsspec": (HOSTILE_FRAGMENTS["all"], HOSTILE_FRAGMENTS["all"]),
    "fsspec": (
        DATA_URL_SAFE["all"],
        " ".join(v for k, v in HOSTILE_FRAGMENTS.items() if k not in ("all", "non_ascii")),
    ),
}


def hostile_scenario(base: Path, tracker: str) -> Job:
    store_value, parent_value = HOSTILE[tracker]
    stores = base / "stores"
    stores.mkdir(exist_ok=True)
    store = store_dir(stores, store_value, tracker)
    parent = parent_run_id_for(parent_value)
    out = base / f"hostile-{tracker}-out"
    out.mkdir()
    job = submit(
        base,
        f"hostile-{tracker}",
        "--tracker",
        f"{tracker}={store}",
        "--parent-run-id",
        parent,
        "lineage.python",
        "--script",
        str(JOBS / "record_env.py"),
        "--",
        str(out / "env.json"),
        str(out / "runs.json"),
    )
    job.extra.update(store=store, parent=parent, out=out)
    return job


def requeue_scenario(base: Path) -> Job:
    store = base / "store-requeue"
    job = submit(
        base,
        "requeue",
        "--tracker",
        f"lineage_fsspec={store}",
        RETRY_COMPONENT,
        "--name",
        "retry",
        "--max_retries",
        "1",
        "--script",
        str(JOBS / "retry_once.py"),
    )
    job.extra["store"] = store
    return job


def replicas_scenario(base: Path) -> Job:
    store = base / "store-replicas"
    job = submit(
        base,
        "replicas",
        "--tracker",
        f"lineage_fsspec={store}",
        "lineage.python",
        "--num_replicas",
        "2",
        "--script",
        str(JOBS / "record_replica.py"),
        "--",
        str(RECORDS_PER_REPLICA),
    )
    job.extra["store"] = store
    return job


def wait_scenario(base: Path, name: str, code: str) -> Job:
    job = submit(base, name, "lineage.python", "-c", code)
    if HANDLE.search(job.done.stdout):
        # Right after `torchx run --wait` returns: is the job still in the queue?
        job.extra["squeue"] = run(["squeue", "--noheader", f"--jobs={job.job_id}"], base)
        job.extra["scontrol"] = run(["scontrol", "--oneliner", "show", "job", job.job_id], base)
        job.extra["sacct"] = run(["sacct", "-j", job.job_id], base)
    return job


@pytest.fixture(scope="module")
def scenarios(
    slurm_cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[Any]]]:
    """Every scenario submitted at once (the cluster has 8 CPUs on 2 nodes); name -> future."""
    base = tmp_path_factory.mktemp("slurm")
    plan: dict[str, Callable[[], Any]] = {
        "pipeline-ours": lambda: pipeline_scenario(base, "ours"),
        "pipeline-torchx": lambda: pipeline_scenario(base, "torchx"),
        "requeue": lambda: requeue_scenario(base),
        "replicas": lambda: replicas_scenario(base),
        "hostile-lineage_fsspec": lambda: hostile_scenario(base, "lineage_fsspec"),
        "hostile-fsspec": lambda: hostile_scenario(base, "fsspec"),
        "wait-succeeds": lambda: wait_scenario(base, "wait-ok", "import time; time.sleep(3)"),
        "wait-fails": lambda: wait_scenario(base, "wait-fail", "raise SystemExit(3)"),
    }
    with ThreadPoolExecutor(max_workers=len(plan)) as pool:
        yield {name: pool.submit(fn) for name, fn in plan.items()}


# --------------------------------------------------------------------------- pipeline
@pytest.fixture(params=["ours", "torchx"])
def pipeline(request: pytest.FixtureRequest, scenarios: dict[str, Future[Any]]) -> Pipeline:
    result: Pipeline = scenarios[f"pipeline-{request.param}"].result()
    assert result.done.returncode == 0, describe(result.done)
    assert sorted(result.handles) == ["evaluate", "prepare", "train"], result.done.stdout
    return result


def test_pipeline_runs_three_slurm_jobs_chained_by_parent_run_id(pipeline: Pipeline) -> None:
    handles = pipeline.handles
    assert len(set(handles.values())) == 3
    for handle in handles.values():
        assert HANDLE.fullmatch(handle), handle
    assert "scheduler slurm" in pipeline.done.stdout
    tree = pipeline.done.stdout.split("\nlineage (", 1)[1]
    assert all(h in tree for h in handles.values())


def test_pipeline_lineage_through_the_cli(pipeline: Pipeline) -> None:
    h = pipeline.handles
    down = list_json(
        pipeline.store, "lineage", h["prepare"], "--descendants-only", cwd=pipeline.cwd
    )
    assert down["ancestors"] == {}
    assert down["descendants"] == {h["train"]: 1, h["evaluate"]: 2}
    up = list_json(pipeline.store, "lineage", h["evaluate"], "--sources-only", cwd=pipeline.cwd)
    assert up["ancestors"] == {h["train"]: 1, h["prepare"]: 2}
    named = {(e["parent"], e["child"], e["artifact_name"]) for e in up["edges"]}
    assert (h["prepare"], h["train"], "dataset") in named
    assert (h["train"], h["evaluate"], "model") in named


def test_pipeline_list_jobs_shows_exactly_the_three_runs(pipeline: Pipeline) -> None:
    jobs = job_ids(list_json(pipeline.store, "jobs", cwd=pipeline.cwd))
    assert sorted(jobs) == sorted(pipeline.handles.values())
    derived = job_ids(
        list_json(
            pipeline.store, "jobs", "--parent-run-id", pipeline.handles["train"], cwd=pipeline.cwd
        )
    )
    assert derived == [pipeline.handles["evaluate"]]


def test_pipeline_job_run_id_is_the_printed_handle(pipeline: Pipeline) -> None:
    """Each step prints ``[run <AppRun.job_id()>]``, i.e. its ``TORCHX_JOB_ID``, into its log."""
    for step, handle in pipeline.handles.items():
        job_id = handle.rsplit("/", 1)[1]
        log = (pipeline.cwd / f"slurm-{job_id}-python-0.out").read_text(encoding="utf-8")
        assert f"[run {handle}]" in log, (step, log)
        md = list_json(pipeline.store, "metadata", handle, cwd=pipeline.cwd)
        assert md["step"] == step and md["apprun"] == pipeline.apprun
        assert md["launch.run_id"] == handle
        assert md["launch.scheduler"] == "slurm"


# --------------------------------------------------------------------------- hostile values
@pytest.mark.parametrize("tracker", ["lineage_fsspec", "fsspec"])
def test_hostile_values_reach_the_slurm_job_byte_for_byte(
    tracker: str, scenarios: dict[str, Future[Any]]
) -> None:
    job: Job = scenarios[f"hostile-{tracker}"].result()
    assert job.done.returncode == 0, describe(job.done) + job.log(stream="err")
    handle, store, parent = job.handle, job.extra["store"], job.extra["parent"]
    out: Path = job.extra["out"]

    received = tracking_env(json.loads((out / "env.json").read_text(encoding="utf-8")))
    config_var = f"TORCHX_TRACKER_{tracker.upper()}_CONFIG"
    config = received.pop(config_var)
    assert received == {
        "TORCHX_JOB_ID": handle,
        "TORCHX_PARENT_RUN_ID": parent,
        "TORCHX_TRACKERS": tracker,
    }
    if tracker == "fsspec":  # TorchX's form: an inline properties file
        assert fsspec_data_url_text(config) == properties_for(store)
    else:
        assert config == str(store)

    # Both AppRuns ran with that env and wrote into that one store.
    runs = json.loads((out / "runs.json").read_text(encoding="utf-8"))
    assert runs == {"torchx": [handle, 1], "ours": [handle, 1]}
    tracker_ = create_tracker(str(store))
    assert tracker_.run_ids() == [handle]
    metadata = tracker_.metadata(handle)
    assert metadata["recorded_by_torchx_apprun"] == parent
    assert metadata["recorded_by_lineage_apprun"] == parent
    assert metadata["launch.run_id"] == handle
    assert metadata["launch.parent_run_id"] == parent
    assert parent in {s.source_run_id for s in tracker_.sources(handle)}


def test_hostile_values_are_carried_outside_srun_export(scenarios: dict[str, Future[Any]]) -> None:
    """The sbatch script TorchX wrote: the comma-carrying values are in the ``env --`` prefix."""
    job: Job = scenarios["hostile-lineage_fsspec"].result()
    script = (job.job_dir / "torchx-sbatch.sh").read_text(encoding="utf-8")
    srun = script[script.index("\nsrun ") :]
    export = re.search(r"--export=ALL,(\S+)", srun)
    assert export is not None
    assert "TORCHX_PARENT_RUN_ID" not in export.group(1)
    assert " env -- " in srun or " sh -c " in srun


# --------------------------------------------------------------------------- requeue
def test_requeued_job_keeps_one_run_with_records_from_both_attempts(
    scenarios: dict[str, Future[Any]],
) -> None:
    job: Job = scenarios["requeue"].result()
    assert job.done.returncode == 0, describe(job.done)  # --wait saw it through the requeue
    store: Path = job.extra["store"]

    assert job_ids(list_json(f"lineage_fsspec={store}", "jobs", cwd=job.cwd)) == [job.handle]
    md = list_json(f"lineage_fsspec={store}", "metadata", job.handle, cwd=job.cwd)
    assert {"attempt_0", "attempt_1"} <= set(md)
    assert md["restart_count"] == 1  # the second attempt wrote last

    attempts = [r for r in run_records(store, job.handle) if "restart_count" in r["metadata"]]
    by_restart = {r["origin"]["restart"]: r for r in attempts}
    assert len(attempts) == 2
    # First attempt: SLURM_RESTART_COUNT unset (None); after the requeue Slurm sets it to 1.
    assert set(by_restart) in ({None, 1}, {0, 1})
    assert by_restart[1]["metadata"]["restart_count"] == 1
    first = by_restart[None if None in by_restart else 0]
    assert first["metadata"]["restart_count"] == 0
    assert first["origin"]["pid"] != by_restart[1]["origin"]["pid"]

    status = job.status()
    assert status.returncode == 0, describe(status)
    assert "State: SUCCEEDED" in status.stdout
    assert "Num Restarts: 1" in status.stdout


# --------------------------------------------------------------------------- two replicas
def test_two_replicas_record_into_one_run_without_losing_or_duplicating(
    scenarios: dict[str, Future[Any]],
) -> None:
    job: Job = scenarios["replicas"].result()
    assert job.done.returncode == 0, describe(job.done)
    store: Path = job.extra["store"]
    assert job_ids(list_json(f"lineage_fsspec={store}", "jobs", cwd=job.cwd)) == [job.handle]

    records = [
        r
        for r in run_records(store, job.handle)
        if any(k.startswith("replica_") for k in r["metadata"])
    ]
    assert len(records) == 2 * RECORDS_PER_REPLICA
    keys = [k for r in records for k in r["metadata"] if k.startswith("replica_")]
    expected = {f"replica_{rank}_{i}" for rank in (0, 1) for i in range(RECORDS_PER_REPLICA)}
    assert sorted(keys) == sorted(expected)  # each exactly once
    for record in records:
        (key,) = (k for k in record["metadata"] if k.startswith("replica_"))
        rank = int(key.split("_")[1])
        assert record["origin"]["rank"] == rank  # from SLURM_PROCID
        assert record["metadata"]["last_writer"] == str(rank)
    pids = {r["origin"]["rank"]: r["origin"]["pid"] for r in records}
    assert len(set(pids.values())) == 2
    assert len({r["origin"]["host"] for r in records}) == 1  # both Slurm nodes are this host

    merged = list_json(f"lineage_fsspec={store}", "metadata", job.handle, cwd=job.cwd)
    assert expected <= set(merged)
    assert "replica 0 wrote" in job.log(0) and "replica 1 wrote" in job.log(1)


# --------------------------------------------------------------------------- waiting
def test_wait_returns_when_the_job_has_ended_without_sacct(
    scenarios: dict[str, Future[Any]],
) -> None:
    job: Job = scenarios["wait-succeeds"].result()
    assert job.done.returncode == 0, describe(job.done)
    assert job.seconds >= 3  # the job sleeps 3 s
    assert job.extra["sacct"].returncode != 0  # no accounting storage on this cluster
    assert job.extra["squeue"].stdout.strip() == ""  # it had left the queue
    assert "JobState=COMPLETED" in job.extra["scontrol"].stdout
    assert "job finished: succeeded" in job.done.stderr.lower()  # nightly logs "job finished"

    status = job.status()
    assert status.returncode == 0, describe(status)
    assert "State: SUCCEEDED" in status.stdout


def test_wait_exits_1_when_the_job_fails_and_status_says_failed(
    scenarios: dict[str, Future[Any]],
) -> None:
    job: Job = scenarios["wait-fails"].result()
    assert job.done.returncode == 1, describe(job.done)
    assert "job finished: failed" in job.done.stderr.lower()
    assert "ExitCode=3:0" in job.extra["scontrol"].stdout
    assert job.extra["squeue"].stdout.strip() == ""

    status = job.status()
    assert status.returncode == 0, describe(status)
    assert "State: FAILED" in status.stdout
    assert "exit code 3:0" in status.stdout
