"""Terminal status for deaths a job cannot report, taken from the scheduler.

SIGKILL, an OOM kill or a lost node leave a run's recorded status RUNNING (or unset, when the job
never started ``AppRun``). The scheduler still knows how the job ended: ``torchx tracker list
jobs --status`` shows both, and ``torchx tracker reconcile`` writes the scheduler's final state
into the tracker (SUCCEEDED, FAILED, or KILLED for a cancelled job) with the metadata key
``reconciled.from_scheduler``. Runs whose status is already terminal are never changed.

Every reconciled status goes through the tracker's delivery and spool
(:mod:`launcher_plugin.launcher_writes`), as a job's writes do: a store that is down when the
state is written keeps it in the spool and ``torchx tracker sync`` delivers it, once. The same
write also goes to the write-only trackers given beside the store (``openlineage``, which cannot
tell whether a run is open), so an OpenLineage consumer gets the run's COMPLETE/FAIL/ABORT.

``torchx run`` does the same by itself whenever it waits for the job to end (``local_cwd`` and
the other local schedulers always, any scheduler with ``--wait``): once the app is terminal it
reconciles that run in every tracker it was launched with (through each tracker's delivery and
spool, as the launch record: :mod:`launcher_plugin.launcher_writes`), so a local job that was
SIGKILLed is recorded FAILED before the scheduler, which knows only the jobs of the process that
launched them, forgets it. A later ``torchx tracker reconcile`` of a ``local_cwd``
run sees ``UNKNOWN``. Reconciling never changes ``torchx run``'s output or exit code; a failure
is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from torchx.runner import Runner
from torchx.specs import AppState
from torchx.tracker.api import TrackerBase

from launcher_plugin.launcher_writes import LauncherWrites, Target
from trackers.api import LineageTracker, capabilities
from trackers.types import RunStatus

logger: logging.Logger = logging.getLogger(__name__)

#: A scheduler's final state as a run status.
FINAL_STATES: dict[AppState, RunStatus] = {
    AppState.SUCCEEDED: "SUCCEEDED",
    AppState.FAILED: "FAILED",
    AppState.CANCELLED: "KILLED",
}
OPEN_STATUSES: frozenset[RunStatus | None] = frozenset({None, "RUNNING"})


@dataclass(frozen=True)
class RunState:
    """A run's recorded status next to what the scheduler says."""

    run_id: str
    recorded: RunStatus | None
    scheduler: str  # an AppState name, or UNKNOWN when the scheduler cannot tell
    #: The final status recorded (given to the store's delivery and not refused by it).
    written: RunStatus | None = None
    #: With ``written``: whether the store has it now (``False``: kept in the spool for ``sync``).
    delivered: bool = True


def scheduler_state(runner: Runner, run_id: str) -> str:
    """The scheduler's state of ``run_id`` (an app handle), ``UNKNOWN`` if it cannot tell."""
    try:
        status = runner.status(run_id)
    except Exception as e:  # not a handle, scheduler unreachable, job forgotten...
        logger.debug("no scheduler state for %s: %s", run_id, e)
        return "UNKNOWN"
    return status.state.name if status is not None else "UNKNOWN"


def final_status(state: RunState) -> RunStatus | None:
    """The status to record for ``state``: the scheduler's final state of a run the tracker
    still has open; ``None`` when there is nothing to record."""
    if state.recorded not in OPEN_STATUSES or state.scheduler not in AppState.__members__:
        return None
    return FINAL_STATES.get(AppState[state.scheduler])


def run_states(
    tracker: LineageTracker,
    runner: Runner,
    run_ids: Iterable[str],
    *,
    write: bool,
    store: Target | None = None,
    also: Sequence[Target] = (),
) -> list[RunState]:
    """Each run's recorded status and the scheduler's state (asked only for open runs).

    With ``write``, a final scheduler state is recorded for runs still open in the tracker
    (``store``: the tracker with the config its spooled writes are labelled with; default
    :func:`store_target`), and in the write-only trackers of ``also`` (:func:`record_final`).
    """
    target = store
    states = []
    # One call for every run's recorded status (the record stores answer from their catalog).
    for summary in tracker.runs_summary(list(run_ids)):
        run_id, recorded = summary.run_id, summary.status
        if recorded not in OPEN_STATUSES:
            states.append(RunState(run_id, recorded, "-"))
            continue
        state = RunState(run_id, recorded, scheduler_state(runner, run_id))
        final = final_status(state)
        if write and final is not None:
            if target is None:
                target = store_target(tracker)
            left, refused = record_final([target, *also], state, final)
            if target.name not in refused:  # refused: logged by the delivery, nothing recorded
                state = replace(state, written=final, delivered=not left.get(target.name))
        states.append(state)
    return states


def store_target(tracker: TrackerBase) -> Target:
    """``tracker`` as a write target, labelled with the config it gives for another process
    (``None`` where it has none: then only this process delivers what it spools)."""
    found = capabilities(tracker)
    return Target(found.name, tracker, found.job_config())


def record_final(
    targets: Sequence[Target], state: RunState, final: RunStatus
) -> tuple[dict[str, int], dict[str, Exception]]:
    """Write ``final`` and ``reconciled.from_scheduler`` for ``state``'s run into ``targets``,
    each through its delivery and spool, under one operation id per write (so the stores'
    records and the OpenLineage event name the same time). Returns what each target left in
    the spool and the targets that refused a write."""
    writes = LauncherWrites(state.run_id, targets, what="reconciled status")
    try:
        writes.submit("set_status", status=final)
        writes.submit("add_metadata", values={"reconciled.from_scheduler": state.scheduler})
    finally:
        left = writes.close()
    return left, dict(writes.failed)


def reconcile_run(tracker: TrackerBase, runner: Runner, run_id: str) -> RunState | None:
    """:func:`run_states` with ``write`` for one run; ``None`` for a tracker that records no status.

    TorchX's own trackers (not a :class:`~trackers.api.LineageTracker`) are skipped.
    """
    if not isinstance(tracker, LineageTracker):
        return None
    [state] = run_states(tracker, runner, [run_id], write=True)
    return state
