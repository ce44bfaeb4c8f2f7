"""Real processes: every point logged is stored, and the run ends with the right status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from trackers.backends.fsspec import create_tracker

RUN = "local_cwd://torchx/job-1"

PRELUDE = textwrap.dedent(
    """
    import signal, sys, time
    from trackers import AppRun
    """
)


def run_job(tmp_path: Path, body: str, **extra_env: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.update(
        {
            "TORCHX_JOB_ID": RUN,
            "TORCHX_TRACKERS": "fsspec",
            "TORCHX_TRACKER_FSSPEC_CONFIG": str(tmp_path / "runs"),
            "TORCHX_TRACKER_FLUSH_INTERVAL": "0.05",
            **extra_env,
        }
    )
    code = PRELUDE + textwrap.dedent(body)
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(proc: subprocess.Popen[str], expected: str) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == expected, proc.stderr.read() if proc.stderr else line


def test_normal_exit_flushes_and_records_succeeded(tmp_path: Path) -> None:
    proc = run_job(
        tmp_path,
        """
        run = AppRun.run_from_env()
        for step in range(20000):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
        """,
    )
    assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
    store = create_tracker(str(tmp_path / "runs"))
    assert [p.step for p in store.metrics(RUN, "loss")] == list(range(20000))
    assert store.status(RUN) == "SUCCEEDED"


def test_uncaught_exception_records_failed(tmp_path: Path) -> None:
    proc = run_job(
        tmp_path,
        """
        run = AppRun.run_from_env()
        run.log({"loss": 1.0}, step=0)
        raise RuntimeError("diverged")
        """,
    )
    assert proc.wait(60) == 1
    assert "diverged" in (proc.stderr.read() if proc.stderr else "")
    store = create_tracker(str(tmp_path / "runs"))
    assert store.status(RUN) == "FAILED"
    assert len(store.metrics(RUN)) == 1


@pytest.mark.parametrize(
    ("code", "status"), [("1", "FAILED"), ("'bad input'", "FAILED"), ("0", "SUCCEEDED")]
)
def test_sys_exit_code_decides_the_status(tmp_path: Path, code: str, status: str) -> None:
    proc = run_job(
        tmp_path,
        f"""
        run = AppRun.run_from_env()
        run.log({{"x": 1.0}}, step=0)
        sys.exit({code})
        """,
    )
    proc.wait(60)
    store = create_tracker(str(tmp_path / "runs"))
    assert store.status(RUN) == status
    assert len(store.metrics(RUN)) == 1


def test_sigterm_mid_run_keeps_every_point_and_the_users_handler(tmp_path: Path) -> None:
    marker = tmp_path / "handler-ran"
    proc = run_job(
        tmp_path,
        f"""
        def users_handler(signum, frame):
            open({str(marker)!r}, "w").write(str(step))
            sys.exit(143)

        signal.signal(signal.SIGTERM, users_handler)  # installed before the run: must still run
        run = AppRun.run_from_env()
        print("ready", flush=True)
        step = 0
        while True:
            run.log({{"x": float(step)}}, step=step)
            step += 1
        """,
    )
    wait_for_line(proc, "ready")
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 143
    last_step = int(marker.read_text())
    store = create_tracker(str(tmp_path / "runs"))
    steps = [p.step for p in store.metrics(RUN, "x")]
    # Contiguous from 0: nothing lost, nothing twice (the signal may land between log and +=1).
    assert steps == list(range(len(steps)))
    assert len(steps) in (last_step, last_step + 1) and last_step > 0
    assert store.status(RUN) == "KILLED"


def test_sigterm_without_a_user_handler_ends_with_sigterm(tmp_path: Path) -> None:
    proc = run_job(
        tmp_path,
        """
        run = AppRun.run_from_env()
        for step in range(100):
            run.log({"x": float(step)}, step=step)
        print("ready", flush=True)
        time.sleep(60)
        """,
    )
    wait_for_line(proc, "ready")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == -signal.SIGTERM
    store = create_tracker(str(tmp_path / "runs"))
    assert len(store.metrics(RUN, "x")) == 100
    assert store.status(RUN) == "KILLED"


@pytest.mark.parametrize("rank", ["1", "0"])
def test_rank_gating_in_a_real_process(tmp_path: Path, rank: str) -> None:
    proc = run_job(
        tmp_path,
        """
        run = AppRun.run_from_env()
        run.log({"x": 1.0}, step=0)
        """,
        RANK=rank,
    )
    assert proc.wait(60) == 0
    store = create_tracker(str(tmp_path / "runs"))
    assert len(store.metrics(RUN)) == (1 if rank == "0" else 0)


def test_sigterm_during_a_close_that_never_ends_still_ends_the_process(tmp_path: Path) -> None:
    """A SIGTERM that lands in a close on the main thread waits for it, but not forever: a pool
    worker once sat idle after Pool.terminate() because its count of closes never fell to 0."""
    proc = run_job(
        tmp_path,
        """
        import threading
        from trackers import lifecycle
        run = AppRun.run_from_env()
        run.add_metadata(x=1)
        with lifecycle.closing():  # a close on the main thread that blocks
            print("ready", flush=True)
            threading.Event().wait()
        """,
        TORCHX_TRACKER_SHUTDOWN_TIMEOUT="1",
    )
    wait_for_line(proc, "ready")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == -signal.SIGTERM


def test_child_forked_by_another_thread_is_not_inside_the_main_threads_close(
    tmp_path: Path,
) -> None:
    proc = run_job(
        tmp_path,
        """
        import os, threading
        from trackers import lifecycle
        run = AppRun.run_from_env()
        run.add_metadata(x=1)
        pids = []

        def fork() -> None:
            pid = os.fork()
            if pid == 0:  # the child: only this thread goes on, and it is not closing
                os._exit(lifecycle._main_thread_closing)
            pids.append(pid)

        with lifecycle.closing():
            forker = threading.Thread(target=fork)
            forker.start()
            forker.join()
        _, status = os.waitpid(pids[0], 0)
        print(os.waitstatus_to_exitcode(status), flush=True)
        """,
    )
    wait_for_line(proc, "0")
    assert proc.wait(60) == 0
