"""The HTTP app of ``torchx tracker ui`` (Starlette): four pages and a read-only JSON API.

Pages are fixed HTML shells (:func:`page_html`: a title and the page's scripts, no store value)
whose scripts fetch the JSON API and build the DOM with ``textContent``, so no store value is
ever parsed as HTML and none is embedded in a page.
Every route answers GET (and HEAD) only; anything else gets 405. Every response carries a
Content-Security-Policy that allows only this origin's own scripts (no inline script, no
``eval``), so even markup that slipped through could not run. The Host header must name the
address the server is bound to, which stops DNS-rebinding pages from reading a loopback server.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from functools import partial
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from torchx.tracker.api import TrackerBase

from launcher_plugin.cli.render import to_jsonable
from launcher_plugin.ui.data import (
    compare_metadata,
    damaged_for,
    describe_error,
    guarded,
    has_run,
    lineage_graph,
    make_read_only,
    run_detail,
)
from launcher_plugin.ui.index import STATUS_FILTERS, RunIndex, RunsQuery, read_gate
from launcher_plugin.ui.series import DEFAULT_MAX_POINTS, chart_series, split_series
from trackers.api import LineageTracker
from trackers.jsonsafe import text_of
from trackers.redact import redact
from trackers.types import MetricPoint

__all__ = ["STATIC_DIR", "create_app", "host_allowed"]

#: The pages, styles, scripts and vendored libraries (package data).
STATIC_DIR = Path(__file__).resolve().parent / "static"
_CHARTS = ("vendor/uPlot.min.css", "vendor/uPlot.iife.min.js")
#: path -> (title, the page's script, vendored files it needs)
PAGES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "/": ("Runs", "runs.js", ()),
    "/run": ("Run", "run.js", _CHARTS),
    "/lineage": ("Lineage", "lineage.js", ("vendor/dagre.min.js",)),
    "/compare": ("Compare", "compare.js", _CHARTS),
}
MAX_COMPARE = 12
MAX_DEPTH = 50

SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def host_allowed(host_header: str, bound: str) -> bool:
    """Whether a request's Host names the server: a loopback name when bound to loopback."""
    name = host_header.strip()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else ""
    else:
        name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
    if not _is_loopback(bound):
        return True  # bound to an address others reach: the user chose to publish it
    return name.lower() in LOOPBACK_NAMES or name == bound


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Guard:
    """ASGI middleware: refuse a foreign Host, add the security headers to every response."""

    def __init__(self, app: ASGIApp, bound: str) -> None:
        self.app = app
        self.bound = bound

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if not host_allowed(host, self.bound):
            response = PlainTextResponse("unknown Host", status_code=421)
            await response(scope, receive, _with_headers(send))
            return
        await self.app(scope, receive, _with_headers(send))


def _with_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
        await send(message)

    return sending


def _json(data: object, status_code: int = 200) -> Response:
    body = json.dumps(to_jsonable(data), ensure_ascii=False, allow_nan=False)
    return Response(body, status_code=status_code, media_type="application/json")


def _bad_request(e: Exception) -> Response:
    return _json({"error": text_of(str(e))}, 400)


def _int(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a whole number") from None


def _run_id(request: Request) -> str:
    run_id = request.query_params.get("id")
    if not run_id:
        raise ValueError("id: the run id is missing")
    return run_id


class Api:
    """The JSON endpoints over one tracker; every read is made under :attr:`gate` (a lock only
    for a tracker that is not ours, see :func:`~launcher_plugin.ui.index.read_gate`)."""

    def __init__(self, tracker: TrackerBase, index: RunIndex) -> None:
        self.tracker = tracker
        self.index = index
        self.gate = index.gate

    def store(self, request: Request) -> Response:
        return _json(
            {
                "store": redact(text_of(repr(self.tracker))),
                "lineage": isinstance(self.tracker, LineageTracker),
                "index": self.index.progress(),
                "statuses": list(STATUS_FILTERS),
            }
        )

    def runs(self, request: Request) -> Response:
        q = request.query_params
        try:
            query = RunsQuery(
                offset=_int(request, "offset", 0) or 0,
                limit=50 if (limit := _int(request, "limit", None)) is None else limit,
                sort=q.get("sort") or "start_time",
                descending=q.get("order", "desc") != "asc",
                statuses=frozenset(s for s in q.getlist("status") if s),
                text=q.get("q", ""),
            )
        except ValueError as e:
            return _bad_request(e)
        return _json(self.index.page(query))

    def run(self, request: Request) -> Response:
        try:
            run_id = _run_id(request)
        except ValueError as e:
            return _bad_request(e)
        with self.gate:
            detail = run_detail(self.tracker, run_id)
        return _json(detail)

    def _points(self, run_id: str, name: str | None) -> dict[str, Any]:
        errors: dict[str, str] = {}
        with self.gate:
            exists = guarded(errors, "run", lambda: has_run(self.tracker, run_id), False)
            points: list[MetricPoint] = []
            if exists and isinstance(self.tracker, LineageTracker):
                tracker = self.tracker
                points = guarded(errors, "metrics", lambda: tracker.metrics(run_id, name), [])
            damaged = damaged_for(self.tracker, run_id)
        return {"exists": exists, "points": points, "errors": errors, "damaged": damaged}

    def metrics(self, request: Request) -> Response:
        """Every metric of a run as chart series, each downsampled to ``points``."""
        try:
            run_id = _run_id(request)
            max_points = _int(request, "points", DEFAULT_MAX_POINTS) or DEFAULT_MAX_POINTS
        except ValueError as e:
            return _bad_request(e)
        read = self._points(run_id, request.query_params.get("name") or None)
        metrics = [
            {"name": text_of(name), "series": [chart_series(s, max_points) for s in series]}
            for name, series in split_series(read["points"]).items()
        ]
        return _json(
            {
                "run_id": text_of(run_id),
                "exists": read["exists"],
                "metrics": metrics,
                "errors": read["errors"],
                "damaged": read["damaged"],
            }
        )

    def export(self, request: Request) -> Response:
        """Every point of a run (or of one metric), as logged: JSON or CSV."""
        try:
            run_id = _run_id(request)
            fmt = request.query_params.get("format", "json")
            if fmt not in ("json", "csv"):
                raise ValueError(f"format={fmt!r}: expected json or csv")
        except ValueError as e:
            return _bad_request(e)
        read = self._points(run_id, request.query_params.get("name") or None)
        if not read["exists"]:
            return _json({"error": "run not found", "run_id": text_of(run_id)}, 404)
        points: list[MetricPoint] = read["points"]
        if fmt == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(["name", "step", "value", "time", "rank"])
            writer.writerows(
                [
                    text_of(p.name),
                    "" if p.step is None else p.step,
                    repr(p.value),
                    p.timestamp,
                    "" if p.rank is None else p.rank,
                ]
                for p in points
            )
            return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8")
        return _json(
            {
                "run_id": text_of(run_id),
                "points": [
                    {
                        "name": p.name,
                        "step": p.step,
                        "value": p.value,
                        "time": p.timestamp,
                        "rank": p.rank,
                    }
                    for p in points
                ],
                "errors": read["errors"],
                "damaged": read["damaged"],
            }
        )

    def lineage(self, request: Request) -> Response:
        try:
            run_id = _run_id(request)
            depth = _int(request, "depth", 3)
            if depth is not None and not 0 <= depth <= MAX_DEPTH:
                raise ValueError(f"depth must be 0..{MAX_DEPTH}")
        except ValueError as e:
            return _bad_request(e)
        with self.gate:
            graph = lineage_graph(self.tracker, run_id, depth)
        return _json(graph)

    def compare(self, request: Request) -> Response:
        """Several runs side by side: their metadata diff and every metric overlaid."""
        ids = list(dict.fromkeys(i for i in request.query_params.getlist("id") if i))
        if not ids or len(ids) > MAX_COMPARE:
            return _bad_request(ValueError(f"id: give 1 to {MAX_COMPARE} runs"))
        max_points = DEFAULT_MAX_POINTS // 2
        runs: list[dict[str, object]] = []
        metadata: dict[str, dict[str, object]] = {}
        metrics: dict[str, list[dict[str, object]]] = {}
        for run_id in ids:
            errors: dict[str, str] = {}
            with self.gate:
                exists = guarded(errors, "run", partial(has_run, self.tracker, run_id), False)
                md: dict[str, object] = {}
                if exists:
                    md = guarded(errors, "metadata", partial(_metadata, self.tracker, run_id), {})
            metadata[run_id] = md
            read = self._points(run_id, None)
            errors.update(read["errors"])
            for name, series in split_series(read["points"]).items():
                metrics.setdefault(name, []).extend(
                    chart_series(s, max_points, run_id=run_id) for s in series
                )
            row = self.index.row(run_id) if exists else None
            runs.append(
                {
                    "run_id": text_of(run_id),
                    "exists": exists,
                    "status": None if row is None else row.status,
                    "errors": errors,
                    "damaged": read["damaged"],
                }
            )
        return _json(
            {
                "runs": runs,
                "metadata": compare_metadata(metadata),
                "metrics": [
                    {"name": text_of(n), "series": series} for n, series in metrics.items()
                ],
            }
        )


def _metadata(tracker: TrackerBase, run_id: str) -> dict[str, object]:
    return dict(tracker.metadata(run_id))


def page_html(title: str, script: str, vendored: tuple[str, ...]) -> str:
    """The HTML shell of a page: constant text only, the data comes from the JSON API."""
    assets = [f'<link rel="stylesheet" href="/static/{v}">' for v in vendored if v.endswith(".css")]
    assets += [f'<script src="/static/{v}" defer></script>' for v in vendored if v.endswith(".js")]
    assets += [f'<script src="/static/{f}" defer></script>' for f in ("common.js", script)]
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{title} · torchx tracker</title>",
            '<link rel="icon" href="data:,">',
            '<link rel="stylesheet" href="/static/app.css">',
            *assets,
            "</head>",
            f'<body data-page="{script.removesuffix(".js")}">',
            '<header class="top"><a class="brand" href="/">torchx tracker</a>',
            '<nav><a href="/">Runs</a></nav><span id="store" class="store"></span></header>',
            '<main id="main"><p class="loading">Loading…</p></main>',
            "</body>",
            "</html>",
        ]
    )


def _page(title: str, script: str, vendored: tuple[str, ...]) -> Callable[[Request], Response]:
    body = page_html(title, script, vendored)

    def page(request: Request) -> Response:
        return Response(body, media_type="text/html; charset=utf-8")

    return page


def create_app(tracker: TrackerBase, *, bound_host: str = "127.0.0.1") -> tuple[ASGIApp, RunIndex]:
    """The app over ``tracker`` and its runs index (not started: call ``index.start()``).

    ``tracker`` is made read-only first (:func:`~launcher_plugin.ui.data.make_read_only`): the
    view never writes to the store, not even a cache.
    """
    make_read_only(tracker)
    index = RunIndex(tracker, read_gate(tracker))
    api = Api(tracker, index)
    routes: list[BaseRoute] = [
        Route(path, _page(*spec), methods=["GET"]) for path, spec in PAGES.items()
    ]
    routes += [
        Route("/api/store", api.store, methods=["GET"]),
        Route("/api/runs", api.runs, methods=["GET"]),
        Route("/api/run", api.run, methods=["GET"]),
        Route("/api/run/metrics", api.metrics, methods=["GET"]),
        Route("/api/run/metrics/export", api.export, methods=["GET"]),
        Route("/api/lineage", api.lineage, methods=["GET"]),
        Route("/api/compare", api.compare, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]

    async def server_error(request: Request, exc: Exception) -> Response:
        # Reached only by a bug here (store reads are guarded part by part): say what it was.
        return _json({"error": describe_error(exc)}, 500)

    app = Starlette(routes=routes, exception_handlers={Exception: server_error})
    return Guard(app, bound_host), index
