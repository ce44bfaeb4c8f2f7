"""A small OpenLineage HTTP endpoint for the tests: ``POST /api/v1/lineage`` as Marquez takes it.

Run as ``python ol_server.py PORT EVENTS_FILE READY_FILE`` (``PORT`` 0 picks a free one). It
listens on 127.0.0.1 only, answers ``201 Created`` to a JSON object posted to
``/api/v1/lineage`` (gzip bodies too), ``400`` to a body that is not one, ``404`` elsewhere, and
appends each accepted event as one line to EVENTS_FILE (flushed before the answer), so a test
reads exactly what arrived, in order. When it listens it writes its port to READY_FILE.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LINEAGE_PATH = "/api/v1/lineage"
_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    events_file: Path

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        if self.path.rstrip("/") != LINEAGE_PATH:
            self._answer(404, {"error": f"no endpoint {self.path}"})
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        try:
            event = json.loads(body)
        except ValueError as e:
            self._answer(400, {"error": f"not JSON: {e}"})
            return
        if not isinstance(event, dict):
            self._answer(400, {"error": "not a JSON object"})
            return
        with _lock, self.events_file.open("a", encoding="utf-8") as f:
            f.write(json.dumps(event, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._answer(201, {})

    def _answer(self, code: int, payload: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        sys.stderr.write("ol_server: " + format % args + "\n")


def main() -> None:
    port, events, ready = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    Handler.events_file = events
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    tmp = ready.with_suffix(".tmp")
    tmp.write_text(str(server.server_address[1]))
    tmp.rename(ready)
    server.serve_forever()


if __name__ == "__main__":
    main()
