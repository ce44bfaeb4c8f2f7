"""The launch record: what was submitted, written into every tracker at submit time.

A run is tracked even if the job never calls ``AppRun``. Keys are flat and prefixed ``launch.``
(flat keys map to MLflow params one to one):

``launch.run_id``, ``launch.scheduler``, ``launch.app_name``, ``launch.component``,
``launch.component_args``, ``launch.roles`` (name, image, entrypoint, args, replicas of each
role), ``launch.secrets`` (names and references of ``--tracker-secret`` vars, never values),
``launch.image``, ``launch.scheduler_cfg``, ``launch.user``, ``launch.host``, ``launch.time``
(UTC, ISO 8601, the second of the record's operation id), ``launch.cwd``, ``launch.git_commit``
and ``launch.git_dirty`` (when the working directory is a git repository),
``launch.parent_run_id`` and ``launch.root_run_id`` (the top of the parent chain, see
:func:`pipeline_root`).

Env values are not recorded (they may hold credentials); config values are redacted.
The record and the parent link go through each tracker's delivery and spool
(:mod:`launcher_plugin.launcher_writes`): a tracker that is down at launch gets them from
``torchx tracker sync`` later. A failure is logged: the job is already submitted by then.
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
from torchx.tracker.api import TrackerBase

from launcher_plugin.launcher_writes import LauncherWrites, Target
from launcher_plugin.plan import TrackingPlan
from trackers.backends.catalog import COMPONENT_KEY, LAUNCH_TIME_KEY
from trackers.env import tracker_config_env_var_name
from trackers.ids import is_torchx_run_id, record_name
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


#: How many parent links :func:`pipeline_root` follows at most (a guard against a cycle that
#: hand-edited records could make; real pipelines are far shorter).
MAX_PARENT_HOPS = 1000


def op_time_iso(op_id: str) -> str:
    """The UTC time of an operation id (``<time_ns>-...``) in ISO 8601, to the second: the
    launch record's ``launch.time`` is the second of its own operation, so a store that keeps
    only the record's values (MLflow) still dates its event to that second."""
    head = op_id.split("-", 1)[0]
    seconds = int(head) // 1_000_000_000 if head.isdigit() else 0
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (epoch + dt.timedelta(seconds=seconds)).isoformat(timespec="seconds")


def _metadata(readers: Sequence[TrackerBase], run_id: str) -> dict[str, object] | None:
    """``run_id``'s metadata from the first reader that has any; ``None`` if none does. A
    reader that cannot answer (write-only, unreachable) is skipped: the launch goes on."""
    for reader in readers:
        try:
            found = dict(reader.metadata(run_id))
        except Exception as e:
            logger.debug("no metadata of %s from %r: %s", run_id, reader, e)
            continue
        if found:
            return found
    return None


def _unnamed_run_source(readers: Sequence[TrackerBase], run_id: str) -> str | None:
    """The first source of ``run_id`` linked without an artifact name that is a TorchX run:
    the parent link a job records from ``TORCHX_PARENT_RUN_ID`` when no launch record names it."""
    for reader in readers:
        try:
            sources = reader.sources(run_id)
        except Exception as e:
            logger.debug("no sources of %s from %r: %s", run_id, reader, e)
            continue
        for source in sources:
            if source.artifact_name is None and is_torchx_run_id(source.source_run_id):
                return str(source.source_run_id)
    return None


def pipeline_root(readers: Sequence[TrackerBase], parent: str) -> str:
    """The root of ``parent``'s pipeline: the run at the top of its parent chain.

    OpenLineage's ``ParentRunFacet.root`` names the top-level run of a hierarchy; a child's is
    its parent's root. Each launch record keeps its run's root (``launch.root_run_id``), so
    this is one read of the parent's metadata. A parent without one (its launch record predates
    the field, or was never written) is followed up through its own ``launch.parent_run_id``,
    else its unnamed link to a TorchX run. A parent the stores do not know, or one with no
    parent, is the root itself.
    """
    current, seen = parent, {parent}
    for _ in range(MAX_PARENT_HOPS):
        metadata = _metadata(readers, current) or {}
        root = metadata.get("launch.root_run_id")
        if isinstance(root, str) and root:
            return root
        up = metadata.get("launch.parent_run_id")
        if not (isinstance(up, str) and up):
            up = _unnamed_run_source(readers, current)
        if up is None or up in seen:
            return current
        seen.add(up)
        current = up
    return current


def launch_metadata(
    run_id: str,
    dryrun_info: AppDryRunInfo[Any],
    parent: str | None,
    *,
    root: str | None = None,
    op_id: str | None = None,
) -> dict[str, object]:
    """The launch record for ``run_id`` submitted from ``dryrun_info``; ``launch.time`` is the
    second of ``op_id`` (the record's operation), or now."""
    app = dryrun_app(dryrun_info)
    record: dict[str, object] = {
        "launch.run_id": run_id,
        "launch.scheduler": dryrun_info._scheduler or run_id.split("://", 1)[0],
        LAUNCH_TIME_KEY: op_time_iso(op_id or record_name()),
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
        record[COMPONENT_KEY] = context.component
        record["launch.component_args"] = list(context.component_args)
    if parent:
        record["launch.parent_run_id"] = parent
        record["launch.root_run_id"] = root or parent
    record.update({f"launch.{k}": v for k, v in git_state().items()})
    return record


def write_launch_record(plan: TrackingPlan, run_id: str, dryrun_info: AppDryRunInfo[Any]) -> None:
    """Write the launch record and the parent link into every tracker of ``plan``, through
    each tracker's delivery and spool; returns once delivered or spooled (bounded by the
    shutdown limit, and a short retry for a tracker that is down)."""
    parent = plan.parent_run_id
    root = pipeline_root(list(plan.trackers.values()), parent) if parent else None
    # One operation id per write, shared by every tracker (as AppRun's writes are): each store
    # names its record by it, and an event-sending tracker (openlineage) takes its time from it,
    # so `torchx tracker export` rebuilds the same event from a store later.
    record_op = record_name()
    record = launch_metadata(run_id, dryrun_info, parent, root=root, op_id=record_op)
    if plan.secrets:
        record["launch.secrets"] = [s.describe() for s in plan.secrets]
    targets = [
        Target(name, tracker, plan.env.get(tracker_config_env_var_name(name)))
        for name, tracker in plan.trackers.items()
    ]
    writes = LauncherWrites(run_id, targets, what="launch record")
    try:
        writes.submit("add_metadata", op_id=record_op, values=record)
        if parent:
            writes.submit("add_source", source_id=parent, artifact_name=None)
    except Exception as e:  # the job is submitted already: say so, don't fail the launch
        logger.error(
            "launch record for %s not written: %s", run_id, redact(f"{type(e).__name__}: {e}")
        )
    finally:
        writes.close()
