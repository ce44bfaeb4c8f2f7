"""Helpers shared by the S3 tests and ``benchmarks/bench_s3.py``.

* :func:`start_moto_server`: moto's S3-protocol server as a real process on 127.0.0.1, in its own
  process group (stopped by group, so nothing it spawned is left behind);
* :func:`s3fs_python`: the interpreter of a separate virtualenv with s3fs and TorchX 0.7.0.
  s3fs pins aiobotocore, which pins botocore to an older release than the boto3 of the project's
  environment (pip would downgrade botocore there), so anything that needs s3fs runs in that
  virtualenv as a subprocess. It is built once and kept in the temp directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trackers.torchx_compat import torchx_distribution

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

#: Credentials moto accepts (it checks none); real ones never appear in these tests.
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
#: AWS settings from the developer's shell that would point the tests elsewhere.
FOREIGN_AWS_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
)


def aws_test_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's env) with fake credentials and no foreign AWS setting."""
    env = dict(os.environ if base is None else base)
    for key in FOREIGN_AWS_ENV:
        env.pop(key, None)
    env.update(FAKE_AWS_ENV)
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class MotoServer:
    """A running ``moto_server`` process."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop the server's whole process group; SIGKILL if it does not exit in 10 s."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def _answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/")
        conn.getresponse().read()
        conn.close()
        return True
    except OSError:
        return False


def start_moto_server(log_dir: Path, timeout: float = 60.0) -> MotoServer:
    """Start moto's server on a free loopback port and wait until it answers HTTP."""
    exe = BIN / "moto_server"
    for _ in range(3):  # the free port may be taken between choosing and binding it
        port = free_port()
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "moto.server"]
        log = log_dir / f"moto-{port}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [*cmd, "-H", "127.0.0.1", "-p", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=aws_test_env(),
            )
        server = MotoServer(process, port, log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            if _answers(port):
                return server
            time.sleep(0.1)
        server.stop()
    raise RuntimeError(f"moto_server did not answer on 127.0.0.1; see {log}:\n{log.read_text()}")


def admin_client(endpoint: str) -> object:
    """A plain boto3 client for setting up and inspecting buckets (fake credentials)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("s3", endpoint_url=endpoint, config=Config(max_pool_connections=32))


class Requests:
    """The HTTP requests a tracker's boto3 client sends (retries included), by operation."""

    def __init__(self, tracker: Any) -> None:
        self.ops: list[str] = []
        self._lock = threading.Lock()
        tracker._client.meta.events.register("before-send.s3.*", self._record)

    def _record(self, event_name: str, **kwargs: Any) -> None:
        with self._lock:
            self.ops.append(event_name.rsplit(".", 1)[1])

    def count(self, op: str) -> int:
        return self.ops.count(op)

    def clear(self) -> None:
        with self._lock:
            self.ops.clear()


# --- the s3fs virtualenv ---

#: s3fs releases before 2024.1 resolve to ancient versions next to a current botocore.
S3FS_REQUIREMENT = "s3fs>=2024.1.0"


def _project_requirements() -> list[str]:
    """What ``trackers`` needs at import, from pyproject, with TorchX pinned to the one here."""
    try:
        import tomllib

        data = tomllib.loads((REPO / "pyproject.toml").read_text())
        deps = list(data["project"]["dependencies"])
    except (ImportError, OSError, KeyError):
        deps = ["fsspec", "pyyaml", "importlib-metadata", "tabulate"]
    dist = torchx_distribution()  # torchx or torchx-nightly, as installed here
    torchx = f"{dist}=={importlib.metadata.version(dist)}"
    return [torchx, *(d for d in deps if not d.replace("_", "-").startswith("torchx"))]


def s3fs_requirements() -> list[str]:
    return [S3FS_REQUIREMENT, *_project_requirements()]


def s3fs_venv_dir() -> Path:
    """Where the s3fs virtualenv lives: keyed by the requirements and this Python's version."""
    key = json.dumps([s3fs_requirements(), sys.version_info[:2]])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"torchx-lineage-s3fs-venv-{digest}"


def s3fs_python(timeout: float = 900.0) -> tuple[Path | None, str]:
    """``(python, "")`` of the s3fs virtualenv (built on first use), or ``(None, why not)``."""
    venv = s3fs_venv_dir()
    python = venv / "bin" / "python"
    done = venv / ".complete"
    lock_path = venv.with_name(venv.name + ".lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test session may be building it
        if done.exists():
            return python, ""
        shutil.rmtree(venv, ignore_errors=True)
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "--quiet", *s3fs_requirements()],
        ]
        for step in steps:
            try:
                result = subprocess.run(
                    step, capture_output=True, text=True, timeout=timeout, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as e:
                return None, f"building the s3fs virtualenv failed: {' '.join(step)}: {e}"
            if result.returncode != 0:
                tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
                return None, f"cannot install {' '.join(step[5:]) or 'a venv'}:\n{tail}"
        done.write_text(json.dumps(s3fs_requirements()))
        return python, ""


def s3fs_env(endpoint: str) -> dict[str, str]:
    """Env for a subprocess in the s3fs virtualenv: fake credentials, ``trackers`` on the path."""
    env = aws_test_env()
    env = {k: v for k, v in env.items() if not k.startswith("TORCHX_")}
    env["PYTHONPATH"] = str(REPO)
    env["S3_ENDPOINT"] = endpoint
    return env


@contextlib.contextmanager
def moto(log_dir: Path | None = None) -> Iterator[MotoServer]:
    """A moto server for the duration of the block."""
    with tempfile.TemporaryDirectory(prefix="moto-") as tmp:
        server = start_moto_server(log_dir or Path(tmp))
        try:
            yield server
        finally:
            server.stop()
