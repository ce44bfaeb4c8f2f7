"""A real ``torchx run -s local_cwd`` job's recorded end: FAILED, KILLED, or reconciled.

The job records FAILED (uncaught exception) and KILLED (SIGTERM) itself. SIGKILL it cannot see;
``torchx run`` waits for local jobs and then writes the scheduler's final state into the run,
before the scheduler (which lives only in that process) forgets the job.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli_support import torchx
from trackers.backends.fsspec import create_tracker

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
HANDLE = re.compile(r"^local_cwd://torchx/\S+$", re.MULTILINE)
START = "import os, signal, time; from trackers import AppRun; AppRun.run_from_env(); "
RECONCILED = "reconciled.from_scheduler"


@dataclass(frozen=True)
class Job:
    """A finished ``torchx run``: its process result, the app handle and the store it tracked to."""

    done: subprocess.CompletedProcess[str]
    handle: str
    store: Path

    def status(self) -> str | None:
        return create_tracker(str(self.store)).status(self.handle)

    def metadata(self) -> dict[str, object]:
        return dict(create_tracker(str(self.store)).metadata(self.handle))


def run_job(tmp_path: Path, code: str) -> Job:
    """``torchx run -s local_cwd --tracker lineage_fsspec=<store> utils.python -c CODE``."""
    store = tmp_path / "store"
    done = torchx(
        tmp_path,
        *("run", "-s", "local_cwd", "--tracker", f"lineage_fsspec={store}"),
        *("utils.python", "-c", START + code),
        timeout=120,
    )
    found = HANDLE.findall(done.stdout)
    assert len(found) == 1, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    job = Job(done, found[0], store)
    # the job failed and torchx run says so as before; stdout is still just the handle
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [job.handle]
    assert create_tracker(str(store)).run_ids() == [job.handle]
    return job


def test_uncaught_exception_is_recorded_failed_by_the_job(tmp_path: Path) -> None:
    job = run_job(tmp_path, "raise RuntimeError('boom token=hunter2')")
    assert job.status() == "FAILED"
    metadata = job.metadata()
    assert RECONCILED not in metadata
    # what failed is recorded with the status, credentials masked
    assert metadata["error.type"] == "RuntimeError"
    assert metadata["error.message"] == "boom token=***"
    trace = str(metadata["error.stack_trace"])
    assert trace.startswith("Traceback") and trace.endswith("RuntimeError: boom token=***")
    assert "hunter2" not in trace


def test_sys_exit_with_a_code_is_recorded_failed_with_the_code(tmp_path: Path) -> None:
    job = run_job(tmp_path, "import sys; sys.exit(3)")
    assert job.status() == "FAILED"
    assert job.metadata()["error.message"] == "sys.exit(3)"


def test_sigterm_is_recorded_killed_and_not_overwritten_by_reconcile(tmp_path: Path) -> None:
    job = run_job(tmp_path, "os.kill(os.getpid(), signal.SIGTERM); time.sleep(60)")
    assert job.status() == "KILLED"  # the scheduler says FAILED; the job's own record stays
    assert RECONCILED not in job.metadata()
    assert job.metadata()["error.message"] == "SIGTERM"


def test_sigkill_is_reconciled_from_the_scheduler_by_torchx_run(tmp_path: Path) -> None:
    job = run_job(tmp_path, "os.kill(os.getpid(), signal.SIGKILL); time.sleep(60)")
    assert job.status() == "FAILED"
    assert job.metadata()[RECONCILED] == "FAILED"
    assert "recorded FAILED" in job.done.stderr  # torchx run says what it wrote
