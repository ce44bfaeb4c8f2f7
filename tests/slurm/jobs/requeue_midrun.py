"""Slurm test job: a run that Slurm requeues in the middle, continued by the next attempt.

The first attempt (``SLURM_RESTART_COUNT`` unset or 0) logs ``loss`` at steps 0..4, flushes,
records ``attempt0`` metadata, then sleeps ``argv[1]`` seconds (default 300) until the test
requeues the job (``scontrol requeue``: SIGTERM, which the lifecycle hook records as KILLED).
A later attempt logs steps 5..9, records ``attempt1`` metadata and exits 0 (SUCCEEDED at exit).
Every attempt prints what it did to stdout (``slurm-<jobid>-python-0.out``).
"""

import os
import sys
import time

from trackers import AppRun

restart = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
run = AppRun.run_from_env()
print(
    f"attempt {restart} (SLURM_RESTART_COUNT={os.environ.get('SLURM_RESTART_COUNT')!r},"
    f" pid {os.getpid()}) of run {run.job_id()}",
    flush=True,
)
if restart == 0:
    for step in range(5):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
    assert run.flush(60), "steps 0..4 not stored within 60 s"
    run.add_metadata(attempt0=os.getpid())
    print("attempt 0: steps 0..4 stored; waiting to be requeued", flush=True)
    time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 300)
    print("attempt 0: was never requeued", flush=True)
    sys.exit(3)
for step in range(5, 10):
    run.log({"loss": 1.0 / (step + 1)}, step=step)
assert run.flush(60), "steps 5..9 not stored within 60 s"
run.add_metadata(attempt1=os.getpid(), restart_count=restart)
print(f"attempt {restart}: steps 5..9 stored; exiting 0", flush=True)
