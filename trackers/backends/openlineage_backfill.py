"""Backfill: the OpenLineage events of runs already in a store (``torchx tracker export``).

A store that keeps each write (:meth:`~trackers.api.LineageTracker.write_history`: the record
stores, one record per write; MLflow, a journal tag per write) gives them back under their
operation ids, and :func:`~trackers.backends.openlineage.event_of` makes the very event the live
``openlineage`` tracker sent: same run UUID, same ``eventTime``, same facets. Links that only
TorchX's own ``AppRun`` wrote (its ``sources/`` files) have no record and no time, and are not
rebuilt.

Any other store (a run MLflow recorded before the journal existed, a third party's tracker) is
read through the public reads, which keep no history: the launch record (with the run's parent
and root), each link and artifact, the environment, the error of a failed run and the last
status become one write each, with operation ids derived from the run id and the write, so
exporting twice sends the same events. They are the live events but for ``eventTime``: the
launch record's is its ``launch.time`` (the second of the live one), the terminal status's is
the time the store gives it, and the others follow the launch record a microsecond apart; a
write made twice with the same arguments is one event, as the store keeps it once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from torchx.tracker.api import TrackerBase

from trackers.api import LineageTracker
from trackers.backends.openlineage import Write
from trackers.jsonsafe import json_safe

__all__ = ["store_writes"]


def store_writes(store: TrackerBase, run_id: str) -> list[Write]:
    """Every write of ``run_id`` that ``store`` can tell, in the order they were made."""
    history = store.write_history(run_id) if isinstance(store, LineageTracker) else None
    return history if history is not None else _interface_writes(store, run_id)


def _interface_writes(store: TrackerBase, run_id: str) -> list[Write]:
    metadata = dict(store.metadata(run_id))
    start_ns = _launch_time_ns(metadata.get("launch.time"))
    made: list[tuple[str, dict[str, Any], int | None]] = []  # kind, args, time (ns) if known
    launch = {k: v for k, v in metadata.items() if k.startswith("launch.")}
    if launch:
        made.append(("add_metadata", {"values": launch}, start_ns))
    for link in store.sources(run_id):
        args = {"source_id": link.source_run_id, "artifact_name": link.artifact_name}
        made.append(("add_source", args, None))
    history = store.status_history(run_id) if isinstance(store, LineageTracker) else []
    status = history[-1][1] if history else None
    if status is not None:
        made.append(("set_status", {"status": "RUNNING"}, None))
    environment = {k: v for k, v in metadata.items() if k.startswith("env.")}
    if environment:
        made.append(("add_metadata", {"values": environment}, None))
    for artifact in store.artifacts(run_id).values():
        args = {"name": artifact.name, "path": artifact.path, "metadata": artifact.metadata}
        made.append(("add_artifact", args, None))
    error = {k: v for k, v in metadata.items() if k.startswith("error.")}
    if error:
        made.append(("add_metadata", {"values": error}, None))
    if status not in (None, "RUNNING"):
        ended = history[-1][0]
        # to the microsecond, the events' precision (float seconds hold no exact nanoseconds)
        end_ns = round(ended * 1e6) * 1000 if ended is not None else None
        made.append(("set_status", {"status": status}, end_ns))
    writes = []
    for i, (kind, args, when) in enumerate(made):
        digest = hashlib.sha256(
            # the fallback forms of trackers.jsonsafe (a repr for what JSON cannot hold)
            json.dumps(json_safe([run_id, kind, args])[0], sort_keys=True).encode("utf-8")
        ).hexdigest()[:32]
        at = when if when is not None else start_ns + i * 1000
        writes.append(Write(kind, args, f"{at:020d}-{digest}"))
    return writes


def _launch_time_ns(value: object) -> int:
    if not isinstance(value, str):
        return 0
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return 0
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (when - epoch) // dt.timedelta(microseconds=1) * 1000
