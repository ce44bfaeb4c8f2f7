"""Reads survive a damaged store: the real ``torchx tracker`` CLI (subprocesses, bounded by a
timeout) on a local fsspec store with one kind of damage each, and ``sync --all`` on a spool with
a bad segment and a directory named ``*.jsonl``.

Each damaged command must print the good records, name the bad one with its path on stderr,
exit with status 3 (README, "Damaged stores"), and print no traceback; the commands that do not
read the damaged file exit 0. A failed write leaves no ``.tmp`` file behind.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.cli_support import TORCHX, clean_env
from trackers.backends.fsspec import create_tracker
from trackers.ids import deterministic_record_names, encode_run_id
from trackers.operations import Operation
from trackers.spool import Segment
from trackers.types import MetricPoint

RUN = "local_cwd://torchx/train-1"
PARENT = "local_cwd://torchx/prepare-1"
CHILD = "local_cwd://torchx/eval-1"
#: A record name as ours are named, for a damaged record (sorts after the good ones).
BAD = "99999999999999999999-00000000000000000000000000000000"
#: How long one CLI call may take (a FIFO opened for reading would block forever).
TIMEOUT_S = 60

COMMANDS: dict[str, list[str]] = {
    "jobs": ["jobs"],
    "metadata": ["metadata", RUN],
    "artifacts": ["artifacts", RUN],
    "metrics": ["metrics", RUN],
    "lineage": ["lineage", RUN],
}
#: What each command must still show from the good records.
SHOWN: dict[str, list[str]] = {
    "jobs": [RUN, PARENT, CHILD],
    "metadata": ["lr", "0.1"],
    "artifacts": ["model", "/m.pt"],
    "metrics": ["loss", "0.25"],
    "lineage": [PARENT, CHILD, "dataset"],
}


def good_store(root: Path) -> Path:
    """A store with one run (metadata, an artifact, metrics, a parent and a child)."""
    store = create_tracker(str(root))
    store.add_metadata(PARENT, step="prepare")
    store.add_metadata(RUN, lr=0.1)
    store.add_artifact(RUN, "model", "/m.pt", {"epoch": 3})
    store.add_metrics(
        RUN, [MetricPoint("loss", v, i, 1.0, None) for i, v in enumerate([1, 0.5, 0.25])]
    )
    store.add_source(RUN, PARENT, "dataset")
    store.add_metadata(CHILD, step="eval")
    store.add_source(CHILD, RUN, "model")
    return root


def run_dir(root: Path) -> Path:
    return root / encode_run_id(RUN)


def _metrics_json(points: dict[str, object]) -> bytes:
    return json.dumps({"points": points}).encode()


#: damage -> (what to do to the store, the commands that read the damaged path, that path).
#: ``list jobs`` reads the catalog and, for runs whose component the catalog does not name (no
#: launch record here), their metadata and status records; never their links, which it does
#: not show.
DAMAGE: dict[str, tuple[Callable[[Path], Path], set[str]]] = {
    "directory_record": (
        lambda root: _mkdir(run_dir(root) / "metadata" / BAD),
        {"metadata", "jobs"},
    ),
    "truncated_record": (
        lambda root: _write(run_dir(root) / "metadata" / BAD, b'{"metadata": {"lr": 0.'),
        {"metadata", "jobs"},
    ),
    "zero_byte_record": (
        lambda root: _write(run_dir(root) / "artifacts" / BAD, b""),
        {"artifacts"},
    ),
    "json_that_is_not_a_record": (
        lambda root: _write(run_dir(root) / "metadata" / BAD, b"[1, 2]"),
        {"metadata", "jobs"},
    ),
    "uneven_metric_columns": (
        lambda root: _write(
            run_dir(root) / "metrics" / BAD,
            _metrics_json(
                {"names": ["loss"], "name": 0, "value": [1, 2], "step": [1], "time_us": [1]}
            ),
        ),
        {"metrics"},
    ),
    "metric_columns_without_steps": (
        lambda root: _write(
            run_dir(root) / "metrics" / BAD,
            _metrics_json({"names": ["loss"], "name": 0, "value": [1], "time_us": [1]}),
        ),
        {"metrics"},
    ),
    "metric_name_index_out_of_range": (
        lambda root: _write(
            run_dir(root) / "metrics" / BAD,
            _metrics_json(
                {"names": ["loss"], "name": [7], "value": [1], "step": [1], "time_us": [1]}
            ),
        ),
        {"metrics"},
    ),
    "non_utf8_sources_file": (
        lambda root: _write(
            run_dir(root) / "sources" / encode_run_id("local_cwd://torchx/other"), b"\xff\xfe\n"
        ),
        {"lineage"},
    ),
    "symlink_loop_record": (
        lambda root: _link_loop(run_dir(root) / "artifacts" / BAD),
        {"artifacts"},
    ),
    "symlink_loop_run": (
        lambda root: _link_loop(root / encode_run_id("local_cwd://torchx/loop")),
        {"jobs"},
    ),
    "fifo_record": (
        lambda root: _fifo(run_dir(root) / "metadata" / BAD),
        {"metadata", "jobs"},
    ),
    "fifo_link_file": (
        lambda root: _fifo(run_dir(root) / "sources" / encode_run_id("local_cwd://torchx/f")),
        {"lineage"},
    ),
}


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _link_loop(path: Path) -> Path:
    path.symlink_to(path.name)  # a link to itself: ELOOP
    return path


def _fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def tracker_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TORCHX, "tracker", *args],
        cwd=cwd,
        env=clean_env(cwd),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_the_cli_skips_a_damaged_record_names_it_and_shows_the_rest(
    tmp_path: Path, damage: str
) -> None:
    root = good_store(tmp_path / "store")
    make, readers = DAMAGE[damage]
    bad_path = make(root)
    spec = f"fsspec={root}"
    with ThreadPoolExecutor(max_workers=len(COMMANDS)) as pool:
        done = dict(
            zip(
                COMMANDS,
                pool.map(
                    lambda argv: tracker_cli(tmp_path, "list", *argv, "--tracker", spec),
                    COMMANDS.values(),
                ),
                strict=True,
            )
        )
    for command, result in done.items():
        assert "Traceback" not in result.stderr, (command, result.stderr)
        for shown in SHOWN[command]:
            assert shown in result.stdout, (command, result.stdout, result.stderr)
        if command in readers:
            assert result.returncode == 3, (command, result.returncode, result.stderr)
            assert "unreadable record(s) skipped" in result.stderr, (command, result.stderr)
            assert str(bad_path) in result.stderr, (command, result.stderr)
        else:
            assert result.returncode == 0, (command, result.returncode, result.stderr)
            assert str(bad_path) not in result.stderr


def test_metrics_keep_every_good_point_next_to_a_malformed_record(tmp_path: Path) -> None:
    root = good_store(tmp_path / "store")
    DAMAGE["uneven_metric_columns"][0](root)
    store = create_tracker(str(root))
    assert [p.value for p in store.metrics(RUN)] == [1, 0.5, 0.25]
    assert [path for path, _ in store.damaged] == [str(run_dir(root) / "metrics" / BAD)]


# --- sync ---


def _segment(spool: Path, run_id: str, store: Path) -> None:
    """A segment with two operations a job could not deliver (its store was down)."""
    segment = Segment.create(spool, run_id, "lineage_fsspec", str(store))
    segment.append(Operation("00000000000000000001-a", "add_metadata", {"values": {"k": 1}}).line)
    segment.append(Operation("00000000000000000002-b", "set_status", {"status": "FAILED"}).line)
    segment.release()


def test_sync_all_reports_bad_segments_and_delivers_the_good_ones(tmp_path: Path) -> None:
    spool, store = tmp_path / "spool", tmp_path / "store"
    _segment(spool, RUN, store)
    _segment(spool, CHILD, store)
    tracker_dir = next((spool / encode_run_id(RUN)).iterdir())
    fake_dir = tracker_dir / "00000000000000000000-1-deadbeef.jsonl"
    fake_dir.mkdir()
    garbage = tracker_dir / "00000000000000000000-2-deadbeef.jsonl"
    garbage.write_bytes(b"\x00\x01 not a header\n")
    fifo = tracker_dir / "00000000000000000000-3-deadbeef.jsonl"
    os.mkfifo(fifo)
    done = tracker_cli(tmp_path, "sync", "--all", "--spool-dir", str(spool), "--format", "json")
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1, done.stderr  # something is left: the bad entries
    results = json.loads(done.stdout)
    delivered = sorted((r["run_id"], r["delivered"]) for r in results if r["delivered"])
    assert delivered == [(CHILD, 2), (RUN, 2)]
    notes = [r["note"] for r in results if r["left"] == -1]
    assert len(notes) == 3
    assert any(f"not a regular file): {fake_dir}" in n for n in notes)
    assert any(f"not a regular file): {fifo}" in n for n in notes)
    assert any("no spool header" in n and str(garbage) in n for n in notes)
    reader = create_tracker(str(store))
    assert reader.metadata(RUN) == {"k": 1} and reader.status(CHILD) == "FAILED"
    assert fake_dir.is_dir() and garbage.exists() and fifo.exists()  # left as they are


# --- writes ---


def test_a_failed_write_leaves_no_tmp_file(tmp_path: Path) -> None:
    store = create_tracker(str(tmp_path))
    store.add_metadata(RUN, lr=0.1)
    op_id = "00000000000000000042-" + "ab" * 16
    (run_dir(tmp_path) / "metadata" / op_id).mkdir()  # a directory where the record goes
    with pytest.raises(OSError), deterministic_record_names(op_id):
        store.add_metadata(RUN, lr=0.2)
    assert list(tmp_path.glob(".tmp*")) == []
    assert store.metadata(RUN) == {"lr": 0.1}
