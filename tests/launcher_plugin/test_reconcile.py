"""Reconcile: the scheduler's final state is written where the tracker still has a run open."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import fsspec
import pytest
from torchx.cli.cmd_run import CmdRun as TorchxCmdRun
from torchx.specs import AppState, AppStatus
from torchx.tracker.api import TrackerBase
from torchx.tracker.backend.fsspec import FsspecTracker as TorchxFsspecTracker

from launcher_plugin.cli import cmd_run
from launcher_plugin.reconcile import reconcile_run, run_states
from trackers.backends.fsspec import FsspecTracker, create_tracker
from trackers.errors import TrackerConfigError

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

    def wait(self, handle: str, wait_interval: float = 10) -> AppStatus | None:
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
        {
            "run_id": KILLED_HARD,
            "status": "RUNNING",
            "scheduler": "FAILED",
            "written": "FAILED",
            "delivered": True,
        }
    ]
    assert store.status(KILLED_HARD) == "FAILED"


def test_reconcile_run_writes_one_open_run(store: FsspecTracker) -> None:
    state = reconcile_run(store, runner(), KILLED_HARD)  # type: ignore[arg-type]
    assert state is not None and (state.recorded, state.written) == ("RUNNING", "FAILED")
    assert store.status(KILLED_HARD) == "FAILED"
    kept = reconcile_run(store, runner(), FINISHED)  # type: ignore[arg-type]
    assert kept is not None and kept.written is None and store.status(FINISHED) == "SUCCEEDED"


def torchx_tracker(root: Path) -> TorchxFsspecTracker:
    """TorchX's own fsspec tracker: a ``TrackerBase`` without ``status``/``set_status``."""
    root.mkdir(parents=True, exist_ok=True)
    return TorchxFsspecTracker(fsspec.filesystem("file"), str(root))


def test_reconcile_run_skips_torchx_trackers_without_status(tmp_path: Path) -> None:
    theirs = torchx_tracker(tmp_path / "theirs")
    fake = runner()
    assert reconcile_run(theirs, fake, KILLED_HARD) is None  # type: ignore[arg-type]
    assert fake.asked == []


def wait_like_torchx(cmd: cmd_run.CmdRun, runner: Any, handle: str) -> None:
    """What `torchx run` does after submitting, on the installed TorchX.

    0.7.0 calls ``_wait_and_exit`` (exits 1 unless the app succeeded); nightly calls ``_wait``
    (returns the status) and exits 1 itself unless it succeeded.
    """
    if hasattr(TorchxCmdRun, "_wait_and_exit"):
        cmd._wait_and_exit(runner, handle, log=False)
        return
    status = cmd._wait(runner, handle, log=False)
    if status.state != AppState.SUCCEEDED:
        raise SystemExit(1)


class TestTorchxRunReconcilesAfterWaiting:
    """``torchx run``'s wait (local schedulers, ``--wait``) ends with the run reconciled."""

    @pytest.fixture
    def cmd(self, store: FsspecTracker, monkeypatch: pytest.MonkeyPatch) -> cmd_run.CmdRun:
        def create(name: str, config: str | None, *, origin: str) -> TrackerBase:
            if name == "broken":
                raise TrackerConfigError(f"{origin}: store unreachable")
            if name == "theirs":
                return torchx_tracker(Path(str(config)))
            return create_tracker(str(config))

        monkeypatch.setattr(cmd_run, "create_tracker", create)
        cmd = cmd_run.CmdRun()
        cmd._trackers = {  # what run() resolved from the --tracker flags
            "broken": ("x", "--tracker broken"),
            "theirs": (str(store.root) + "-theirs", "--tracker theirs"),
            "lineage_fsspec": (str(store.root), "--tracker lineage_fsspec"),
        }
        return cmd

    def test_failed_app_is_reconciled_and_torchx_still_exits_1(
        self, cmd: cmd_run.CmdRun, store: FsspecTracker, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO), pytest.raises(SystemExit) as exited:
            wait_like_torchx(cmd, runner(), KILLED_HARD)
        assert exited.value.code == 1
        assert store.status(KILLED_HARD) == "FAILED"
        assert store.metadata(KILLED_HARD)["reconciled.from_scheduler"] == "FAILED"
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings == [
            f"tracker broken: could not reconcile {KILLED_HARD}: "
            "TrackerConfigError: --tracker broken: store unreachable"
        ]  # TorchX's own tracker is skipped silently
        assert any("recorded FAILED" in r.getMessage() for r in caplog.records)

    def test_succeeded_app_returns_and_is_recorded_succeeded(
        self, cmd: cmd_run.CmdRun, store: FsspecTracker
    ) -> None:
        fake = FakeRunner({FORGOTTEN: AppState.SUCCEEDED})
        wait_like_torchx(cmd, fake, FORGOTTEN)
        assert store.status(FORGOTTEN) == "SUCCEEDED"

    def test_terminal_status_the_job_recorded_is_kept(
        self, cmd: cmd_run.CmdRun, store: FsspecTracker
    ) -> None:
        with pytest.raises(SystemExit):
            wait_like_torchx(cmd, runner(), FINISHED)
        assert store.status(FINISHED) == "SUCCEEDED"
        assert "reconciled.from_scheduler" not in store.metadata(FINISHED)

    def test_nothing_is_reconciled_when_the_wait_gives_no_status(
        self, cmd: cmd_run.CmdRun, store: FsspecTracker
    ) -> None:
        fake = FakeRunner({})  # wait returns None: TorchX raises, the app's end is unknown
        with pytest.raises(RuntimeError, match="unknown status"):
            wait_like_torchx(cmd, fake, KILLED_HARD)
        assert fake.asked == [] and store.status(KILLED_HARD) == "RUNNING"
