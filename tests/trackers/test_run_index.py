"""The run index (``<root>/.run-index``): ``run_ids()`` in a new process takes the ids a reader
decoded before, and only for exactly the listing they were decoded from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import fsspec
import pytest
from torchx.tracker.backend.fsspec import FsspecTracker as TorchxFsspecTracker

from trackers.backends import record_store
from trackers.backends.fsspec import create_tracker
from trackers.backends.run_index import RUN_INDEX, encode_run_index, parse_run_index
from trackers.ids import encode_run_id

ODD_IDS = [
    "local_cwd://torchx/a",
    "slurm://cluster/1234",
    "kubernetes://ns/job-é-ü",
    "local_cwd://torchx/with/slashes",
    "local_cwd://torchx/line\nbreak",
    'local_cwd://torchx/quote"and\\backslash',
]


def _store(root: Path, ids: list[str]) -> None:
    writer = create_tracker(str(root))
    for run in ids:
        writer.add_metadata(run, x=1)


def _no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(names: object) -> list[str | None]:
        raise AssertionError("decoded the listing although the run index matched it")

    monkeypatch.setattr(record_store, "decode_run_ids", refuse)


def test_a_new_reader_takes_the_run_ids_from_the_index_without_decoding_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _store(tmp_path, ODD_IDS)
    assert create_tracker(str(tmp_path)).run_ids() == sorted(ODD_IDS)
    assert (tmp_path / RUN_INDEX).is_file()
    _no_decoding(monkeypatch)
    assert create_tracker(str(tmp_path)).run_ids() == sorted(ODD_IDS)


def test_a_run_added_since_the_index_was_written_is_listed_and_the_index_rewritten(
    tmp_path: Path,
) -> None:
    _store(tmp_path, ["local_cwd://torchx/a", "local_cwd://torchx/b"])
    create_tracker(str(tmp_path)).run_ids()
    before = (tmp_path / RUN_INDEX).read_bytes()
    # TorchX's own tracker knows nothing of the index
    TorchxFsspecTracker(fsspec.filesystem("file"), str(tmp_path)).add_metadata(
        "local_cwd://torchx/c", x=1
    )
    expected = ["local_cwd://torchx/a", "local_cwd://torchx/b", "local_cwd://torchx/c"]
    assert create_tracker(str(tmp_path)).run_ids() == expected
    after = (tmp_path / RUN_INDEX).read_bytes()
    assert after != before
    assert json.loads(after)["run_ids"] == expected


def test_a_run_removed_since_the_index_was_written_is_not_listed(tmp_path: Path) -> None:
    _store(tmp_path, ["local_cwd://torchx/a", "local_cwd://torchx/b"])
    create_tracker(str(tmp_path)).run_ids()
    shutil.rmtree(tmp_path / encode_run_id("local_cwd://torchx/a"))
    assert create_tracker(str(tmp_path)).run_ids() == ["local_cwd://torchx/b"]


@pytest.mark.parametrize(
    "damage",
    [b"", b"not json", b"[1, 2]", b'{"version": 99}', b'{"version": 1, "listing": 3}'],
)
def test_a_damaged_run_index_is_ignored_and_replaced(tmp_path: Path, damage: bytes) -> None:
    _store(tmp_path, ODD_IDS)
    (tmp_path / RUN_INDEX).write_bytes(damage)
    reader = create_tracker(str(tmp_path))
    assert reader.run_ids() == sorted(ODD_IDS)
    assert reader.damaged == []  # a cache, not a record: nothing is reported lost
    assert json.loads((tmp_path / RUN_INDEX).read_bytes())["run_ids"] == sorted(ODD_IDS)


def test_an_index_whose_ids_are_not_all_strings_is_not_used(tmp_path: Path) -> None:
    _store(tmp_path, ["local_cwd://torchx/a"])
    names = [encode_run_id("local_cwd://torchx/a")]
    forged = json.dumps({"version": 1, "listing": "/".join(names), "run_ids": [7]})
    (tmp_path / RUN_INDEX).write_text(forged)
    assert create_tracker(str(tmp_path)).run_ids() == ["local_cwd://torchx/a"]


def test_a_reader_that_must_not_write_leaves_no_run_index(tmp_path: Path) -> None:
    _store(tmp_path, ["local_cwd://torchx/a"])
    viewer = create_tracker(str(tmp_path))
    viewer.cache_on_read = False
    assert viewer.run_ids() == ["local_cwd://torchx/a"]
    assert not (tmp_path / RUN_INDEX).exists()


def test_an_empty_or_missing_store_gets_no_run_index(tmp_path: Path) -> None:
    assert create_tracker(str(tmp_path / "absent")).run_ids() == []
    assert not (tmp_path / "absent").exists()
    assert create_tracker(str(tmp_path)).run_ids() == []
    assert not (tmp_path / RUN_INDEX).exists()


def test_torchx_lists_the_same_runs_with_the_index_beside_them(tmp_path: Path) -> None:
    _store(tmp_path, ODD_IDS)
    create_tracker(str(tmp_path)).run_ids()
    theirs = TorchxFsspecTracker(fsspec.filesystem("file"), str(tmp_path))
    assert sorted(theirs.run_ids()) == sorted(ODD_IDS)


def test_an_object_store_reader_keeps_no_run_index() -> None:
    reader = create_tracker("memory://runs-index-check")
    reader.add_metadata("local_cwd://torchx/a", x=1)
    assert reader.run_ids() == ["local_cwd://torchx/a"]
    assert not reader.fs.exists("/runs-index-check/" + RUN_INDEX)


def test_the_index_round_trips_ids_only_for_its_own_listing() -> None:
    names = ["AAAA", "BBBB"]
    data = encode_run_index(names, ["x\udcff", "a/b"])
    assert parse_run_index(data, names) == ["x\udcff", "a/b"]
    assert parse_run_index(data, ["BBBB", "AAAA"]) is None  # another order: not trusted
    assert parse_run_index(data, ["AAAA"]) is None
    assert parse_run_index(None, names) is None
