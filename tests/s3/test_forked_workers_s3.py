"""Worker processes deliver into S3 (moto), and a job whose S3 is down exits without waiting.

The matrix of ``tests/trackers/test_forked_workers.py`` with an ``s3`` tracker on the moto
server instead of the local store: when the job has ended, with no sync, exactly 80 worker
records and 80 worker points are in the bucket, each once, and the spool is empty.

Exit with an unreachable second tracker: ``lineage_fsspec`` plus ``s3`` at a closed port on
127.0.0.1. The job ends normally; its last log line names the undelivered count, says the store
is not reachable and got one short retry, and names ``torchx tracker sync RUN``; the local
store has everything; the spool holds exactly that many records, and ``torchx tracker sync``
with ``--tracker s3=<moto>`` delivers every worker record and point (and the status) into S3.
How long that exit takes is measured by ``benchmarks/bench_exit.py``, not asserted here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli_support import torchx
from tests.s3.conftest import Store
from tests.s3.support import aws_test_env, free_port
from tests.trackers.fork_jobs.support import (
    MATRIX,
    POINTS,
    RECORDS,
    WORKERS,
    Cell,
    assert_every_worker_delivered,
    flush_results,
    run_cell,
)
from trackers.backends.fsspec import create_tracker as create_fsspec
from trackers.backends.s3 import create_tracker as create_s3
from trackers.spool import Segment, segment_paths

pytestmark = pytest.mark.s3

STATUSES = {"parent": ["RUNNING", "SUCCEEDED"], "worker": []}
UNDELIVERED = re.compile(r"tracking: run (\S+): (\d+) record\(s\) not delivered to S3Tracker\(")


@pytest.mark.parametrize("cell", MATRIX, ids=lambda c: f"{c.method}-{c.who}-{c.kind}")
def test_every_worker_record_and_point_is_in_s3_when_the_job_ends(
    tmp_path: Path, cell: Cell, store: Store
) -> None:
    run_cell(tmp_path, cell, {"s3": store.config()}, aws_test_env({}))
    assert_every_worker_delivered(
        create_s3(store.config()),
        cell.run_id,
        tmp_path / "results",
        tmp_path / "spool",
        statuses=STATUSES[cell.who],
    )


def test_exit_with_s3_down_keeps_records_in_the_spool_for_sync(
    tmp_path: Path, store: Store
) -> None:
    cell = Cell("fork", "parent", "process")
    local = tmp_path / "store"
    down = store.config(f"http://127.0.0.1:{free_port()}")
    done = run_cell(
        tmp_path,
        cell,
        {"lineage_fsspec": str(local), "s3": down},
        {**aws_test_env({}), "TORCHX_TRACKER_SHUTDOWN_TIMEOUT": "30"},
        ["--flush-timeout", "1"],
    )
    # The workers' flush waits for both stores, so it reports the one that is down.
    assert flush_results(tmp_path / "results") == {f"flush-{i}": "timeout" for i in range(WORKERS)}
    lines = [m for m in UNDELIVERED.finditer(done.stderr) if m.group(1) == cell.run_id]
    assert lines, done.stderr[-4000:]
    last = done.stderr[lines[-1].start() :].splitlines()[0]  # the owner's, after its workers'
    assert "it is not reachable" in last and "one short retry" in last, last
    assert last.endswith(f"Deliver them with: torchx tracker sync {cell.run_id}"), last
    spooled = [Segment.adopt(p) for p in segment_paths(tmp_path / "spool")]
    left = sum(s.remaining for s in spooled if s is not None)
    for segment in spooled:
        if segment is not None:
            segment.release()
    assert int(lines[-1].group(2)) == left
    # 4 x (20 metadata + 1 metric batch); the parent's RUNNING, snapshot, metadata, SUCCEEDED
    assert left == WORKERS * (RECORDS + 1) + 4
    local_store = create_fsspec(str(local))
    assert len([k for k in local_store.metadata(cell.run_id) if ".r" in k]) == WORKERS * RECORDS

    synced = torchx(
        tmp_path,
        *("tracker", "sync", cell.run_id, "--spool-dir", str(tmp_path / "spool")),
        *("--tracker", f"s3={store.config()}", "--format", "json"),
        extra_env=aws_test_env({}),
        timeout=120,
    )
    assert synced.returncode == 0, synced.stderr[-4000:]
    assert sum(row["delivered"] for row in json.loads(synced.stdout)) == left
    bucket = create_s3(store.config())
    keys = [k for k in bucket.metadata(cell.run_id) if k.startswith("w") and ".r" in k]
    assert len(keys) == WORKERS * RECORDS
    points = [p for p in bucket.metrics(cell.run_id) if p.name.startswith("w")]
    assert len(points) == WORKERS * POINTS
    assert bucket.status(cell.run_id) == "SUCCEEDED"
    assert segment_paths(tmp_path / "spool") == []
