"""A loopback HTTP proxy that makes some S3 requests fail, for the fault tests.

It sits between boto3 and moto (boto3's ``endpoint_url`` points at the proxy) and, for a
fraction of requests, either fails them before they reach moto or forwards them and then loses
the answer - so a write that was applied is retried:

``500-before``, ``503-before``, ``slowdown-before``
    an S3 error response (``InternalError``, ``ServiceUnavailable``, ``SlowDown``) instead of
    forwarding;
``drop-before``
    the connection is closed without an answer, nothing forwarded;
``500-after``, ``drop-after``
    forwarded to moto (the write is applied), then a 500 or a closed connection instead of
    moto's answer;
``truncate-after``
    (GET only) moto's status and headers, then half the body and a closed connection.

With ``methods`` only requests of those HTTP methods can fail (``("PUT",)``: a store that
reads but takes no writes).

With ``latency`` every forwarded request waits that long first (a stand-in for the round trip
to a remote store, used by ``benchmarks/bench_s3.py --latency-ms``). ``most_in_flight`` is
the most requests it held or forwarded at one time (a client sending requests side by side).

Which requests fail is deterministic: a request's fate is a hash of the seed, its method and
path, and how many times that same request was seen - independent of thread scheduling. At
most ``max_consecutive`` attempts of one request fail in a row, so a client that retries more
often than that always gets through.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import http.client
import socket
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BEFORE = ("500-before", "503-before", "slowdown-before", "drop-before")
AFTER = ("500-after", "drop-after", "truncate-after")
ALL_FAULTS = BEFORE + AFTER

_ERRORS = {
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "503": (503, "ServiceUnavailable", "Please reduce your request rate."),
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection"}


class FaultProxy:
    """Forward to ``upstream_port`` on 127.0.0.1, failing about ``rate`` of the requests."""

    def __init__(
        self,
        upstream_port: int,
        *,
        rate: float = 0.2,
        seed: int = 1234,
        faults: Sequence[str] = ALL_FAULTS,
        max_consecutive: int = 2,
        reject_conditional_writes: bool = False,
        latency: float = 0.0,
        methods: Sequence[str] | None = None,
    ) -> None:
        self.upstream_port = upstream_port
        self.rate = rate
        self.seed = seed
        self.faults = tuple(faults)
        self.max_consecutive = max_consecutive
        self.reject_conditional_writes = reject_conditional_writes
        self.latency = latency
        self.methods = None if methods is None else frozenset(methods)
        self.injected: collections.Counter[str] = collections.Counter()
        self.injected_by_method: collections.Counter[tuple[str, str]] = collections.Counter()
        self.requests = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self._seen: collections.Counter[tuple[str, str]] = collections.Counter()
        self._streak: collections.Counter[tuple[str, str]] = collections.Counter()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def decide(self, method: str, path: str) -> str | None:
        """The fault for this attempt of ``method path``, or ``None`` to let it through."""
        request = (method, path)
        with self._lock:
            self.requests += 1
            nth = self._seen[request]
            self._seen[request] += 1
            if self.methods is not None and method not in self.methods:
                return None
            digest = hashlib.sha256(f"{self.seed}|{method}|{path}|{nth}".encode()).digest()
            draw = int.from_bytes(digest[:4], "big") / 2**32
            if draw >= self.rate or self._streak[request] >= self.max_consecutive:
                self._streak[request] = 0
                return None
            fault = self.faults[digest[4] % len(self.faults)]
            if fault == "truncate-after" and method != "GET":
                fault = "drop-after"
            self._streak[request] += 1
            self.injected[fault] += 1
            self.injected_by_method[(method, fault)] += 1
            return fault


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: FaultProxy

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # connections we drop on purpose end in errors; nothing to report


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and "Expect: 100-continue" is answered
    server: _Server
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm and the
        # peer's delayed ACK stall every response by ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        if self._upstream is not None:
            self._upstream.close()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        if body or self.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        for attempt in range(2):
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(
                    "127.0.0.1", self.server.proxy.upstream_port, timeout=60
                )
                self._upstream.connect()
                assert self._upstream.sock is not None
                self._upstream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                self._upstream.request(self.command, self.path, body=body, headers=headers)
                response = self._upstream.getresponse()
                data = response.read()
                return response.status, response.getheaders(), data
            except (OSError, http.client.HTTPException):
                self._upstream.close()
                self._upstream = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _error(self, kind: str) -> None:
        status, code, message = _ERRORS[kind]
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>injected</RequestId></Error>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response_only(status)
        for key, value in headers:
            if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                self.send_header(key, value)
        if self.command == "HEAD":
            length = next((v for k, v in headers if k.lower() == "content-length"), "0")
            self.send_header("Content-Length", length)
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _handle(self) -> None:
        proxy = self.server.proxy
        body = self._read_body()
        conditional = "If-Match" in self.headers or "If-None-Match" in self.headers
        if proxy.reject_conditional_writes and self.command == "PUT" and conditional:
            self._not_implemented()
            return
        fault = proxy.decide(self.command, self.path)
        if fault in ("500-before", "503-before", "slowdown-before"):
            self._error(fault.split("-")[0])
            return
        if fault == "drop-before":
            self._drop()
            return
        with proxy._lock:
            proxy.in_flight += 1
            proxy.most_in_flight = max(proxy.most_in_flight, proxy.in_flight)
        try:
            if proxy.latency:
                time.sleep(proxy.latency)
            status, headers, data = self._forward(body)
        finally:
            with proxy._lock:
                proxy.in_flight -= 1
        if fault == "500-after":
            self._error("500")
        elif fault == "drop-after":
            self._drop()
        elif fault == "truncate-after" and len(data) <= 1:
            self._drop()
        elif fault == "truncate-after":
            self.send_response_only(status)
            for key, value in headers:
                if key.lower() not in _HOP_BY_HOP:
                    self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self._drop()
        else:
            self._reply(status, headers, data)

    def _not_implemented(self) -> None:
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NotImplemented</Code>'
            b"<Message>A header you provided implies functionality that is not implemented"
            b"</Message></Error>"
        )
        self.send_response(501)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


def serve(upstream_port: int, latency: float) -> None:
    """Run a proxy without faults until stdin closes; print its port first (for a subprocess)."""
    import sys

    with FaultProxy(upstream_port, rate=0.0, latency=latency) as proxy:
        print(proxy.port, flush=True)
        sys.stdin.read()
