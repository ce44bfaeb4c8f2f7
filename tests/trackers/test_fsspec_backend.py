"""The fsspec backend against the contract, on a local disk and on ``memory://``."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import fsspec
import pytest

from trackers.backends.fsspec import FsspecConfig, FsspecTracker, create_tracker
from trackers.errors import TrackerConfigError
from trackers.ids import encode_run_id
from trackers.testing import RUN, TrackerContract


class TestLocalDisk(TrackerContract):
    @pytest.fixture
    def make_tracker(self, tmp_path: Path) -> Callable[[], FsspecTracker]:
        return lambda: create_tracker(str(tmp_path / "runs"))

    @pytest.fixture
    def tracker(self, make_tracker: Callable[[], FsspecTracker]) -> FsspecTracker:
        return make_tracker()


class TestMemory(TrackerContract):
    @pytest.fixture
    def make_tracker(self) -> Callable[[], FsspecTracker]:
        return lambda: create_tracker("memory://runs")

    @pytest.fixture
    def tracker(self, make_tracker: Callable[[], FsspecTracker]) -> FsspecTracker:
        return make_tracker()


def test_no_write_escapes_the_store_root(tmp_path: Path) -> None:
    root = tmp_path / "store" / "runs"
    t = create_tracker(str(root))
    for run_id in ["../../escape", "/etc/x", "..", "."]:
        t.add_metadata(run_id, a=1)
        t.add_artifact(run_id, "../../../x", "/tmp/x")
        t.add_source(run_id, "../../../y", "../../z")
    written = {p for p in tmp_path.rglob("*")}
    assert all(root in p.parents or p == root or p in root.parents for p in written)


def test_records_are_written_whole_via_rename(tmp_path: Path) -> None:
    t = create_tracker(str(tmp_path))
    t.add_metadata(RUN, x=1)
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    assert list(tmp_path.glob(".tmp*")) == []  # the temporary file was renamed away
    assert not (run_dir / ".tmp").exists()  # temporary files are made at the root, not per run
    (record,) = list((run_dir / "metadata").iterdir())
    content = json.loads(record.read_text())
    assert content["metadata"] == {"x": 1}
    assert content["origin"]["pid"] == os.getpid()
    name_time, name_uuid = record.name.split("-")
    assert len(name_time) == 20 and name_time.isdigit() and len(name_uuid) == 32


def test_records_say_which_rank_and_restart_wrote_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trackers.origin

    monkeypatch.setattr(trackers.origin, "_cache", None)
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    create_tracker(str(tmp_path)).add_metadata(RUN, x=1)
    monkeypatch.setattr(trackers.origin, "_cache", None)
    (record,) = list(tmp_path.glob("*/metadata/*"))
    origin = json.loads(record.read_text())["origin"]
    assert (origin["rank"], origin["restart"]) == (3, 1)


def test_a_broken_record_is_skipped_not_fatal(tmp_path: Path) -> None:
    t = create_tracker(str(tmp_path))
    t.add_metadata(RUN, x=1)
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    (run_dir / "metadata" / "99999999999999999999-broken").write_text('{"metadata": {"x"')
    assert t.metadata(RUN) == {"x": 1}


def test_construction_does_no_io(tmp_path: Path) -> None:
    create_tracker(str(tmp_path / "not-yet"))
    assert not (tmp_path / "not-yet").exists()


def test_non_json_metadata_is_stored_as_repr(tmp_path: Path) -> None:
    t = create_tracker(str(tmp_path))
    t.add_metadata(RUN, path=Path("/x"), nan=float("nan"))
    md = t.metadata(RUN)
    assert md["path"] == repr(Path("/x"))
    assert md["nan"] != md["nan"]  # NaN survives as NaN


# --- config forms ---


def test_config_empty_means_torchx_runs_in_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert create_tracker(None).root == str(tmp_path / "torchx-runs")
    assert create_tracker("").root == str(tmp_path / "torchx-runs")


def test_config_file_url_and_plain_path_open_the_same_store(tmp_path: Path) -> None:
    create_tracker(f"file://{tmp_path}").add_metadata(RUN, a=1)
    assert create_tracker(str(tmp_path)).metadata(RUN) == {"a": 1}


def test_config_mapping_form_with_storage_options(tmp_path: Path) -> None:
    t = create_tracker(f'{{url: "file://{tmp_path}", storage_options: {{auto_mkdir: true}}}}')
    assert t.config is not None and t.config.storage_options == {"auto_mkdir": True}
    t.add_metadata(RUN, a=1)
    assert create_tracker(str(tmp_path)).metadata(RUN) == {"a": 1}


def test_config_torchx_properties_file_and_data_url(tmp_path: Path) -> None:
    props = tmp_path / "tracker.properties"
    props.write_text(f"# TorchX's form\nprotocol=file\nroot_path={tmp_path / 'runs'}\n")
    create_tracker(str(props)).add_metadata(RUN, a=1)
    data_url = FsspecConfig(str(tmp_path / "runs")).to_properties_data_url()
    assert data_url is not None and "," not in data_url.split(",", 1)[1]
    assert create_tracker(data_url).metadata(RUN) == {"a": 1}


def test_data_url_round_trips_odd_characters_in_root(tmp_path: Path) -> None:
    root = tmp_path / 'we,ird $HOME "q" 日本'
    url = FsspecConfig(str(root)).to_properties_data_url()
    assert url is not None
    with fsspec.open(url, "rt", encoding="utf-8") as f:
        assert f.read() == f"protocol=file\nroot_path={root}\n"


def test_data_url_refuses_values_torchx_properties_cannot_hold(tmp_path: Path) -> None:
    assert FsspecConfig(str(tmp_path / "a\nb")).to_properties_data_url() is None
    assert FsspecConfig(str(tmp_path), {"auto_mkdir": True}).to_properties_data_url() is None


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("nosuchproto://x/y", "nosuchproto://x/y.*expected an fsspec URL"),
        ("{url: 5}", "needs a string 'url'"),
        ("{url: x, bogus: 1}", "unknown key"),
        ("{url: [unclosed", "not a valid YAML/JSON mapping"),
        ("data:,protocol%3Dfile", "needs both 'protocol=' and 'root_path='"),
    ],
)
def test_malformed_configs_say_what_was_expected(config: str, expected: str) -> None:
    with pytest.raises(TrackerConfigError, match=expected):
        create_tracker(config)


def test_job_config_reopens_the_same_store(tmp_path: Path) -> None:
    t = create_tracker(str(tmp_path / "runs"))
    t.add_metadata(RUN, a=1)
    for torchx_compatible in (True, False):
        again = create_tracker(t.job_config(torchx_compatible=torchx_compatible))
        assert again.metadata(RUN) == {"a": 1}
    assert t.job_config(torchx_compatible=False) == str(tmp_path / "runs")


def test_relative_root_becomes_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    t = create_tracker("rel/runs")
    assert t.job_config(torchx_compatible=False) == os.path.join(str(tmp_path), "rel/runs")


def test_status_history_keeps_every_status_with_its_record_time(tmp_path: Path) -> None:
    # The record stores keep one record per status change: the history is all of them, in
    # order, each with the time in its record name (what the web view's run page shows).
    t = create_tracker(str(tmp_path))
    for status in ("RUNNING", "FAILED", "RUNNING", "SUCCEEDED"):
        t.set_status(RUN, status)  # type: ignore[arg-type]
    history = create_tracker(str(tmp_path)).status_history(RUN)
    assert [s for _, s in history] == ["RUNNING", "FAILED", "RUNNING", "SUCCEEDED"]
    status_dir = next(p for p in tmp_path.iterdir() if p.is_dir()) / "status"
    names = sorted(p.name for p in status_dir.iterdir() if not p.name.startswith("."))
    assert [t for t, _ in history] == [int(n.split("-")[0]) / 1e9 for n in names]


def test_one_tracker_object_lists_runs_added_and_removed_since_its_last_listing(
    tmp_path: Path,
) -> None:
    # run_ids() keeps the ids decoded from its last root listing; a changed listing decodes anew
    tracker = create_tracker(str(tmp_path))
    tracker.add_metadata("local_cwd://torchx/a", x=1)
    assert tracker.run_ids() == ["local_cwd://torchx/a"]
    assert tracker.run_ids() == ["local_cwd://torchx/a"]
    tracker.add_metadata("local_cwd://torchx/b", x=1)
    assert tracker.run_ids() == ["local_cwd://torchx/a", "local_cwd://torchx/b"]
    shutil.rmtree(tmp_path / encode_run_id("local_cwd://torchx/a"))
    assert tracker.run_ids() == ["local_cwd://torchx/b"]
    ids = tracker.run_ids()
    ids.append("mutated by the caller")
    assert tracker.run_ids() == ["local_cwd://torchx/b"]
