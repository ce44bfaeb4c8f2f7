"""Process hooks that give every run an end: flush and a terminal status on any exit we can see.

Installed once per process by ``AppRun.run_from_env()`` (for a run that has trackers):

* ``atexit``: close the run (bounded flush, status SUCCEEDED unless a failure was seen first);
* ``sys.excepthook``: an uncaught exception marks the run FAILED (``KeyboardInterrupt``: KILLED);
* ``sys.exit``: a non-zero exit code marks the run FAILED (``SystemExit`` never reaches the
  excepthook, and ``atexit`` cannot see the code). A ``raise SystemExit(n)`` written out in the
  program, or ``os._exit``, bypasses this and the run is recorded SUCCEEDED (or stays RUNNING);
  the scheduler's own final state is the reference then;
* ``SIGTERM`` (what Slurm and Kubernetes send before killing a job): mark KILLED, flush within
  the shutdown timeout (from a helper thread, so a lock held by the interrupted code cannot
  hang the exit), then hand the signal on: to the handler that was installed before ours
  if it is a Python function, else the default action (the process ends with SIGTERM's status).
  A handler installed after ours replaces it, as Python does; call ``trackers.flush()`` there.

Deaths a process cannot see (SIGKILL, OOM kill, node loss) leave the status RUNNING.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from trackers.app_run import AppRun

logger: logging.Logger = logging.getLogger(__name__)

_installed_for: AppRun | None = None


_hooks_installed = False


def install(run: AppRun) -> None:
    """Hook ``run`` into the process's exit paths (hooks once per process; later runs move in)."""
    global _installed_for, _hooks_installed
    _installed_for = run
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_at_exit)
    previous_hook = sys.excepthook

    def excepthook(
        kind: type[BaseException], value: BaseException, tb: TracebackType | None
    ) -> None:
        if _installed_for is not None:
            _installed_for.mark_exit("KILLED" if issubclass(kind, KeyboardInterrupt) else "FAILED")
        previous_hook(kind, value, tb)

    sys.excepthook = excepthook
    previous_exit = sys.exit

    def exit_with_status(code: str | int | None = None) -> NoReturn:
        if code not in (None, 0) and _installed_for is not None:
            _installed_for.mark_exit("FAILED")
        previous_exit(code)

    sys.exit = exit_with_status
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            run = _installed_for
            if run is not None:
                run.mark_exit("KILLED")
                # Closed from another thread, waited for at most the shutdown timeout: this
                # handler interrupts the training thread, which may hold a lock close() needs
                # (an HTTP connection pool, say); then the wait ends and the exit goes on.
                closer = threading.Thread(target=run.close, name="torchx-lineage-sigterm")
                closer.start()
                closer.join(run.settings.shutdown_timeout + 1)
            if callable(previous):
                previous(signum, frame)
            elif previous != signal.SIG_IGN:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGTERM)

        signal.signal(signal.SIGTERM, on_sigterm)


def _at_exit() -> None:
    if _installed_for is not None:
        _installed_for.close()


def detach() -> None:
    """Stop acting on the current run at exit (the hooks stay installed and do nothing)."""
    global _installed_for
    _installed_for = None
