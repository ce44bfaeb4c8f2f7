"""What the store holds never runs as script, never breaks a page, never reaches past GET.

One local store, one real server: a run whose id, metadata, artifact, metric, summary and link
names hold markup and quotes (checked in Chromium), a run with damaged records, a run with
100,000 points per rank (downsampled for the chart, whole in the export).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.ui.conftest import UiServer, Watched, screenshot, ui_server
from tests.ui.stores import (
    HOSTILE,
    HOSTILE_PARENT,
    HOSTILE_RUN,
    run_dir,
    write_curves,
    write_hostile_runs,
)
from trackers.backends.fsspec import create_tracker

DAMAGED = "local_cwd://torchx/damaged-1"
BIG = "local_cwd://torchx/big-1"
BAD = "99999999999999999999-00000000000000000000000000000000"
POINTS = 100_000


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ui-safety") / "store"
    t = create_tracker(str(root))
    write_hostile_runs(t)
    t.add_metadata(DAMAGED, lr=0.5)
    t.add_artifact(DAMAGED, "model", "/m.pt")
    t.set_status(DAMAGED, "SUCCEEDED")
    (run_dir(root, DAMAGED) / "metadata" / BAD).write_bytes(b'{"metadata": {"lr": 0.')
    (run_dir(root, DAMAGED) / "status" / BAD).write_bytes(b"")
    write_curves(t, BIG, POINTS, ranks=2)
    t.set_status(BIG, "RUNNING")
    return root


@pytest.fixture(scope="module")
def server(store: Path) -> Iterator[UiServer]:
    with ui_server(store.parent, f"fsspec={store}") as running:
        yield running


def fetch(url: str, method: str = "GET", host: str | None = None) -> tuple[int, Message, bytes]:
    """Status, headers (case-insensitive) and body of one request."""
    request = urllib.request.Request(url, method=method)
    if host is not None:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def api(server: UiServer, path: str) -> dict[str, object]:
    status, headers, body = fetch(server.url + path)
    assert status == 200, (path, status, body[:500])
    assert headers["Content-Type"].startswith("application/json")
    loaded: dict[str, object] = json.loads(body)
    return loaded


def test_markup_in_every_store_value_renders_as_text(
    server: UiServer, watched: Watched, tmp_path: Path
) -> None:
    page = watched.page
    pwned = "() => [window.__pwned, document.querySelectorAll('img').length]"

    watched.goto_loaded(server.url + "?q=" + quote("x<script>"))
    row = page.locator("#runs tbody tr")
    assert row.count() == 1 and row.get_attribute("data-run-id") == HOSTILE_RUN
    assert row.locator("a.run-link").first.inner_text() == HOSTILE_RUN
    assert row.locator("td").nth(6).inner_text() == HOSTILE  # component
    assert page.evaluate(pwned) == [None, 0]

    watched.goto_loaded(server.url + "run?id=" + quote(HOSTILE_RUN, safe=""))
    page.wait_for_selector(".chart[data-drawn=true]")
    assert page.locator("h1.run-id").inner_text() == HOSTILE_RUN
    assert page.locator(".artifact-name").all_inner_texts() == [HOSTILE]
    assert page.locator(".chart").get_attribute("data-metric") == HOSTILE
    assert page.locator(".chart figcaption b").inner_text() == HOSTILE
    keys = page.locator("#metadata th").all_inner_texts()
    assert HOSTILE in keys and "note" in keys
    assert HOSTILE in page.locator("#metadata").inner_text()
    source = page.locator(".links a.run-link").first
    assert source.inner_text() == HOSTILE_PARENT
    assert source.get_attribute("href") == "/run?id=" + quote(HOSTILE_PARENT, safe="!*'()")
    assert page.locator(".links .artifact").first.inner_text().strip() == f"[{HOSTILE}]"
    assert page.locator("script").count() == 3  # uPlot, common.js, run.js: none injected
    assert page.evaluate(pwned) == [None, 0]
    screenshot(page, "xss-run", tmp_path)

    watched.goto_loaded(server.url + "lineage?id=" + quote(HOSTILE_RUN, safe=""))
    assert sorted(page.locator("g.node").evaluate_all("ns => ns.map(n => n.dataset.runId)")) == (
        sorted([HOSTILE_RUN, HOSTILE_PARENT])
    )
    titles = page.locator("g.edge title").all_text_contents()
    assert titles == [f"{HOSTILE_PARENT} → {HOSTILE_RUN} [{HOSTILE}]"]
    assert page.evaluate(pwned) == [None, 0]

    watched.goto_loaded(
        server.url + f"compare?id={quote(HOSTILE_RUN, safe='')}&id={quote(HOSTILE_PARENT, safe='')}"
    )
    assert HOSTILE in page.locator("#metadata-diff").inner_text()
    assert page.evaluate(pwned) == [None, 0]
    assert watched.dialogs == []
    assert [e for e in watched.errors if "Content Security Policy" not in e] == []


def test_damaged_records_show_on_the_page_with_status_200(
    server: UiServer, watched: Watched, store: Path, tmp_path: Path
) -> None:
    page = watched.page
    response = page.goto(server.url + "run?id=" + quote(DAMAGED, safe=""))
    assert response is not None and response.status == 200
    page.wait_for_selector("body[data-loaded=true]")
    problems = page.locator(".problems").first.inner_text()
    bad = run_dir(store, DAMAGED)
    assert "damaged record" in problems
    assert str(bad / "metadata" / BAD) in problems and str(bad / "status" / BAD) in problems
    assert "lr" in page.locator("#metadata").inner_text()  # the good record is still shown
    assert page.locator(".artifact-name").all_inner_texts() == ["model"]
    detail = api(server, "api/run?id=" + quote(DAMAGED, safe=""))
    assert {d["path"] for d in detail["damaged"]} == {  # type: ignore[union-attr]
        str(bad / "metadata" / BAD),
        str(bad / "status" / BAD),
    }
    watched.goto_loaded(server.url + "?q=damaged")
    assert "damaged" in page.locator("#runs tbody tr .damaged").inner_text()
    screenshot(page, "damaged", tmp_path)

    response = page.goto(server.url + "run?id=" + quote("local_cwd://torchx/nope", safe=""))
    assert response is not None and response.status == 200
    page.wait_for_selector("body[data-loaded=true]")
    assert "not in the store" in page.locator(".problems").inner_text()
    assert watched.errors == [] and watched.dialogs == []


def test_100k_points_are_downsampled_for_the_chart_and_whole_in_the_export(
    server: UiServer,
) -> None:
    quoted = quote(BIG, safe="")
    metrics = api(server, f"api/run/metrics?id={quoted}")["metrics"]
    assert isinstance(metrics, list) and [m["name"] for m in metrics] == ["loss"]
    series = metrics[0]["series"]
    assert [(s["label"], s["points"], s["shown"]) for s in series] == [
        ("rank 0", POINTS, 2000),
        ("rank 1", POINTS, 2000),
    ]
    for s in series:
        assert s["x"][0] == 0 and s["x"][-1] == POINTS - 1 and s["x"] == sorted(s["x"])
        assert s["y"][0] == pytest.approx(1.0 + 0.01 * s["rank"])
    exported = api(server, f"api/run/metrics/export?id={quoted}&name=loss")["points"]
    assert isinstance(exported, list) and len(exported) == 2 * POINTS
    assert [p["step"] for p in exported[:3]] == [0, 1, 2] and exported[-1]["rank"] == 1
    status, headers, body = fetch(server.url + f"api/run/metrics/export?id={quoted}&format=csv")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    lines = body.decode().splitlines()
    assert lines[0] == "name,step,value,time,rank" and len(lines) == 2 * POINTS + 1


@pytest.mark.parametrize("path", ["", "run?id=x", "api/runs", "api/run?id=x", "static/app.css"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_only_get_is_answered(server: UiServer, path: str, method: str) -> None:
    status, headers, _ = fetch(server.url + path, method=method)
    assert status == 405, (method, path, status)
    assert "GET" in headers.get("Allow", "")


def test_security_headers_and_foreign_host_refused(server: UiServer) -> None:
    status, headers, body = fetch(server.url)
    assert status == 200 and b"<script" in body
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    status, _, _ = fetch(server.url + "api/runs", host="attacker.example:80")
    assert status == 421  # a DNS-rebinding page cannot read the loopback server
    status, _, _ = fetch(server.url + "api/runs", host="localhost")
    assert status == 200


def test_bad_queries_are_400_not_500(server: UiServer) -> None:
    for path in ("api/runs?sort=nope", "api/runs?limit=0", "api/run", "api/lineage?id=x&depth=-1"):
        status, _, body = fetch(server.url + path)
        assert status == 400, (path, status, body)
        assert "error" in json.loads(body)
