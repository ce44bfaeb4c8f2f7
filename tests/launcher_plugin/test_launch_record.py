"""The launch record written at submit time, through the tracked scheduler's hooks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from torchx.specs import AppDef, AppDryRunInfo, Role

from launcher_plugin.launch_record import launch_context, pipeline_root, write_launch_record
from launcher_plugin.plan import TrackingPlan
from launcher_plugin.schedulers import install_tracking_hooks
from trackers.backends.fsspec import create_tracker
from trackers.errors import BackendUnavailable, TrackerError
from trackers.snapshot import git_state
from trackers.spool import spool_root
from trackers.sync import sync_spool

RUN = "local_cwd://torchx/train-1"
PARENT = "local_cwd://torchx/prepare-1"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_git_state_names_commit_and_dirty_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert git_state() == {}
    git(tmp_path, "init", "-q")
    git(
        tmp_path,
        "-c",
        "user.email=a@b",
        "-c",
        "user.name=a",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "x",
    )
    (tmp_path / "f.txt").write_text("1")
    git(tmp_path, "add", "f.txt")
    state = git_state()
    assert len(str(state["git_commit"])) == 40 and state["git_dirty"] is True


#: Where TorchX's runner puts the app and cfg on a dryrun info: `_app`/`_cfg` on 0.7.0,
#: `app`/`cfg` on nightly.
APP_ATTR, CFG_ATTR = ("app", "cfg") if hasattr(AppDryRunInfo("r", str), "app") else ("_app", "_cfg")


def dryrun_info(cfg: dict[str, object]) -> AppDryRunInfo[str]:
    info: AppDryRunInfo[str] = AppDryRunInfo("request", str)
    setattr(
        info,
        APP_ATTR,
        AppDef(
            name="train",
            roles=[
                Role(
                    name="trainer",
                    image="img:1",
                    entrypoint="python",
                    args=["t.py"],
                    num_replicas=2,
                )
            ],
        ),
    )
    setattr(info, CFG_ATTR, cfg)
    info._scheduler = "local_cwd"
    return info


def test_record_says_what_was_launched_and_links_the_parent(tmp_path: Path) -> None:
    store = create_tracker(str(tmp_path))
    store.add_metadata(PARENT, step="prepare")
    plan = TrackingPlan(job_id="local_cwd://torchx/${app_id}", parent_run_id=PARENT)
    plan.trackers["fsspec"] = store
    with launch_context("lineage.python", ["--script", "train.py"]):
        write_launch_record(plan, RUN, dryrun_info({"log_dir": "/tmp/x", "token": "x://u:pw@h"}))
    md = store.metadata(RUN)
    assert md["launch.run_id"] == RUN
    assert md["launch.scheduler"] == "local_cwd"
    assert md["launch.component"] == "lineage.python"
    assert md["launch.component_args"] == ["--script", "train.py"]
    assert md["launch.image"] == "img:1"
    assert md["launch.roles"] == [
        {
            "name": "trainer",
            "image": "img:1",
            "entrypoint": "python",
            "args": ["t.py"],
            "num_replicas": 2,
            "max_retries": 0,
        }
    ]
    assert md["launch.parent_run_id"] == PARENT
    assert md["launch.root_run_id"] == PARENT  # the parent has no parent of its own
    assert {"launch.user", "launch.host", "launch.time", "launch.cwd"} <= set(md)
    assert "pw" not in str(md["launch.scheduler_cfg"])
    assert [s.source_run_id for s in store.sources(RUN)] == [PARENT]
    assert store.run_ids(parent_run_id=PARENT) == [RUN]


def test_a_tracker_that_rejects_the_record_does_not_fail_the_launch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Rejecting:
        def add_metadata(self, run_id: str, **kwargs: object) -> None:
            raise TrackerError("the store rejects this record")

    plan = TrackingPlan(job_id="x", parent_run_id=None)
    plan.trackers["broken"] = Rejecting()  # type: ignore[assignment]
    write_launch_record(plan, RUN, dryrun_info({}))
    assert "launch record for local_cwd://torchx/train-1 not written" in caplog.text
    assert "the store rejects this record" in caplog.text


def test_an_unreachable_tracker_keeps_the_record_in_the_spool(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Down at launch: the record and the parent link wait in the launcher's spool (under the
    config the job gets), and ``sync`` delivers them to the store once it is reachable."""

    class Unreachable:
        def add_metadata(self, run_id: str, **kwargs: object) -> None:
            raise BackendUnavailable("connection refused")

        add_source = add_metadata

    store_root = tmp_path / "store"
    plan = TrackingPlan(job_id="x", parent_run_id=PARENT)
    plan.trackers["lineage_fsspec"] = Unreachable()  # type: ignore[assignment]
    plan.env["TORCHX_TRACKER_LINEAGE_FSSPEC_CONFIG"] = str(store_root)
    write_launch_record(plan, RUN, dryrun_info({}))
    assert "torchx tracker sync local_cwd://torchx/train-1" in caplog.text
    root = spool_root()
    assert root is not None
    [result] = sync_spool(root, RUN)
    assert (result.tracker, result.delivered, result.left) == ("lineage_fsspec", 2, 0)
    store = create_tracker(str(store_root))
    assert store.metadata(RUN)["launch.parent_run_id"] == PARENT
    assert [s.source_run_id for s in store.sources(RUN)] == [PARENT]
    assert sync_spool(root, RUN) == []  # delivered once, nothing left


def test_root_is_the_top_of_the_parent_chain(tmp_path: Path) -> None:
    """A child's root is its parent's recorded root; a parent without one is followed up
    through its own parent; a parent the store does not know is the root itself."""
    store = create_tracker(str(tmp_path))
    first, second, third = (f"local_cwd://torchx/step{i}-1" for i in (1, 2, 3))
    assert pipeline_root([store], first) == first  # unknown to the store
    store.add_metadata(first, **{"launch.run_id": first})
    assert pipeline_root([store], first) == first  # known, no parent
    store.add_metadata(second, **{"launch.parent_run_id": first})  # an older record: no root
    assert pipeline_root([store], second) == first
    store.add_metadata(third, **{"launch.parent_run_id": second, "launch.root_run_id": "X"})
    assert pipeline_root([store], third) == "X"  # recorded: one read, not a walk
    store.add_source("local_cwd://torchx/orphan-1", second)  # a job's link, no launch record
    assert pipeline_root([store], "local_cwd://torchx/orphan-1") == first


class FakeScheduler:
    """Stands in for a TorchX scheduler: records what reached it."""

    session_name = "torchx"
    backend = "local"

    def __init__(self) -> None:
        self.seen_env: dict[str, str] = {}

    def _submit_dryrun(self, app: AppDef, cfg: object) -> AppDryRunInfo[str]:
        self.seen_env = dict(app.roles[0].env)
        info: AppDryRunInfo[str] = AppDryRunInfo("req", str)
        setattr(info, APP_ATTR, app)
        return info

    def schedule(self, dryrun_info: AppDryRunInfo[str]) -> str:
        return "train-1"


def test_hooks_create_the_root_and_record_under_the_registered_name(tmp_path: Path) -> None:
    root = tmp_path / "new-store"
    sched = install_tracking_hooks(FakeScheduler(), "local_cwd")  # type: ignore[arg-type]
    app = AppDef(name="train", roles=[Role(name="t", image="i", entrypoint="python")])
    app.roles[0].env.update(
        {"TORCHX_TRACKERS": "lineage_fsspec", "TORCHX_TRACKER_LINEAGE_FSSPEC_CONFIG": str(root)}
    )
    info = sched._submit_dryrun(app, {})
    assert not root.exists()  # a dryrun writes nothing
    assert sched.schedule(info) == "train-1"
    assert root.is_dir()
    assert create_tracker(str(root)).metadata(RUN)["launch.run_id"] == RUN


def test_torchx_runner_log_lines_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from launcher_plugin.cli.cmd_run import RedactingFilter

    logger = logging.getLogger("test.redact")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="test.redact"):
        logger.info(
            "Using %s=%s for tracker", "TORCHX_TRACKER_X_CONFIG", "http://u:s3cret@h/?token=abc"
        )
    assert "s3cret" not in caplog.text and "abc" not in caplog.text
    assert "http://u:***@h/?token=***" in caplog.text
