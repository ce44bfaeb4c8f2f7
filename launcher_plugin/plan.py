"""``TrackingPlan``: what one launch tracks, made by :mod:`launcher_plugin.inject` at dryrun
and read by :mod:`launcher_plugin.launch_record` at submit (a module of its own so that neither
of those two imports the other)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torchx.specs import macros
from torchx.tracker.api import TrackerBase

from launcher_plugin.secrets import SecretSpec


@dataclass
class TrackingPlan:
    """What a launch tracks: the job id template, the trackers and the env for every role."""

    job_id: str
    parent_run_id: str | None
    trackers: dict[str, TrackerBase] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    secrets: list[SecretSpec] = field(default_factory=list)

    def run_id(self, app_id: str) -> str:
        """The run id of the submitted job (``job_id`` with the app id filled in)."""
        return self.job_id.replace(macros.app_id, app_id)
