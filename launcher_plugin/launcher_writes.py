"""What ``torchx run`` itself writes, through the same delivery and spool as a job's writes.

The launch record, the ``--parent-run-id`` link and a reconciled final status are written by the
launching process, not by the job. They used to be written directly: a backend that was down at
that moment (an OpenLineage endpoint, a store) lost them for good. Here each becomes an
:class:`~trackers.operations.Operation` handed to a :class:`~trackers.delivery.Delivery` per
tracker, exactly as ``AppRun`` does in the job: spooled first (``TORCHX_TRACKER_SPOOL_DIR`` of
the launching process), delivered by a thread of its own, and what is not delivered when
``torchx run`` goes on stays in the spool, labelled with the config the job gets for that
tracker. ``torchx tracker sync`` on the launching machine then delivers it, once; so does the
job itself when it shares that spool (local schedulers) and adopts the segment after ``torchx
run`` let go of it.

One operation goes to every tracker with the same id, so each store names its record by it and
the OpenLineage tracker takes the event's time from it: ``torchx tracker export`` rebuilds the
same event from a store later.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchx.tracker.api import TrackerBase

from trackers.delivery import Delivery
from trackers.env import ENV_TORCHX_TRACKER_SHUTDOWN_TIMEOUT, number_from_env
from trackers.errors import TrackerError, is_transient
from trackers.ids import record_name
from trackers.operations import Operation, takes
from trackers.redact import redact
from trackers.spool import spool_root

logger: logging.Logger = logging.getLogger(__name__)

#: How long ``torchx run`` waits for its own writes when the job's shutdown limit is not set.
DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Target:
    """One tracker of the launch: its name, the tracker, and the config the job gets for it
    (what the spool records, so ``sync`` reopens the tracker from any working directory)."""

    name: str
    tracker: TrackerBase
    config: str | None


def timeout_from_env(environ: Mapping[str, str] | None = None) -> float:
    """The job's shutdown limit (``TORCHX_TRACKER_SHUTDOWN_TIMEOUT``), used for the launcher's
    own writes too; a malformed value falls back to the default (the launch must go on)."""
    try:
        return number_from_env(ENV_TORCHX_TRACKER_SHUTDOWN_TIMEOUT, DEFAULT_TIMEOUT_S, environ)
    except TrackerError:
        return DEFAULT_TIMEOUT_S


class LauncherWrites:
    """The writes ``torchx run`` makes for one run, each tracker's through its own delivery.

    Args:
        run_id: the run (app handle).
        targets: the trackers to write to.
        what: names the writes in log lines ("launch record", "reconciled status").

    The spool is the launching process's (``TORCHX_TRACKER_SPOOL_DIR``; ``off`` keeps the
    writes in memory only, as in a job).
    """

    def __init__(
        self,
        run_id: str,
        targets: Iterable[Target],
        *,
        what: str,
    ) -> None:
        self.run_id = run_id
        self.what = what
        self.targets = list(targets)
        self._spool: Path | None = spool_root()
        self._deliveries: dict[str, Delivery] = {}
        self._reported: set[tuple[str, str, str]] = set()
        self.failed: dict[str, Exception] = {}  # tracker name -> a write it rejected

    def submit(
        self,
        kind: str,
        *,
        op_id: str | None = None,
        only: Iterable[str] | None = None,
        **args: Any,
    ) -> str:
        """Queue one write for every tracker that takes it (or those named in ``only``), under
        one operation id (``op_id``, default a new one); returns that id."""
        op = Operation(op_id or record_name(), kind, args).snapshot()
        names = None if only is None else set(only)
        for target in self.targets:
            if (names is None or target.name in names) and takes(target.tracker, kind):
                self._delivery(target).submit(op)
        return op.id

    def close(self, timeout: float | None = None) -> dict[str, int]:
        """Deliver within ``timeout`` (default :func:`timeout_from_env`); what is left stays in
        the spool and is logged with the command that delivers it. Returns what is left per
        tracker name."""
        limit = timeout_from_env() if timeout is None else timeout
        left: dict[str, int] = {}
        for name, delivery in self._deliveries.items():
            # A store that is down gets one short retry, not the whole limit (Delivery.close).
            count = delivery.close(limit, compact=False)
            left[name] = count
            if not count:
                continue
            if delivery.spool_dir is not None:
                fate = (
                    f"kept in {delivery.spool_dir}; `torchx tracker sync "
                    f"{shlex.quote(self.run_id)}` delivers them (or the job, if it shares "
                    "this spool)"
                )
            else:
                fate = "lost: the spool is off (TORCHX_TRACKER_SPOOL_DIR)"
            down = delivery.gave_up_down
            logger.warning(
                "tracker %s: %d record(s) of the %s of %s not delivered%s; %s",
                name,
                count,
                self.what,
                self.run_id,
                f" ({redact(str(down))})" if down is not None else "",
                fate,
            )
        self._deliveries.clear()
        return left

    def _delivery(self, target: Target) -> Delivery:
        delivery = self._deliveries.get(target.name)
        if delivery is None:
            delivery = Delivery(
                target.tracker,
                self.run_id,
                name=target.name,
                config=target.config,
                spool=self._spool,
                on_error=lambda kind, e: self._report(target, kind, e),
            )
            self._deliveries[target.name] = delivery
        return delivery

    def _report(self, target: Target, kind: str, error: Exception) -> None:
        """Log a failed attempt once per tracker, kind and error type (retries repeat them)."""
        if not is_transient(error):
            self.failed[target.name] = error
        key = (target.name, kind, type(error).__name__)
        if key in self._reported:
            return
        self._reported.add(key)
        text = redact(f"{type(error).__name__}: {error}")
        if is_transient(error):
            logger.warning(
                "%s for %s: tracker %r (%s) is not reachable now (%s); kept in the spool",
                self.what,
                self.run_id,
                target.name,
                redact(repr(target.tracker)),
                text,
            )
        else:
            logger.error(
                "%s for %s not written to tracker %r (%s): %s",
                self.what,
                self.run_id,
                target.name,
                redact(repr(target.tracker)),
                text,
            )
