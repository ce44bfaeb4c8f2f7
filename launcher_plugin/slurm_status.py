"""The status of a Slurm job without accounting storage: ``squeue``, then ``scontrol show job``.

TorchX 0.7.0's ``SlurmScheduler.describe`` (behind ``torchx status`` and ``torchx run --wait``)
runs ``sacct``, which exits with status 1 ("Slurm accounting storage is disabled") on a cluster
with ``AccountingStorageType=accounting_storage/none``. :func:`describe_job` answers the same
question from the controller's memory instead:

* while the job is in the queue (pending, running, completing, requeued): ``squeue``;
* once it has left the queue: ``scontrol show job``, which keeps a finished job for
  ``MinJobAge`` seconds (300 by default; ``scripts/slurm.sh`` sets 3600). After that the job is
  unknown and :func:`describe_job` returns ``None``, as TorchX's ``describe`` does.

TorchX submits every replica of every role as one component of a heterogeneous job named
``<role>-<replica>``, so each queue entry is one replica; the app's state combines them
(:func:`combine_states`). :mod:`launcher_plugin.schedulers` calls :func:`describe_job` only when
TorchX's own ``describe`` fails.
"""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from torchx.schedulers.api import DescribeAppResponse
from torchx.specs import AppState, ReplicaStatus, Role, RoleStatus

logger: logging.Logger = logging.getLogger(__name__)

#: Slurm job states (``squeue %T`` / ``scontrol JobState``) as TorchX app states.
SLURM_STATES: Mapping[str, AppState] = {
    "PENDING": AppState.PENDING,
    "CONFIGURING": AppState.PENDING,
    "REQUEUED": AppState.PENDING,
    "REQUEUE_HOLD": AppState.PENDING,
    "REQUEUE_FED": AppState.PENDING,
    "RESV_DEL_HOLD": AppState.PENDING,
    "RESIZING": AppState.PENDING,
    "SUSPENDED": AppState.PENDING,
    "RUNNING": AppState.RUNNING,
    "COMPLETING": AppState.RUNNING,
    "SIGNALING": AppState.RUNNING,
    "STAGE_OUT": AppState.RUNNING,
    "STOPPED": AppState.RUNNING,
    "COMPLETED": AppState.SUCCEEDED,
    "FAILED": AppState.FAILED,
    "TIMEOUT": AppState.FAILED,
    "NODE_FAIL": AppState.FAILED,
    "OUT_OF_MEMORY": AppState.FAILED,
    "BOOT_FAIL": AppState.FAILED,
    "DEADLINE": AppState.FAILED,
    "REVOKED": AppState.FAILED,
    "SPECIAL_EXIT": AppState.FAILED,
    "CANCELLED": AppState.CANCELLED,
    "PREEMPTED": AppState.CANCELLED,
}

#: ``squeue --Format``: unbounded fields (``:0``) each followed by ``|``; the name comes last, so
#: a ``|`` in a job name cannot shift the other fields. ``JobID`` of a heterogeneous job's
#: component is its own id; ``HetJobID``/``HetJobOffset`` give the ``ID+N`` form.
SQUEUE_FIELDS = (
    "JobID",
    "HetJobID",
    "HetJobOffset",
    "State",
    "RestartCnt",
    "Reason",
    "NodeList",
    "Name",
)
SQUEUE_FORMAT = ",".join(f"{name}:0|" for name in SQUEUE_FIELDS[:-1]) + f",{SQUEUE_FIELDS[-1]}:0"

# In `scontrol --oneliner` output a key starts at a blank and ends at '=' (keys hold '/' and ':',
# e.g. `CPUs/Task=1`, `AllocNode:Sid=host:123`); a blank not followed by a key is part of a value.
_SCONTROL_KEY = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_/:]*)=")
_UNKNOWN_JOB = "Invalid job id specified"

#: Runs a command and returns ``(exit status, stdout, stderr)``; replaced in tests.
CommandRunner = Callable[[Sequence[str]], tuple[int, str, str]]


@dataclass(frozen=True)
class SlurmJobEntry:
    """One component (one replica) of a Slurm job as ``squeue`` or ``scontrol`` shows it."""

    job_id: str
    name: str
    state: str
    reason: str = ""
    restarts: int | None = None
    exit_code: str = ""
    hostname: str = ""


def app_state(slurm_state: str) -> AppState:
    """TorchX's state for a Slurm job state; ``UNKNOWN`` for a state this module does not know.

    Only the first word counts (``CANCELLED by 0``) and flags after ``+`` are ignored.
    """
    base = slurm_state.strip().split(" ", 1)[0].split("+", 1)[0].upper()
    return SLURM_STATES.get(base, AppState.UNKNOWN)


def combine_states(states: Iterable[AppState]) -> AppState:
    """The app's state from its components' states.

    While any component runs (or waits), the app does; once all have ended, a failed component
    fails the app, then a cancelled one cancels it; it succeeded only if every component did.
    """
    found = set(states)
    for state in (
        AppState.RUNNING,
        AppState.PENDING,
        AppState.UNKNOWN,
        AppState.FAILED,
        AppState.CANCELLED,
        AppState.SUCCEEDED,
    ):
        if state in found:
            return state
    return AppState.UNKNOWN


def parse_squeue(output: str) -> list[SlurmJobEntry]:
    """Entries of ``squeue --noheader --Format=SQUEUE_FORMAT`` output (one line per component).

    A heterogeneous job's components get ids ``ID+OFFSET``, as ``squeue``'s default output and
    ``scontrol`` name them.
    """
    entries = []
    for line in output.splitlines():
        if not line.strip():
            continue
        parts = line.split("|", len(SQUEUE_FIELDS) - 1)
        if len(parts) != len(SQUEUE_FIELDS):
            logger.debug("unexpected squeue line: %r", line)
            continue
        job_id, het_id, het_offset, state, restarts, reason, nodes, name = (
            p.strip() for p in parts
        )
        if het_id.isdigit() and het_offset.isdigit():
            job_id = f"{het_id}+{het_offset}"
        entries.append(
            SlurmJobEntry(
                job_id=job_id,
                name=name,
                state=state,
                reason=reason,
                restarts=int(restarts) if restarts.isdigit() else None,
                hostname=nodes,
            )
        )
    return entries


def parse_scontrol_fields(line: str) -> dict[str, str]:
    """The ``Key=Value`` fields of one ``scontrol --oneliner show job`` line."""
    matches = list(_SCONTROL_KEY.finditer(line))
    fields = {}
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following is not None else len(line)
        fields[match.group(1)] = line[match.end() : end].strip()
    return fields


def parse_scontrol(output: str) -> list[SlurmJobEntry]:
    """Entries of ``scontrol --oneliner show job ID`` (one line per heterogeneous component)."""
    entries = []
    for line in output.splitlines():
        fields = parse_scontrol_fields(line)
        if "JobId" not in fields or "JobState" not in fields:
            continue
        job_id = fields["JobId"]
        if "HetJobId" in fields and "HetJobOffset" in fields:
            job_id = f"{fields['HetJobId']}+{fields['HetJobOffset']}"
        restarts = fields.get("Restarts", "")
        host = fields.get("NodeList") or fields.get("BatchHost", "")
        entries.append(
            SlurmJobEntry(
                job_id=job_id,
                name=fields.get("JobName", ""),
                state=fields["JobState"],
                reason=fields.get("Reason", ""),
                restarts=int(restarts) if restarts.isdigit() else None,
                exit_code=fields.get("ExitCode", ""),
                hostname="" if host == "(null)" else host,
            )
        )
    return entries


def _message(entries: Sequence[SlurmJobEntry]) -> str:
    """``STATE``, plus the reason and exit code when they say something."""
    parts = []
    for entry in entries:
        text = entry.state
        if entry.reason and entry.reason not in ("None", "(null)"):
            text += f", reason {entry.reason}"
        if entry.exit_code and entry.exit_code != "0:0":
            text += f", exit code {entry.exit_code}"
        parts.append(text)
    unique = list(dict.fromkeys(parts))
    return (
        unique[0]
        if len(unique) == 1
        else "; ".join(f"{e.name}: {p}" for e, p in zip(entries, parts, strict=True))
    )


def describe_entries(app_id: str, entries: Sequence[SlurmJobEntry]) -> DescribeAppResponse:
    """TorchX's description of job ``app_id`` from its components (``<role>-<replica>`` names)."""
    roles: dict[str, Role] = {}
    statuses: dict[str, RoleStatus] = {}
    states = []
    for entry in entries:
        state = app_state(entry.state)
        states.append(state)
        role, _, replica = entry.name.rpartition("-")
        if not role or not replica.isdigit():
            continue
        if role not in roles:
            roles[role] = Role(name=role, image="", num_replicas=0)
            statuses[role] = RoleStatus(role, [])
        roles[role].num_replicas += 1
        statuses[role].replicas.append(
            ReplicaStatus(id=int(replica), role=role, state=state, hostname=entry.hostname)
        )
    restarts = [e.restarts for e in entries if e.restarts is not None]
    return DescribeAppResponse(
        app_id=app_id,
        state=combine_states(states),
        num_restarts=max(restarts) if restarts else -1,
        msg=_message(entries),
        roles=list(roles.values()),
        roles_statuses=list(statuses.values()),
    )


def _run(cmd: Sequence[str]) -> tuple[int, str, str]:
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:  # not installed, or no answer in 60 s
        return 127, "", str(e)
    return done.returncode, done.stdout, done.stderr


def _own_components(app_id: str, entries: Sequence[SlurmJobEntry]) -> list[SlurmJobEntry]:
    """The entries that belong to job ``app_id`` (``ID`` or its components ``ID+N``)."""
    return [e for e in entries if e.job_id == app_id or e.job_id.startswith(f"{app_id}+")]


def describe_job(app_id: str, run: CommandRunner | None = None) -> DescribeAppResponse | None:
    """Describe Slurm job ``app_id`` without ``sacct``; ``None`` when Slurm does not know it.

    ``run`` runs a command (default: :func:`subprocess.run`). Raises ``RuntimeError`` (with
    Slurm's messages) when ``squeue`` and ``scontrol`` both fail for another reason, e.g. the
    controller is down.
    """
    run = run or _run
    code, out, err = run(["squeue", "--noheader", f"--jobs={app_id}", f"--Format={SQUEUE_FORMAT}"])
    entries = _own_components(app_id, parse_squeue(out)) if code == 0 else []
    if entries:
        return describe_entries(app_id, entries)
    squeue_error = err.strip()

    code, out, err = run(["scontrol", "--oneliner", "show", "job", app_id])
    entries = _own_components(app_id, parse_scontrol(out)) if code == 0 else []
    if entries:
        return describe_entries(app_id, entries)
    if _UNKNOWN_JOB in err or (code == 0 and not out.strip()):
        return None
    raise RuntimeError(
        f"cannot describe Slurm job {app_id}: squeue: {squeue_error or 'no entry'}; "
        f"scontrol: {err.strip() or 'no entry'}"
    )


__all__ = [
    "SLURM_STATES",
    "SlurmJobEntry",
    "app_state",
    "combine_states",
    "describe_entries",
    "describe_job",
    "parse_scontrol",
    "parse_squeue",
]
