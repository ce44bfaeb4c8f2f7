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

import os
import subprocess
import sys
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
