"""Run the web view with uvicorn on a socket bound here (so ``--port 0`` can print its port)."""

from __future__ import annotations

import socket
import sys
from typing import TextIO

from torchx.tracker.api import TrackerBase

from trackers.api import capabilities
from trackers.jsonsafe import text_of
from trackers.redact import redact

__all__ = ["UI_INSTALL_HINT", "bind", "serve", "url_of"]

UI_INSTALL_HINT = "torchx tracker ui needs the ui extra: pip install 'torchx-lineage[ui]'"


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (``port`` 0: a free one) and listening, so a client
    that reads the printed URL can connect at once (it waits in the backlog until uvicorn runs)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://HOST:PORT/`` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(tracker: TrackerBase, host: str, port: int, out: TextIO = sys.stdout) -> None:
    """Serve the view of ``tracker`` on ``host:port`` until Ctrl-C (or SIGTERM)."""
    try:
        import uvicorn

        from launcher_plugin.ui.app import create_app
    except ImportError as e:
        raise ImportError(f"{UI_INSTALL_HINT} ({e})") from e
    sock = bind(host, port)
    app, index = create_app(tracker, bound_host=sock.getsockname()[0])
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    print(
        f"torchx tracker ui: {redact(text_of(repr(tracker)))} at {url_of(sock)} "
        "(read-only; Ctrl-C stops it)",
        file=out,
        flush=True,
    )
    index.start()
    try:
        server.run(sockets=[sock])
    finally:
        index.stop()
        sock.close()
        capabilities(tracker).close()
