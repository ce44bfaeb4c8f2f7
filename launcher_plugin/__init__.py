"""Launcher side of torchx-lineage: ``torchx run --tracker``, scheduler hooks, ``torchx tracker``.

TorchX finds the CLI through the ``torchx.cli.cmds`` entry points in ``pyproject.toml``, which
import this package; importing it routes every scheduler TorchX ships through the tracking hooks
(:func:`launcher_plugin.schedulers.install`), keeping TorchX's names, order and default.
"""

from launcher_plugin import schedulers as _schedulers
from launcher_plugin.inject import TrackingPlan, apply_plan, plan_tracking
from launcher_plugin.tracker_config import TrackerSpec, resolve_trackers

_schedulers.install()

__all__ = ["TrackerSpec", "TrackingPlan", "apply_plan", "plan_tracking", "resolve_trackers"]
