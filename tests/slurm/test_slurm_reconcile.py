"""A Slurm job killed with SIGKILL cannot record its end; reconcile takes it from Slurm."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest

from tests.cli_support import torchx
from tests.slurm.conftest import SlurmCluster
from trackers.backends.fsspec import create_tracker

pytestmark = pytest.mark.slurm

BIN = Path(sys.executable).parent
HANDLE = re.compile(r"^slurm://torchx/\d+$", re.MULTILINE)
SIGKILL_SELF = (
    "import os, signal; from trackers import AppRun; AppRun.run_from_env();"
    "os.kill(os.getpid(), signal.SIGKILL)"
)


def test_sigkilled_job_is_reconciled_from_slurm(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    launch_dir = tmp_path / "launch"
    launch_dir.mkdir()
    store = tmp_path / "store"
    tracker = f"lineage_fsspec={store}"
    done = torchx(
        launch_dir,
        "run",
        "-s",
        "slurm",
        "-cfg",
        f"job_dir={tmp_path / 'job'}",
        "--tracker",
        tracker,
        "utils.python",
        "-c",
        SIGKILL_SELF,
    )
    found = HANDLE.findall(done.stdout)
    assert found, done.stdout + done.stderr
    handle = found[0]
    # Without --wait, `torchx run` returns at once and cannot reconcile the run itself.
    deadline = time.monotonic() + 180
    while "State: FAILED" not in torchx(launch_dir, "status", handle).stdout:
        assert time.monotonic() < deadline, torchx(launch_dir, "status", handle).stdout
        time.sleep(1)
    assert create_tracker(str(store)).status(handle) == "RUNNING"  # the job could not say more

    listed = torchx(
        launch_dir, "tracker", "list", "jobs", "--status", "--tracker", tracker, "--format", "json"
    )
    assert json.loads(listed.stdout) == [
        {"run_id": handle, "status": "RUNNING", "scheduler": "FAILED"}
    ], listed.stderr
    reconciled = torchx(
        launch_dir, "tracker", "reconcile", "--tracker", tracker, "--format", "json"
    )
    assert json.loads(reconciled.stdout)[0]["written"] == "FAILED", reconciled.stderr
    assert create_tracker(str(store)).status(handle) == "FAILED"
