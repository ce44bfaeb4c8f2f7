"""What the S3 benchmarks share: the latency proxy, the TorchX-side subprocess and checks.

The moto server itself comes from ``tests/s3/support.py`` (``moto()``: 127.0.0.1, its own
process group, stopped by group), as the tests start it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


class CheckFailed(AssertionError):
    """A tracker returned something other than what was written."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


@contextlib.contextmanager
def latency_proxy(port: int, latency_ms: float) -> Iterator[str]:
    """The endpoint to use: the server itself, or a delaying proxy in its own process group
    (``tests/s3/faultproxy.py`` without faults, stopped when its stdin closes)."""
    if not latency_ms:
        yield f"http://127.0.0.1:{port}"
        return
    code = f"from tests.s3.faultproxy import serve; serve({port}, {latency_ms / 1000!r})"
    proxy = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        start_new_session=True,
    )
    try:
        assert proxy.stdout is not None
        yield f"http://127.0.0.1:{int(proxy.stdout.readline())}"
    finally:
        assert proxy.stdin is not None
        proxy.stdin.close()
        try:
            proxy.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proxy.pid, signal.SIGKILL)
            proxy.wait()


def run_torchx_side(
    python: Path | None, why: str, script: str, endpoint: str, request: dict[str, Any]
) -> dict[str, Any]:
    """Run ``script --torchx-side -`` in the s3fs virtualenv with ``request`` as JSON on its
    stdin (a list of 10,000 run ids is too long for a command line), and parse its JSON answer.

    s3fs pins an older botocore than the project's boto3, so TorchX's ``FsspecTracker`` over
    s3fs (and our fsspec backend over it) run there, with fake credentials for ``endpoint``.
    """
    from tests.s3.support import s3fs_env

    if python is None:
        raise RuntimeError(why)
    done = subprocess.run(
        [str(python), script, "--torchx-side", "-"],
        input=json.dumps(request),
        env=s3fs_env(endpoint),
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"TorchX side failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def side_request(value: str) -> dict[str, Any]:
    """The request a ``--torchx-side`` run was given: JSON, or ``-`` for JSON on stdin."""
    request: dict[str, Any] = json.loads(sys.stdin.read() if value == "-" else value)
    return request
