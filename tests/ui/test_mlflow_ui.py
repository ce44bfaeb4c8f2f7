"""The web view over a real MLflow tracking server: runs table, a run page with its chart, and
the lineage graph, in Chromium. MLflow keeps only the last status, so the run page says so."""

from __future__ import annotations

import json
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
    for run_id, when in (
        (PARENT, "2026-02-01T10:00:00+00:00"),
        (CHILD, "2026-02-01T11:00:00+00:00"),
    ):
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
    assert "keeps only the last status" in page.locator("main").inner_text()
    assert "lr" in page.locator("#metadata").inner_text()
    screenshot(page, "mlflow-run", tmp_path)

    page.click("#lineage-link")
    page.wait_for_selector("body[data-loaded=true]")
    assert page.locator("g.node").count() == 2
    assert page.locator(".edge-label").all_text_contents() == ["dataset"]
    page.locator(f'g.node[data-run-id="{PARENT}"]').click()
    page.wait_for_url(f"**/run?id={quote(PARENT, safe='')}")
    assert watched.errors == [] and watched.dialogs == []
