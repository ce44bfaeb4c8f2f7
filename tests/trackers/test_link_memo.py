"""A reader's memo of link reads, and version tokens that do not outrun the file clock.

A repeat ``sources()``/``descendants()`` of an unchanged run answers from the listing alone;
any change the listing can see (a new record, a TorchX file rewritten in place, a new TorchX
file) is read. A TorchX file changed too recently for its stat to tell a second change apart
(a kernel's coarse timestamp tick, a filesystem's whole seconds) gets no token: never kept.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from torchx.tracker.backend.fsspec import FsspecTracker as TorchxFsspecTracker

from tests.trackers.test_snapshots import counting
from trackers.backends import fsspec as fsspec_backend
from trackers.backends.fsspec import FsspecTracker, create_tracker
from trackers.backends.link_memo import LinkListing, LinkMemo
from trackers.testing import PARENT, RUN

OTHER = "local_cwd://torchx/other"
NOW = 1_796_000_000.5


def age(root: Path, seconds: float = 10.0) -> None:
    """Move the modification time of every file and directory under ``root`` (and of ``root``)
    ``seconds`` into the past, as if written then (past the window in which a stat cannot
    vouch for them)."""
    for path in [root, *root.rglob("*")]:
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)))


def coarse_clock(monkeypatch: pytest.MonkeyPatch) -> int:
    """A timestamp tick 5 s ago (after what :func:`age` aged), and the trackers' clock set
    1 ms past it: a file stamped with the tick was changed "just now"."""
    tick = time.time_ns() - 5_000_000_000 + 123
    monkeypatch.setattr(fsspec_backend.time, "time_ns", lambda: tick + 1_000_000)
    return tick


def pairs(tracker: FsspecTracker, run: str = RUN) -> list[tuple[str, str | None]]:
    return sorted((s.source_run_id, s.artifact_name) for s in tracker.sources(run))


@pytest.fixture
def snapshot_loads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The (run, category) of every snapshot any tracker loads from now on."""
    loads: list[str] = []
    original = FsspecTracker._load_snapshot

    def load(self: FsspecTracker, run_id: str, category: str) -> object:
        loads.append(f"{run_id}/{category}")
        return original(self, run_id, category)

    monkeypatch.setattr(FsspecTracker, "_load_snapshot", load)
    yield loads


def torchx_writer(root: Path) -> TorchxFsspecTracker:
    return TorchxFsspecTracker(fsspec.filesystem("file"), str(root))


def test_a_repeat_read_of_an_unchanged_run_loads_no_snapshot(
    tmp_path: Path, snapshot_loads: list[str]
) -> None:
    writer = create_tracker(str(tmp_path))
    for i in range(5):
        writer.add_source(RUN, f"local_cwd://torchx/src-{i}", "data")
    writer.compact(RUN)
    age(tmp_path)
    reader = create_tracker(str(tmp_path))
    first = pairs(reader)
    snapshot_loads.clear()
    assert pairs(reader) == first
    assert len(first) == 5
    assert snapshot_loads == []


def test_every_change_the_listing_shows_is_read_after_a_memo_hit(tmp_path: Path) -> None:
    ours = create_tracker(str(tmp_path))
    ours.add_source(RUN, PARENT, "dataset")
    torchx_writer(tmp_path).add_source(RUN, OTHER, "weights")
    age(tmp_path)
    assert pairs(ours) == pairs(ours) == sorted([(PARENT, "dataset"), (OTHER, "weights")])

    torchx_writer(tmp_path).add_source(RUN, OTHER, "optimizer")  # TorchX's file, in place
    ours.add_source(RUN, PARENT, "model")  # a new record
    torchx_writer(tmp_path).add_source(RUN, "local_cwd://torchx/third", "eval")  # a new file
    got = pairs(ours)
    assert (PARENT, "model") in got
    assert (OTHER, "optimizer") in got
    assert ("local_cwd://torchx/third", "eval") in got
    assert got == pairs(create_tracker(str(tmp_path)))


def test_a_torchx_rewrite_alone_is_read_with_the_kept_names(tmp_path: Path) -> None:
    """links/ unchanged (its version vouches for the kept names), one TorchX file rewritten:
    the read lists only TorchX's files, and merges the kept names' records with them."""
    ours = create_tracker(str(tmp_path))
    ours.add_source(RUN, PARENT, "dataset")
    torchx_writer(tmp_path).add_source(RUN, OTHER, "weights")
    age(tmp_path)
    assert pairs(ours) == pairs(ours) == sorted([(PARENT, "dataset"), (OTHER, "weights")])
    torchx_writer(tmp_path).add_source(RUN, OTHER, "optimizer")
    age(next(tmp_path.rglob("sources")))
    expected = {(PARENT, "dataset"), (OTHER, "optimizer")}
    assert expected <= set(pairs(ours))
    assert pairs(ours) == pairs(create_tracker(str(tmp_path)))


def another_writers_link(tmp_path: Path, artifact_name: str) -> None:
    """A link record of RUN from PARENT, as another writer would add it: ``links/`` changes,
    TorchX's ``sources/`` file does not (its copy already names the pair's source run)."""
    links = next(tmp_path.rglob("links"))
    record = json.loads(next(links.iterdir()).read_text())
    record["artifact_name"] = artifact_name
    (links / "99999999999999999999-another-writer").write_text(json.dumps(record))


def test_a_record_added_to_links_alone_is_read_after_a_memo_hit(tmp_path: Path) -> None:
    """The directory's own version stands in for its listing: an added entry changes it."""
    ours = create_tracker(str(tmp_path))
    ours.add_source(RUN, PARENT, "dataset")
    age(tmp_path)
    assert pairs(ours) == pairs(ours) == [(PARENT, "dataset")]
    time.sleep(0.01)
    another_writers_link(tmp_path, "model")
    age(next(tmp_path.rglob("links")))  # long past: not racy; only links/ and its new entry
    assert pairs(ours) == [(PARENT, "dataset"), (PARENT, "model")]


def test_a_record_added_within_one_clock_tick_of_the_listing_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A coarse clock, simulated for the directory: the entry added after the read keeps the
    directory's mtime as the read saw it."""
    ours = create_tracker(str(tmp_path))
    ours.add_source(RUN, PARENT, "dataset")
    age(tmp_path)
    links = next(tmp_path.rglob("links"))
    clock = coarse_clock(monkeypatch)
    os.utime(links, ns=(clock, clock))
    assert pairs(ours) == pairs(ours) == [(PARENT, "dataset")]
    another_writers_link(tmp_path, "model")
    os.utime(links, ns=(clock, clock))
    assert pairs(ours) == [(PARENT, "dataset"), (PARENT, "model")]


def test_a_same_size_rewrite_within_one_clock_tick_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A coarse clock, simulated: TorchX rewrites its file to a name of the same length and the
    file keeps the inode, size and mtime it had. The read before it, made in the same tick, must
    not have kept a copy that its stat would still vouch for."""
    ours = create_tracker(str(tmp_path))
    torchx_writer(tmp_path).add_source(RUN, OTHER, "aaaa")
    age(tmp_path)
    clock = coarse_clock(monkeypatch)
    link_file = next((tmp_path).rglob("sources/*"))
    os.utime(link_file, ns=(clock, clock))
    assert pairs(ours) == [(OTHER, "aaaa")]
    ours.compact(RUN)

    torchx_writer(tmp_path).add_source(RUN, OTHER, "bbbb")  # 0.7.0: mode "w", same size
    os.utime(link_file, ns=(clock, clock))
    assert (OTHER, "bbbb") in pairs(ours)  # the same reader (its memo)
    assert (OTHER, "bbbb") in pairs(create_tracker(str(tmp_path)))  # a new one (the snapshot)


@pytest.mark.parametrize(
    ("mtime_ns", "now_ns", "racy"),
    [
        (5_000_000_123, 5_000_000_123 + 50_000_000, True),  # 50 ms old: within a coarse tick
        (5_000_000_123, 5_000_000_123 + 150_000_000, False),
        (5_000_000_000, 5_000_000_000 + 1_500_000_000, True),  # whole seconds: 2 s window
        (5_000_000_000, 5_000_000_000 + 2_500_000_000, False),
        (5_000_000_123, 5_000_000_000, True),  # stamped after "now" (another host's clock)
    ],
)
def test_a_file_gets_a_version_token_only_once_its_timestamp_can_tell_changes_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mtime_ns: int, now_ns: int, racy: bool
) -> None:
    (tmp_path / "f").write_text("x\n")
    os.utime(tmp_path / "f", ns=(mtime_ns, mtime_ns))
    monkeypatch.setattr(fsspec_backend.time, "time_ns", lambda: now_ns)
    token = create_tracker(str(tmp_path))._list_versions(str(tmp_path))["f"]
    assert (token is None) is racy


def test_a_damaged_link_record_is_not_kept_and_is_tried_again(tmp_path: Path) -> None:
    ours = create_tracker(str(tmp_path))
    ours.add_source(RUN, PARENT, "dataset")
    links = next(tmp_path.rglob("links"))
    (links / "0000-damaged").write_bytes(b"{not json")
    age(tmp_path)
    reader = create_tracker(str(tmp_path))
    fetched = counting(reader)
    assert pairs(reader) == [(PARENT, "dataset")]
    fetched.clear()
    assert pairs(reader) == [(PARENT, "dataset")]
    assert any(k.endswith("0000-damaged") for k in fetched)


def test_the_memo_drops_the_least_recently_used_run_and_never_keeps_untrusted_listings() -> None:
    memo = LinkMemo(size=2)
    listing = LinkListing(["r1"], {"f": "1-2-3"})
    answer = (("a", None),)
    memo.put(("a", "source"), listing, answer)
    memo.put(("b", "source"), listing, answer)
    assert memo.get(("a", "source"), listing) == answer  # a is now the most recent
    memo.put(("c", "source"), listing, answer)
    assert ("b", "source") not in memo
    assert ("a", "source") in memo
    assert memo.get(("a", "source"), LinkListing(["r1", "r2"], {"f": "1-2-3"})) is None
    assert memo.get(("a", "source"), LinkListing(["r1"], {"f": "1-2-4"})) is None
    memo.put(("a", "source"), LinkListing(["r1"], {"f": None}), answer)
    assert ("a", "source") not in memo


def test_the_memo_keeps_at_most_its_item_budget() -> None:
    """Big runs are kept by weight (names, tokens, pairs), not only by count."""
    memo = LinkMemo(size=100, items=10)
    big = LinkListing(["r1", "r2"], {"f": "t", "g": "t"})  # 4 items, + 2 pairs = 6
    pairs = (("a", None), ("b", None))
    memo.put(("a", "source"), big, pairs)
    memo.put(("b", "source"), big, pairs)  # 12 > 10: a goes
    assert ("a", "source") not in memo
    assert ("b", "source") in memo
    memo.put(("c", "source"), LinkListing(["r"] * 11, {}), ())  # alone over the budget
    assert ("c", "source") not in memo
    assert ("b", "source") in memo


class WholeSecondListings(MemoryFileSystem):
    """``memory://`` whose listings carry a whole-second ``mtime`` and no ETag, as sftp's do:
    every file stamped with the second the test started."""

    protocol = "wholesecond"
    stamp = 0  # set by the test: the second it starts

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return str(super()._strip_protocol(path.removeprefix("wholesecond://")))

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        found = super().ls(path, detail=detail, **kwargs)
        if detail:
            found = [{**e, "mtime": self.stamp} if e["type"] == "file" else e for e in found]
        return found


def test_a_remote_same_size_rewrite_within_one_second_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A remote filesystem without ETags: its mtime (the server's, whole seconds) cannot tell
    two writes in one second apart, so a file stamped in the last 10 s is fetched again."""
    monkeypatch.setattr(WholeSecondListings, "stamp", int(time.time()))
    fsspec.register_implementation("wholesecond", WholeSecondListings, clobber=True)
    root = f"/runs-{uuid.uuid4().hex}"
    ours = create_tracker(f"wholesecond://{root}")
    fsspec.filesystem("wholesecond").mkdir(root)  # TorchX's tracker wants its root to exist
    theirs = TorchxFsspecTracker(fsspec.filesystem("wholesecond"), root)
    theirs.add_source(RUN, OTHER, "aaaa")
    assert pairs(ours) == [(OTHER, "aaaa")]
    ours.compact(RUN)
    theirs.add_source(RUN, OTHER, "bbbb")  # 0.7.0: mode "w", the same size, the same second
    assert (OTHER, "bbbb") in pairs(ours)
    assert (OTHER, "bbbb") in pairs(create_tracker(f"wholesecond://{root}"))


@pytest.mark.parametrize(
    ("mtime", "racy"),
    [
        (NOW - 1, True),
        (NOW - 60, False),
        (datetime.fromtimestamp(NOW - 60, timezone.utc), False),
        (datetime.fromtimestamp(NOW - 1, timezone.utc), True),
        (datetime.fromtimestamp(NOW - 60, timezone.utc).isoformat(), False),
        (datetime.fromtimestamp(NOW - 60, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), False),
        ((NOW - 60) * 1000, True),  # milliseconds: "in the future", so never trusted
        ("Tue, 01 Dec 2026 10:00:00 GMT", True),  # a form it cannot read
        (None.__class__, True),
    ],
)
def test_a_remote_mtime_is_trusted_only_when_readable_and_older_than_the_window(
    mtime: object, racy: bool
) -> None:
    assert fsspec_backend._remote_racy(mtime, NOW) is racy
