"""A links snapshot's stored views: the answer of a link read, for a reader that has no memo.

A new process reading ``sources()``/``descendants()`` of a run whose listing is the one the
snapshot's view was derived from takes the view's pairs and never parses the snapshot's body;
anything the listing shows changed (a record added, a TorchX file rewritten in place or too
recent for its stat to vouch for it) is read from the records, as without a view. Version 2
snapshots (before views) are still read, and a links read rewrites them with views.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.trackers.test_link_memo import OTHER, age, coarse_clock, pairs, torchx_writer
from trackers.backends import fsspec as fsspec_backend
from trackers.backends.fsspec import RACY_NS, create_tracker
from trackers.backends.snapshots import SNAPSHOT_MIN_NEW, SNAPSHOT_VERSION, parse_snapshot
from trackers.ids import encode_run_id
from trackers.testing import PARENT, RUN


def links_snapshot(root: Path, run: str = RUN) -> Path:
    return root / encode_run_id(run) / ".snapshot" / "links"


def settle_status_changes() -> None:
    """Wait until every file's status change time (which :func:`age` cannot set back: setting
    an mtime is a change of status) is older than the window in which a stat cannot vouch for
    it, so a snapshot written now gets a stamp (``trackers.backends.version_tokens``)."""
    time.sleep(2 * RACY_NS / 1e9)


def linked_run(root: Path, sources: int = 20, descendants: int = 3) -> None:
    """``RUN`` with ``sources`` links to other runs (ours and TorchX's), ``descendants`` runs
    linking to it, aged past the window where a stat cannot vouch for a file, compacted (with
    its stamps)."""
    ours = create_tracker(str(root))
    ours.add_metadata(RUN, stage="train")
    for i in range(sources):
        ours.add_source(RUN, f"local_cwd://torchx/src-{i}", "data")
    torchx_writer(root).add_source(RUN, OTHER, "weights")
    for i in range(descendants):
        ours.add_source(f"local_cwd://torchx/child-{i}", RUN, "model")
    age(root)
    settle_status_changes()
    ours.compact(RUN)


def as_version_2(path: Path) -> bytes:
    """Rewrite the snapshot at ``path`` as the previous release wrote it (one JSON document,
    no views) and return its bytes."""
    body = path.read_bytes().split(b"\n")[-1]
    old = json.dumps({"version": 2, **json.loads(body)}, separators=(",", ":")).encode()
    path.write_bytes(old)
    return old


def as_version_3(path: Path) -> None:
    """Rewrite the snapshot at ``path`` as version 3 (each view's listing in the header, no
    stamps, two lines), as written for a day before stamps."""
    header, listings, body = (json.loads(line) for line in path.read_bytes().split(b"\n"))
    views = {
        d: {**listings[d], "runs": view["runs"], "artifacts": view["artifacts"]}
        for d, view in header["views"].items()
    }
    v3 = json.dumps({"version": 3, "views": views}).encode()
    path.write_bytes(v3 + b"\n" + json.dumps(body).encode())


def descendant_pairs(root: Path) -> list[tuple[str, str | None]]:
    reader = create_tracker(str(root))
    return sorted((d.run_id, d.artifact_name) for d in reader.descendants(RUN))


def test_a_new_reader_of_an_unchanged_run_answers_without_parsing_the_body(
    tmp_path: Path, body_parses: list[int]
) -> None:
    """By the views' listings (no stamps here: a version 3 snapshot, read by a reader that
    must not write, so it is not rewritten with them; on S3 there are none)."""
    linked_run(tmp_path)
    as_version_3(links_snapshot(tmp_path))
    reader = create_tracker(str(tmp_path))
    reader.cache_on_read = False
    got = pairs(reader)
    children = sorted((d.run_id, d.artifact_name) for d in reader.descendants(RUN))
    assert body_parses == []
    assert len(got) == 21 and (OTHER, "weights") in got
    assert children == [(f"local_cwd://torchx/child-{i}", "model") for i in range(3)]
    # the same answer as merging the records (a reader whose view is gone)
    links_snapshot(tmp_path).unlink()
    assert pairs(create_tracker(str(tmp_path))) == got
    assert descendant_pairs(tmp_path) == children


def test_a_record_added_after_the_view_is_read(tmp_path: Path, body_parses: list[int]) -> None:
    linked_run(tmp_path)
    create_tracker(str(tmp_path)).add_source(RUN, PARENT, "late")
    got = pairs(create_tracker(str(tmp_path)))
    assert (PARENT, "late") in got and len(got) == 22
    assert body_parses  # the view no longer matched: the records were merged


def test_a_torchx_file_rewritten_in_place_is_read_not_taken_from_the_view(
    tmp_path: Path,
) -> None:
    linked_run(tmp_path)
    link_file = tmp_path / encode_run_id(RUN) / "sources" / encode_run_id(OTHER)
    link_file.write_text("optimizer\n")  # what TorchX 0.7.0 does: mode "w", the same inode
    age(link_file, 5.0)  # old enough for its stat to vouch for it
    got = pairs(create_tracker(str(tmp_path)))
    assert (OTHER, "optimizer") in got and (OTHER, "weights") not in got


def rewrite_keeping_length_and_mtime(path: Path, text: str) -> None:
    """Rewrite ``path`` in place (TorchX's mode "w": the same inode) with ``text`` of the same
    length and set its mtime back to what it was, as ``cp -p`` restoring an older copy does:
    inode, size and mtime are as before; only the status change time moves."""
    before = path.stat()
    assert len(text.encode()) == before.st_size
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_same_length_rewrite_with_its_mtime_set_back_is_read_not_taken_from_the_view(
    tmp_path: Path,
) -> None:
    """The listing path (a version 3 snapshot has no stamp; this reader must not write, so
    it gets none): the file's token holds its status change time, which no call sets back."""
    linked_run(tmp_path)
    as_version_3(links_snapshot(tmp_path))
    link_file = tmp_path / encode_run_id(RUN) / "sources" / encode_run_id(OTHER)
    rewrite_keeping_length_and_mtime(link_file, "optimzr\n")  # as long as "weights"
    settle_status_changes()  # past the window: the token is taken, and must tell
    reader = create_tracker(str(tmp_path))
    reader.cache_on_read = False
    got = pairs(reader)
    assert (OTHER, "optimzr") in got and (OTHER, "weights") not in got


def test_a_same_length_rewrite_with_its_mtime_set_back_is_read_after_a_memo_hit(
    tmp_path: Path,
) -> None:
    """A reader that kept a listing (no stamp could answer for it) compares tokens again."""
    linked_run(tmp_path)
    as_version_3(links_snapshot(tmp_path))
    reader = create_tracker(str(tmp_path))
    reader.cache_on_read = False
    assert (OTHER, "weights") in pairs(reader)
    link_file = tmp_path / encode_run_id(RUN) / "sources" / encode_run_id(OTHER)
    rewrite_keeping_length_and_mtime(link_file, "optimzr\n")
    settle_status_changes()
    got = pairs(reader)
    assert (OTHER, "optimzr") in got and (OTHER, "weights") not in got


def test_a_snapshot_with_tokens_of_the_older_three_field_form_is_read_and_rewritten(
    tmp_path: Path, body_parses: list[int]
) -> None:
    """Tokens stored before the status change time was added (``inode-mtime-size``) never
    equal a fresh one: the records are merged once, and the reader stores the new form."""
    linked_run(tmp_path)
    expected = pairs(create_tracker(str(tmp_path)))
    path = links_snapshot(tmp_path)
    header, listings, body = path.read_bytes().split(b"\n")
    parsed, listed = json.loads(header), json.loads(listings)
    for view in parsed["views"].values():
        view["stamp"] = None  # as the token path reads it (S3, or a stamp that did not answer)
    for listing in listed.values():
        listing["files"] = {n: t.rsplit("-", 1)[0] for n, t in listing["files"].items()}
    path.write_bytes(b"\n".join([json.dumps(parsed).encode(), json.dumps(listed).encode(), body]))
    body_parses.clear()
    assert pairs(create_tracker(str(tmp_path))) == expected
    assert body_parses  # merged: no stored token answered
    rewritten = json.loads(path.read_bytes().split(b"\n")[1])
    assert all(t.count("-") == 3 for t in rewritten["sources"]["files"].values())
    body_parses.clear()
    assert pairs(create_tracker(str(tmp_path))) == expected
    assert body_parses == []


def test_a_torchx_file_too_recent_for_its_stat_is_never_vouched_for_by_the_view(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body_parses: list[int]
) -> None:
    """TorchX rewrites a file in place (same inode, same length) within the current coarse
    timestamp tick: its stat cannot vouch for it, so it has no token and no view matches."""
    linked_run(tmp_path)
    tick = coarse_clock(monkeypatch)
    link_file = tmp_path / encode_run_id(RUN) / "sources" / encode_run_id(OTHER)
    link_file.write_text("optimzr\n")  # as long as "weights"
    os.utime(link_file, ns=(tick, tick))
    got = pairs(create_tracker(str(tmp_path)))
    assert (OTHER, "optimzr") in got and (OTHER, "weights") not in got
    assert body_parses  # records and files were merged


def test_a_version_2_snapshot_is_read_and_rewritten_with_views(
    tmp_path: Path, body_parses: list[int]
) -> None:
    linked_run(tmp_path)
    expected = pairs(create_tracker(str(tmp_path)))
    path = links_snapshot(tmp_path)
    assert json.loads(path.read_bytes().split(b"\n", 1)[0])["version"] == SNAPSHOT_VERSION
    as_version_2(path)
    body_parses.clear()

    assert pairs(create_tracker(str(tmp_path))) == expected
    assert body_parses == [1]  # read as one document
    rewritten = parse_snapshot(path.read_bytes(), None, str(path))
    assert set(rewritten.views) == {"sources", "descendants"}
    body_parses.clear()
    assert pairs(create_tracker(str(tmp_path))) == expected
    assert body_parses == []


def test_a_reader_that_must_not_write_leaves_a_version_2_snapshot_as_it_is(
    tmp_path: Path,
) -> None:
    linked_run(tmp_path)
    path = links_snapshot(tmp_path)
    old = as_version_2(path)
    reader = create_tracker(str(tmp_path))
    reader.cache_on_read = False
    assert len(pairs(reader)) == 21
    assert path.read_bytes() == old


def test_a_snapshot_with_a_broken_header_is_ignored_and_the_records_read(
    tmp_path: Path,
) -> None:
    linked_run(tmp_path)
    expected = pairs(create_tracker(str(tmp_path)))
    path = links_snapshot(tmp_path)
    path.write_bytes(b'{"version": 3, "views": [' + path.read_bytes())
    assert pairs(create_tracker(str(tmp_path))) == expected


def test_a_view_whose_pairs_are_malformed_is_not_used(tmp_path: Path) -> None:
    linked_run(tmp_path)
    expected = pairs(create_tracker(str(tmp_path)))
    path = links_snapshot(tmp_path)
    header, body = path.read_bytes().split(b"\n", 1)
    views = json.loads(header)
    views["views"]["sources"]["runs"][0] = 1  # not a run id
    path.write_bytes(json.dumps(views).encode() + b"\n" + body)
    assert pairs(create_tracker(str(tmp_path))) == expected


def test_a_run_compacted_while_its_files_were_too_recent_gets_its_view_on_a_later_read(
    tmp_path: Path, body_parses: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """AppRun compacts a run at its close, right after the last links: the TorchX files just
    written have no token yet, so the view cannot answer. The first reader after that window
    rewrites the snapshot (it fetched no record: only tokens were missing); later readers
    answer from the view."""
    ours = create_tracker(str(tmp_path))
    for i in range(SNAPSHOT_MIN_NEW - 6):  # too few to rewrite the snapshot for their sake
        ours.add_source(RUN, f"local_cwd://torchx/src-{i}", "data")
    sources = tmp_path / encode_run_id(RUN) / "sources"
    newest = max(p.stat().st_mtime_ns for p in sources.iterdir())
    with monkeypatch.context() as clock:  # within RACY_NS of the writes, however slow the box
        clock.setattr(fsspec_backend.time, "time_ns", lambda: newest + 1_000_000)
        ours.compact(RUN)
    age(tmp_path)
    settle_status_changes()  # so the first reader's rewrite is the only one, stamp and all
    path = links_snapshot(tmp_path)
    compacted = path.read_bytes()
    first = pairs(create_tracker(str(tmp_path)))
    assert body_parses and path.read_bytes() != compacted
    body_parses.clear()
    assert pairs(create_tracker(str(tmp_path))) == first
    assert body_parses == []
    assert len(first) == SNAPSHOT_MIN_NEW - 6


def test_reading_the_links_of_a_run_that_does_not_exist_writes_nothing(tmp_path: Path) -> None:
    """A missing view is written only into a snapshot that exists: reading the descendants of
    an external source (a dataset URL, a run elsewhere) must not turn it into a run here."""
    ours = create_tracker(str(tmp_path))
    ours.add_source(RUN, PARENT, "data")
    age(tmp_path)
    reader = create_tracker(str(tmp_path))
    assert reader.descendants(PARENT) == [] and reader.sources(PARENT) == []
    assert reader.run_ids() == [RUN]
    assert not (tmp_path / encode_run_id(PARENT)).exists()


def test_a_listing_no_view_can_answer_does_not_rewrite_the_snapshot_on_every_read(
    tmp_path: Path,
) -> None:
    """A file in ``sources/`` that names no run (left by some other tool) has a token but no
    place in any view: reads merge the records and leave the snapshot as it is."""
    linked_run(tmp_path)
    foreign = tmp_path / encode_run_id(RUN) / "sources" / "README"
    foreign.write_text("not a link\n")
    os.utime(foreign, (1_700_000_000, 1_700_000_000))  # old enough for its stat to vouch for it
    path = links_snapshot(tmp_path)
    before = path.stat()
    for _ in range(2):
        assert len(pairs(create_tracker(str(tmp_path)))) == 21
        after = path.stat()  # a rewrite is a rename: a new inode (and a new mtime)
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_snapshot_with_a_broken_body_is_read_from_the_records_once_the_view_is_behind(
    tmp_path: Path,
) -> None:
    linked_run(tmp_path)
    path = links_snapshot(tmp_path)
    header, listings, _ = path.read_bytes().split(b"\n", 2)
    path.write_bytes(header + b"\n" + listings + b'\n{"records": [')  # cut off mid-body
    create_tracker(str(tmp_path)).add_source(RUN, PARENT, "late")  # the view no longer answers
    got = pairs(create_tracker(str(tmp_path)))
    assert (PARENT, "late") in got and (OTHER, "weights") in got and len(got) == 22
