"""A running Slurm job requeued by ``scontrol requeue`` goes on recording into the same run.

The job (``jobs/requeue_midrun.py``) logs steps 0..4 and waits; the test requeues it. Slurm
sends SIGTERM (our lifecycle hook records KILLED), holds the job PENDING (``Reason=BeginTime``,
about ``AuthInfo=cred_expire`` = 10 s on the ``scripts/slurm.sh`` cluster) and starts it again
under the same job id, hence the same run id (``TORCHX_JOB_ID``), with
``SLURM_RESTART_COUNT=1``; that attempt logs steps 5..9 and exits 0. The store must then hold one
run, whose metrics, metadata and status history read as one continuous run.

TorchX submits every job with ``sbatch --requeue``, and the cluster keeps ``JobRequeue`` at its
default, so no option is needed to make the job requeue-able. Requeueing truncates the job's
log files (``slurm-<jobid>-python-0.out|err``, ``slurm-<jobid>.out``), so the first attempt's
logs are read before the requeue, for failure messages.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from torchx.specs import is_terminal

from launcher_plugin.slurm_status import app_state, parse_scontrol_fields
from tests.cli_support import torchx as run_torchx
from tests.slurm.conftest import SlurmCluster
from trackers.backends.fsspec import create_tracker
from trackers.ids import encode_run_id, record_sort_key

pytestmark = pytest.mark.slurm

JOB = Path(__file__).resolve().parent / "jobs" / "requeue_midrun.py"
BIN = Path(sys.executable).parent
HANDLE = re.compile(r"^slurm://torchx/(\d+)$", re.MULTILINE)
#: Longest wait for one phase: the job to start and store steps 0..4, or to restart and end
#: (a cluster with Slurm's default cred_expire=120 holds a requeued job ~2 minutes).
TIMEOUT = 240.0
#: How long the first attempt waits to be requeued before giving up (exit 3).
FIRST_ATTEMPT_SLEEP = 600


def torchx(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``torchx`` CLI of this venv, without the test run's TorchX settings."""
    return run_torchx(cwd, *args, timeout=TIMEOUT)


def slurm(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def job_fields(job_id: str) -> dict[str, str]:
    """``scontrol --oneliner show job ID`` as fields ({} if Slurm does not answer)."""
    shown = slurm("scontrol", "--oneliner", "show", "job", job_id)
    return parse_scontrol_fields(shown.stdout.strip()) if shown.returncode == 0 else {}


def ended(fields: dict[str, str]) -> bool:
    return bool(fields) and is_terminal(app_state(fields.get("JobState", "")))


def brief(fields: dict[str, str]) -> str:
    keys = ("JobState", "Reason", "Restarts", "ExitCode", "StartTime", "EndTime")
    return " ".join(f"{k}={fields.get(k, '?')}" for k in keys)


def job_logs(job_dir: Path, job_id: str) -> str:
    """Every ``slurm-<jobid>*`` file TorchX's sbatch script wrote in the job dir."""
    parts = []
    for path in sorted(job_dir.glob(f"slurm-{job_id}*")):
        parts.append(f"--- {path.name}\n{path.read_text(encoding='utf-8', errors='replace')}")
    return "\n".join(parts) or f"(no slurm-{job_id}* file in {job_dir})"


def wait_for(
    what: str,
    check: Callable[[], bool],
    fields: Callable[[], dict[str, str]],
    logs: Callable[[], str],
) -> None:
    """Poll ``check`` until true; fail with the job's state and logs after ``TIMEOUT``."""
    deadline = time.monotonic() + TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {TIMEOUT:.0f} s\njob: {brief(fields())}\n{logs()}")
        time.sleep(0.5)


def raw_records(store: Path, run_id: str, category: str) -> list[dict[str, Any]]:
    """A run's record files of ``category``, in the order the store reads them (write order)."""
    directory = store / encode_run_id(run_id) / category
    names = sorted((p.name for p in directory.iterdir()), key=record_sort_key)
    return [
        json.loads((directory / name).read_text(encoding="utf-8"))
        for name in names
        if not name.startswith(".")
    ]


def attempt_of(record: dict[str, Any]) -> int:
    """The attempt a record came from: its origin's restart count (unset on the first one)."""
    return record["origin"]["restart"] or 0


def test_requeued_job_continues_one_run_with_continuous_metrics_and_status(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    launch_dir = tmp_path / "launch"
    launch_dir.mkdir()
    job_dir = tmp_path / "job"  # TorchX creates it
    store = tmp_path / "store"
    launched = torchx(
        launch_dir,
        "run",
        "-s",
        "slurm",
        "-cfg",
        f"job_dir={job_dir}",
        "--tracker",
        f"lineage_fsspec={store}",
        "lineage.python",
        "--script",
        str(JOB),
        "--",
        str(FIRST_ATTEMPT_SLEEP),
    )
    match = HANDLE.search(launched.stdout)
    assert launched.returncode == 0 and match, (
        f"torchx run exited {launched.returncode}\n{launched.stdout}\n{launched.stderr}"
    )
    handle, job_id = match.group(0), match.group(1)
    tracker = create_tracker(str(store))
    first_logs = ""

    def logs() -> str:
        before = f"first attempt, before the requeue:\n{first_logs}\n" if first_logs else ""
        return f"{before}now:\n{job_logs(job_dir, job_id)}"

    def fields() -> dict[str, str]:
        return job_fields(job_id)

    def first_attempt_stored() -> bool:
        state = fields()
        if ended(state):
            pytest.fail(f"job {job_id} ended before being requeued: {brief(state)}\n{logs()}")
        steps = [p.step for p in tracker.metrics(handle)] if tracker.has_run(handle) else []
        return steps == list(range(5)) and "attempt0" in tracker.metadata(handle)

    def second_attempt_ended() -> bool:
        state = fields()
        return ended(state) and state.get("Restarts", "0") != "0"

    try:
        wait_for("the first attempt storing steps 0..4", first_attempt_stored, fields, logs)
        assert fields().get("Restarts") == "0", brief(fields())
        first_logs = job_logs(job_dir, job_id)  # the requeue truncates these files

        requeued = slurm("scontrol", "requeue", job_id)
        assert requeued.returncode == 0, f"scontrol requeue {job_id}: {requeued.stderr}"
        wait_for("the requeued job ending", second_attempt_ended, fields, logs)
        final = fields()
    finally:
        if not ended(job_fields(job_id)):
            slurm("scancel", job_id)  # the first attempt sleeps for minutes otherwise

    assert final["JobState"] == "COMPLETED", f"{brief(final)}\n{logs()}"
    assert final["Restarts"] == "1", f"{brief(final)}\n{logs()}"
    status = torchx(launch_dir, "status", handle)
    assert "State: SUCCEEDED" in status.stdout and "Num Restarts: 1" in status.stdout, (
        f"{status.stdout}\n{status.stderr}"
    )

    # One run: the restarted attempt found the run id of the first (same Slurm job id).
    assert tracker.run_ids() == [handle], f"run ids {tracker.run_ids()}\n{logs()}"

    # Metrics: steps 0..9 once each, in order, the values of the steps that were logged.
    points = tracker.metrics(handle)
    steps = [(p.name, p.step) for p in points]
    assert steps == [("loss", s) for s in range(10)], f"stored points {steps}\n{logs()}"
    assert [p.value for p in points] == [1.0 / (s + 1) for s in range(10)]
    batches = [(attempt_of(r), r["points"]["step"]) for r in raw_records(store, handle, "metrics")]
    assert batches == [(0, [0, 1, 2, 3, 4]), (1, [5, 6, 7, 8, 9])], batches

    # Metadata: both attempts' keys in one run; each record says which attempt wrote it.
    metadata = tracker.metadata(handle)
    assert {"attempt0", "attempt1"} <= set(metadata), sorted(metadata)
    assert metadata["restart_count"] == 1
    assert metadata["attempt0"] != metadata["attempt1"]  # two processes (their pids)
    writers = {
        key: attempt_of(r)
        for r in raw_records(store, handle, "metadata")
        for key in r["metadata"]
        if key in ("attempt0", "attempt1")
    }
    assert writers == {"attempt0": 0, "attempt1": 1}

    # Status: RUNNING, KILLED (SIGTERM of the requeue), RUNNING again, SUCCEEDED at the end.
    history = [
        (r["status"], attempt_of(r), r["origin"]["pid"])
        for r in raw_records(store, handle, "status")
    ]
    assert [(s, a) for s, a, _ in history] == [
        ("RUNNING", 0),
        ("KILLED", 0),
        ("RUNNING", 1),
        ("SUCCEEDED", 1),
    ], f"{history}\n{logs()}"
    assert history[0][2] == history[1][2] == metadata["attempt0"]
    assert history[2][2] == history[3][2] == metadata["attempt1"]
    assert tracker.status(handle) == "SUCCEEDED"
