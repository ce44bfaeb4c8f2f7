"""A TCP server on 127.0.0.1 that accepts every connection and never answers.

Whatever a client sends is read and thrown away; no byte is ever sent back and no connection is
closed from this side (only when the client closes its end). A client that connects therefore
succeeds at once and then waits for an answer until its own read timeout, which is exactly what
a hung tracking server (MLflow, an S3 endpoint) looks like from the job.

It runs in a process of its own, so nothing in the process under test (the GIL, a lock, a
blocked thread) can make it answer late or early:

* as a script, ``python tests/faults/blackhole.py`` (or ``python -m tests.faults.blackhole``
  from the repository root): binds a free port (``--port``, default 0), prints the port on
  stdout and serves until killed;
* from Python, :func:`blackhole` starts that script in a new session (its own process group)
  and yields the port; at the end it kills the whole group and waits for it.

It only ever listens on the loopback address. Standard library only, so it can run by path.
"""

from __future__ import annotations

import argparse
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOST = "127.0.0.1"
_SCRIPT = Path(__file__).resolve()


def serve(port: int = 0, *, backlog: int = 512) -> None:
    """Listen on ``127.0.0.1:port``, print the bound port on stdout, then never answer."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, port))
    listener.listen(backlog)
    listener.setblocking(False)
    print(listener.getsockname()[1], flush=True)

    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is listener:
                try:
                    conn, _ = listener.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                conn.setblocking(False)
                selector.register(conn, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(65536)  # read and discard
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:  # the client closed its end (or reset it): let the socket go
                selector.unregister(sock)
                sock.close()


@contextmanager
def blackhole(startup_timeout: float = 10.0) -> Iterator[int]:
    """Run the blackhole in its own process group; yield its port; kill the group at the end."""
    proc = subprocess.Popen(
        [sys.executable, str(_SCRIPT)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        port = _read_port(proc, startup_timeout)
        yield port
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def _read_port(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """The port the child prints first; raises if it exits or stays silent for ``timeout`` s."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise RuntimeError(f"blackhole did not report its port within {timeout} s")
            chunk = os.read(proc.stdout.fileno(), 64)
            if not chunk:
                raise RuntimeError(f"blackhole exited before reporting its port ({proc.wait()})")
            line += chunk
    return int(line.decode().strip())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    args = parser.parse_args(argv)
    try:
        serve(args.port)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
