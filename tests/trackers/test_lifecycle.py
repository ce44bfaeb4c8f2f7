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


def blocked_signals(tid: int) -> set[int]:
    """The signals thread ``tid`` of this process blocks (Linux: ``SigBlk`` in /proc)."""
    status = Path(f"/proc/self/task/{tid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("SigBlk:"))
    mask = int(line.split()[1], 16)
    return {n for n in range(1, 65) if mask & (1 << (n - 1))}


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_every_thread_the_tracker_starts_leaves_sigterm_and_sigint_to_the_main_thread(
    tmp_path: Path,
) -> None:
    """Python runs signal handlers on the main thread only; a SIGTERM the kernel hands to a
    helper thread never wakes a main thread blocked in a lock (a pool worker waiting for its
    next task), and Pool.terminate() then waited for that worker forever."""
    import threading

    from trackers import AppRun
    from trackers.backends.s3 import S3Config, S3Tracker

    before = {t.ident for t in threading.enumerate()}
    run = AppRun(RUN, [create_tracker(str(tmp_path / "runs"))])
    run.log({"loss": 1.0}, step=0)
    run.add_metadata(x=1)
    run.flush()
    s3 = S3Tracker(S3Config.parse("s3://bucket/runs?endpoint_url=http://127.0.0.1:9"))
    s3._executor().submit(lambda: None).result()  # its request pool's first thread
    ours = [
        t
        for t in threading.enumerate()
        if t.ident not in before and t.name.startswith(("torchx-lineage", "s3-tracker"))
    ]
    try:
        names = sorted(t.name for t in ours)
        assert any(n.startswith("torchx-lineage-delivery") for n in names), names
        assert "torchx-lineage-writer" in names, names
        assert any(n.startswith("s3-tracker") for n in names), names
        for thread in ours:
            assert thread.native_id is not None
            assert {signal.SIGTERM, signal.SIGINT} <= blocked_signals(thread.native_id), thread.name
        assert signal.SIGTERM not in blocked_signals(threading.main_thread().native_id or 0)
    finally:
        run.close()
        s3._executor().shutdown()


def test_sigterm_to_a_process_whose_main_thread_waits_on_a_lock_ends_it(tmp_path: Path) -> None:
    """Where Pool.terminate() finds a worker: in a multiprocessing lock, with our threads up."""
    for _ in range(5):
        proc = run_job(
            tmp_path,
            """
            import multiprocessing
            run = AppRun.run_from_env()
            run.add_metadata(x=1)
            run.flush()
            lock = multiprocessing.Lock()
            lock.acquire()
            print("ready", flush=True)
            lock.acquire()  # held by this process already: waits until a signal ends it
            """,
            TORCHX_TRACKER_SHUTDOWN_TIMEOUT="20",
        )
        wait_for_line(proc, "ready")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == -signal.SIGTERM
        assert create_tracker(str(tmp_path / "runs")).status(RUN) == "KILLED"


def test_sigterm_as_the_main_thread_begins_its_close_still_closes_the_run_at_once(
    tmp_path: Path,
) -> None:
    """A SIGTERM at the very start of a close on the main thread (a multiprocessing finalizer
    closing a pool worker as Pool.terminate() signals it): the handler's close runs it whole,
    at once. It used to find the run marked closed but not yet closing, and the two closes
    waited for each other until the shutdown timeout ran out, with no final status."""
    proc = run_job(
        tmp_path,
        """
        import contextlib, os
        from trackers import lifecycle
        begin_close = lifecycle.closing
        signalled = []

        @contextlib.contextmanager
        def signalled_closing():
            if not signalled:  # the main thread's close, not the handler's
                signalled.append(True)
                os.kill(os.getpid(), signal.SIGTERM)  # handled before the close goes further
            with begin_close():
                yield

        lifecycle.closing = signalled_closing
        run = AppRun.run_from_env()
        run.add_metadata(x=1)
        print("ready", flush=True)
        run.close()
        """,
        TORCHX_TRACKER_SHUTDOWN_TIMEOUT="20",
    )
    wait_for_line(proc, "ready")
    start = time.monotonic()
    assert proc.wait(60) == -signal.SIGTERM, proc.stderr.read() if proc.stderr else ""
    assert time.monotonic() - start < 10
    store = create_tracker(str(tmp_path / "runs"))
    assert store.status(RUN) == "KILLED"
    assert store.metadata(RUN)["x"] == 1
