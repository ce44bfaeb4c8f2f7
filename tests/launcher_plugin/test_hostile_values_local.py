"""Real ``torchx run -s local_cwd`` launches (subprocesses) with hostile values, and the CLI's
errors before submission.

A job records through BOTH ``torchx.tracker.api.AppRun`` (TorchX's) and ``trackers.AppRun``
(ours); both must land in the one store named on the command line, whose directory name holds
the hostile characters.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.cli_support import clean_env
from tests.launcher_plugin.hostile_helpers import (
    DATA_URL_SAFE,
    HOSTILE_FRAGMENTS,
    TORCHX,
    fsspec_data_url_text,
    parent_run_id_for,
    properties_for,
    read_json,
    store_dir,
    tracking_env,
)
from trackers.backends.fsspec import create_tracker

HANDLE = re.compile(r"^local_cwd://torchx/\S+$", re.MULTILINE)

#: The job: dump its TORCHX_* env, then record through TorchX's AppRun and through ours.
#: No ``$`` in here: component args go through TorchX's macro substitution.
JOB_CODE = """
import json, os
env = {k: v for k, v in os.environ.items() if k.startswith("TORCHX_")}
with open("job-env.json", "w", encoding="utf-8") as f:
    json.dump(env, f)
os.environ["TORCHX_TRACKER_STRICT"] = "1"
from torchx.tracker.api import AppRun as TorchxAppRun
from trackers import AppRun
theirs = TorchxAppRun.run_from_env()
theirs.add_metadata(recorded_by_torchx_apprun="torchx")
ours = AppRun.run_from_env()
ours.add_metadata(recorded_by_lineage_apprun="lineage")
runs = {
    "torchx": [theirs.job_id(), len(list(theirs.backends))],
    "ours": [ours.job_id(), len(ours.backends)],
}
with open("job-runs.json", "w", encoding="utf-8") as f:
    json.dump(runs, f)
"""


def torchx(
    *args: str, cwd: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = clean_env(cwd)
    env.update(extra_env or {})
    return subprocess.run(
        [TORCHX, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def assert_both_appruns_recorded(store: Path, handle: str, parent: str, tmp_path: Path) -> None:
    runs = json.loads((tmp_path / "job-runs.json").read_text(encoding="utf-8"))
    assert runs == {"torchx": [handle, 1], "ours": [handle, 1]}
    tracker = create_tracker(str(store))
    assert tracker.run_ids() == [handle]
    metadata = tracker.metadata(handle)
    assert metadata["recorded_by_torchx_apprun"] == "torchx"
    assert metadata["recorded_by_lineage_apprun"] == "lineage"
    assert metadata["launch.run_id"] == handle  # the launcher's record, same store
    assert metadata["launch.parent_run_id"] == parent
    assert parent in {s.source_run_id for s in tracker.sources(handle)}


# --------------------------------------------------------------------------- real jobs
@pytest.mark.e2e
def test_local_cwd_job_gets_hostile_values_raw_and_both_appruns_share_the_store(
    tmp_path: Path,
) -> None:
    value = HOSTILE_FRAGMENTS["all"]
    parent = parent_run_id_for(value)
    store = store_dir(tmp_path, value, "lineage")
    done = torchx(
        "run",
        "-s",
        "local_cwd",
        "--tracker",
        f"lineage_fsspec={store}",
        "--parent-run-id",
        parent,
        "utils.python",
        "-c",
        JOB_CODE,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (handle,) = HANDLE.findall(done.stdout)

    job_env = tracking_env(read_json(tmp_path / "job-env.json"))
    assert job_env == {
        "TORCHX_JOB_ID": handle,
        "TORCHX_PARENT_RUN_ID": parent,
        "TORCHX_TRACKERS": "lineage_fsspec",
        "TORCHX_TRACKER_LINEAGE_FSSPEC_CONFIG": str(store),
    }
    assert_both_appruns_recorded(store, handle, parent, tmp_path)


@pytest.mark.e2e
def test_local_cwd_job_reads_fsspec_data_url_with_torchx_own_factory_into_same_store(
    tmp_path: Path,
) -> None:
    """``--tracker fsspec=DIR``: TorchX's AppRun opens the data: URL with TorchX's own fsspec
    factory. (The parent id is ASCII: TorchX's FsspecTracker base32-encodes run ids as ASCII.)"""
    value = DATA_URL_SAFE["all"]
    parent = parent_run_id_for(
        " ".join(v for k, v in HOSTILE_FRAGMENTS.items() if k not in ("all", "non_ascii"))
    )
    store = store_dir(tmp_path, value, "fsspec")
    done = torchx(
        "run",
        "-s",
        "local_cwd",
        "--tracker",
        f"fsspec={store}",
        "--parent-run-id",
        parent,
        "utils.python",
        "-c",
        JOB_CODE,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (handle,) = HANDLE.findall(done.stdout)

    job_env = tracking_env(read_json(tmp_path / "job-env.json"))
    config = job_env.pop("TORCHX_TRACKER_FSSPEC_CONFIG")
    assert job_env == {
        "TORCHX_JOB_ID": handle,
        "TORCHX_PARENT_RUN_ID": parent,
        "TORCHX_TRACKERS": "fsspec",
    }
    assert fsspec_data_url_text(config) == properties_for(store)
    assert_both_appruns_recorded(store, handle, parent, tmp_path)


@pytest.mark.e2e
def test_plain_local_cwd_run_without_trackers_still_works(tmp_path: Path) -> None:
    done = torchx("run", "-s", "local_cwd", "utils.python", "-c", "print(42)", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert HANDLE.search(done.stdout)
    assert re.search(r"^python/0 42$", done.stdout + done.stderr, re.MULTILINE)
    assert not (tmp_path / "torchx-runs").exists()


def test_builtins_still_lists_torchx_and_lineage_components(tmp_path: Path) -> None:
    done = torchx("builtins", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    listed = set(re.findall(r"^\s*\d+\. (\S+)$", done.stdout, re.MULTILINE))
    assert {"utils.python", "dist.ddp", "lineage.python", "lineage.ddp"} <= listed


# --------------------------------------------------------------------------- errors
def assert_nothing_submitted(done: subprocess.CompletedProcess[str], tmp_path: Path) -> None:
    assert done.returncode != 0
    assert not HANDLE.search(done.stdout)
    assert not (tmp_path / "ran").exists()
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "torchx-runs").exists()


MARK_RAN = "open('ran', 'w').close()"


def test_unknown_tracker_flag_exits_nonzero_listing_known_trackers(tmp_path: Path) -> None:
    done = torchx(
        "run",
        "-s",
        "local_cwd",
        "--tracker",
        f"lineage_fsspec={tmp_path / 'runs'}",
        "--tracker",
        "nosuch=x",
        "utils.python",
        "-c",
        MARK_RAN,
        cwd=tmp_path,
    )
    assert_nothing_submitted(done, tmp_path)
    assert re.search(r"unknown tracker 'nosuch'; known trackers: .*\bfsspec\b", done.stderr)
    assert "lineage_fsspec" in done.stderr


def test_unknown_tracker_in_env_exits_nonzero_listing_known_trackers(tmp_path: Path) -> None:
    done = torchx(
        "run",
        "-s",
        "local_cwd",
        "utils.python",
        "-c",
        MARK_RAN,
        cwd=tmp_path,
        extra_env={"TORCHX_TRACKERS": "nosuch"},
    )
    assert_nothing_submitted(done, tmp_path)
    assert "known trackers: fsspec, lineage_fsspec" in done.stderr


def test_bad_tracker_name_flag_names_the_allowed_pattern(tmp_path: Path) -> None:
    done = torchx(
        "run",
        "-s",
        "local_cwd",
        "--tracker",
        "bad-name=x",
        "utils.python",
        "-c",
        MARK_RAN,
        cwd=tmp_path,
    )
    assert_nothing_submitted(done, tmp_path)
    assert done.returncode == 2  # argparse
    assert "'bad-name'" in done.stderr
    assert "[A-Za-z][A-Za-z0-9_]*" in done.stderr


@pytest.mark.parametrize(
    ("config", "reason"),
    [("{url: 5}", "string 'url' key"), ("nosuchproto://x", "Protocol not known: nosuchproto")],
)
def test_malformed_fsspec_flag_names_the_flag(config: str, reason: str, tmp_path: Path) -> None:
    done = torchx(
        "run",
        "-s",
        "local_cwd",
        "--tracker",
        f"fsspec={config}",
        "utils.python",
        "-c",
        MARK_RAN,
        cwd=tmp_path,
    )
    assert_nothing_submitted(done, tmp_path)
    assert f"--tracker fsspec={config!r}" in done.stderr
    assert reason in done.stderr


@pytest.mark.parametrize(
    ("config", "reason"),
    [("{url: 5}", "string 'url' key"), ("nosuchproto://x", "Protocol not known: nosuchproto")],
)
def test_malformed_fsspec_env_config_names_the_env_var(
    config: str, reason: str, tmp_path: Path
) -> None:
    done = torchx(
        "run",
        "-s",
        "local_cwd",
        "utils.python",
        "-c",
        MARK_RAN,
        cwd=tmp_path,
        extra_env={"TORCHX_TRACKERS": "fsspec", "TORCHX_TRACKER_FSSPEC_CONFIG": config},
    )
    assert_nothing_submitted(done, tmp_path)
    assert f"TORCHX_TRACKER_FSSPEC_CONFIG={config!r}" in done.stderr
    assert reason in done.stderr
