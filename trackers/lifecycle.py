"""Process hooks that give every run an end: flush and a terminal status on any exit we can see.

``atexit``, ``sys.excepthook``, ``sys.exit`` and ``SIGTERM`` (handed on afterwards) close the
run with SUCCEEDED, FAILED or KILLED; multiprocessing children close through ``Finalize``, and
only the process that started a run records its status (:func:`is_worker_of`). What each hook
covers and what no process can see: ``docs/delivery.md``.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import multiprocessing
import multiprocessing.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType, TracebackType
from typing import NoReturn, Protocol

from trackers.helper_threads import start_helper_thread
from trackers.types import RunStatus

logger: logging.Logger = logging.getLogger(__name__)


class _Limits(Protocol):
    @property
    def shutdown_timeout(self) -> float: ...


class ExitingRun(Protocol):
    """What the hooks need of a run (``AppRun`` has it); the run passes itself in, so this
    module does not import the one that imports it."""

    @property
    def settings(self) -> _Limits: ...

    def mark_exit(self, status: RunStatus, error: BaseException | str | None = None) -> None: ...

    def close(self) -> None: ...


_installed_for: ExitingRun | None = None

#: Internal: ``"<pid> <run id>"`` of the process that started the run; set by it, read by its
#: children (any start method, and subprocesses) to know they are workers of that run.
ENV_TORCHX_TRACKER_RUN_OWNER = "TORCHX_TRACKER_RUN_OWNER"
#: ``multiprocessing.util.Finalize`` priority of a worker's close: higher runs first, so the
#: run closes before multiprocessing tears down its own queues (priority 10 and below).
WORKER_EXIT_PRIORITY = 20

_exit_hooked: set[tuple[int, int]] = set()  # (pid, id(run)) closed at this process's exit


def claim_run(run_id: str) -> None:
    """Mark this process as the owner of ``run_id`` for itself and its future children."""
    os.environ[ENV_TORCHX_TRACKER_RUN_OWNER] = f"{os.getpid()} {run_id}"


def release_claim() -> None:
    """Forget this process's claim (``reset_current_run``); a claim of another pid stays."""
    pid, _, _ = os.environ.get(ENV_TORCHX_TRACKER_RUN_OWNER, "").partition(" ")
    if pid == str(os.getpid()):
        del os.environ[ENV_TORCHX_TRACKER_RUN_OWNER]


def is_worker_of(run_id: str) -> bool:
    """Whether this process works for a run another process owns: ``multiprocessing`` started
    it (any start method), or an ancestor that started ``run_id`` claimed it."""
    if multiprocessing.parent_process() is not None:
        return True
    pid, _, owned = os.environ.get(ENV_TORCHX_TRACKER_RUN_OWNER, "").partition(" ")
    return owned == run_id and pid != str(os.getpid())


def close_at_process_exit(run: ExitingRun) -> None:
    """Close ``run`` when this process ends, also where ``atexit`` does not run (multiprocessing
    children); once per process and run. ``close`` itself is idempotent."""
    key = (os.getpid(), id(run))
    if key in _exit_hooked:
        return
    _exit_hooked.add(key)
    if multiprocessing.parent_process() is not None:
        multiprocessing.util.Finalize(None, run.close, exitpriority=WORKER_EXIT_PRIORITY)
    atexit.register(run.close)


_hooks_installed = False


def install(run: ExitingRun) -> None:
    """Hook ``run`` into the process's exit paths (hooks once per process; later runs move in)."""
    global _installed_for, _hooks_installed
    _installed_for = run
    if multiprocessing.parent_process() is not None:
        close_at_process_exit(run)  # atexit does not run in a multiprocessing child
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_at_exit)
    previous_hook = sys.excepthook

    def excepthook(
        kind: type[BaseException], value: BaseException, tb: TracebackType | None
    ) -> None:
        if _installed_for is not None:
            killed = issubclass(kind, KeyboardInterrupt)
            _installed_for.mark_exit("KILLED" if killed else "FAILED", value)
        previous_hook(kind, value, tb)

    sys.excepthook = excepthook
    previous_exit = sys.exit

    def exit_with_status(code: str | int | None = None) -> NoReturn:
        if code not in (None, 0) and _installed_for is not None:
            _installed_for.mark_exit("FAILED", f"sys.exit({code!r})")
        previous_exit(code)

    sys.exit = exit_with_status
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGTERM)

        def hand_on(signum: int, frame: FrameType | None) -> None:
            if callable(previous):
                previous(signum, frame)
            elif previous != signal.SIG_IGN:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGTERM)

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            global _deferred_signal, _hand_on_now
            if _main_thread_closing and not _hand_on_now:
                # It interrupted a close on the main thread (a pool terminating a worker that
                # is already on its way out): let that close finish, then hand the signal on;
                # but never wait longer than a close may take (a SIGTERM must end the process).
                _deferred_signal = functools.partial(hand_on, signum, frame)
                run = _installed_for
                limit = (run.settings.shutdown_timeout if run is not None else 30.0) + 1
                start_helper_thread(_resend_deferred, "torchx-lineage-sigterm-wait", limit, signum)
                return
            if _hand_on_now:
                hand_on(signum, frame)
                return
            run = _installed_for
            if run is not None:
                run.mark_exit("KILLED", "SIGTERM")
                # Closed from another thread, waited for at most the shutdown timeout: this
                # handler interrupts the training thread, which may hold a lock close() needs
                # (an HTTP connection pool, say); then the wait ends and the exit goes on.
                closer = start_helper_thread(run.close, "torchx-lineage-sigterm", daemon=False)
                closer.join(run.settings.shutdown_timeout + 1)
            hand_on(signum, frame)

        signal.signal(signal.SIGTERM, on_sigterm)


_main_thread_closing = 0  # closes running on the main thread
_deferred_signal: Callable[[], None] | None = None  # a SIGTERM that arrived during one
_hand_on_now = False  # a deferred SIGTERM waited too long: the next one is handed on at once
_forking_from_main = True


def _resend_deferred(after: float, signum: int) -> None:
    """A deferred SIGTERM whose close did not end ``after`` seconds on is sent again, to be
    handed on."""
    global _hand_on_now
    time.sleep(after)
    if _deferred_signal is not None:
        logger.warning("a close deferred SIGTERM for too long; the signal goes on now")
        _hand_on_now = True
        os.kill(os.getpid(), signum)


def _before_fork() -> None:
    global _forking_from_main
    _forking_from_main = threading.current_thread() is threading.main_thread()


def _after_fork_in_child() -> None:
    """A child forked by another thread than the main thread is not inside the main thread's
    close (only the forking thread goes on in the child): its count of closes starts at 0, or
    a SIGTERM (a pool terminating its workers) would wait for a close that never ends."""
    global _main_thread_closing, _deferred_signal, _hand_on_now
    _hand_on_now = False
    if not _forking_from_main:
        _main_thread_closing = 0
        _deferred_signal = None


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


@contextlib.contextmanager
def closing() -> Iterator[None]:
    """Wrap a run's close: a SIGTERM that interrupts a close on the main thread waits for it."""
    global _main_thread_closing, _deferred_signal
    main = threading.current_thread() is threading.main_thread()
    _main_thread_closing += main
    try:
        yield
    finally:
        _main_thread_closing -= main
        if main and not _main_thread_closing and _deferred_signal is not None:
            deferred, _deferred_signal = _deferred_signal, None
            deferred()


def _at_exit() -> None:
    if _installed_for is not None:
        _installed_for.close()


def detach() -> None:
    """Stop acting on the current run at exit (the hooks stay installed and do nothing)."""
    global _installed_for
    _installed_for = None
