"""Slurm test job: what the tracking env looks like inside a real Slurm job.

Writes every ``TORCHX_*`` variable it received to the JSON file ``argv[1]``, then records
metadata through TorchX's ``AppRun`` and through ours (strict, so a tracking failure fails the
job), and writes each run's id and backend count to ``argv[2]``.
"""

import json
import os
import sys

env_path, runs_path = sys.argv[1], sys.argv[2]
received = {k: v for k, v in os.environ.items() if k.startswith("TORCHX_")}
with open(env_path, "w", encoding="utf-8") as f:
    json.dump(received, f, ensure_ascii=False)

os.environ["TORCHX_TRACKER_STRICT"] = "1"
from torchx.tracker.api import AppRun as TorchxAppRun  # noqa: E402

from trackers import AppRun  # noqa: E402

theirs = TorchxAppRun.run_from_env()
theirs.add_metadata(recorded_by_torchx_apprun=received.get("TORCHX_PARENT_RUN_ID", ""))
ours = AppRun.run_from_env()
ours.add_metadata(recorded_by_lineage_apprun=received.get("TORCHX_PARENT_RUN_ID", ""))
with open(runs_path, "w", encoding="utf-8") as f:
    json.dump(
        {
            "torchx": [theirs.job_id(), len(list(theirs.backends))],
            "ours": [ours.job_id(), len(ours.backends)],
        },
        f,
    )
