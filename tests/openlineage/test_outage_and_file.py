"""The endpoint down during the jobs and during ``torchx run`` itself (the spool keeps the
events, the job's and the launcher's: the launch record, the parent link, a reconciled status;
``torchx tracker sync`` delivers each once), and the file transport in a real job.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.cli_support import torchx
from tests.openlineage.support import (
    TERMINAL,
    canonical,
    read_lines,
    run_pipeline,
    run_step,
    schema_errors,
    torchx_run_id,
)
from trackers.backends.openlineage import run_uuid

pytestmark = pytest.mark.e2e

#: A job that starts its run, then dies by SIGKILL (it cannot record how it ended).
KILLED = (
    "import os, signal, time; from trackers import AppRun; AppRun.run_from_env(); "
    "os.kill(os.getpid(), signal.SIGKILL); time.sleep(60)"
)


def _export(cwd: Path, store: str, out: Path) -> list[dict[str, Any]]:
    done = torchx(
        cwd,
        "tracker",
        "export",
        "openlineage",
        "--all",
        "--tracker",
        store,
        "--to",
        f"file://{out}",
    )
    assert done.returncode == 0, done.stderr
    return read_lines(out)


def _one_start_one_end(events: list[dict[str, Any]], runs: set[str]) -> None:
    for run in runs:
        kinds = Counter(e["eventType"] for e in events if torchx_run_id(e) == run)
        assert kinds["START"] == 1 and sum(kinds[k] for k in TERMINAL) == 1, (run, kinds)


def test_endpoint_down_during_the_jobs_then_sync_delivers_each_event_once(
    make_endpoint: Any, tmp_path: Path
) -> None:
    endpoint = make_endpoint(start=False)  # its port is chosen, nothing listens there yet
    store = f"lineage_fsspec={tmp_path / 'store'}"
    handles = run_pipeline(tmp_path, [store, f"openlineage={endpoint.url}"])  # each exits 0
    runs = set(handles.values())
    spool = tmp_path / ".cache" / "torchx-lineage" / "spool"
    assert list(spool.rglob("*.jsonl")), "the undelivered events are not in the spool"

    endpoint.start()
    done = torchx(tmp_path, "tracker", "sync", "--all", "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(done.stdout)
    openlineage = [r for r in results if r["tracker"] == "openlineage"]
    assert openlineage and all(r["left"] == 0 and r["skipped"] == 0 for r in openlineage)
    received = endpoint.events()
    assert sum(r["delivered"] for r in openlineage) >= len(received) > 0

    texts = canonical(received)
    assert len(texts) == len(set(texts)), "an event arrived twice"
    assert all(schema_errors(e) == [] for e in received)
    _one_start_one_end(received, runs)

    # Nothing is missing against the store: torchx run's own writes (the launch records with
    # the parent facets, and the parent links) went through the spool too.
    exported = _export(tmp_path, store, tmp_path / "exported.jsonl")
    assert canonical(exported) == texts
    launch = [e for e in received if "torchx_launch" in e["run"]["facets"]]
    assert sorted(map(torchx_run_id, launch)) == sorted(runs)
    parents = {
        torchx_run_id(e): e["run"]["facets"]["parent"]
        for e in launch[:]
        if "parent" in e["run"]["facets"]
    }
    assert set(parents) == {handles["train"], handles["evaluate"]}
    assert {p["root"]["run"]["runId"] for p in parents.values()} == {run_uuid(handles["prepare"])}

    again = torchx(tmp_path, "tracker", "sync", "--all", "--format", "json")
    assert again.returncode == 0, again.stderr
    assert canonical(endpoint.events()) == texts  # nothing sent twice


def test_reconciled_fail_waits_in_the_spool_while_the_endpoint_is_down(
    make_endpoint: Any, tmp_path: Path
) -> None:
    """A SIGKILLed job with the endpoint down: the job's START and torchx run's launch record
    and reconciled FAIL all wait in the spool; after the endpoint starts, ``sync`` delivers
    each exactly once, and they are the events the store's export gives."""
    endpoint = make_endpoint(start=False)
    store = f"lineage_fsspec={tmp_path / 'store'}"
    done = torchx(
        tmp_path,
        *("run", "-s", "local_cwd", "--tracker", store, "--tracker"),
        f"openlineage={endpoint.url}",
        *("utils.python", "-c", KILLED),
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    [handle] = re.findall(r"^local_cwd://\S+$", done.stdout, re.MULTILINE)
    assert "torchx tracker sync" in done.stderr  # the launcher says where its writes wait

    endpoint.start()
    synced = torchx(tmp_path, "tracker", "sync", "--all", "--format", "json")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    received = endpoint.events()
    texts = canonical(received)
    assert len(texts) == len(set(texts)), "an event arrived twice"
    assert all(schema_errors(e) == [] for e in received)
    kinds = Counter(e["eventType"] for e in received)
    assert kinds["START"] == 1 and kinds["FAIL"] == 1, kinds
    assert kinds["COMPLETE"] == kinds["ABORT"] == 0, kinds
    assert sum("torchx_launch" in e["run"]["facets"] for e in received) == 1
    assert {torchx_run_id(e) for e in received} == {handle}
    # The store holds the same writes (the reconciled status under the same operation id).
    assert canonical(_export(tmp_path, store, tmp_path / "exported.jsonl")) == texts
    again = torchx(tmp_path, "tracker", "sync", "--all", "--format", "json")
    assert again.returncode == 0, again.stderr
    assert canonical(endpoint.events()) == texts


def test_file_transport_in_a_real_job(tmp_path: Path) -> None:
    """``openlineage=file://RELATIVE`` is made absolute at launch; the job appends one event a
    line; exporting the store gives the same lines."""
    store = f"lineage_fsspec={tmp_path / 'store'}"
    handle = run_step(tmp_path, [store, "openlineage=file://ol/events.jsonl"], "prepare", None)
    live = read_lines(tmp_path / "ol" / "events.jsonl")
    assert [e["eventType"] for e in live if e["eventType"] != "OTHER"] == [
        "START",
        "RUNNING",
        "COMPLETE",
    ]
    assert {torchx_run_id(e) for e in live} == {handle}
    assert all(schema_errors(e) == [] for e in live)
    exported = _export(tmp_path, store, tmp_path / "exported.jsonl")
    assert canonical(exported) == canonical(live)
