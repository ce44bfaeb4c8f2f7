"""Start and stop a real ``mlflow server`` on 127.0.0.1 (used by the tests and the benchmark).

The server runs with a SQLite backend store and a local artifact root in a given directory,
one uvicorn worker (MLflow's default of 4 adds a ~44 ms floor to every request on this machine),
and in a process group of its own, so that stopping it also stops the processes it spawns.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: The ``mlflow`` CLI of the interpreter running this code (never a hard-coded venv).
MLFLOW = Path(sys.executable).parent / "mlflow"

#: MLflow env vars that would point the server (or a test) somewhere else.
MLFLOW_ENV_TO_DROP = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_RUN_ID",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)


@dataclass(frozen=True)
class MlflowServer:
    """A running server: its tracking URI, its directory and its log file."""

    uri: str
    root: Path
    log: Path
    pid: int

    def log_tail(self, lines: int = 60) -> str:
        """The end of the server's log (for failure messages)."""
        return _tail(self.log, lines)


class ServerStartError(RuntimeError):
    """The server exited or did not answer /health in time; the message has its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(empty log)"


def _healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def stop_process_group(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process group of ``proc``, then SIGKILL it if it is still there."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; make sure no member of its group outlives it.
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def _new_log(root: Path) -> Path:
    """``server-<n>.log`` with the first unused ``n`` (a restart on the same root keeps the
    earlier logs)."""
    n = 0
    while (root / f"server-{n}.log").exists():
        n += 1
    return root / f"server-{n}.log"


@contextmanager
def running_mlflow_server(
    root: Path, startup_timeout: float = 90.0, port: int | None = None
) -> Iterator[MlflowServer]:
    """Run ``mlflow server`` with its store under ``root`` until the block exits.

    ``port``: listen on this port (e.g. to restart a server on the URI its clients use);
    default: a free port, probed again if another process takes it before the server binds it.
    """
    root.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in MLFLOW_ENV_TO_DROP}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no job runner / huey consumers
    last_error = ""
    fixed_port = port
    for _attempt in range(3):  # the free port can be taken between probing and binding
        port = fixed_port if fixed_port is not None else free_port()
        uri = f"http://127.0.0.1:{port}"
        log = _new_log(root)
        cmd = [
            str(MLFLOW),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
        ]
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=root,
                env=env,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + startup_timeout
            while not _healthy(uri):
                if proc.poll() is not None:
                    last_error = f"mlflow server exited with status {proc.returncode}"
                    break
                if time.monotonic() > deadline:
                    last_error = f"mlflow server did not answer {uri}/health in {startup_timeout} s"
                    break
                time.sleep(0.25)
            else:
                yield MlflowServer(uri, root, log, proc.pid)
                return
            if "address already in use" not in _tail(log, 200).lower():
                break
            if fixed_port is not None:
                time.sleep(1.0)  # a fixed port: wait for whoever holds it to let go
        finally:
            stop_process_group(proc)
    raise ServerStartError(f"{last_error}; command: {' '.join(cmd)}\nlog:\n{_tail(log, 60)}")
