"""A tracking server that accepts connections and never answers must not hold a job up (#7).

Each test runs a real job process (``python -c JOB``) with two trackers: the local
``lineage_fsspec`` store and a backend (MLflow or S3) pointed at the blackhole
(``tests/faults/blackhole.py``: accepts, reads, never sends a byte). The job builds its run
with ``AppRun.run_from_env()``, logs 10,000 steps of two metrics with an ``add_metadata`` every
100 steps, and returns normally, so the run is closed by the exit hook. Checked:

* the job exits with status 0, and its wall time is below the loop time it measured itself
  plus the shutdown limit plus a margin for interpreter start and imports: the shutdown bound,
  not a speed target (``benchmarks/bench_hang.py`` measures speed);
* the local store has every point, every metadata key and the status SUCCEEDED: a hung
  backend costs nothing to the others;
* the job's stderr says how many records the hung backend did not get, where they are kept
  and how to deliver them (``torchx tracker sync <run id>``).

The job gets a timeout, so a job that hangs fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from trackers.backends.fsspec import create_tracker

REPO = Path(__file__).resolve().parents[2]

STEPS = 10_000
METADATA_EVERY = 100
SHUTDOWN_TIMEOUT_S = 3
#: Interpreter start, imports (mlflow, boto3) and building the run: generous on a shared box.
START_MARGIN_S = 20
#: Kill the job after this long: far beyond the bound, so only a hanging job reaches it.
JOB_TIMEOUT_S = SHUTDOWN_TIMEOUT_S + START_MARGIN_S + 60

#: The job: what a training script does. Prints the run id and its own timings as JSON.
JOB = f"""
import json, time
from trackers import AppRun

started = time.perf_counter()
run = AppRun.run_from_env()
start_s = time.perf_counter() - started

started = time.perf_counter()
for i in range({STEPS}):
    run.log({{"loss": 1.0 / (i + 1), "acc": i / {STEPS}}}, step=i)
    if i % {METADATA_EVERY} == 0:
        run.add_metadata(**{{f"m{{i}}": i}})
loop_s = time.perf_counter() - started
print(json.dumps({{"run_id": run.id, "start_s": start_s, "loop_s": loop_s}}), flush=True)
"""

#: Env of the test process that would send a tracker somewhere else, or carry credentials.
_DROPPED_PREFIXES = ("TORCHX_", "MLFLOW_", "AWS_")


@dataclass(frozen=True)
class Job:
    run_id: str
    returncode: int
    wall_s: float
    stdout: str
    stderr: str

    def timings(self) -> dict[str, float]:
        """What the job printed about itself (``start_s``, ``loop_s``)."""
        for line in reversed(self.stdout.splitlines()):
            if line.startswith("{"):
                return dict(json.loads(line))
        raise AssertionError(f"the job printed no timings\n{self.output_tail()}")

    def output_tail(self, lines: int = 30) -> str:
        tail = "\n".join(self.stderr.splitlines()[-lines:])
        return f"stdout:\n{self.stdout[-2000:]}\nstderr (last {lines} lines):\n{tail}"


def run_job(tmp_path: Path, trackers: dict[str, str], extra_env: dict[str, str]) -> Job:
    """Run ``JOB`` as TorchX would launch it, tracking into ``trackers`` (name -> config)."""
    run_id = f"local_cwd://faults/hang-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_PREFIXES)}
    env.update(
        {
            "TORCHX_JOB_ID": run_id,
            "TORCHX_TRACKERS": ",".join(trackers),
            "TORCHX_TRACKER_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT_S),
            "TORCHX_TRACKER_SPOOL_DIR": str(tmp_path / "spool"),
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p),
        }
    )
    env.update({f"TORCHX_TRACKER_{name.upper()}_CONFIG": c for name, c in trackers.items()})
    env.update(extra_env)
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-c", JOB],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=JOB_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
        tail = "\n".join((err or "").splitlines()[-30:])
        pytest.fail(
            f"the job did not exit within {JOB_TIMEOUT_S} s (killed); it should exit about "
            f"{SHUTDOWN_TIMEOUT_S} s after its loop\nstdout:\n{(out or '')[-2000:]}\n"
            f"stderr (last 30 lines):\n{tail}"
        )
    return Job(run_id, done.returncode, time.monotonic() - started, done.stdout, done.stderr)


def assert_exits_within_shutdown_limit(job: Job) -> None:
    assert job.returncode == 0, f"the job failed ({job.returncode})\n{job.output_tail()}"
    timings = job.timings()
    bound = timings["loop_s"] + SHUTDOWN_TIMEOUT_S + START_MARGIN_S
    assert job.wall_s < bound, (
        f"the job took {job.wall_s:.1f} s from start to exit; allowed: its loop "
        f"({timings['loop_s']:.1f} s) + shutdown limit ({SHUTDOWN_TIMEOUT_S} s) + "
        f"{START_MARGIN_S} s for start-up = {bound:.1f} s (run_from_env took "
        f"{timings['start_s']:.1f} s)\n{job.output_tail()}"
    )


def assert_local_store_complete(store: Path, job: Job) -> None:
    tracker = create_tracker(str(store))
    points = tracker.metrics(job.run_id)
    by_name = {name: sum(p.name == name for p in points) for name in ("loss", "acc")}
    assert by_name == {"loss": STEPS, "acc": STEPS}, (
        f"the local store has {len(points)} points {by_name}, expected {STEPS} of each\n"
        f"{job.output_tail()}"
    )
    metadata = tracker.metadata(job.run_id)
    expected = {f"m{i}": i for i in range(0, STEPS, METADATA_EVERY)}
    missing = sorted(set(expected) - set(metadata))
    assert not missing, f"{len(missing)} metadata keys missing, e.g. {missing[:5]}"
    assert {k: metadata[k] for k in expected} == expected
    assert tracker.status(job.run_id) == "SUCCEEDED"


def assert_reports_undelivered(job: Job, backend_repr_start: str) -> None:
    """The final line: ``tracking: run ID: N record(s) not delivered to BACKEND ... sync ID``."""
    lines = [
        line
        for line in job.stderr.splitlines()
        if "not delivered to" in line and backend_repr_start in line
    ]
    assert lines, (
        f"no 'record(s) not delivered to {backend_repr_start}...' line on the job's stderr\n"
        f"{job.output_tail()}"
    )
    line = lines[-1]
    assert job.run_id in line, line
    assert "torchx tracker sync" in line, line
    count = re.search(r"(\d+) record\(s\) not delivered to", line)
    assert count is not None and int(count.group(1)) >= 1, line


def test_job_with_hung_mlflow_server_exits_in_time_keeps_local_data_and_reports_backlog(
    tmp_path: Path, blackhole_port: int
) -> None:
    store = tmp_path / "store"
    job = run_job(
        tmp_path,
        {"lineage_fsspec": str(store), "mlflow": f"http://127.0.0.1:{blackhole_port}"},
        {},
    )
    assert_exits_within_shutdown_limit(job)
    assert_local_store_complete(store, job)
    assert_reports_undelivered(job, "MLflowTracker(")


def test_job_with_hung_s3_endpoint_exits_in_time_keeps_local_data_and_reports_backlog(
    tmp_path: Path, blackhole_port: int
) -> None:
    store = tmp_path / "store"
    s3_config = (
        f'{{url: "s3://faults-bucket/runs", endpoint_url: "http://127.0.0.1:{blackhole_port}", '
        "region: us-east-1}"
    )
    dummy_aws = {
        "AWS_ACCESS_KEY_ID": "faults-dummy-key-id",
        "AWS_SECRET_ACCESS_KEY": "faults-dummy-secret",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }
    job = run_job(tmp_path, {"lineage_fsspec": str(store), "s3": s3_config}, dummy_aws)
    assert_exits_within_shutdown_limit(job)
    assert_local_store_complete(store, job)
    assert_reports_undelivered(job, "S3Tracker(")
