"""Large stores: 10,000 runs on the local disk, 1,000 on S3 (moto). The first page is served
while the background index is still reading, and it is right; once the index is complete, the
order and the filters cover every run; the server stays under :data:`RSS_BOUND_MB`.

Latency is measured by ``benchmarks/bench_ui.py`` (its bounds are stated there and in the
README); a test on a shared machine asserts no time.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.s3.support import aws_test_env, moto
from tests.ui.conftest import UiServer, Watched, ui_server
from tests.ui.stores import CYCLE, many_id, many_start, write_many_runs
from trackers.backends.fsspec import create_tracker

pytestmark = pytest.mark.s3

#: The server's peak resident memory must stay under this (MB), index complete, pages served
#: (``benchmarks/bench_ui.py`` states the same bound).
RSS_BOUND_MB = 300
#: Only so that a hung server fails the test instead of hanging it: no latency is asserted.
INDEX_DEADLINE_S = 600


def get(url: str) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=INDEX_DEADLINE_S) as response:
        assert response.status == 200
        body: dict[str, object] = json.loads(response.read())
    return time.perf_counter() - started, body


def wait_for_index(server: UiServer) -> None:
    deadline = time.monotonic() + INDEX_DEADLINE_S
    while time.monotonic() < deadline:
        index = get(server.url + "api/store")[1]["index"]
        assert isinstance(index, dict)
        if index["ready"]:
            return
        time.sleep(0.5)
    raise AssertionError(f"the index was not complete after {INDEX_DEADLINE_S} s: {index}")


def check_store(server: UiServer, count: int) -> None:
    """First page cold (right rows, fully read), then every order and filter over all runs."""
    first = get(server.url + "api/runs?limit=50")[1]
    assert first["total"] == count and first["offset"] == 0
    rows = first["rows"]
    assert isinstance(rows, list) and len(rows) == 50
    for row in rows:  # the page's rows are read on the spot, even before the index has them
        i = int(row["run_id"].rsplit("-", 1)[1])
        assert row["run_id"] == many_id(i)
        assert row["status"] == CYCLE[i % 4]
        assert row["component"] == f"comp-{i % 7}" and row["scheduler"] == "local_cwd"
        assert row["parents"] == [] and row["problems"] == []

    wait_for_index(server)
    newest = get(server.url + "api/runs?limit=50")[1]
    assert [r["run_id"] for r in newest["rows"]] == [
        many_id(i) for i in range(count - 1, count - 51, -1)
    ]  # type: ignore[union-attr]
    assert [r["start_time"] for r in newest["rows"]][:1] == [  # type: ignore[index]
        time_of(many_start(count - 1))
    ]
    oldest = get(server.url + "api/runs?limit=10&order=asc&offset=0")[1]
    assert [r["run_id"] for r in oldest["rows"]] == [many_id(i) for i in range(10)]  # type: ignore[union-attr]
    failed = get(server.url + "api/runs?status=FAILED&limit=500")[1]
    assert failed["total"] == len(range(1, count, 4))
    assert all(r["status"] == "FAILED" for r in failed["rows"])  # type: ignore[union-attr]
    last_page = get(server.url + f"api/runs?sort=run_id&order=asc&offset={count - 5}&limit=50")[1]
    assert [r["run_id"] for r in last_page["rows"]] == [many_id(i) for i in range(count - 5, count)]  # type: ignore[union-attr]
    text = get(server.url + "api/runs?q=job-0004&sort=run_id&order=asc")[1]
    assert [r["run_id"] for r in text["rows"]][:2] == [many_id(40), many_id(41)]  # type: ignore[union-attr]
    peak = server.peak_rss_mb()
    assert peak < RSS_BOUND_MB, f"server peak RSS {peak:.0f} MB over the {RSS_BOUND_MB} MB bound"


def time_of(iso: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(iso).timestamp()


@pytest.fixture(scope="module")
def local_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ui-10k") / "store"
    write_many_runs(create_tracker(str(root)), 10_000)
    return root


def test_10000_run_local_store(local_store: Path, watched: Watched) -> None:
    with ui_server(local_store.parent, f"fsspec={local_store}") as server:
        check_store(server, 10_000)
        watched.goto_loaded(server.url)
        assert watched.page.locator("#runs tbody tr").count() == 50
        assert "of 10,000" in watched.page.locator("#range").inner_text()
        watched.page.click("#next")
        watched.page.wait_for_selector("#range:has-text('51–100')")
        assert watched.errors == []


@pytest.fixture(scope="module")
def s3_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    from tests.s3.support import admin_client
    from trackers.backends.s3 import create_tracker as create_s3_tracker

    env = aws_test_env({})  # fake credentials only
    with moto(tmp_path_factory.mktemp("ui-moto")) as server, pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        admin_client(server.endpoint).create_bucket(Bucket="ui-runs")  # type: ignore[attr-defined]
        config = json.dumps({"url": "s3://ui-runs/runs", "endpoint_url": server.endpoint})
        tracker = create_s3_tracker(config)
        write_many_runs(tracker, 1_000)
        tracker.close()
        yield config, env


def test_1000_run_store_on_s3(s3_store: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    config, env = s3_store
    with ui_server(tmp_path, f"s3={config}", extra_env=env) as server:
        check_store(server, 1_000)
