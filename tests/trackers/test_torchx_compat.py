"""Stores are shared with TorchX 0.7.0 both ways, checked with TorchX's own classes."""

from __future__ import annotations

import time
from pathlib import Path

import fsspec
import pytest
from torchx.cli.cmd_tracker import CmdTracker as TorchxCmdTracker
from torchx.cli.main import create_parser
from torchx.tracker import api as torchx_api
from torchx.tracker.backend.fsspec import FsspecTracker as TorchxFsspecTracker

from trackers.backends.fsspec import FsspecConfig, create_tracker

PARENT = "local_cwd://torchx/prepare-1"
RUN = "local_cwd://torchx/train-1"


def torchx_tracker(root: Path) -> TorchxFsspecTracker:
    root.mkdir(parents=True, exist_ok=True)
    return TorchxFsspecTracker(fsspec.filesystem("file"), str(root))


def test_torchx_reads_what_we_write(tmp_path: Path) -> None:
    ours = create_tracker(str(tmp_path))
    ours.add_metadata(PARENT, step="prepare")
    ours.add_metadata(RUN, lr=0.1)
    ours.add_artifact(RUN, "model", "/m.pt", {"epoch": 1})
    ours.add_source(RUN, PARENT, "dataset")
    theirs = torchx_tracker(tmp_path)
    assert theirs.metadata(RUN) == {"lr": 0.1}
    assert theirs.artifacts(RUN)["model"].path == "/m.pt"
    assert [(s.source_run_id, s.artifact_name) for s in theirs.sources(RUN)] == [
        (PARENT, "dataset")
    ]
    assert sorted(theirs.run_ids()) == [PARENT, RUN]
    assert theirs.run_ids(parent_run_id=PARENT) == [RUN]


def test_we_read_what_torchx_writes(tmp_path: Path) -> None:
    theirs = torchx_tracker(tmp_path)
    theirs.add_metadata(PARENT, step="prepare")
    theirs.add_metadata(RUN, lr=0.1)
    theirs.add_artifact(RUN, "model", "/m.pt", {"epoch": 1})
    theirs.add_source(RUN, PARENT, "dataset")
    ours = create_tracker(str(tmp_path))
    assert ours.metadata(RUN) == {"lr": 0.1}
    assert ours.artifacts(RUN)["model"].metadata == {"epoch": 1}
    assert [(s.source_run_id, s.artifact_name) for s in ours.sources(RUN)] == [(PARENT, "dataset")]
    assert ours.run_ids() == [PARENT, RUN]
    assert ours.lineage(RUN).ancestors == {PARENT: 1}


def test_mixed_writers_keep_write_order(tmp_path: Path) -> None:
    """TorchX names records str(time_ns) (19 digits), ours are zero-padded to 20: same order."""
    theirs, ours = torchx_tracker(tmp_path), create_tracker(str(tmp_path))
    for i in range(6):
        (theirs if i % 2 else ours).add_metadata(RUN, bs=i)
        time.sleep(0.001)
    assert ours.metadata(RUN)["bs"] == 5


def test_torchx_apprun_drives_our_backend(tmp_path: Path) -> None:
    run = torchx_api.AppRun(id=RUN, backends=[create_tracker(str(tmp_path))])
    run.add_metadata(lr=0.1)
    run.add_artifact("model", "/m.pt")
    run.add_source(PARENT, "dataset")
    assert [s.parent.id for s in run.sources()] == [PARENT]
    assert create_tracker(str(tmp_path)).metadata(RUN) == {"lr": 0.1}


@pytest.mark.parametrize("name", ["fsspec", "lineage_fsspec"])
def test_torchx_run_from_env_writes_into_our_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """`fsspec` is TorchX's own factory (fed a data: URL), `lineage_fsspec` is ours."""
    config = (
        FsspecConfig(str(tmp_path)).to_properties_data_url() if name == "fsspec" else str(tmp_path)
    )
    assert config is not None
    tmp_path.mkdir(exist_ok=True)
    monkeypatch.setenv("TORCHX_JOB_ID", RUN)
    monkeypatch.setenv("TORCHX_TRACKERS", name)
    monkeypatch.setenv(f"TORCHX_TRACKER_{name.upper()}_CONFIG", config)
    monkeypatch.setenv("TORCHX_PARENT_RUN_ID", PARENT)
    trackers = list(torchx_api.trackers_from_environ())
    assert len(trackers) == 1
    run = torchx_api.AppRun(id=RUN, backends=trackers)
    run.add_metadata(via=name)
    ours = create_tracker(str(tmp_path))
    assert ours.metadata(RUN) == {"via": name}


def test_torchx_cli_lists_our_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ours = create_tracker(str(tmp_path))
    ours.add_metadata(RUN, lr=0.25)
    ours.add_artifact(RUN, "model", "/ckpt/m.pt")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCHX_TRACKERS", "fsspec")
    config = FsspecConfig(str(tmp_path)).to_properties_data_url()
    assert config is not None
    monkeypatch.setenv("TORCHX_TRACKER_FSSPEC_CONFIG", config)
    parser = create_parser({"tracker": TorchxCmdTracker()})
    for argv, expected in [
        (["tracker", "list", "jobs"], RUN),
        (["tracker", "list", "metadata", RUN], "0.25"),
        (["tracker", "list", "artifacts", RUN], "/ckpt/m.pt"),
    ]:
        args = parser.parse_args(argv)
        args.func(args)
        assert expected in capsys.readouterr().out


def test_links_added_by_torchx_are_found_from_the_parent(tmp_path: Path) -> None:
    """TorchX writes the parent's descendants/ link only if that dir exists: ours creates it."""
    ours = create_tracker(str(tmp_path))
    ours.add_metadata(PARENT, step="prepare")  # e.g. the launch record
    theirs = torchx_tracker(tmp_path)
    theirs.add_source(RUN, PARENT, "dataset")
    theirs.add_source(RUN, PARENT, "tokenizer")
    assert sorted((d.run_id, d.artifact_name or "") for d in ours.descendants(PARENT)) == [
        (RUN, "dataset"),
        (RUN, "tokenizer"),
    ]
    assert ours.run_ids(parent_run_id=PARENT) == [RUN]
    assert ours.lineage(PARENT, artifact_name="dataset").descendants == {RUN: 1}
