"""Link records: one record per ``add_source`` for the child, the parent and the catalog.

On a local disk that record is one file with two hard links (creating a file costs several
times what a link does), and links written by earlier versions (one record per side) read as
before.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from trackers.backends.fsspec import FsspecTracker, create_tracker
from trackers.ids import deterministic_record_names, encode_run_id, record_name
from trackers.types import LinkedRun

CHILD = "local_cwd://torchx/train-1"
PARENT = "local_cwd://torchx/data-1"


def links_dir(root: Path, run_id: str) -> Path:
    return root / encode_run_id(run_id) / "links"


def segments(root: Path) -> list[Path]:
    return sorted(root.glob(".catalog-*"))


@pytest.fixture
def store(tmp_path: Path) -> tuple[FsspecTracker, Path]:
    root = tmp_path / "runs"
    tracker = create_tracker(str(root))
    tracker.add_metadata(PARENT, stage="data")
    return tracker, root


def test_a_link_is_one_file_in_both_runs_and_the_catalog(
    store: tuple[FsspecTracker, Path],
) -> None:
    tracker, root = store
    before = set(segments(root))
    tracker.add_source(CHILD, PARENT, "dataset")
    (child_record,) = links_dir(root, CHILD).iterdir()
    (parent_record,) = links_dir(root, PARENT).iterdir()
    (segment,) = set(segments(root)) - before
    assert child_record.name == parent_record.name
    inodes = {p.stat().st_ino for p in (child_record, parent_record, segment)}
    assert len(inodes) == 1 and child_record.stat().st_nlink == 3
    body = json.loads(child_record.read_bytes())
    assert (body["kind"], body["source"], body["descendant"], body["artifact_name"]) == (
        "edge",
        PARENT,
        CHILD,
        "dataset",
    )
    assert body["runs"][CHILD]["sources"] == [[PARENT, "dataset"]]
    assert list(root.glob(".tmp*")) == []

    fresh = create_tracker(str(root))
    assert [(s.source_run_id, s.artifact_name) for s in fresh.sources(CHILD)] == [
        (PARENT, "dataset")
    ]
    assert fresh.descendants(PARENT) == [LinkedRun(CHILD, "dataset")]
    assert fresh.lineage(CHILD).ancestors == {PARENT: 1}  # through the catalog segment
    assert [w.kind for w in fresh.write_history(CHILD) or []] == ["add_source"]


def test_merging_the_catalog_leaves_the_runs_link_records(
    store: tuple[FsspecTracker, Path],
) -> None:
    tracker, root = store
    tracker.add_source(CHILD, PARENT, "dataset")
    assert tracker.compact_catalog()
    assert segments(root) == []
    (child_record,) = links_dir(root, CHILD).iterdir()
    assert child_record.stat().st_nlink == 2
    fresh = create_tracker(str(root))
    assert fresh.descendants(PARENT) == [LinkedRun(CHILD, "dataset")]
    assert fresh.runs_summary([CHILD])[0].parents == (LinkedRun(PARENT, "dataset"),)


def test_a_replayed_link_keeps_one_record_per_run(store: tuple[FsspecTracker, Path]) -> None:
    tracker, root = store
    op_id = record_name()
    for _ in range(2):  # a delivery replayed from the spool
        with deterministic_record_names(op_id):
            tracker.add_source(CHILD, PARENT, "dataset")
    assert [p.name for p in links_dir(root, CHILD).iterdir()] == [op_id]
    assert [p.name for p in links_dir(root, PARENT).iterdir()] == [op_id]
    assert len(create_tracker(str(root)).sources(CHILD)) == 1


def test_links_are_copies_where_hard_links_cannot_be_made(
    store: tuple[FsspecTracker, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker, root = store

    def no_links(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "hard links not supported here", dst)

    monkeypatch.setattr(os, "link", no_links)
    tracker.add_source(CHILD, PARENT, "dataset")
    (child_record,) = links_dir(root, CHILD).iterdir()
    (parent_record,) = links_dir(root, PARENT).iterdir()
    assert child_record.stat().st_nlink == 1 and parent_record.stat().st_nlink == 1
    assert child_record.read_bytes() == parent_record.read_bytes()
    assert list(root.glob(".tmp*")) == []
    fresh = create_tracker(str(root))
    assert fresh.descendants(PARENT) == [LinkedRun(CHILD, "dataset")]


def test_a_run_linked_to_itself_is_its_own_source_and_descendant(
    store: tuple[FsspecTracker, Path],
) -> None:
    tracker, root = store
    tracker.add_source(PARENT, PARENT, "loop")
    assert len(list(links_dir(root, PARENT).iterdir())) == 1
    fresh = create_tracker(str(root))
    assert [(s.source_run_id, s.artifact_name) for s in fresh.sources(PARENT)] == [(PARENT, "loop")]
    assert fresh.descendants(PARENT) == [LinkedRun(PARENT, "loop")]


def test_link_records_of_earlier_versions_are_read(store: tuple[FsspecTracker, Path]) -> None:
    """Before edge records, a link was two records: ``source`` in the child, ``descendant`` in
    the parent, each naming the other run in ``run_id``."""
    tracker, root = store
    tracker.add_metadata(CHILD, lr=0.1)
    old = {
        CHILD: {"kind": "source", "run_id": PARENT, "artifact_name": "old"},
        PARENT: {"kind": "descendant", "run_id": CHILD, "artifact_name": "old"},
    }
    name = record_name()
    for run_id, record in old.items():
        links_dir(root, run_id).mkdir(exist_ok=True)
        (links_dir(root, run_id) / name).write_text(json.dumps(record))
    tracker.add_source(CHILD, PARENT, "new")
    fresh = create_tracker(str(root))
    assert sorted(s.artifact_name or "" for s in fresh.sources(CHILD)) == ["new", "old"]
    assert sorted(d.artifact_name or "" for d in fresh.descendants(PARENT)) == ["new", "old"]
    history = fresh.write_history(CHILD) or []
    assert sorted(w.args["artifact_name"] for w in history if w.kind == "add_source") == [
        "new",
        "old",
    ]


# --- TorchX's sources/ file: created in place ---


def torchx_sources_file(root: Path, run_id: str, source_id: str) -> Path:
    return root / encode_run_id(run_id) / "sources" / encode_run_id(source_id)


def test_an_empty_torchx_link_file_is_a_write_in_progress_not_a_link(
    store: tuple[FsspecTracker, Path],
) -> None:
    """TorchX writes at least a line break; an empty file is one being created (ours are
    created in place) or truncated by TorchX's rewrite, so it is no link until its write lands,
    and a snapshot taken meanwhile does not hide that write."""
    tracker, root = store
    other = "local_cwd://torchx/other"
    tracker.add_source(CHILD, PARENT, "dataset")
    in_progress = torchx_sources_file(root, CHILD, other)
    in_progress.touch()
    reader = create_tracker(str(root))
    reader.compact(CHILD)
    assert [(s.source_run_id, s.artifact_name) for s in reader.sources(CHILD)] == [
        (PARENT, "dataset")
    ]
    in_progress.write_text("weights\n")
    assert sorted((s.source_run_id, s.artifact_name) for s in reader.sources(CHILD)) == [
        (PARENT, "dataset"),
        (other, "weights"),
    ]


def test_a_failed_write_of_a_new_torchx_link_file_leaves_no_file_and_a_retry_writes_it(
    store: tuple[FsspecTracker, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker, root = store
    real_write = os.write
    calls: list[int] = []

    def disk_full_on_the_second_file(fd: int, data: object) -> int:
        calls.append(fd)
        if len(calls) == 2:  # the link record's file was the first
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "write", disk_full_on_the_second_file)
    with pytest.raises(OSError, match="No space left"):
        tracker.add_source(CHILD, PARENT, "dataset")
    monkeypatch.setattr(os, "write", real_write)
    assert not torchx_sources_file(root, CHILD, PARENT).exists()
    assert list(root.glob(".tmp*")) == []
    tracker.add_source(CHILD, PARENT, "dataset")
    assert torchx_sources_file(root, CHILD, PARENT).read_text() == "dataset\n"


def test_torchx_reads_a_link_file_we_created_and_we_merge_into_one_it_rewrote(
    store: tuple[FsspecTracker, Path],
) -> None:
    import fsspec
    from torchx.tracker.backend.fsspec import FsspecTracker as TorchxFsspecTracker

    tracker, root = store
    torchx = TorchxFsspecTracker(fsspec.filesystem("file"), str(root))
    tracker.add_source(CHILD, PARENT, "dataset")
    assert [(s.source_run_id, s.artifact_name) for s in torchx.sources(CHILD)] == [
        (PARENT, "dataset")
    ]
    # torchx 0.7.0 rewrites the file in place ("checkpoint\n"); nightly appends to it
    torchx.add_source(CHILD, PARENT, "checkpoint")
    theirs = torchx_sources_file(root, CHILD, PARENT).read_text()
    assert theirs in ("checkpoint\n", "dataset\ncheckpoint\n")
    tracker.add_source(CHILD, PARENT, "model")
    assert torchx_sources_file(root, CHILD, PARENT).read_text() == theirs + "model\n"
    assert {s.artifact_name for s in torchx.sources(CHILD)} == {
        *theirs.split(),
        "model",
    }
