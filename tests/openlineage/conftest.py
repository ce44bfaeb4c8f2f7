"""Fixtures for the OpenLineage tests: a real OpenLineage HTTP endpoint on 127.0.0.1.

:class:`LineageEndpoint` runs ``ol_server.py`` in its own process group (``start_new_session``)
and kills that group at teardown; ``events()`` is what it received, in order, one dict per
``POST /api/v1/lineage``. It can be started later on a port chosen in advance, so a job can be
pointed at an endpoint that is down and the endpoint started afterwards on the same address.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SERVER = Path(__file__).with_name("ol_server.py")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LineageEndpoint:
    """One OpenLineage endpoint (``ol_server.py``) on 127.0.0.1:``port``."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.events_file = directory / "received.jsonl"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        ready = self.directory / "ready"
        ready.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, str(SERVER), str(self.port), str(self.events_file), str(ready)],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=(self.directory / "server.log").open("ab"),
        )
        deadline = time.monotonic() + 20
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.directory / "server.log").read_text(errors="replace")
                raise RuntimeError(f"ol_server did not start on {self.port}:\n{log}")
            time.sleep(0.05)
        self.port = int(ready.read_text())

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)
        self.process = None

    def events(self) -> list[dict[str, Any]]:
        if not self.events_file.exists():
            return []
        lines = self.events_file.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture
def make_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``make_endpoint(port=0, start=True)`` -> a :class:`LineageEndpoint`, stopped at teardown."""
    made: list[LineageEndpoint] = []

    def make(port: int = 0, start: bool = True) -> LineageEndpoint:
        endpoint = LineageEndpoint(tmp_path_factory.mktemp("ol-endpoint"), port or free_port())
        made.append(endpoint)
        if start:
            endpoint.start()
        return endpoint

    yield make
    for endpoint in made:
        endpoint.stop()
