"""The launch record: what was submitted, written into every tracker at submit time.

A run is tracked even if the job never calls ``AppRun``. Keys are flat and prefixed ``launch.``
(flat keys map to MLflow params one to one):

``launch.run_id``, ``launch.scheduler``, ``launch.app_name``, ``launch.component``,
``launch.component_args``, ``launch.roles`` (name, image, entrypoint, args, replicas of each
role), ``launch.secrets`` (names and references of ``--tracker-secret`` vars, never values),
``launch.image``, ``launch.scheduler_cfg``, ``launch.user``, ``launch.host``, ``launch.time``
(UTC, ISO 8601), ``launch.cwd``, ``launch.git_commit`` and ``launch.git_dirty`` (when the working
directory is a git repository), ``launch.parent_run_id``.

Env values are not recorded (they may hold credentials); config values are redacted.
A failure to write the record is logged: the job is already submitted by then.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import getpass
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from torchx.specs import AppDryRunInfo

from launcher_plugin.plan import TrackingPlan
from trackers.ids import deterministic_record_names, record_name
from trackers.redact import redact
from trackers.snapshot import git_state
from trackers.torchx_compat import dryrun_app, dryrun_cfg

logger: logging.Logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LaunchContext:
    """What only the CLI knows about a launch (the component and its arguments)."""

    component: str
    component_args: Sequence[str]


_context: contextvars.ContextVar[LaunchContext | None] = contextvars.ContextVar(
    "torchx_lineage_launch_context", default=None
)


@contextmanager
def launch_context(component: str, component_args: Sequence[str]) -> Iterator[None]:
    """Make ``component`` and its args part of the launch records written inside the block."""
    token = _context.set(LaunchContext(component, list(component_args)))
    try:
        yield
    finally:
        _context.reset(token)


def launch_metadata(
    run_id: str, dryrun_info: AppDryRunInfo[Any], parent: str | None
) -> dict[str, object]:
    """The launch record for ``run_id`` submitted from ``dryrun_info``."""
    app = dryrun_app(dryrun_info)
    record: dict[str, object] = {
        "launch.run_id": run_id,
        "launch.scheduler": dryrun_info._scheduler or run_id.split("://", 1)[0],
        "launch.time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "launch.user": getpass.getuser(),
        "launch.host": socket.gethostname(),
        "launch.cwd": os.getcwd(),
        "launch.scheduler_cfg": {
            k: redact(v) if isinstance(v, str) else v for k, v in dryrun_cfg(dryrun_info).items()
        },
    }
    if app is not None:
        record["launch.app_name"] = app.name
        record["launch.image"] = app.roles[0].image if app.roles else None
        record["launch.roles"] = [
            {
                "name": r.name,
                "image": r.image,
                "entrypoint": r.entrypoint,
                "args": list(r.args),
                "num_replicas": r.num_replicas,
                "max_retries": r.max_retries,
            }
            for r in app.roles
        ]
    context = _context.get()
    if context is not None:
        record["launch.component"] = context.component
        record["launch.component_args"] = list(context.component_args)
    if parent:
        record["launch.parent_run_id"] = parent
    record.update({f"launch.{k}": v for k, v in git_state().items()})
    return record


def write_launch_record(plan: TrackingPlan, run_id: str, dryrun_info: AppDryRunInfo[Any]) -> None:
    """Write the launch record and the parent link into every tracker of ``plan``."""
    record = launch_metadata(run_id, dryrun_info, plan.parent_run_id)
    if plan.secrets:
        record["launch.secrets"] = [s.describe() for s in plan.secrets]
    # One operation id per write, shared by every tracker (as AppRun's writes are): each store
    # names its record by it, and an event-sending tracker (openlineage) takes its time from it,
    # so `torchx tracker export` rebuilds the same event from a store later.
    record_op, link_op = record_name(), record_name()
    for name, tracker in plan.trackers.items():
        try:
            with deterministic_record_names(record_op):
                tracker.add_metadata(run_id, **record)
            if plan.parent_run_id:
                with deterministic_record_names(link_op):
                    tracker.add_source(run_id, plan.parent_run_id)
        except Exception as e:  # the job is submitted already: say so, don't fail the launch
            logger.error(
                "launch record for %s not written to tracker %r (%r): %s: %s",
                run_id,
                name,
                tracker,
                type(e).__name__,
                e,
            )
