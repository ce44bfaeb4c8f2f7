"""Launcher side of torchx-lineage: ``torchx run --tracker``, scheduler hooks, ``torchx tracker``.

Importing it registers nothing by itself; TorchX finds the pieces through the entry points in
``pyproject.toml`` (``torchx.cli.cmds``, ``torchx.schedulers``).
"""

from launcher_plugin.inject import TrackingPlan, apply_plan, plan_tracking
from launcher_plugin.tracker_config import TrackerSpec, resolve_trackers

__all__ = ["TrackerSpec", "TrackingPlan", "apply_plan", "plan_tracking", "resolve_trackers"]
