"""Reconcile: the scheduler's final state is written where the tracker still has a run open."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from torchx.specs import AppState, AppStatus

from launcher_plugin.reconcile import run_states
from trackers.backends.fsspec import FsspecTracker, create_tracker

KILLED_HARD = "slurm://torchx/101"  # SIGKILLed: the job never recorded an end
FINISHED = "slurm://torchx/102"
FORGOTTEN = "local_cwd://torchx/old-1"  # a scheduler that no longer knows the job
CANCELLED = "slurm://torchx/103"


class FakeRunner:
    """Answers ``status`` like TorchX's Runner; counts the questions."""

    def __init__(self, states: dict[str, AppState]) -> None:
        self.states = states
        self.asked: list[str] = []

    def status(self, handle: str) -> AppStatus | None:
        self.asked.append(handle)
        state = self.states.get(handle)
        return AppStatus(state) if state is not None else None

    def __enter__(self) -> FakeRunner:
        return self

    def __exit__(self, *args: object) -> None:
        pass


@pytest.fixture
def store(tmp_path: Path) -> FsspecTracker:
    t = create_tracker(str(tmp_path / "runs"))
    t.set_status(KILLED_HARD, "RUNNING")
    t.set_status(FINISHED, "SUCCEEDED")
    t.add_metadata(FORGOTTEN, x=1)  # never recorded a status at all
    t.set_status(CANCELLED, "RUNNING")
    return t


def runner() -> FakeRunner:
    return FakeRunner(
        {
            KILLED_HARD: AppState.FAILED,
            FINISHED: AppState.FAILED,  # must not override what the job itself recorded
            CANCELLED: AppState.CANCELLED,
        }
    )


def test_reconcile_writes_final_states_of_open_runs_only(store: FsspecTracker) -> None:
    fake = runner()
    states = run_states(store, fake, store.run_ids(), write=True)  # type: ignore[arg-type]
    by_id = {s.run_id: s for s in states}
    assert (by_id[KILLED_HARD].scheduler, by_id[KILLED_HARD].written) == ("FAILED", "FAILED")
    assert by_id[CANCELLED].written == "KILLED"
    assert by_id[FORGOTTEN].scheduler == "UNKNOWN" and by_id[FORGOTTEN].written is None
    assert by_id[FINISHED].scheduler == "-" and FINISHED not in fake.asked
    assert store.status(KILLED_HARD) == "FAILED" and store.status(CANCELLED) == "KILLED"
    assert store.status(FINISHED) == "SUCCEEDED" and store.status(FORGOTTEN) is None
    assert store.metadata(KILLED_HARD)["reconciled.from_scheduler"] == "FAILED"


def test_listing_with_status_writes_nothing(store: FsspecTracker) -> None:
    run_states(store, runner(), store.run_ids(), write=False)  # type: ignore[arg-type]
    assert store.status(KILLED_HARD) == "RUNNING"


def test_cli_reconcile_and_list_jobs_status(
    store: FsspecTracker, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from torchx.cli.main import create_parser

    from launcher_plugin.cli import cmd_tracker

    monkeypatch.setattr(cmd_tracker, "get_runner", runner)
    parser = create_parser({"tracker": cmd_tracker.CmdTracker()})

    def cli(*argv: str) -> Any:
        args = parser.parse_args(["tracker", *argv, "--tracker", f"fsspec={store.root}"])
        args.func(args)
        return json.loads(capsys.readouterr().out)

    listed = cli("list", "jobs", "--status", "--format", "json")
    assert {"run_id": KILLED_HARD, "status": "RUNNING", "scheduler": "FAILED"} in listed
    assert store.status(KILLED_HARD) == "RUNNING"
    done = cli("reconcile", KILLED_HARD, "--format", "json")
    assert done == [
        {"run_id": KILLED_HARD, "status": "RUNNING", "scheduler": "FAILED", "written": "FAILED"}
    ]
    assert store.status(KILLED_HARD) == "FAILED"
