"""``torchx tracker sync``: deliver what jobs left in the spool, from any machine that reads it.

Each segment's header names its tracker and config, so sync rebuilds the tracker and delivers
the rest in order (idempotently: operations name their records). A segment still locked by its
writer is left to it; an unreachable store stops a segment; a rejected write is skipped and
counted; an entry that is not a segment is reported and left. Details: ``docs/delivery.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from torchx.tracker.api import TrackerBase

from trackers.errors import TrackerError, is_transient
from trackers.ids import decode_run_id
from trackers.redact import redact
from trackers.registry import create_tracker
from trackers.spool import Segment, segment_paths, segment_problem

logger: logging.Logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncResult:
    """What sync did with one segment."""

    run_id: str
    tracker: str
    delivered: int
    skipped: int
    left: int
    note: str = ""


def sync_spool(
    root: Path,
    run_id: str | None = None,
    *,
    configs: Mapping[str, str | None] | None = None,
) -> list[SyncResult]:
    """Deliver the spooled operations of ``run_id`` (or of every run) under ``root``.

    ``configs`` replaces the config of the trackers it names (a store reached under another
    URL from this machine); every other tracker is rebuilt from its segment's header.
    """
    trackers: dict[tuple[str, str | None], TrackerBase] = {}
    results = []
    for path in segment_paths(root, run_id):
        problem = segment_problem(path)
        if problem is not None:
            logger.error("sync: %s is not a spool segment (%s); left as it is", path, problem)
            owner = decode_run_id(path.parent.parent.name) or path.parent.parent.name
            note = f"not a spool segment ({problem}): {path}"
            results.append(SyncResult(owner, path.parent.name, 0, 0, -1, note))
            continue
        segment = Segment.adopt(path)
        if segment is None:
            owner = decode_run_id(path.parent.parent.name) or path.parent.parent.name
            note = "in use: the job that writes it still runs and delivers it itself"
            results.append(SyncResult(owner, path.parent.name, 0, 0, -1, note))
            continue
        name = str(segment.header.get("tracker"))
        config = segment.header.get("config")
        if configs is not None and name in configs:
            config = configs[name]
        try:
            key = (name, config if isinstance(config, str) else None)
            if key not in trackers:
                trackers[key] = create_tracker(name, key[1], origin=f"spool segment {path}")
            results.append(_deliver(segment, trackers[key], name))
        except TrackerError as e:  # the tracker cannot be built here
            results.append(
                SyncResult(segment.run_id, name, 0, 0, segment.remaining, redact(str(e)))
            )
        finally:
            segment.release()
    return results


def _deliver(segment: Segment, tracker: TrackerBase, name: str) -> SyncResult:
    delivered = skipped = 0
    for index in range(segment.acked, segment.count):
        try:
            segment.read(index).apply(tracker, segment.run_id)
        except Exception as e:
            if is_transient(e):
                note = f"stopped: {redact(str(e))}"
                return SyncResult(
                    segment.run_id, name, delivered, skipped, segment.count - index, note
                )
            logger.warning(
                "sync: record %d of %s skipped, %r rejects it: %s",
                index,
                segment.path,
                tracker,
                redact(str(e)),
            )
            skipped += 1
        else:
            delivered += 1
        segment.mark_delivered(index + 1)
    return SyncResult(segment.run_id, name, delivered, skipped, 0)
