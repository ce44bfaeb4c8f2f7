"""`torchx tracker list ...` in-process, asserting what is printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torchx.cli.main import create_parser

from launcher_plugin.cli.cmd_tracker import CmdTracker
from trackers.backends.fsspec import create_tracker

PREP = "local_cwd://torchx/prepare-1"
TRAIN = "local_cwd://torchx/train-1"
EVAL = "local_cwd://torchx/eval-1"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    t = create_tracker(str(root))
    t.add_metadata(PREP, rows=100)
    t.add_metadata(TRAIN, lr=0.1, cfg={"opt": "sgd"})
    t.add_artifact(TRAIN, "model", "/ckpt/model.pt", {"epoch": 3})
    t.add_artifact(TRAIN, "log", "/logs/train.log")
    t.add_metadata(EVAL, mse=0.01)
    t.add_source(TRAIN, PREP, "dataset")
    t.add_source(EVAL, TRAIN, "model")
    return root


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = create_parser({"tracker": CmdTracker()})
    args = parser.parse_args(argv)
    code = 0
    try:
        args.func(args)
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_list_jobs_table_and_json(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(["tracker", "list", "jobs", "--tracker", f"fsspec={store}"], capsys)
    assert code == 0 and out.splitlines()[0].strip() == "JOB ID"
    assert {line.strip() for line in out.splitlines()[2:]} == {PREP, TRAIN, EVAL}
    _, out, _ = cli(
        ["tracker", "list", "jobs", "--tracker", f"fsspec={store}", "--format", "json"], capsys
    )
    assert sorted(json.loads(out)) == sorted([PREP, TRAIN, EVAL])


def test_list_jobs_by_parent(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["tracker", "list", "jobs", "--tracker", f"fsspec={store}", "--format", "json"]
    _, out, _ = cli([*argv, "--parent-run-id", TRAIN], capsys)
    assert json.loads(out) == [EVAL]


def test_list_metadata(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["tracker", "list", "metadata", TRAIN, "--tracker", f"fsspec={store}"]
    _, out, _ = cli(argv, capsys)
    assert "lr" in out and '{"opt": "sgd"}' in out
    _, out, _ = cli([*argv, "--format", "json"], capsys)
    assert json.loads(out) == {"lr": 0.1, "cfg": {"opt": "sgd"}}


def test_list_artifacts_filtered(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "tracker",
        "list",
        "artifacts",
        TRAIN,
        "--tracker",
        f"fsspec={store}",
        "--format",
        "json",
    ]
    _, out, _ = cli([*argv, "--artifact", "model"], capsys)
    assert json.loads(out) == [
        {"name": "model", "path": "/ckpt/model.pt", "metadata": {"epoch": 3}}
    ]


def test_list_lineage_tree(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = cli(["tracker", "list", "lineage", TRAIN, "--tracker", f"fsspec={store}"], capsys)
    assert out.splitlines() == [
        TRAIN,
        "├── sources",
        f"│   └── {PREP}  [dataset]",
        "└── descendants",
        f"    └── {EVAL}  [model]",
    ]


def test_list_lineage_options(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["tracker", "list", "lineage", "--tracker", f"fsspec={store}", "--format", "json"]
    _, out, _ = cli([*base, "--sources-only", EVAL], capsys)
    assert json.loads(out)["ancestors"] == {TRAIN: 1, PREP: 2}
    _, out, _ = cli([*base, "--sources-only", "--depth", "1", EVAL], capsys)
    assert json.loads(out)["ancestors"] == {TRAIN: 1}
    _, out, _ = cli([*base, "--sources-only", "--artifact", "model", EVAL], capsys)
    assert json.loads(out)["ancestors"] == {TRAIN: 1}
    _, out, _ = cli([*base, "--descendants-only", PREP], capsys)
    assert json.loads(out) | {"edges": None} == {
        "run_id": PREP,
        "ancestors": {},
        "descendants": {TRAIN: 1, EVAL: 2},
        "edges": None,
    }


@pytest.mark.parametrize("sub", ["metadata", "artifacts", "lineage"])
def test_unknown_run_is_a_message_and_exit_1(
    store: Path, capsys: pytest.CaptureFixture[str], sub: str
) -> None:
    code, out, err = cli(
        ["tracker", "list", sub, "local_cwd://torchx/nope", "--tracker", f"fsspec={store}"], capsys
    )
    assert code == 1 and out == ""
    assert "run 'local_cwd://torchx/nope' not found" in err


def test_store_comes_from_env_when_no_flag(
    store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCHX_TRACKERS", "fsspec")
    monkeypatch.setenv("TORCHX_TRACKER_FSSPEC_CONFIG", str(store))
    _, out, _ = cli(["tracker", "list", "jobs", "--format", "json"], capsys)
    assert len(json.loads(out)) == 3


def test_default_store_in_cwd(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(["tracker", "list", "jobs"], capsys)
    assert code == 1 and "no tracker configured" in err
    create_tracker(str(tmp_path / "torchx-runs")).add_metadata(TRAIN, a=1)
    _, out, _ = cli(["tracker", "list", "jobs", "--format", "json"], capsys)
    assert json.loads(out) == [TRAIN]


def test_unknown_tracker_flag_lists_known(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(["tracker", "list", "jobs", "--tracker", "nosuch=x"], capsys)
    assert code == 1 and "unknown tracker 'nosuch'" in err and "fsspec" in err
