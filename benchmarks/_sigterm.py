"""SIGTERM as an exit the benchmarks' cleanup sees.

Python's default SIGTERM action ends the process at once: no ``finally`` block and no context
manager's exit runs, so a benchmark stopped with ``kill`` (or ``timeout``) left the servers it
started in their own process groups (the blackhole, moto, ``mlflow server``) running. With
:func:`exit_cleanly_on_sigterm`, SIGTERM raises ``SystemExit`` in the main thread instead, the
stack unwinds through those blocks and the servers' process groups are stopped.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

#: The exit status a shell reports for a process ended by SIGTERM.
SIGTERM_STATUS = 128 + signal.SIGTERM


def _exit(signum: int, frame: FrameType | None) -> None:
    print(
        f"{signal.Signals(signum).name}: stopping the servers this benchmark started",
        file=sys.stderr,
    )
    sys.exit(SIGTERM_STATUS)


def exit_cleanly_on_sigterm() -> None:
    """Make SIGTERM raise ``SystemExit`` (call from the main thread, before starting servers)."""
    signal.signal(signal.SIGTERM, _exit)
