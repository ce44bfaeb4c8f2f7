"""Every quick benchmark runs to its verdict on this TorchX.

Benchmarks are not timed here (speed is measured by running them, see ``benchmarks/README.md``),
and a missed target is not a failure of this test: on a loaded CI box the ratios are noise. What
is checked is that each script still runs against the code as it is now and prints its table:
``bench_reads_s3.py`` once crashed in its setup for a whole day after a backend change, and
nothing said so until the next benchmark run. A crash is a Python traceback on stderr; a
missed target is a verdict line and exit status 1, without one.

``bench_ui.py`` (~100 s) and ``bench_reads_s3.py`` (~2 min even with ``--quick``) are left out
for time; the part of the latter that imitates our code is checked by
``tests/s3/test_bench_recorder.py``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

#: script, arguments for its smallest run, a line its output ends with when it ran through.
QUICK_RUNS = [
    ("bench_reads.py", ["--quick", "--repeats", "1"], "add_source per call through AppRun"),
    ("bench_fsspec.py", ["--quick"], "lineage of 50 runs"),
    ("bench_metrics.py", ["--quick"], "same points via run.log + flush"),
    ("bench_s3.py", ["--quick"], "run_ids() torchx/ours"),
    ("bench_mlflow.py", ["--quick"], "targets ("),
    ("bench_metrics_mlflow.py", ["--points", "100", "--repeats", "1"], "ours: AppRun.log"),
    ("bench_exit.py", ["--repeats", "1"], "target: a down store's exit"),
    ("bench_hang.py", ["--quick"], "s3: loop"),
]


@pytest.mark.parametrize(
    ("script", "args", "last_words"), QUICK_RUNS, ids=[run[0] for run in QUICK_RUNS]
)
def test_the_benchmark_runs_to_its_verdict(script: str, args: list[str], last_words: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        cwd=BENCHMARKS.parent,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert "Traceback (most recent call last)" not in done.stderr, done.stderr[-4000:]
    assert done.returncode in (0, 1), (done.returncode, done.stderr[-4000:])
    assert last_words in done.stdout, done.stdout[-4000:]


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux ``/proc/<pid>/task/<tid>/children``)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs: a zombie (exited, not yet reaped) is gone for our purpose."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_benchmark_stopped_with_sigterm_stops_the_server_it_started() -> None:
    """``kill`` of a running benchmark used to leave its blackhole server (its own process
    group) running: SIGTERM ended Python before the ``finally`` that stops it."""
    bench = subprocess.Popen(
        [sys.executable, str(BENCHMARKS / "bench_hang.py"), "--quick"],
        cwd=BENCHMARKS.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    servers: list[int] = []
    try:
        assert bench.stdout is not None
        for line in bench.stdout:
            if line.startswith("blackhole on 127.0.0.1:"):
                break
        else:
            raise AssertionError(f"no blackhole line; stderr: {bench.communicate()[1][-4000:]}")
        servers = _children(bench.pid)
        assert servers, "the benchmark's blackhole server process was not found"
        bench.send_signal(signal.SIGTERM)
        # wait(), not communicate(): a server left running holds the stderr pipe open
        status = bench.wait(timeout=60)
        deadline = time.monotonic() + 10
        while any(map(_alive, servers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in servers if _alive(p)], "the blackhole outlived its benchmark"
        assert status == 128 + signal.SIGTERM  # it exited through its cleanup, not killed
    finally:
        for pid in [bench.pid, *servers]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        bench.wait(timeout=10)
        for pipe in (bench.stdout, bench.stderr):
            if pipe is not None:
                pipe.close()
