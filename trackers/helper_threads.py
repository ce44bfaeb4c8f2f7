"""Our helper threads leave process signals (SIGTERM, SIGINT) to the main thread.

Python runs a signal handler only on the main thread, but the kernel hands a signal sent to
the process to any thread that does not block it. Once ``trackers.lifecycle`` installs its
SIGTERM handler, a SIGTERM that lands on a helper thread (delivery, metric writer, a read
pool) only sets a flag, and a main thread blocked in a lock - a pool worker waiting for its
next task, which is exactly where ``Pool.terminate()`` finds it - never wakes to run the
handler: the worker outlives the SIGTERM and the pool's ``join`` hangs. Seen in forked-pool
jobs here; a process without our threads (SIGTERM's default action) ends at once.

So every thread this package starts blocks both signals first: the kernel then wakes the main
thread, whose wait is interrupted and whose handler runs. No helper thread of ours forks or
starts a subprocess (a child would inherit the mask).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

#: Signals whose handlers must run: delivered to the main thread only.
MAIN_THREAD_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


def leave_signals_to_main_thread() -> None:
    """Block :data:`MAIN_THREAD_SIGNALS` in the calling thread (not in the main thread, and
    not where the platform has no per-thread signal mask)."""
    if threading.current_thread() is threading.main_thread():
        return
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, MAIN_THREAD_SIGNALS)


def start_helper_thread(
    target: Callable[..., object], name: str, *args: Any, daemon: bool = True
) -> threading.Thread:
    """A started thread running ``target(*args)`` with the signals left to the main thread."""

    def run() -> None:
        leave_signals_to_main_thread()
        target(*args)

    thread = threading.Thread(target=run, name=name, daemon=daemon)
    thread.start()
    return thread
