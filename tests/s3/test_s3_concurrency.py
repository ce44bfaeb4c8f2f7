"""Many writers at once: 16 processes x 200 records into one run, nothing lost, nothing doubled."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import Counter

import pytest

from tests.s3.conftest import Store
from tests.s3.support import Requests, aws_test_env
from trackers.backends.s3 import create_tracker
from trackers.backends.snapshots import parse_snapshot
from trackers.testing import RUN

pytestmark = pytest.mark.s3

PROCESSES = 16
RECORDS = 200

WRITER = textwrap.dedent(
    """
    import sys
    from trackers.registry import create_tracker

    worker, count, run_id, config = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    tracker = create_tracker("s3", config, origin="argv")
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    for i in range(count):
        tracker.add_metadata(run_id, **{f"p{worker}_{i}": i})
    print("done", flush=True)
    """
)


def test_16_processes_x_200_records_are_exactly_3200(store: Store) -> None:
    env = aws_test_env()
    env = {k: v for k, v in env.items() if not k.startswith("TORCHX_")}
    config = store.config()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(w), str(RECORDS), RUN, config],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for w in range(PROCESSES)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            out, err = p.communicate(timeout=240)
            assert p.returncode == 0, err[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    records = [k for k in store.keys() if "/metadata/" in k and "/.packs/" not in k]
    assert len(records) == PROCESSES * RECORDS
    tracker = create_tracker(config)
    requests = Requests(tracker)
    metadata = tracker.metadata(RUN)
    assert metadata == {f"p{w}_{i}": i for w in range(PROCESSES) for i in range(RECORDS)}
    # 1000 names a page, then one listing of the packs each writer left (64 records each)
    assert requests.count("ListObjectsV2") == 5
    # The read snapshotted the 3200 records in one object: each process wrote 200, none twice.
    cache_key = next(k for k in store.keys() if k.endswith("/.snapshot/metadata"))
    cached = parse_snapshot(store.read(cache_key), None, cache_key).records
    assert len(cached) == PROCESSES * RECORDS
    by_pid = Counter(record["origin"]["pid"] for record in cached.values())
    assert sorted(by_pid.values()) == [RECORDS] * PROCESSES
