"""Per-run snapshots on the local disk: fewer reads, the same answers, nothing lost.

Also: TorchX's own ``FsspecTracker`` reads a compacted store, and a store written by the previous
layout (the code at commit 5e9ce68, run from ``git archive``) reads the same before and after.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fsspec
import pytest
from torchx.tracker.backend.fsspec import FsspecTracker as TorchxFsspecTracker

from trackers.backends.fsspec import FsspecTracker, create_tracker
from trackers.backends.snapshots import SNAPSHOT_VERSION
from trackers.ids import deterministic_record_names, encode_run_id
from trackers.testing import PARENT, RUN

REPO = Path(__file__).resolve().parents[2]
OLD_COMMIT = "5e9ce68"


def counting(tracker: FsspecTracker) -> list[str]:
    """The record keys ``tracker`` fetches from now on."""
    fetched: list[str] = []
    original = tracker._get_many

    def get_many(keys: Sequence[str]) -> list[bytes | None]:
        fetched.extend(keys)
        return original(keys)

    tracker._get_many = get_many  # type: ignore[method-assign]
    return fetched


def stored_snapshot(data: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """A stored snapshot's header and body (the first and last of its lines of JSON)."""
    header, *_, body = data.split(b"\n")
    return json.loads(header), json.loads(body)


def view(tracker: Any, run: str) -> dict[str, Any]:
    return {
        "metadata": dict(tracker.metadata(run)),
        "artifacts": {n: [a.path, a.metadata] for n, a in tracker.artifacts(run).items()},
        "sources": sorted([s.source_run_id, s.artifact_name or ""] for s in tracker.sources(run)),
    }


def test_compacted_run_reads_from_one_snapshot_and_later_records(tmp_path: Path) -> None:
    writer = create_tracker(str(tmp_path))
    for i in range(200):
        writer.add_metadata(RUN, **{f"k{i}": i})
    writer.compact(RUN)
    reader = create_tracker(str(tmp_path))
    fetched = counting(reader)
    assert reader.metadata(RUN) == {f"k{i}": i for i in range(200)}
    assert fetched == [f"{tmp_path}/{encode_run_id(RUN)}/.snapshot/metadata"]
    writer.add_metadata(RUN, k0="new")  # written after the snapshot: read, and it wins
    fetched.clear()
    assert reader.metadata(RUN)["k0"] == "new"
    assert len(fetched) == 2  # the snapshot, the one new record


def test_a_late_record_with_an_older_name_is_merged_in_name_order(tmp_path: Path) -> None:
    """A replayed operation (spool) writes under its old name after the snapshot was made."""
    tracker = create_tracker(str(tmp_path))
    old_op = "00000000000000000001-" + "a" * 32
    tracker.add_metadata(RUN, lr=0.1, tag="first")
    tracker.compact(RUN)
    with deterministic_record_names(old_op):  # older than every record in the snapshot
        tracker.add_metadata(RUN, lr=0.5, extra=1)
    assert dict(create_tracker(str(tmp_path)).metadata(RUN)) == {
        "lr": 0.1,  # the newer record still wins
        "tag": "first",
        "extra": 1,  # and the late one is not lost
    }


def test_reader_writes_the_snapshot_from_the_second_read_on(tmp_path: Path) -> None:
    writer = create_tracker(str(tmp_path))
    for i in range(40):
        writer.add_artifact(RUN, f"a{i}", f"/p/{i}")
    first = create_tracker(str(tmp_path))
    fetched = counting(first)
    assert len(first.artifacts(RUN)) == 40
    assert len(fetched) == 41  # the absent snapshot, then each record
    second = create_tracker(str(tmp_path))
    fetched = counting(second)
    assert len(second.artifacts(RUN)) == 40
    assert len(fetched) == 1


def test_broken_snapshot_is_ignored_and_rewritten(tmp_path: Path) -> None:
    tracker = create_tracker(str(tmp_path))
    for i in range(20):
        tracker.add_metadata(RUN, **{f"k{i}": i})
    snap = tmp_path / encode_run_id(RUN) / ".snapshot" / "metadata"
    snap.parent.mkdir(parents=True)
    snap.write_text("{not json")
    assert len(tracker.metadata(RUN)) == 20
    assert stored_snapshot(snap.read_bytes())[0]["version"] == SNAPSHOT_VERSION


def test_snapshot_of_the_previous_format_is_rewritten_and_origins_survive(tmp_path: Path) -> None:
    tracker = create_tracker(str(tmp_path))
    for i in range(20):
        tracker.add_metadata(RUN, **{f"k{i}": i})
    direct = [dict(r) for r in tracker._read_records(RUN, "metadata")]
    snap = tmp_path / encode_run_id(RUN) / ".snapshot" / "metadata"
    # version 1 kept each record whole, origin inline
    snap.write_text(json.dumps({"version": 1, "records": {}, "files": {}}))
    assert len(tracker.metadata(RUN)) == 20
    header, body = stored_snapshot(snap.read_bytes())
    assert header["version"] == SNAPSHOT_VERSION
    assert len(body["origins"]) == 1  # one writer: its origin is stored once
    via_snapshot = create_tracker(str(tmp_path))._read_records(RUN, "metadata")
    assert via_snapshot == direct
    assert all(r["origin"]["pid"] == os.getpid() for r in via_snapshot)


def test_torchx_link_file_changed_after_the_snapshot_is_read_again(tmp_path: Path) -> None:
    ours = create_tracker(str(tmp_path))
    ours.add_metadata(PARENT, x=1)
    ours.add_source(RUN, PARENT, "dataset")
    ours.compact(RUN)
    torchx = TorchxFsspecTracker(fsspec.filesystem("file"), str(tmp_path))
    torchx.add_source(RUN, "local_cwd://torchx/other", "weights")
    ours.add_source(RUN, PARENT, "model")  # rewrites TorchX's sources/ file of PARENT
    assert sorted((s.source_run_id, s.artifact_name) for s in ours.sources(RUN)) == [
        ("local_cwd://torchx/other", "weights"),
        (PARENT, "dataset"),
        (PARENT, "model"),
    ]


def test_torchx_reads_a_compacted_store_as_we_do(tmp_path: Path) -> None:
    ours = create_tracker(str(tmp_path))
    ours.add_metadata(PARENT, stage="data")
    for i in range(50):
        ours.add_metadata(RUN, **{f"k{i}": i})
        ours.add_artifact(RUN, f"ckpt{i % 5}", f"/ckpt/{i}", {"step": i})
    ours.add_source(RUN, PARENT, "dataset")
    ours.compact(RUN)
    ours.compact(PARENT)
    torchx = TorchxFsspecTracker(fsspec.filesystem("file"), str(tmp_path))
    for run in (RUN, PARENT):
        mine = view(create_tracker(str(tmp_path)), run)
        # TorchX merges in listing order, so only names written once compare exactly
        theirs = view(torchx, run)
        assert theirs["metadata"] == mine["metadata"]
        assert theirs["sources"] == mine["sources"]
        assert set(theirs["artifacts"]) == set(mine["artifacts"])
    assert sorted(torchx.run_ids()) == sorted([RUN, PARENT])


# --- 16 writers and 2 compactors at once ---

WRITERS = 16
PER_WRITER = 25


def _writer(root: str, w: int) -> None:
    tracker = create_tracker(root)
    for i in range(PER_WRITER):
        tracker.add_metadata(RUN, **{f"w{w}-{i}": i})
        tracker.add_artifact(RUN, f"w{w}-a{i}", f"/p/{w}/{i}")
        if i % 5 == 0:
            tracker.add_source(RUN, PARENT, f"w{w}-s{i}")


def _compactor(root: str, stop: Any) -> int:
    tracker = create_tracker(root)
    rounds = 0
    while not stop.is_set():
        tracker.compact(RUN)
        tracker.compact(PARENT)
        rounds += 1
    return rounds


def check_exact(tracker: Any) -> None:
    md = tracker.metadata(RUN)
    assert md == {f"w{w}-{i}": i for w in range(WRITERS) for i in range(PER_WRITER)}
    arts = tracker.artifacts(RUN)
    assert {n: a.path for n, a in arts.items()} == {
        f"w{w}-a{i}": f"/p/{w}/{i}" for w in range(WRITERS) for i in range(PER_WRITER)
    }
    expected_links = sorted(f"w{w}-s{i}" for w in range(WRITERS) for i in range(0, PER_WRITER, 5))
    assert sorted(s.artifact_name or "" for s in tracker.sources(RUN)) == expected_links
    assert sorted(d.artifact_name or "" for d in tracker.descendants(PARENT)) == expected_links


def test_sixteen_writers_and_two_compactors_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    root = str(tmp_path)
    create_tracker(root).add_metadata(PARENT, stage="data")
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    compactors = [ctx.Process(target=_compactor, args=(root, stop)) for _ in range(2)]
    writers = [ctx.Process(target=_writer, args=(root, w)) for w in range(WRITERS)]
    for p in compactors + writers:
        p.start()
    for p in writers:
        p.join(120)
        assert p.exitcode == 0
    stop.set()
    for p in compactors:
        p.join(60)
        assert p.exitcode == 0
    assert (tmp_path / encode_run_id(RUN) / ".snapshot" / "metadata").exists()
    check_exact(create_tracker(root))  # the snapshots plus whatever came after them
    final = create_tracker(root)
    final.compact(RUN)
    final.compact(PARENT)
    reader = create_tracker(root)
    fetched = counting(reader)
    check_exact(reader)
    assert not [k for k in fetched if "/.snapshot/" not in k]  # all from snapshots now


# --- a store written by the previous layout (the code at 5e9ce68) ---

OLD_WRITER = """
import sys
from trackers.backends.fsspec import create_tracker
t = create_tracker(sys.argv[1])
t.add_metadata("PARENT", stage="data")
for i in range(60):
    t.add_metadata("RUN", **{f"k{i}": i})
    t.add_artifact("RUN", f"a{i % 7}", f"/p/{i}")
t.add_metadata("RUN", k0="last")
t.add_source("RUN", "PARENT", "dataset")
t.set_status("RUN", "SUCCEEDED")
"""


@pytest.fixture(scope="module")
def old_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("old-code")
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", OLD_COMMIT, "trackers"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        pytest.skip(f"git archive {OLD_COMMIT} failed: {archive.stderr.decode()[-300:]}")
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def test_store_written_by_the_previous_layout_reads_the_same(
    old_code: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    script = OLD_WRITER.replace('"RUN"', repr(RUN)).replace('"PARENT"', repr(PARENT))
    done = subprocess.run(
        [sys.executable, "-c", script, str(store)],
        env={"PYTHONPATH": str(old_code), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert not list(store.rglob(".snapshot"))
    expected_md = {"k0": "last", **{f"k{i}": i for i in range(1, 60)}}
    expected_art = {f"a{j}": f"/p/{max(i for i in range(60) if i % 7 == j)}" for j in range(7)}
    for _ in range(2):  # before and after the first read wrote snapshots
        t = create_tracker(str(store))
        assert dict(t.metadata(RUN)) == expected_md
        assert {n: a.path for n, a in t.artifacts(RUN).items()} == expected_art
        assert [(s.source_run_id, s.artifact_name) for s in t.sources(RUN)] == [(PARENT, "dataset")]
        assert [(d.run_id, d.artifact_name) for d in t.descendants(PARENT)] == [(RUN, "dataset")]
        assert t.status(RUN) == "SUCCEEDED"
    assert list(store.rglob(".snapshot"))
    t.compact(RUN)
    assert dict(create_tracker(str(store)).metadata(RUN)) == expected_md


def test_compact_during_writes_in_threads_keeps_last_write(tmp_path: Path) -> None:
    tracker = create_tracker(str(tmp_path))
    stop = threading.Event()

    def compact_loop() -> None:
        while not stop.is_set():
            tracker.compact(RUN)

    thread = threading.Thread(target=compact_loop)
    thread.start()
    try:
        for i in range(300):
            tracker.add_metadata(RUN, step=i)
    finally:
        stop.set()
        thread.join()
    assert create_tracker(str(tmp_path)).metadata(RUN) == {"step": 299}


def test_set_status_adds_one_catalog_segment_that_holds_the_status(tmp_path: Path) -> None:
    tracker = create_tracker(str(tmp_path))
    tracker.add_metadata(RUN, x=1)

    def segments() -> set[str]:
        return {p.name for p in tmp_path.glob(".catalog-*")}

    before = segments()
    tracker.set_status(RUN, "RUNNING")
    added = segments() - before
    assert len(added) == 1
    (body,) = (json.loads((tmp_path / name).read_text()) for name in added)
    assert body["runs"][RUN]["status"][0] == "RUNNING"
    assert create_tracker(str(tmp_path)).runs_summary([RUN])[0].status == "RUNNING"
