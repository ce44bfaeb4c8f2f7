"""The endpoint down during the jobs (the spool keeps the events, ``torchx tracker sync``
delivers each once), and the file transport in a real job.
"""

from __future__ import annotations

import json
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

pytestmark = pytest.mark.e2e


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

    # What is missing against the store is exactly what torchx run itself sends, unspooled:
    # the launch record of each run and the --parent-run-id link of train and evaluate.
    exported = _export(tmp_path, store, tmp_path / "exported.jsonl")
    assert not Counter(texts) - Counter(canonical(exported))
    missing = [json.loads(t) for t in (Counter(canonical(exported)) - Counter(texts)).elements()]
    launch = [e for e in missing if "torchx_launch" in e["run"]["facets"]]
    parent_links = [e for e in missing if "parent" in e["run"]["facets"]]
    assert sorted(map(torchx_run_id, launch)) == sorted(runs)
    assert sorted(map(torchx_run_id, parent_links)) == sorted(
        [handles["train"], handles["evaluate"]]
    )
    assert len(missing) == len(launch) + len(parent_links)

    again = torchx(tmp_path, "tracker", "sync", "--all", "--format", "json")
    assert again.returncode == 0, again.stderr
    assert canonical(endpoint.events()) == texts  # nothing sent twice


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
