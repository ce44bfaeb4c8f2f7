"""Slurm test job: fails its first attempt, succeeds once Slurm has requeued it.

Records through ``trackers.AppRun`` on every attempt (``attempt``, ``restart_count``); the first
attempt (``SLURM_RESTART_COUNT`` unset or 0) then exits with status 1.
"""

import os
import sys

from trackers import AppRun

restart = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
run = AppRun.run_from_env()
run.add_metadata(**{f"attempt_{restart}": os.getpid()}, restart_count=restart)
print(f"attempt {restart} of run {run.job_id()}")
sys.exit(1 if restart == 0 else 0)
