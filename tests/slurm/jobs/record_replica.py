"""Slurm test job for ``num_replicas=2``: every replica records ``COUNT`` metadata records.

Each record holds ``replica_<SLURM_PROCID>_<i>``; both replicas also write ``last_writer``. All
replicas share one run id (``TORCHX_JOB_ID``).
"""

import os
import sys

from trackers import AppRun

count = int(sys.argv[1])
rank = os.environ["SLURM_PROCID"]
run = AppRun.run_from_env()
for i in range(count):
    run.add_metadata(**{f"replica_{rank}_{i}": i}, last_writer=rank)
print(f"replica {rank} wrote {count} records into {run.job_id()}")
