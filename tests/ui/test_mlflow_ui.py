"""The web view over a real MLflow tracking server, every page kind: runs table, a run page with
its chart, the metrics JSON and export, the lineage graph and compare, in Chromium. MLflow keeps
only the last status: the history shows that one, with the run's end time."""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.mlflow.server import MlflowServer, running_mlflow_server
from tests.ui.conftest import UiServer, Watched, screenshot, ui_server
from tests.ui.stores import write_curves
from trackers.registry import create_tracker

pytestmark = pytest.mark.mlflow

PARENT = "local_cwd://torchx/prepare-7"
CHILD = "local_cwd://torchx/train-7"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with running_mlflow_server(tmp_path_factory.mktemp("ui-mlflow")) as server:
        yield server


@pytest.fixture(scope="module")
def config(mlflow_server: MlflowServer) -> str:
    config = json.dumps({"uri": mlflow_server.uri, "experiment": f"ui-{uuid.uuid4().hex[:8]}"})
    tracker = create_tracker("mlflow", config, origin="test")
    now = dt.datetime.now(dt.timezone.utc)
    for run_id, hours_ago in ((PARENT, 2), (CHILD, 1)):
        when = (now - dt.timedelta(hours=hours_ago)).isoformat(timespec="seconds")
        tracker.add_metadata(
            run_id,
            **{"launch.time": when, "launch.component": "lineage.python", "launch.user": "carol"},
        )
        tracker.set_status(run_id, "RUNNING")
    tracker.add_source(CHILD, PARENT, "dataset")
    tracker.add_metadata(CHILD, lr=0.01)
    write_curves(tracker, CHILD, 200, ranks=2)
    tracker.set_status(PARENT, "SUCCEEDED")
    tracker.set_status(CHILD, "FAILED")
    tracker.close()
    return config


@pytest.fixture(scope="module")
def server(config: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    cwd = tmp_path_factory.mktemp("ui-mlflow-cwd")
    with ui_server(cwd, f"mlflow={config}") as running:
        yield running


def test_runs_run_chart_and_lineage_over_mlflow(
    server: UiServer, watched: Watched, tmp_path: Path
) -> None:
    page = watched.page
    watched.goto_loaded(server.url)
    rows = page.locator("#runs tbody tr")
    assert [rows.nth(i).get_attribute("data-run-id") for i in range(rows.count())] == [
        CHILD,
        PARENT,
    ]
    assert rows.nth(0).locator("td").nth(2).inner_text() == "FAILED"
    assert rows.nth(1).locator("td").nth(2).inner_text() == "SUCCEEDED"
    assert rows.nth(0).locator("td").nth(7).inner_text() == "carol"
    assert rows.nth(0).locator("td").nth(8).inner_text() == PARENT

    rows.nth(0).locator("a.run-link").first.click()
    page.wait_for_url(f"**/run?id={quote(CHILD, safe='')}")
    page.wait_for_selector(".chart[data-drawn=true]")
    chart = page.locator(".chart")
    assert chart.count() == 1 and chart.get_attribute("data-series-count") == "2"
    assert chart.locator("canvas").count() == 1
    labels = chart.locator(".u-legend .u-series .u-label").all_inner_texts()
    assert labels == ["step", "rank 0", "rank 1"]
    assert "400 points" in chart.locator("figcaption").inner_text()
    history = page.locator("table.history tbody tr")
    # every status from the backend's journal, each with the time of its write
    assert history.count() == 2
    assert [history.nth(i).locator("td").first.inner_text() for i in range(2)] == [
        "RUNNING",
        "FAILED",
    ]
    assert all(history.nth(i).locator("td").nth(1).inner_text().startswith("20") for i in (0, 1))
    assert "lr" in page.locator("#metadata").inner_text()
    screenshot(page, "mlflow-run", tmp_path)

    page.click("#lineage-link")
    page.wait_for_selector("body[data-loaded=true]")
    assert page.locator("g.node").count() == 2
    assert page.locator(".edge-label").all_text_contents() == ["dataset"]
    page.locator(f'g.node[data-run-id="{PARENT}"]').click()
    page.wait_for_url(f"**/run?id={quote(PARENT, safe='')}")

    watched.goto_loaded(
        server.url + f"compare?id={quote(CHILD, safe='')}&id={quote(PARENT, safe='')}"
    )
    page.wait_for_selector(".chart[data-drawn=true]")
    assert page.locator(".compared li").count() == 2
    diff = page.locator("#metadata-diff tbody tr th").all_inner_texts()
    assert {"launch.time", "lr"} <= set(diff)  # keys whose values differ (or are missing)
    assert page.locator(".chart").get_attribute("data-series-count") == "2"
    assert watched.errors == [] and watched.dialogs == []


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=60) as response:
        assert response.status == 200
        body: dict[str, object] = json.loads(response.read())
    return body


def test_metrics_json_export_and_rows_over_mlflow(server: UiServer) -> None:
    quoted = quote(CHILD, safe="")
    metrics = get_json(server.url + f"api/run/metrics?id={quoted}")
    assert metrics["exists"] is True and metrics["errors"] == {}
    (loss,) = metrics["metrics"]  # type: ignore[misc]
    assert loss["name"] == "loss"
    assert [(s["label"], s["points"]) for s in loss["series"]] == [("rank 0", 200), ("rank 1", 200)]
    exported = get_json(server.url + f"api/run/metrics/export?id={quoted}&name=loss")
    points = exported["points"]
    assert isinstance(points, list) and len(points) == 400
    assert {(p["rank"], p["step"]) for p in points} == {(r, s) for r in (0, 1) for s in range(200)}
    detail = get_json(server.url + f"api/run?id={quoted}")
    assert detail["status"] == "FAILED" and detail["errors"] == {}
    statuses = [h["status"] for h in detail["status_history"]]  # type: ignore[attr-defined]
    assert statuses == ["RUNNING", "FAILED"]
    deadline = time.monotonic() + 60
    while not get_json(server.url + "api/store")["index"]["ready"]:  # type: ignore[index]
        assert time.monotonic() < deadline
        time.sleep(0.3)
    rows = get_json(server.url + "api/runs?sort=duration")["rows"]
    # both ended moments apart, the parent launched an hour earlier: it ran an hour longer
    assert isinstance(rows, list) and [r["run_id"] for r in rows] == [PARENT, CHILD]
    assert rows[0]["duration"] - rows[1]["duration"] == pytest.approx(3600, abs=60)
    assert rows[1]["parents"] == [PARENT] and rows[1]["user"] == "carol"
