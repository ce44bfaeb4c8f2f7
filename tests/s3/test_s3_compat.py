"""A store written by the ``s3`` backend reads the same through s3fs: our fsspec backend
(``--tracker fsspec=s3://...``) and TorchX 0.7.0's own ``FsspecTracker``, and the other way round.

s3fs cannot live next to the project's boto3 (it pins aiobotocore, which pins an older botocore;
pip downgrades botocore and ``pip check`` fails), so the s3fs side runs in a separate virtualenv
(``tests/s3/support.py:s3fs_python``, built once into the temp directory) as a subprocess,
``tests/s3/s3fs_side.py``, which prints what it read as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.s3.conftest import Store
from tests.s3.support import s3fs_env
from trackers.backends.s3 import CACHE_MIN_RECORDS, S3Tracker, create_tracker
from trackers.types import MetricPoint

pytestmark = pytest.mark.s3

SIDE = Path(__file__).with_name("s3fs_side.py")
PREPARE = "local_cwd://torchx/prepare-1"
TRAIN = "local_cwd://torchx/train-1"
EVAL = "local_cwd://torchx/evaluate-1"
RUNS = [PREPARE, TRAIN, EVAL]


def s3fs_side(python: Path, store: Store, *actions: dict[str, Any]) -> list[Any]:
    request = json.dumps({"url": store.url, "endpoint": store.endpoint, "actions": actions})
    done = subprocess.run(
        [str(python), str(SIDE), request],
        env=s3fs_env(store.endpoint),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: list[Any] = json.loads(done.stdout)
    return result


def pipeline(t: S3Tracker) -> None:
    t.add_metadata(PREPARE, step="prepare", rows=200)
    t.add_artifact(PREPARE, "dataset", "/data/ds.csv", {"rows": 200})
    t.add_metadata(TRAIN, step="train", lr=0.1)
    t.add_source(TRAIN, PREPARE, "dataset")
    t.add_source(TRAIN, PREPARE, "checkpoint")
    t.add_artifact(TRAIN, "model", "/ckpt/model.json")
    with ThreadPoolExecutor(8) as pool:  # enough records for a read cache object
        list(pool.map(lambda i: t.add_metadata(TRAIN, **{f"k{i}": i}), range(CACHE_MIN_RECORDS)))
    t.add_metrics(TRAIN, [MetricPoint("loss", 0.5, 1, 1.0), MetricPoint("loss", 0.25, 2, 2.0)])
    t.set_status(TRAIN, "SUCCEEDED")
    t.add_metadata(EVAL, step="evaluate")
    t.add_source(EVAL, TRAIN, "model")


def test_written_by_s3_read_through_s3fs_by_ours_and_torchx(store: Store, s3fs_py: Path) -> None:
    s3 = create_tracker(store.config())
    pipeline(s3)
    s3.metadata(TRAIN)
    s3.compact(TRAIN)  # TRAIN/.snapshot/*, .catalog-*: the others must not trip over them
    assert any(k.endswith("/.snapshot/metadata") for k in store.keys())

    (seen,) = s3fs_side(s3fs_py, store, {"do": "dump", "runs": RUNS, "parent": PREPARE})
    ours, torchx = seen["ours"], seen["torchx"]
    assert ours["run_ids"] == s3.run_ids() == sorted(RUNS)
    assert torchx["run_ids"] == sorted(RUNS)
    assert torchx["children_of_parent"] == [TRAIN]
    for run in RUNS:
        expected = {
            "metadata": dict(s3.metadata(run)),
            "artifacts": {n: [a.path, a.metadata] for n, a in s3.artifacts(run).items()},
            "sources": sorted([s.source_run_id, s.artifact_name] for s in s3.sources(run)),
            "descendants": sorted([d.run_id, d.artifact_name] for d in s3.descendants(run)),
            "metrics": [[p.name, p.value, p.step] for p in s3.metrics(run)],
            "status": s3.status(run),
            "ancestors": s3.lineage(run).ancestors,
        }
        assert ours["runs"][run] == expected, run
        theirs = torchx["runs"][run]
        assert theirs["artifacts"] == expected["artifacts"], run
        assert theirs["sources"] == expected["sources"], run
        # TorchX merges records in listing order; ours are named so that this is write order.
        assert theirs["metadata"] == expected["metadata"], run
    assert ours["runs"][PREPARE]["descendants"] == [[TRAIN, "checkpoint"], [TRAIN, "dataset"]]
    assert ours["runs"][EVAL]["ancestors"] == {TRAIN: 1, PREPARE: 2}


def test_written_through_s3fs_read_by_s3(store: Store, s3fs_py: Path) -> None:
    s3 = create_tracker(store.config())
    s3.add_metadata(PREPARE, step="prepare")  # a run of ours: it has descendants/
    torchx_child = "local_cwd://torchx/torchx-child"
    fsspec_child = "local_cwd://torchx/fsspec-child"
    s3fs_side(
        s3fs_py,
        store,
        {
            "do": "torchx_write",
            "run": torchx_child,
            "source": PREPARE,
            "artifact": "dataset",
            "metadata": {"by": "torchx"},
        },
        {
            "do": "ours_write",
            "run": fsspec_child,
            "source": PREPARE,
            "artifact": "dataset",
            "metadata": {"by": "fsspec"},
        },
    )
    assert s3.run_ids() == sorted([PREPARE, torchx_child, fsspec_child])
    assert s3.metadata(torchx_child) == {"by": "torchx"}
    assert s3.metadata(fsspec_child)["by"] == "fsspec"
    for child in (torchx_child, fsspec_child):
        assert [(s.source_run_id, s.artifact_name) for s in s3.sources(child)] == [
            (PREPARE, "dataset")
        ]
    # TorchX wrote its reverse link because our run had a descendants/ marker.
    assert sorted((d.run_id, d.artifact_name) for d in s3.descendants(PREPARE)) == [
        (fsspec_child, "dataset"),
        (torchx_child, "dataset"),
    ]
    assert s3.run_ids(parent_run_id=PREPARE) == sorted([torchx_child, fsspec_child])


def test_fsspec_backend_over_s3fs_reads_a_runs_listings_and_snapshot_side_by_side(
    store: Store, s3fs_py: Path, proxy_factory: Callable[..., Any]
) -> None:
    """``--tracker fsspec=s3://...``: sources() of a compacted run needs two listings and the
    snapshot; on s3fs (an async filesystem) they go out together, one round trip, not three."""
    writer = create_tracker(store.config())
    writer.add_metadata(PREPARE, step="prepare")
    for name in ("a", "b", "c"):
        writer.add_source(TRAIN, PREPARE, name)
    writer.compact(TRAIN)
    proxy = proxy_factory(rate=0.0, latency=0.3)  # every request held: sent together, they overlap
    through_proxy = dataclasses.replace(store, endpoint=proxy.endpoint)
    (found,) = s3fs_side(s3fs_py, through_proxy, {"do": "sources", "run": TRAIN})
    assert found == [[PREPARE, "a"], [PREPARE, "b"], [PREPARE, "c"]]
    assert proxy.most_in_flight >= 3
