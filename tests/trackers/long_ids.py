"""Shared by the long-run-id tests of the fsspec (local) and S3 backends.

A run id over 155 bytes cannot be TorchX's base32 directory name (it would exceed 255 bytes), so
it is kept under a shortened, hash-suffixed name with the whole id beside it. These checks run
every kind of write and read with such an id and assert the real id comes back.
"""

from __future__ import annotations

from trackers.backends.record_store import RecordStoreTracker
from trackers.ids import MAX_PATH_ID_BYTES, encode_run_id
from trackers.types import MetricPoint

SHORT = "local_cwd://torchx/parent-1"


def long_id(length: int, tag: str = "a") -> str:
    """A realistic run id of exactly ``length`` characters (a long app name)."""
    head = f"local_cwd://torchx/train-{tag}-"
    return head + "x" * (length - len(head) - 6) + "-k2x9q"


def exercise(tracker: RecordStoreTracker, run_id: str) -> None:
    """Every write and read with ``run_id`` (child of a short-id run, parent of another)."""
    child = f"{run_id}-child"
    tracker.add_metadata(SHORT, step="prepare")
    tracker.add_metadata(run_id, lr=0.1, name=run_id)
    tracker.add_artifact(run_id, "model", "/m.pt", {"epoch": 3})
    tracker.add_source(run_id, SHORT, "dataset")
    tracker.add_metadata(child, step="eval")
    tracker.add_source(child, run_id, "model")
    tracker.add_metrics(run_id, [MetricPoint("loss", 0.5, 1, 1.0, None)])
    tracker.add_summary(run_id, best=0.5)
    tracker.set_status(run_id, "SUCCEEDED")

    assert len(encode_run_id(run_id)) <= 248
    assert tracker.has_run(run_id)
    assert sorted(tracker.run_ids()) == sorted([SHORT, run_id, child])
    assert tracker.metadata(run_id) == {"lr": 0.1, "name": run_id}
    assert tracker.artifacts(run_id)["model"].metadata == {"epoch": 3}
    assert [(s.source_run_id, s.artifact_name) for s in tracker.sources(run_id)] == [
        (SHORT, "dataset")
    ]
    assert [(s.source_run_id, s.artifact_name) for s in tracker.sources(child)] == [
        (run_id, "model")
    ]
    assert [(d.run_id, d.artifact_name) for d in tracker.descendants(run_id)] == [(child, "model")]
    assert list(tracker.run_ids(parent_run_id=run_id)) == [child]
    assert list(tracker.run_ids(parent_run_id=SHORT)) == [run_id]
    assert [p.value for p in tracker.metrics(run_id)] == [0.5]
    assert tracker.summary(run_id) == {"best": 0.5}
    assert tracker.status(run_id) == "SUCCEEDED"


def assert_names_fit(keys: list[str], *, max_key_bytes: int | None = None) -> None:
    """Every path segment fits a 255-byte file name; whole keys fit ``max_key_bytes``."""
    assert keys
    for key in keys:
        for segment in key.split("/"):
            assert len(segment.encode()) <= 255, segment
        if max_key_bytes is not None:
            assert len(key.encode()) <= max_key_bytes, key


__all__ = ["MAX_PATH_ID_BYTES", "SHORT", "assert_names_fit", "exercise", "long_id"]
