"""Browsing writes nothing: every object of the store, names and bytes, is the same after.

The stores are ones a caching reader would write to (many records of one category, many catalog
segments; locally also a run TorchX's own tracker wrote, which the catalog lacks), so each read
path that can store a cache is taken: per-run snapshots, derived catalog entries, catalog
merges, S3's read cache. Every page kind is browsed in Chromium and every JSON endpoint is read,
and the background index is let finish, before the store is compared with what it was.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import fsspec
import pytest

from tests.s3.support import admin_client, aws_test_env, moto
from tests.ui.conftest import UiServer, Watched, ui_server
from tests.ui.stores import (
    BROWSE_CHILD,
    BROWSE_GRANDCHILD,
    BROWSE_PARENT,
    write_browsable_store,
)
from trackers.backends.catalog import MERGE_SEGMENTS_AT
from trackers.backends.fsspec import create_tracker

TORCHX_RUN = "local_cwd://torchx/torchx-own-1"
Objects = dict[str, bytes | None]


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=120) as response:
        assert response.status == 200, url
        body: dict[str, object] = json.loads(response.read())
    return body


def q(run_id: str) -> str:
    return quote(run_id, safe="")


def browse(server: UiServer, watched: Watched, runs: list[str]) -> None:
    """Every page kind in the browser and every endpoint, then again once the index is done."""
    page = watched.page
    for _ in range(2):
        watched.goto_loaded(server.url)
        assert page.locator("#runs tbody tr").count() == len(runs)
        for sort in ("run_id", "status", "start_time", "duration", "component", "user"):
            assert get_json(server.url + f"api/runs?sort={sort}")["total"] == len(runs)
        for run_id in runs:
            detail = get_json(server.url + f"api/run?id={q(run_id)}")
            assert detail["exists"] is True, run_id
            get_json(server.url + f"api/run/metrics?id={q(run_id)}")
            get_json(server.url + f"api/lineage?id={q(run_id)}&depth=")
        watched.goto_loaded(server.url + f"run?id={q(BROWSE_CHILD)}")
        page.wait_for_selector(".chart[data-drawn=true]")
        history = page.locator("table.history tbody tr td:first-child").all_inner_texts()
        assert history == ["RUNNING"] * 41 + ["SUCCEEDED"]
        exported = get_json(server.url + f"api/run/metrics/export?id={q(BROWSE_CHILD)}")
        assert len(exported["points"]) == 80  # type: ignore[arg-type]
        with urllib.request.urlopen(
            server.url + f"api/run/metrics/export?id={q(BROWSE_CHILD)}&format=csv", timeout=60
        ) as response:
            assert len(response.read().splitlines()) == 81
        watched.goto_loaded(server.url + f"lineage?id={q(BROWSE_CHILD)}")
        assert page.locator("g.node").count() == 4  # with the dataset URL
        watched.goto_loaded(
            server.url + f"compare?id={q(BROWSE_CHILD)}&id={q(BROWSE_GRANDCHILD)}"
            f"&id={q(BROWSE_PARENT)}"
        )
        page.wait_for_selector(".chart[data-drawn=true]")
        deadline = time.monotonic() + 120
        while not get_json(server.url + "api/store")["index"]["ready"]:  # type: ignore[index]
            assert time.monotonic() < deadline, "the index did not complete"
            time.sleep(0.3)
    assert watched.errors == [] and watched.dialogs == []


def local_objects(root: Path) -> Objects:
    """Every file (bytes) and directory (``None``) under ``root``."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def local_store(tmp_path: Path) -> tuple[Path, list[str]]:
    root = tmp_path / "store"
    runs = write_browsable_store(create_tracker(str(root)))
    from torchx.tracker.backend.fsspec import FsspecTracker as TorchxFsspecTracker

    theirs = TorchxFsspecTracker(fsspec.filesystem("file"), str(root))
    theirs.add_metadata(TORCHX_RUN, **{"launch.component": "utils.python"})
    theirs.add_source(TORCHX_RUN, BROWSE_PARENT, "dataset")
    return root, [*runs, TORCHX_RUN]


def test_browsing_a_local_store_writes_nothing(
    local_store: tuple[Path, list[str]], watched: Watched
) -> None:
    root, runs = local_store
    before = local_objects(root)
    assert sum(1 for name in before if name.startswith(".catalog-")) > MERGE_SEGMENTS_AT
    with ui_server(root.parent, f"fsspec={root}") as server:
        browse(server, watched, runs)
    after = local_objects(root)
    assert sorted(set(after) - set(before)) == []
    assert sorted(set(before) - set(after)) == []
    assert [name for name in before if before[name] != after[name]] == []


def s3_objects(client: object, bucket: str) -> Objects:
    """Every object of the bucket: key -> bytes."""
    list_objects: Callable[..., dict[str, object]] = client.list_objects_v2  # type: ignore[attr-defined]
    get: Callable[..., dict[str, object]] = client.get_object  # type: ignore[attr-defined]
    keys: list[str] = []
    token: dict[str, object] = {}
    while True:
        page = list_objects(Bucket=bucket, **token)
        keys += [str(o["Key"]) for o in page.get("Contents", [])]  # type: ignore[attr-defined]
        if not page.get("IsTruncated"):
            break
        token = {"ContinuationToken": page["NextContinuationToken"]}
    return {k: get(Bucket=bucket, Key=k)["Body"].read() for k in keys}  # type: ignore[attr-defined]


@pytest.fixture
def s3_store(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], object, list[str]]]:
    from trackers.backends.s3 import create_tracker as create_s3_tracker

    env = aws_test_env({})  # fake credentials only
    with moto(tmp_path) as server, pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        client = admin_client(server.endpoint)
        client.create_bucket(Bucket="ui-read-only")  # type: ignore[attr-defined]
        config = json.dumps({"url": "s3://ui-read-only/runs", "endpoint_url": server.endpoint})
        tracker = create_s3_tracker(config)
        runs = write_browsable_store(tracker)
        tracker.close()
        yield config, env, client, runs


@pytest.mark.s3
def test_browsing_an_s3_store_writes_nothing(
    s3_store: tuple[str, dict[str, str], object, list[str]], watched: Watched, tmp_path: Path
) -> None:
    config, env, client, runs = s3_store
    before = s3_objects(client, "ui-read-only")
    assert sum(1 for key in before if "/.catalog-" in key) > MERGE_SEGMENTS_AT
    with ui_server(tmp_path, f"s3={config}", extra_env=env) as server:
        browse(server, watched, runs)
    after = s3_objects(client, "ui-read-only")
    assert sorted(set(after) - set(before)) == []
    assert sorted(set(before) - set(after)) == []
    assert [key for key in before if before[key] != after[key]] == []
