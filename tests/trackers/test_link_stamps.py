"""Stamps: a local reader's check that nothing a link view was derived from has changed.

On a local disk a links snapshot's view carries a stamp: the tokens of ``links/`` and of the
TorchX directory, and over that directory's files the newest status change (``ctime``), the
total size and the count. A reader whose own stamp is equal takes the answer from the header
alone, without listing names, computing tokens or parsing the listing or the body. Anything
that changes a file in place, adds or removes one, or adds a record changes the stamp, and the
read goes on as without one (``test_link_views``). A stamp is stored only where it can vouch:
nothing it covers changed within the racy window before it was taken.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.trackers.test_link_memo import (  # noqa: F401 (snapshot_loads is a fixture)
    OTHER,
    age,
    pairs,
    snapshot_loads,
    torchx_writer,
)
from tests.trackers.test_link_views import (
    as_version_3,
    descendant_pairs,
    linked_run,
    links_snapshot,
    settle_status_changes,
)
from trackers.backends import fsspec as fsspec_backend
from trackers.backends.fsspec import FsspecTracker, create_tracker
from trackers.backends.snapshots import SNAPSHOT_VERSION, Snapshot
from trackers.ids import encode_run_id
from trackers.testing import PARENT, RUN


@pytest.fixture
def slow_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """One entry per listing with tokens, views' listing parsed or snapshot body parsed from
    now on: what a read answered by a stamp does none of."""
    seen: list[str] = []
    list_versions = FsspecTracker._list_versions
    parse_views = Snapshot._parse_views
    parse_body = Snapshot._parse_body

    def listing(self: FsspecTracker, prefix: str) -> Any:
        seen.append(f"list {prefix.rsplit('/', 1)[-1]}")
        return list_versions(self, prefix)

    def views(self: Snapshot) -> Any:
        seen.append("views")
        return parse_views(self)

    def body(self: Snapshot) -> None:
        if self._body is not None:
            seen.append("body")
        parse_body(self)

    monkeypatch.setattr(FsspecTracker, "_list_versions", listing)
    monkeypatch.setattr(Snapshot, "_parse_views", views)
    monkeypatch.setattr(Snapshot, "_parse_body", body)
    return seen


def stored_stamps(root: Path) -> dict[str, Any]:
    header = json.loads(links_snapshot(root).read_bytes().split(b"\n", 1)[0])
    assert header["version"] == SNAPSHOT_VERSION
    return {d: view["stamp"] for d, view in header["views"].items()}


def link_file(root: Path, other: str = OTHER) -> Path:
    return root / encode_run_id(RUN) / "sources" / encode_run_id(other)


def test_a_new_reader_of_a_settled_run_answers_from_its_stamp_and_the_header_alone(
    tmp_path: Path, slow_reads: list[str]
) -> None:
    linked_run(tmp_path)
    assert all(stamp is not None for stamp in stored_stamps(tmp_path).values())
    slow_reads.clear()
    got = pairs(create_tracker(str(tmp_path)))
    children = descendant_pairs(tmp_path)
    assert slow_reads == []
    assert len(got) == 21 and (OTHER, "weights") in got
    assert children == [(f"local_cwd://torchx/child-{i}", "model") for i in range(3)]
    links_snapshot(tmp_path).unlink()  # the same answer as merging the records
    assert pairs(create_tracker(str(tmp_path))) == got
    assert descendant_pairs(tmp_path) == children


def test_a_repeat_read_by_one_reader_answers_from_its_memo_of_the_stamp(
    tmp_path: Path, slow_reads: list[str]
) -> None:
    linked_run(tmp_path)
    reader = create_tracker(str(tmp_path))
    first = pairs(reader)
    links_snapshot(tmp_path).unlink()  # a repeat read does not even read the snapshot
    slow_reads.clear()
    assert pairs(reader) == first
    assert slow_reads == []


def test_a_torchx_file_rewritten_in_place_with_the_same_length_changes_the_stamp(
    tmp_path: Path,
) -> None:
    """Same name, same directory, same size: only the status change time tells."""
    linked_run(tmp_path)
    link_file(tmp_path).write_text("optimzr\n")  # as long as "weights"
    reader = create_tracker(str(tmp_path))
    got = pairs(reader)
    assert (OTHER, "optimzr") in got and (OTHER, "weights") not in got
    assert pairs(create_tracker(str(tmp_path))) == got


def test_a_torchx_file_rewritten_in_place_with_its_mtime_set_back_changes_the_stamp(
    tmp_path: Path, slow_reads: list[str]
) -> None:
    """Same name, same directory, its mtime set back to what it was: the status change time
    (and the size) tell."""
    linked_run(tmp_path)
    path = link_file(tmp_path)
    before = path.stat()
    path.write_text("optimizer\n")  # what TorchX 0.7.0 does: mode "w", the same inode
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    reader = create_tracker(str(tmp_path))
    got = pairs(reader)
    assert (OTHER, "optimizer") in got and (OTHER, "weights") not in got
    assert "list sources" in slow_reads
    slow_reads.clear()
    assert pairs(reader) == got  # and the memo does not hold the old answer either


def test_a_torchx_file_added_or_removed_changes_the_stamp(tmp_path: Path) -> None:
    linked_run(tmp_path)
    torchx_writer(tmp_path).add_source(RUN, PARENT, "tokenizer")
    reader = create_tracker(str(tmp_path))
    assert (PARENT, "tokenizer") in pairs(reader)
    link_file(tmp_path, PARENT).unlink()
    assert (PARENT, "tokenizer") not in pairs(reader)
    assert (PARENT, "tokenizer") not in pairs(create_tracker(str(tmp_path)))


def test_a_record_added_to_links_changes_the_stamp(tmp_path: Path) -> None:
    linked_run(tmp_path)
    reader = create_tracker(str(tmp_path))
    assert len(pairs(reader)) == 21
    create_tracker(str(tmp_path)).add_source(RUN, PARENT, "late")
    assert (PARENT, "late") in pairs(reader)
    assert (PARENT, "late") in pairs(create_tracker(str(tmp_path)))


def test_a_descendant_added_changes_the_stamp_of_the_parent(tmp_path: Path) -> None:
    """A new child adds a record to the parent's ``links/`` and nothing to its TorchX files:
    the directory's token tells."""
    linked_run(tmp_path)
    reader = create_tracker(str(tmp_path))
    assert len(reader.descendants(RUN)) == 3
    create_tracker(str(tmp_path)).add_source("local_cwd://torchx/child-new", RUN, "model")
    assert ("local_cwd://torchx/child-new", "model") in descendant_pairs(tmp_path)
    assert len(reader.descendants(RUN)) == 4


def test_no_stamp_vouches_for_a_status_change_within_the_racy_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files aged (old mtimes, valid tokens) a moment ago: their status changed just now, and
    a change in the same clock tick would leave the stamp as it is."""
    linked_run(tmp_path)
    sources = tmp_path / encode_run_id(RUN) / "sources"
    newest = max(p.stat().st_ctime_ns for p in sources.iterdir())
    monkeypatch.setattr(fsspec_backend.time, "time_ns", lambda: newest + 1_000_000)
    links_snapshot(tmp_path).unlink()
    create_tracker(str(tmp_path)).compact(RUN)
    assert stored_stamps(tmp_path)["sources"] is None
    monkeypatch.undo()
    create_tracker(str(tmp_path)).compact(RUN)
    assert stored_stamps(tmp_path)["sources"] is not None


def test_no_stamp_is_stored_for_files_changed_within_the_racy_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AppRun compacts right after the last writes: the stamp could not tell a change made
    in the same clock tick apart, so none is stored; a later reader stores one (once)."""
    ours = create_tracker(str(tmp_path))
    for i in range(20):
        ours.add_source(RUN, f"local_cwd://torchx/src-{i}", "data")
    sources = tmp_path / encode_run_id(RUN) / "sources"
    newest = max(p.stat().st_ctime_ns for p in sources.iterdir())
    # 1 ms after the last write, however long this box took to get here
    monkeypatch.setattr(fsspec_backend.time, "time_ns", lambda: newest + 1_000_000)
    ours.compact(RUN)
    monkeypatch.undo()
    assert stored_stamps(tmp_path)["sources"] is None
    age(tmp_path)
    settle_status_changes()
    expected = pairs(create_tracker(str(tmp_path)))
    assert stored_stamps(tmp_path)["sources"] is not None
    path = links_snapshot(tmp_path)
    stamped = path.stat()
    assert pairs(create_tracker(str(tmp_path))) == expected
    assert path.stat().st_ino == stamped.st_ino  # not rewritten again


def test_a_version_3_snapshot_is_read_and_rewritten_with_stamps(
    tmp_path: Path, slow_reads: list[str]
) -> None:
    linked_run(tmp_path)
    expected = pairs(create_tracker(str(tmp_path)))
    as_version_3(links_snapshot(tmp_path))
    slow_reads.clear()
    assert pairs(create_tracker(str(tmp_path))) == expected
    assert "body" not in slow_reads[: slow_reads.index("views") + 1]  # answered by the view
    assert all(stamp is not None for stamp in stored_stamps(tmp_path).values())
    slow_reads.clear()
    assert pairs(create_tracker(str(tmp_path))) == expected
    assert slow_reads == []


def test_a_stamp_that_does_not_match_the_run_is_never_taken(tmp_path: Path) -> None:
    """A stamp that is not this run's as it is now (copied from elsewhere, or a store restored
    from a backup) vouches for nothing: the reader's own stamp differs. Here the stored answer
    and listing are wrong too, so only a stamp taken for equal would return that answer."""
    linked_run(tmp_path)
    path = links_snapshot(tmp_path)
    header, listings, body = path.read_bytes().split(b"\n")
    parsed, listed = json.loads(header), json.loads(listings)
    parsed["views"]["sources"]["runs"] = ["local_cwd://torchx/not-a-source"]
    parsed["views"]["sources"]["artifacts"] = ["data"]
    parsed["views"]["sources"]["stamp"][4] += 1  # one file more than there is
    listed["sources"]["names"] = []
    path.write_bytes(b"\n".join([json.dumps(parsed).encode(), json.dumps(listed).encode(), body]))
    got = pairs(create_tracker(str(tmp_path)))
    assert ("local_cwd://torchx/not-a-source", "data") not in got and len(got) == 21


def test_a_reader_that_must_not_write_keeps_its_listing_of_a_run_changed_since_its_stamp(
    tmp_path: Path,
    snapshot_loads: list[str],  # noqa: F811 (the fixture imported above)
) -> None:
    """``torchx tracker ui`` on a run that got a link after its snapshot: the stored stamp no
    longer answers and the viewer does not rewrite it, so its repeat reads answer from the
    listing it kept, as before stamps, not by merging again."""
    linked_run(tmp_path)
    create_tracker(str(tmp_path)).add_source(RUN, PARENT, "late")
    age(tmp_path)  # past the window where a stat cannot vouch for the new files
    viewer = create_tracker(str(tmp_path))
    viewer.cache_on_read = False
    first = pairs(viewer)
    snapshot_loads.clear()
    assert pairs(viewer) == first and (PARENT, "late") in first
    assert snapshot_loads == []
