"""`torchx tracker list ...` in-process, asserting what is printed."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import fsspec
import pytest
from torchx.cli.main import create_parser
from torchx.tracker.backend.fsspec import FsspecTracker as TorchxFsspecTracker

from launcher_plugin.cli.cmd_tracker import CmdTracker
from trackers.backends.fsspec import FsspecTracker, create_tracker

PREP = "local_cwd://torchx/prepare-1"
TRAIN = "local_cwd://torchx/train-1"
EVAL = "local_cwd://torchx/eval-1"
JOB_ONLY = "local_cwd://torchx/job-only-1"


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
    assert code == 0 and out.splitlines()[0].split() == [
        "JOB",
        "ID",
        "STATUS",
        "STARTED",
        "COMPONENT",
    ]
    assert {line.split()[0] for line in out.splitlines()[2:]} == {PREP, TRAIN, EVAL}
    _, out, _ = cli(
        ["tracker", "list", "jobs", "--tracker", f"fsspec={store}", "--format", "json"], capsys
    )
    assert sorted(j["run_id"] for j in json.loads(out)) == sorted([PREP, TRAIN, EVAL])


def test_list_jobs_by_parent(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["tracker", "list", "jobs", "--tracker", f"fsspec={store}", "--format", "json"]
    _, out, _ = cli([*argv, "--parent-run-id", TRAIN], capsys)
    assert [j["run_id"] for j in json.loads(out)] == [EVAL]


def test_list_jobs_shows_status_start_and_component_newest_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Default columns come from the launch record and the status records; newest first, runs
    without a start time last; json and csv carry the same columns. A run of ours without a
    launch record started when it was first recorded; one TorchX's own tracker wrote (no status,
    no launch record) has no start."""
    t = create_tracker(str(tmp_path / "runs"))
    started = {PREP: "2026-01-01T10:00:00+00:00", EVAL: "2026-01-03T10:00:00+00:00"}
    started[TRAIN] = "2026-01-02T10:00:00+00:00"
    for run_id, when in started.items():
        t.add_metadata(run_id, **{"launch.time": when, "launch.component": f"c-{run_id[-7:]}"})
    t.set_status(TRAIN, "RUNNING")
    t.set_status(EVAL, "RUNNING")
    t.set_status(EVAL, "FAILED")
    before = time.time()
    t.add_metadata(JOB_ONLY, note="written by the job alone")
    torchx = TorchxFsspecTracker(fsspec.filesystem("file"), str(tmp_path / "runs"))
    torchx.add_metadata("local_cwd://torchx/untimed-1", note="no launch record")
    argv = ["tracker", "list", "jobs", "--tracker", f"fsspec={tmp_path / 'runs'}"]
    code, out, _ = cli([*argv, "--format", "json"], capsys)
    assert code == 0
    jobs = json.loads(out)
    job_only = jobs.pop(0)
    assert job_only["run_id"] == JOB_ONLY and job_only["component"] is None
    first_recorded = dt.datetime.fromisoformat(job_only["start_time"]).timestamp()
    assert before - 1 <= first_recorded <= time.time()
    assert jobs == [
        {"run_id": EVAL, "status": "FAILED", "start_time": started[EVAL], "component": "c-/eval-1"},
        {
            "run_id": TRAIN,
            "status": "RUNNING",
            "start_time": started[TRAIN],
            "component": "c-train-1",
        },
        {"run_id": PREP, "status": None, "start_time": started[PREP], "component": "c-epare-1"},
        {
            "run_id": "local_cwd://torchx/untimed-1",
            "status": None,
            "start_time": None,
            "component": None,
        },
    ]
    _, out, _ = cli([*argv, "--format", "csv"], capsys)
    lines = out.splitlines()
    assert lines[0] == "JOB ID,STATUS,STARTED,COMPONENT"
    assert lines[2] == f"{EVAL},FAILED,{started[EVAL]},c-/eval-1"
    assert lines[5] == "local_cwd://torchx/untimed-1,,,"
    _, out, _ = cli(argv, capsys)
    table = out.splitlines()
    assert table[3].split() == [EVAL, "FAILED", started[EVAL], "c-/eval-1"]
    assert [line.split()[0] for line in table[2:]] == [
        JOB_ONLY,
        EVAL,
        TRAIN,
        PREP,
        "local_cwd://torchx/untimed-1",
    ]


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
    assert [j["run_id"] for j in json.loads(out)] == [TRAIN]


def test_unknown_tracker_flag_lists_known(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(["tracker", "list", "jobs", "--tracker", "nosuch=x"], capsys)
    assert code == 1 and "unknown tracker 'nosuch'" in err and "fsspec" in err


def test_list_metrics_table_json_and_csv(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trackers.types import MetricPoint

    create_tracker(str(store)).add_metrics(
        TRAIN,
        [MetricPoint("loss", 0.5, 1, 1700000000.0), MetricPoint("acc", 0.9, 1, 1700000000.5, 2)],
    )
    base = ["tracker", "list", "metrics", TRAIN, "--tracker", f"fsspec={store}"]
    _, out, _ = cli(base, capsys)
    assert out.splitlines()[0].split() == ["NAME", "STEP", "VALUE", "TIME", "RANK"]
    assert "2023-11-14T22:13:20.000+00:00" in out
    _, out, _ = cli([*base, "--format", "json", "--name", "acc"], capsys)
    assert json.loads(out) == [
        {"name": "acc", "step": 1, "value": 0.9, "time": 1700000000.5, "rank": 2}
    ]
    _, out, _ = cli([*base, "--format", "csv", "--name", "loss"], capsys)
    assert out.splitlines() == [
        "NAME,STEP,VALUE,TIME,RANK",
        "loss,1,0.5,2023-11-14T22:13:20.000+00:00,",
    ]


def test_list_summary_shows_status(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = create_tracker(str(store))
    t.add_summary(TRAIN, best=0.9, cfg={"a": 1})
    t.set_status(TRAIN, "SUCCEEDED")
    base = ["tracker", "list", "summary", TRAIN, "--tracker", f"fsspec={store}"]
    _, out, _ = cli([*base, "--format", "csv"], capsys)
    assert out.splitlines() == ["KEY,VALUE", "status,SUCCEEDED", "best,0.9", 'cfg,"{""a"": 1}"']
    _, out, _ = cli([*base, "--format", "json"], capsys)
    assert json.loads(out) == {"status": "SUCCEEDED", "summary": {"best": 0.9, "cfg": {"a": 1}}}


def test_lineage_as_csv_lists_edges(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["tracker", "list", "lineage", TRAIN, "--tracker", f"fsspec={store}", "--format", "csv"]
    _, out, _ = cli(argv, capsys)
    assert out.splitlines() == [
        "PARENT,CHILD,ARTIFACT",
        f"{PREP},{TRAIN},dataset",
        f"{TRAIN},{EVAL},model",
    ]


def test_metrics_of_a_torchx_only_store_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import fsspec
    from torchx.tracker.backend.fsspec import FsspecTracker as TorchxFsspecTracker

    theirs = TorchxFsspecTracker(fsspec.filesystem("file"), str(tmp_path))
    theirs.add_metadata(TRAIN, a=1)
    monkeypatch.setattr("launcher_plugin.cli.cmd_tracker.choose_tracker", lambda spec, env: theirs)
    code, _, err = cli(["tracker", "list", "metrics", TRAIN], capsys)
    assert code == 1 and "records no metrics" in err


# --- torchx tracker sync ---


def _spooled(spool: Path, name: str, config: str) -> Path:
    """A spool segment as a job leaves it when its store was down until it exited."""
    from trackers.operations import Operation
    from trackers.spool import Segment

    segment = Segment.create(spool, TRAIN, name, config)
    segment.append(Operation("00000000000000000001-a", "add_metadata", {"values": {"k": 1}}).line)
    segment.append(Operation("00000000000000000002-b", "set_status", {"status": "FAILED"}).line)
    segment.release()
    return spool


def _spool_for(tmp_path: Path, store: Path) -> Path:
    return _spooled(tmp_path / "spool", "lineage_fsspec", str(store))


#: An S3 endpoint nothing listens on (the discard port), one attempt per request.
S3_DOWN = "{url: s3://b/runs, endpoint_url: 'http://127.0.0.1:9', max_attempts: 1}"


def test_sync_delivers_a_run_and_prints_what_it_did(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "later"
    spool = _spool_for(tmp_path, store)
    argv = ["tracker", "sync", TRAIN, "--spool-dir", str(spool), "--format", "json"]
    code, out, err = cli(argv, capsys)
    assert code == 0, err
    assert json.loads(out) == [
        {
            "run_id": TRAIN,
            "tracker": "lineage_fsspec",
            "delivered": 2,
            "skipped": 0,
            "left": 0,
            "note": "",
        }
    ]
    assert create_tracker(str(store)).metadata(TRAIN) == {"k": 1}
    assert create_tracker(str(store)).status(TRAIN) == "FAILED"
    code, _, err = cli(["tracker", "sync", TRAIN, "--spool-dir", str(spool)], capsys)
    assert code == 1 and "nothing spooled for run" in err


def test_sync_to_another_config_with_tracker_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spool = _spool_for(tmp_path, tmp_path / "unreachable-from-here")
    elsewhere = tmp_path / "mounted-here"
    argv = ["tracker", "sync", "--all", "--spool-dir", str(spool)]
    code, out, err = cli([*argv, "--tracker", f"lineage_fsspec={elsewhere}"], capsys)
    assert code == 0, err
    assert TRAIN in out and "DELIVERED" in out
    assert create_tracker(str(elsewhere)).metadata(TRAIN) == {"k": 1}


def test_sync_needs_a_run_or_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(["tracker", "sync", "--spool-dir", str(tmp_path)], capsys)
    assert code == 1 and "RUN_ID or --all" in err


def test_sync_of_a_store_still_down_exits_1_and_keeps_the_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from trackers.spool import segment_paths

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    spool = _spooled(tmp_path / "spool", "s3", S3_DOWN)
    code, out, _ = cli(["tracker", "sync", TRAIN, "--spool-dir", str(spool)], capsys)
    assert code == 1 and "stopped" in out and "cannot be reached" in out
    assert segment_paths(spool, TRAIN)


def test_sync_without_credentials_keeps_the_records_for_a_later_sync(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from trackers.spool import segment_paths

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    spool = _spooled(tmp_path / "spool", "s3", S3_DOWN)
    code, out, _ = cli(["tracker", "sync", TRAIN, "--spool-dir", str(spool)], capsys)
    assert code == 1 and "credentials" in out
    assert segment_paths(spool, TRAIN)


def launched(tracker: FsspecTracker, run_id: str, component: str, when: str) -> None:
    """What ``torchx run`` writes first: the launch record."""
    tracker.add_metadata(run_id, **{"launch.component": component, "launch.time": when})


def test_list_jobs_of_launched_runs_reads_the_catalog_not_each_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Status, start and component of launched runs are in the store's catalog: no run's own
    records are read (on S3: ``tests/s3/test_s3_reads.py``, at most ten requests for 1000)."""
    t = create_tracker(str(tmp_path / "runs"))
    for i in range(30):
        launched(t, f"local_cwd://torchx/r-{i}", "dist.ddp", f"2026-01-01T00:00:{i:02d}+00:00")
        t.set_status(f"local_cwd://torchx/r-{i}", "SUCCEEDED")
    per_run: list[str] = []
    for method in ("metadata", "status_history", "sources", "status"):
        original = getattr(FsspecTracker, method)

        def counted(self: FsspecTracker, run_id: str, *a: Any, _f: Any = original) -> Any:
            per_run.append(run_id)
            return _f(self, run_id, *a)

        monkeypatch.setattr(FsspecTracker, method, counted)
    argv = ["tracker", "list", "jobs", "--tracker", f"fsspec={tmp_path / 'runs'}"]
    code, out, _ = cli([*argv, "--format", "json"], capsys)
    assert code == 0 and per_run == []
    jobs = json.loads(out)
    assert [j["run_id"] for j in jobs] == [f"local_cwd://torchx/r-{i}" for i in reversed(range(30))]
    assert jobs[0] == {
        "run_id": "local_cwd://torchx/r-29",
        "status": "SUCCEEDED",
        "start_time": "2026-01-01T00:00:29+00:00",
        "component": "dist.ddp",
    }


def test_list_jobs_reads_the_launch_record_of_a_run_whose_catalog_entry_lacks_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run launched before the catalog kept components (or whose entry an older release
    merged) shows its component from its own launch record; a run TorchX's own tracker wrote
    gets its catalog entry, component included, derived once."""
    from trackers.backends import record_store

    root = tmp_path / "runs"
    old = create_tracker(str(root))
    with monkeypatch.context() as older_release:
        older_release.setattr(record_store, "launch_entry", lambda metadata, record: None)
        launched(old, TRAIN, "dist.ddp", "2026-01-02T00:00:00+00:00")
        old.set_status(TRAIN, "RUNNING")
    torchx = TorchxFsspecTracker(fsspec.filesystem("file"), str(root))
    torchx.add_metadata(EVAL, **{"launch.component": "utils.sh", "launch.time": "2026-01-03"})
    argv = ["tracker", "list", "jobs", "--tracker", f"fsspec={root}", "--format", "json"]
    code, out, _ = cli(argv, capsys)
    assert code == 0
    assert json.loads(out) == [
        {
            "run_id": EVAL,
            "status": None,
            "start_time": "2026-01-03T00:00:00+00:00",
            "component": "utils.sh",
        },
        {
            "run_id": TRAIN,
            "status": "RUNNING",
            "start_time": "2026-01-02T00:00:00+00:00",
            "component": "dist.ddp",
        },
    ]
    summaries = {s.run_id: s for s in create_tracker(str(root)).runs_summary()}
    assert summaries[EVAL].component == "utils.sh" and summaries[TRAIN].component is None
