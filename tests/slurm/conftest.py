"""The local Slurm cluster for the tests marked ``slurm``: ``scripts/slurm.sh``, once a session.

``slurm_cluster`` starts the daemons (installing Debian's slurm-wlm and munge first if needed)
unless a cluster already answers, and stops them at the end of the session only if it started
them. Where they cannot be started (not root, no apt-get, a foreign slurm.conf...) the tests are
skipped with the reason, except on CI (``CI=true``), where that is a failure: CI must run them.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[2]
SLURM_SH = REPO / "scripts" / "slurm.sh"

#: First start may install slurm-wlm and munge with apt-get.
START_TIMEOUT = 600


@dataclass(frozen=True)
class SlurmCluster:
    """The running cluster: whether this session started it, and how long ``start`` took."""

    started_here: bool
    start_seconds: float
    start_output: str


def _slurm_sh(command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    # The daemons get a clean env from slurm.sh itself; no TORCHX_* of the test run leaks in.
    return subprocess.run(
        ["bash", str(SLURM_SH), command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: the Slurm tests must run, but {reason}", pytrace=False)
    pytest.skip(f"no local Slurm cluster: {reason}")


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A running single-host Slurm cluster (``bash scripts/slurm.sh start``)."""
    if os.geteuid() != 0:
        _unavailable("scripts/slurm.sh must run as root (it installs packages and runs slurmd)")
    status = _slurm_sh("status")
    if status.returncode == 0:
        yield SlurmCluster(started_here=False, start_seconds=0.0, start_output=status.stdout)
        return
    t0 = time.monotonic()
    try:
        start = _slurm_sh("start", timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        _slurm_sh("stop")
        _unavailable(f"`bash scripts/slurm.sh start` did not finish in {START_TIMEOUT} s")
    seconds = time.monotonic() - t0
    if start.returncode != 0:
        _unavailable(
            f"`bash scripts/slurm.sh start` exited with status {start.returncode}:\n"
            f"{start.stdout}{start.stderr}"
        )
    try:
        yield SlurmCluster(started_here=True, start_seconds=seconds, start_output=start.stdout)
    finally:
        stop = _slurm_sh("stop")
        assert stop.returncode == 0, f"slurm.sh stop failed:\n{stop.stdout}{stop.stderr}"
