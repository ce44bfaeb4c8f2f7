"""Run ids of any length are recorded in the local fsspec store, and through the spool.

Ids up to 155 bytes keep exactly TorchX's base32 directory name (TorchX's own ``FsspecTracker``
reads those runs); longer ones get a shortened name and ``<run>/.run_id``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from base64 import b32encode
from pathlib import Path

import fsspec
import pytest
from torchx.tracker.backend.fsspec import FsspecTracker as TorchxFsspecTracker

from tests.cli_support import clean_env, job_ids, torchx
from tests.trackers.long_ids import SHORT, assert_names_fit, exercise, long_id
from trackers.app_run import AppRun, RunSettings
from trackers.backends.fsspec import create_tracker
from trackers.ids import MAX_PATH_ID_BYTES, decode_run_id, encode_run_id, path_id


def _all_paths(root: Path) -> list[str]:
    return [
        os.path.relpath(os.path.join(d, n), root)
        for d, dirs, files in os.walk(root)
        for n in dirs + files
    ]


@pytest.mark.parametrize("length", [300, 2000])
def test_a_long_run_id_is_recorded_and_read_back(tmp_path: Path, length: int) -> None:
    run_id = long_id(length)
    assert len(run_id) == length
    exercise(create_tracker(str(tmp_path)), run_id)
    assert_names_fit(_all_paths(tmp_path))
    # a second tracker object (another process) reads the same
    assert create_tracker(str(tmp_path)).metadata(run_id)["lr"] == 0.1


def test_ids_up_to_155_bytes_keep_torchx_names_and_torchx_reads_them(tmp_path: Path) -> None:
    edge = long_id(MAX_PATH_ID_BYTES, "edge")
    assert path_id(edge) == edge
    ours = create_tracker(str(tmp_path))
    for run_id in (SHORT, edge):
        ours.add_metadata(run_id, lr=0.1)
        assert encode_run_id(run_id) == b32encode(run_id.encode("ascii")).decode()
    ours.add_source(edge, SHORT, "dataset")
    ours.add_metadata(long_id(400), lr=0.2)
    theirs = TorchxFsspecTracker(fsspec.filesystem("file"), str(tmp_path))
    assert theirs.metadata(edge) == {"lr": 0.1}
    assert [(s.source_run_id, s.artifact_name) for s in theirs.sources(edge)] == [
        (SHORT, "dataset")
    ]
    assert list(theirs.run_ids(parent_run_id=SHORT)) == [edge]
    # TorchX's listing does not break on a long id: it sees the shortened, hash-suffixed form
    listed = sorted(theirs.run_ids())
    assert listed == sorted([SHORT, edge, path_id(long_id(400))])
    assert path_id(long_id(400)).startswith("local_cwd://torchx/train-a-xxx")


def test_a_shortened_name_without_its_id_file_is_listed_shortened(tmp_path: Path) -> None:
    run_id = long_id(300)
    ours = create_tracker(str(tmp_path))
    ours.add_metadata(run_id, lr=0.1)
    (tmp_path / encode_run_id(run_id) / ".run_id").unlink()
    fresh = create_tracker(str(tmp_path))
    assert list(fresh.run_ids()) == [path_id(run_id)]
    assert fresh.metadata(path_id(run_id)) == {"lr": 0.1}  # the shortened id is an alias


def test_a_run_id_with_undecodable_bytes_round_trips(tmp_path: Path) -> None:
    run_id = os.fsdecode(b"local_cwd://torchx/train-\xff\xfe")  # what os.environ gives
    ours = create_tracker(str(tmp_path))
    ours.add_metadata(run_id, lr=0.1)
    assert decode_run_id(encode_run_id(run_id)) == run_id
    assert list(ours.run_ids()) == [run_id]
    assert ours.metadata(run_id) == {"lr": 0.1}


@pytest.mark.parametrize("length", [300, 2000])
def test_a_long_run_id_goes_through_the_spool(tmp_path: Path, length: int) -> None:
    run_id = long_id(length, "spool")
    store, spool = tmp_path / "store", tmp_path / "spool"
    run = AppRun(
        run_id,
        [create_tracker(str(store))],
        settings=RunSettings(spool_dir=spool, shutdown_timeout=10),
    )
    run.add_metadata(lr=0.1)
    run.add_source(SHORT, "dataset")
    run.log({"loss": 1.0}, step=0)
    run.close()
    reader = create_tracker(str(store))
    assert list(reader.run_ids()) == [run_id]
    assert reader.metadata(run_id) == {"lr": 0.1}
    assert [p.value for p in reader.metrics(run_id)] == [1.0]
    assert reader.status(run_id) == "SUCCEEDED"
    assert not [p for p in _all_paths(spool) if p.endswith(".jsonl")]  # all delivered


#: A Kubernetes handle is ``kubernetes://SESSION/NAMESPACE:NAME`` (names up to 253 characters).
K8S_PARENT = "kubernetes://torchx/research-team-namespace:" + "p" * 251 + "-abcd"
#: The longest app name local_cwd takes (its log directory is named after the app id).
LONG_APP_NAME = "train-" + "x" * 229
JOB = """
import os
from trackers import AppRun
run = AppRun.run_from_env()
run.add_metadata(job_id_length=len(os.environ["TORCHX_JOB_ID"]))
"""


@pytest.mark.e2e
def test_a_300_character_run_id_through_a_real_torchx_run(tmp_path: Path) -> None:
    assert len(K8S_PARENT) == 300
    store = tmp_path / "store"
    (tmp_path / "job.py").write_text(JOB)
    # the parent: a job that ran elsewhere under a 300-character id, recording into the store
    env = clean_env(tmp_path)
    env.update(
        TORCHX_JOB_ID=K8S_PARENT,
        TORCHX_TRACKERS="lineage_fsspec",
        TORCHX_TRACKER_LINEAGE_FSSPEC_CONFIG=str(store),
    )
    parent = subprocess.run(
        [sys.executable, "job.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert parent.returncode == 0, parent.stderr[-3000:]
    # the child: a real torchx run linked to it, with a job id of over 155 bytes of its own
    spec = f"fsspec={store}"
    done = torchx(
        tmp_path,
        "run",
        "-s",
        "local_cwd",
        "--tracker",
        spec,
        "--parent-run-id",
        K8S_PARENT,
        "lineage.python",
        "--name",
        LONG_APP_NAME,
        "--script",
        "job.py",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    child = done.stdout.strip().splitlines()[-1]
    assert len(child) > MAX_PATH_ID_BYTES and path_id(child) != child
    jobs = torchx(tmp_path, "tracker", "list", "jobs", "--tracker", spec, "--format", "json")
    assert jobs.returncode == 0, jobs.stderr
    assert sorted(job_ids(json.loads(jobs.stdout))) == sorted([K8S_PARENT, child])
    md = torchx(tmp_path, "tracker", "list", "metadata", K8S_PARENT, "--tracker", spec)
    assert md.returncode == 0 and "job_id_length" in md.stdout and "300" in md.stdout, md.stderr
    md = torchx(
        tmp_path, "tracker", "list", "metadata", child, "--tracker", spec, "--format", "json"
    )
    assert json.loads(md.stdout)["job_id_length"] == len(child)
    lineage = torchx(
        tmp_path, "tracker", "list", "lineage", child, "--tracker", spec, "--format", "json"
    )
    assert lineage.returncode == 0, lineage.stderr
    edges = json.loads(lineage.stdout)["edges"]
    assert [(e["parent"], e["child"]) for e in edges] == [(K8S_PARENT, child)]
    children = torchx(
        tmp_path,
        "tracker",
        "list",
        "jobs",
        "--parent-run-id",
        K8S_PARENT,
        "--tracker",
        spec,
        "--format",
        "json",
    )
    assert job_ids(json.loads(children.stdout)) == [child], children.stderr
    for path in _all_paths(store):
        assert all(len(part.encode()) <= 255 for part in path.split(os.sep)), path
