"""Every process of a job delivers: worker processes' records and points reach the store.

Each cell runs ``fork_jobs/job.py`` as a job of its own (a fresh env and interpreter: the
forkserver keeps the env it started with): 4 workers, each 20 metadata records and 20 metric
points, then ``flush()``. When the job has ended (no ``torchx tracker sync``), the local
fsspec store holds exactly 80 worker records and 80 worker points, each once, and nothing is
left in the spool. The process that started the run records RUNNING and SUCCEEDED once each;
workers record no status (with no parent run, the run has no status: see the README).
The S3 variant of the matrix is ``tests/s3/test_forked_workers_s3.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli_support import torchx
from tests.trackers.fork_jobs.support import (
    JOB,
    MATRIX,
    Cell,
    assert_every_worker_delivered,
    run_cell,
)
from trackers.backends.fsspec import create_tracker

STATUSES = {"parent": ["RUNNING", "SUCCEEDED"], "worker": []}


def run_and_count(tmp_path: Path, cell: Cell) -> None:
    """Run ``cell`` into a local store; every worker's records and points are there, once."""
    store = tmp_path / "store"
    run_cell(tmp_path, cell, {"lineage_fsspec": str(store)})
    assert_every_worker_delivered(
        create_tracker(str(store)),
        cell.run_id,
        tmp_path / "results",
        tmp_path / "spool",
        statuses=STATUSES[cell.who],
    )


@pytest.mark.parametrize("cell", MATRIX, ids=lambda c: f"{c.method}-{c.who}-{c.kind}")
def test_every_worker_record_and_point_is_stored_when_the_job_ends(
    tmp_path: Path, cell: Cell
) -> None:
    run_and_count(tmp_path, cell)


@pytest.mark.parametrize("who", ["parent", "worker"])
def test_torch_dataloader_fork_workers_deliver(tmp_path: Path, who: str) -> None:
    pytest.importorskip("torch")
    run_and_count(tmp_path, Cell("fork", who, "dataloader"))


@pytest.mark.e2e
def test_pool_workers_of_a_torchx_run_job_deliver_before_torchx_run_returns(
    tmp_path: Path,
) -> None:
    cell = Cell("fork", "parent", "pool")
    store = tmp_path / "store"
    spool = tmp_path / "spool"
    done = torchx(
        tmp_path,
        *("run", "-s", "local_cwd", "--tracker", f"lineage_fsspec={store}"),
        *("utils.python", "--script", str(JOB), "--", *cell.args(tmp_path / "results")),
        extra_env={"TORCHX_TRACKER_SPOOL_DIR": str(spool)},
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    handles = re.findall(r"^local_cwd://torchx/\S+$", done.stdout, re.MULTILINE)
    assert len(handles) == 1, done.stdout
    assert_every_worker_delivered(
        create_tracker(str(store)),
        handles[0],
        tmp_path / "results",
        spool,
        statuses=["RUNNING", "SUCCEEDED"],
    )
