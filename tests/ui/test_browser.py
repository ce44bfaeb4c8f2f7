"""The four pages in a real headless Chromium, over the store a real pipeline wrote.

``examples/pipeline`` runs as three ``torchx run -s local_cwd`` jobs (prepare -> train ->
evaluate); train logs three metrics for 300 steps. Then, as a user would: runs table -> the
train run (charts drawn) -> its lineage graph (click a node, land on that run) -> compare.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.e2e.test_pipeline import Pipeline, run_pipeline
from tests.ui.conftest import UiServer, Watched, screenshot, ui_server

pytestmark = pytest.mark.e2e

TRAIN_METRICS = {"train/loss", "train/grad_norm", "train/lr"}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    cwd = tmp_path_factory.mktemp("ui-pipeline")
    return run_pipeline(cwd, f"fsspec={cwd / 'store'}")


@pytest.fixture(scope="module")
def server(pipeline: Pipeline) -> Iterator[UiServer]:
    assert pipeline.tracker is not None
    with ui_server(pipeline.cwd, pipeline.tracker) as running:
        yield running


def test_click_through_runs_run_lineage_compare(
    pipeline: Pipeline, server: UiServer, watched: Watched, tmp_path: Path
) -> None:
    page = watched.page
    h = pipeline.handles

    # --- runs table ---
    watched.goto_loaded(server.url)
    rows = page.locator("#runs tbody tr")
    assert rows.count() == 3
    by_id = {rows.nth(i).get_attribute("data-run-id"): rows.nth(i).locator("td") for i in range(3)}
    assert set(by_id) == set(h.values())
    for cells in by_id.values():
        assert cells.nth(2).inner_text() == "SUCCEEDED"
        assert cells.nth(3).inner_text().startswith("20")  # the launch time
        assert cells.nth(5).inner_text() == "local_cwd"
        assert cells.nth(6).inner_text() == "lineage.python"
    assert by_id[h["train"]].nth(8).inner_text().split() == [h["prepare"]]
    assert "3 runs" in page.locator("#progress").inner_text()
    screenshot(page, "runs", tmp_path)

    # --- the train run: charts, launch record, history, links ---
    page.locator(f'#runs tr[data-run-id="{h["train"]}"] a.run-link').first.click()
    page.wait_for_url(f"**/run?id={quote(h['train'], safe='')}")
    page.wait_for_selector("#charts[data-loaded=true]")
    page.wait_for_selector(".chart[data-drawn=true] >> nth=2")
    charts = page.locator(".chart")
    assert {charts.nth(i).get_attribute("data-metric") for i in range(3)} == TRAIN_METRICS
    for i in range(3):
        chart = charts.nth(i)
        assert chart.get_attribute("data-series-count") == "1"
        assert chart.locator("canvas").count() == 1
        assert chart.locator(".u-legend .u-series").count() == 2  # x plus one line
        assert "300 points" in chart.locator("figcaption").inner_text()
    assert page.locator("h1.run-id").inner_text() == h["train"]
    assert "least_squares" in page.locator("#metadata").inner_text()
    assert "lineage.python" in page.locator("table.kv").first.inner_text()
    history = page.locator("table.history tbody tr")
    assert [history.nth(i).locator("td").first.inner_text() for i in range(history.count())] == [
        "RUNNING",
        "SUCCEEDED",
    ]
    assert page.locator(".artifact-name").all_inner_texts() == ["model"]
    page.fill("#metadata-filter", "slope")
    assert page.locator("#metadata tr").count() == 1
    screenshot(page, "run", tmp_path)

    # --- lineage graph: three nodes, labelled edges, click through to a run ---
    page.click("#lineage-link")
    page.wait_for_selector("body[data-loaded=true]")
    nodes = page.locator("g.node")
    assert nodes.count() == 3
    assert {nodes.nth(i).get_attribute("data-run-id") for i in range(3)} == set(h.values())
    assert all("status-succeeded" in (nodes.nth(i).get_attribute("class") or "") for i in range(3))
    assert sorted(page.locator(".edge-label").all_text_contents()) == ["dataset", "model"]
    current = page.locator("g.node.current")
    assert current.get_attribute("data-run-id") == h["train"]
    screenshot(page, "lineage", tmp_path)
    page.locator(f'g.node[data-run-id="{h["evaluate"]}"]').click()
    page.wait_for_url(f"**/run?id={quote(h['evaluate'], safe='')}")
    page.wait_for_selector("body[data-loaded=true]")
    assert page.locator("h1.run-id").inner_text() == h["evaluate"]

    # --- compare: pick train and evaluate in the table ---
    watched.goto_loaded(server.url)
    for run_id in (h["train"], h["evaluate"]):
        page.locator(f'#runs tr[data-run-id="{run_id}"] input.pick').check()
    page.click("#compare")
    page.wait_for_url("**/compare?**")
    page.wait_for_selector("body[data-loaded=true]")
    page.wait_for_selector(".chart[data-drawn=true] >> nth=2")
    assert page.locator(".compared li").count() == 2
    diff = page.locator("#metadata-diff tbody tr")
    keys = {diff.nth(i).locator("th").inner_text() for i in range(diff.count())}
    assert {"step", "launch.app_name"} <= keys  # keys whose values differ
    step_row = next(
        diff.nth(i) for i in range(diff.count()) if diff.nth(i).locator("th").inner_text() == "step"
    )
    assert step_row.locator("td").all_inner_texts() == ["train", "evaluate"]
    screenshot(page, "compare", tmp_path)
    assert watched.errors == [] and watched.dialogs == []
