"""Describing Slurm jobs without accounting storage, from recorded ``squeue``/``scontrol`` output.

No daemons needed: the outputs in ``recorded/`` were captured from the local cluster
(``scripts/slurm.sh``, Slurm 22.05) while TorchX jobs ran: a heterogeneous job of two replicas
(``num_replicas=2``), a job requeued once (``max_retries=1``), a failed one (exit status 3) and a
cancelled one. ``squeue`` ran as ``describe_job`` runs it (``--Format=SQUEUE_FORMAT``), and
``scontrol`` as ``scontrol --oneliner show job ID``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from torchx.schedulers.api import DescribeAppResponse
from torchx.specs import AppState

from launcher_plugin import slurm_status
from launcher_plugin.schedulers import create
from launcher_plugin.slurm_status import (
    SQUEUE_FORMAT,
    app_state,
    combine_states,
    describe_job,
    parse_scontrol,
    parse_scontrol_fields,
    parse_squeue,
)

RECORDED = Path(__file__).parent / "recorded"
UNKNOWN_JOB = "slurm_load_jobs error: Invalid job id specified\n"


def recorded(name: str) -> str:
    return (RECORDED / name).read_text(encoding="utf-8")


class FakeSlurm:
    """Answers ``squeue``/``scontrol`` with canned output and remembers the commands."""

    def __init__(
        self,
        squeue: tuple[int, str, str] = (0, "", ""),
        scontrol: tuple[int, str, str] = (1, "", UNKNOWN_JOB),
    ) -> None:
        self.answers = {"squeue": squeue, "scontrol": scontrol}
        self.calls: list[list[str]] = []

    def __call__(self, cmd: Sequence[str]) -> tuple[int, str, str]:
        self.calls.append(list(cmd))
        return self.answers[cmd[0]]

    @property
    def programs(self) -> list[str]:
        return [cmd[0] for cmd in self.calls]


# --------------------------------------------------------------------------- states
@pytest.mark.parametrize(
    ("slurm", "torchx"),
    [
        ("PENDING", AppState.PENDING),
        ("CONFIGURING", AppState.PENDING),
        ("REQUEUED", AppState.PENDING),
        ("REQUEUE_HOLD", AppState.PENDING),
        ("RUNNING", AppState.RUNNING),
        ("COMPLETING", AppState.RUNNING),
        ("COMPLETED", AppState.SUCCEEDED),
        ("FAILED", AppState.FAILED),
        ("TIMEOUT", AppState.FAILED),
        ("NODE_FAIL", AppState.FAILED),
        ("OUT_OF_MEMORY", AppState.FAILED),
        ("BOOT_FAIL", AppState.FAILED),
        ("DEADLINE", AppState.FAILED),
        ("CANCELLED", AppState.CANCELLED),
        ("PREEMPTED", AppState.CANCELLED),
    ],
)
def test_slurm_state_maps_to_torchx_state(slurm: str, torchx: AppState) -> None:
    assert app_state(slurm) == torchx


def test_state_suffixes_are_ignored_and_unknown_states_are_unknown() -> None:
    assert app_state("CANCELLED by 0") == AppState.CANCELLED  # sacct's and scontrol's form
    assert app_state("running") == AppState.RUNNING
    assert app_state(" COMPLETED ") == AppState.SUCCEEDED
    assert app_state("SOMETHING_NEW") == AppState.UNKNOWN
    assert app_state("") == AppState.UNKNOWN


@pytest.mark.parametrize(
    ("states", "combined"),
    [
        ([AppState.SUCCEEDED, AppState.SUCCEEDED], AppState.SUCCEEDED),
        ([AppState.SUCCEEDED, AppState.RUNNING], AppState.RUNNING),  # not done while one runs
        ([AppState.PENDING, AppState.RUNNING], AppState.RUNNING),
        ([AppState.PENDING, AppState.FAILED], AppState.PENDING),
        ([AppState.SUCCEEDED, AppState.FAILED], AppState.FAILED),
        ([AppState.CANCELLED, AppState.FAILED], AppState.FAILED),
        ([AppState.CANCELLED, AppState.SUCCEEDED], AppState.CANCELLED),
        ([AppState.UNKNOWN, AppState.SUCCEEDED], AppState.UNKNOWN),  # not terminal: keep waiting
        ([], AppState.UNKNOWN),
    ],
)
def test_components_combine_into_the_app_state(states: list[AppState], combined: AppState) -> None:
    assert combine_states(states) == combined


# --------------------------------------------------------------------------- parsing
def test_squeue_format_puts_the_name_last_and_leaves_fields_unbounded() -> None:
    assert SQUEUE_FORMAT == (
        "JobID:0|,HetJobID:0|,HetJobOffset:0|,State:0|,RestartCnt:0|,Reason:0|,NodeList:0|,Name:0"
    )


def test_parse_squeue_names_heterogeneous_components_id_plus_offset() -> None:
    entries = parse_squeue(recorded("squeue_het_running.txt"))
    assert [(e.job_id, e.name, e.state, e.hostname, e.restarts) for e in entries] == [
        ("18+0", "python-0", "RUNNING", "vm", 0),
        ("18+1", "python-1", "RUNNING", "vm-2", 0),
    ]


def test_parse_squeue_plain_job_keeps_its_id_and_reads_requeue_state() -> None:
    (entry,) = parse_squeue(recorded("squeue_requeued.txt"))
    assert (entry.job_id, entry.state, entry.reason, entry.restarts, entry.hostname) == (
        "15",
        "PENDING",
        "BeginTime",
        1,
        "",
    )


def test_parse_squeue_keeps_a_pipe_in_the_job_name_and_skips_junk() -> None:
    out = "7|N/A|N/A|RUNNING|0|None|vm|a|b-0\n\nnot squeue output\n"
    (entry,) = parse_squeue(out)
    assert (entry.job_id, entry.name) == ("7", "a|b-0")


def test_parse_scontrol_fields_splits_on_keys_not_on_blanks() -> None:
    line = (
        "JobId=5 JobName=my job-0 AllocNode:Sid=localhost:11668 CPUs/Task=1 "
        "TRES=cpu=1,mem=1G,node=1 Command=/tmp/a b/run.sh WorkDir=/tmp/a b Power= "
    )
    fields = parse_scontrol_fields(line)
    assert fields["JobName"] == "my job-0"
    assert fields["AllocNode:Sid"] == "localhost:11668"
    assert fields["CPUs/Task"] == "1"
    assert fields["TRES"] == "cpu=1,mem=1G,node=1"
    assert fields["Command"] == "/tmp/a b/run.sh"
    assert fields["WorkDir"] == "/tmp/a b"
    assert fields["Power"] == ""


def test_parse_scontrol_heterogeneous_job_has_one_entry_per_component() -> None:
    entries = parse_scontrol(recorded("scontrol_het_completed.txt"))
    assert [(e.job_id, e.name, e.state, e.exit_code, e.hostname) for e in entries] == [
        ("18+0", "python-0", "COMPLETED", "0:0", "vm"),
        ("18+1", "python-1", "COMPLETED", "0:0", "vm-2"),
    ]


def test_parse_scontrol_reads_restarts_exit_code_and_reason() -> None:
    (failed,) = parse_scontrol(recorded("scontrol_failed.txt"))
    assert (failed.job_id, failed.state, failed.reason, failed.exit_code, failed.restarts) == (
        "16",
        "FAILED",
        "NonZeroExitCode",
        "3:0",
        0,
    )
    (requeued,) = parse_scontrol(recorded("scontrol_requeued_completed.txt"))
    assert (requeued.state, requeued.restarts) == ("COMPLETED", 1)


# --------------------------------------------------------------------------- describe_job
def test_running_job_is_described_from_squeue_alone() -> None:
    slurm = FakeSlurm(squeue=(0, recorded("squeue_het_running.txt"), ""))
    desc = describe_job("18", slurm)
    assert slurm.calls == [["squeue", "--noheader", "--jobs=18", f"--Format={SQUEUE_FORMAT}"]]
    assert desc is not None
    assert desc.app_id == "18"
    assert desc.state == AppState.RUNNING
    assert desc.num_restarts == 0
    assert desc.msg == "RUNNING"
    (role,) = desc.roles
    assert (role.name, role.num_replicas) == ("python", 2)
    (status,) = desc.roles_statuses
    assert [(r.id, r.role, r.state, r.hostname) for r in status.replicas] == [
        (0, "python", AppState.RUNNING, "vm"),
        (1, "python", AppState.RUNNING, "vm-2"),
    ]


def test_pending_heterogeneous_job_is_pending() -> None:
    slurm = FakeSlurm(squeue=(0, recorded("squeue_het_pending.txt"), ""))
    desc = describe_job("18", slurm)
    assert desc is not None and desc.state == AppState.PENDING
    assert [r.state for r in desc.roles_statuses[0].replicas] == [AppState.PENDING] * 2


def test_requeued_job_waits_as_pending_with_its_restart_count() -> None:
    desc = describe_job("15", FakeSlurm(squeue=(0, recorded("squeue_requeued.txt"), "")))
    assert desc is not None
    assert (desc.state, desc.num_restarts) == (AppState.PENDING, 1)
    assert desc.msg == "PENDING, reason BeginTime"
    assert not desc.state.name.startswith("FAIL")


def test_finished_job_is_described_from_scontrol() -> None:
    slurm = FakeSlurm(scontrol=(0, recorded("scontrol_requeued_completed.txt"), ""))
    desc = describe_job("15", slurm)
    assert slurm.programs == ["squeue", "scontrol"]
    assert slurm.calls[1] == ["scontrol", "--oneliner", "show", "job", "15"]
    assert desc is not None
    assert (desc.state, desc.num_restarts, desc.msg) == (AppState.SUCCEEDED, 1, "COMPLETED")
    assert desc.roles_statuses[0].replicas[0].state == AppState.SUCCEEDED


def test_failed_job_says_why() -> None:
    desc = describe_job("16", FakeSlurm(scontrol=(0, recorded("scontrol_failed.txt"), "")))
    assert desc is not None
    assert desc.state == AppState.FAILED
    assert desc.msg == "FAILED, reason NonZeroExitCode, exit code 3:0"


def test_cancelled_job_is_cancelled() -> None:
    desc = describe_job("17", FakeSlurm(scontrol=(0, recorded("scontrol_cancelled.txt"), "")))
    assert desc is not None
    assert desc.state == AppState.CANCELLED
    assert desc.state.name == "CANCELLED"


def test_finished_heterogeneous_job_with_one_failed_component_failed() -> None:
    lines = recorded("scontrol_het_completed.txt").splitlines()
    lines[1] = lines[1].replace("JobState=COMPLETED", "JobState=FAILED")
    desc = describe_job("18", FakeSlurm(scontrol=(0, "\n".join(lines), "")))
    assert desc is not None
    assert desc.state == AppState.FAILED
    assert desc.msg == "python-0: COMPLETED; python-1: FAILED"


def test_squeue_entries_of_other_jobs_are_ignored() -> None:
    slurm = FakeSlurm(
        squeue=(0, recorded("squeue_running.txt"), ""),  # job 17, not 170
        scontrol=(0, recorded("scontrol_failed.txt").replace("JobId=16", "JobId=170"), ""),
    )
    desc = describe_job("170", slurm)
    assert desc is not None and desc.state == AppState.FAILED


def test_job_slurm_does_not_know_is_none() -> None:
    """Never submitted, or purged after MinJobAge: TorchX's describe returns None too."""
    slurm = FakeSlurm(squeue=(1, "", UNKNOWN_JOB), scontrol=(1, "", UNKNOWN_JOB))
    assert describe_job("99999", slurm) is None


def test_unreachable_controller_raises_with_slurms_messages() -> None:
    down = "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"
    slurm = FakeSlurm(squeue=(1, "", down), scontrol=(1, "", down))
    with pytest.raises(RuntimeError, match=r"cannot describe Slurm job 5: squeue: .*connect"):
        describe_job("5", slurm)


def test_missing_slurm_commands_raise_a_runtime_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RuntimeError, match="cannot describe Slurm job 5: squeue: .*squeue"):
        describe_job("5")


# --------------------------------------------------------------------------- the scheduler hook
#: What Debian 12's Slurm (22.05) answers to ``squeue --json``, which torchx-nightly's describe
#: asks first: JSON without the ``job_resources`` key that TorchX reads (a KeyError in TorchX).
SQUEUE_JSON_2205 = json.dumps({"jobs": [{"job_id": 16, "name": "python-0"}]})


def sacct_fails(cmd: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    """TorchX's describe runs ``sacct`` with ``check=True``; without accounting it exits 1.

    (torchx-nightly asks ``squeue --json`` first; this Slurm's answer makes TorchX raise.)"""
    if cmd[0] == "sacct":
        raise subprocess.CalledProcessError(1, list(cmd))
    if list(cmd[:2]) == ["squeue", "--json"]:
        return subprocess.CompletedProcess(list(cmd), 0, stdout=SQUEUE_JSON_2205.encode())
    raise AssertionError(f"unexpected command {cmd}")


def test_slurm_describe_falls_back_when_sacct_fails_and_stops_asking_sacct(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("torchx.schedulers.slurm_scheduler.subprocess.run", sacct_fails)
    slurm = FakeSlurm(scontrol=(0, recorded("scontrol_failed.txt"), ""))
    monkeypatch.setattr(slurm_status, "_run", slurm)
    scheduler = create("slurm", "torchx")

    desc = scheduler.describe("16")
    assert isinstance(desc, DescribeAppResponse)
    assert desc.state == AppState.FAILED
    sacct_calls = []
    monkeypatch.setattr(
        "torchx.schedulers.slurm_scheduler.subprocess.run",
        lambda cmd, **kw: sacct_calls.append(cmd),
    )
    assert scheduler.describe("16") == desc
    assert sacct_calls == []  # one failure is enough: no sacct error on every --wait poll


def test_slurm_describe_uses_sacct_when_accounting_works(monkeypatch: pytest.MonkeyPatch) -> None:
    sacct = "JobID|JobName|State\n16|python-0|COMPLETED\n"

    def run(cmd: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        if list(cmd[:2]) == ["squeue", "--json"]:  # torchx-nightly asks first: job gone
            return subprocess.CompletedProcess(list(cmd), 0, stdout=b'{"jobs": []}')
        assert cmd[0] == "sacct"
        text = kwargs.get("encoding") or kwargs.get("text")  # nightly reads sacct as text
        return subprocess.CompletedProcess(list(cmd), 0, stdout=sacct if text else sacct.encode())

    monkeypatch.setattr("torchx.schedulers.slurm_scheduler.subprocess.run", run)
    monkeypatch.setattr(slurm_status, "_run", FakeSlurm())  # would say: unknown job
    desc = create("slurm", "torchx").describe("16")
    assert desc is not None and desc.state == AppState.SUCCEEDED


def test_other_schedulers_keep_their_own_describe() -> None:
    scheduler = create("local_cwd", "torchx")
    assert scheduler.describe.__func__ is type(scheduler).describe
