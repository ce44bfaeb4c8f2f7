"""A real three-step ``torchx run -s local_cwd`` pipeline sends OpenLineage events to a real
HTTP endpoint (``ol_server.py`` on 127.0.0.1), beside a ``lineage_fsspec`` store.

Checked: every event passes the spec's rules (:data:`support.RUN_EVENT_SCHEMA`); each run has
exactly one START and one terminal event; the graph the events state equals ``torchx tracker
list lineage --format json``'s; ``torchx tracker export openlineage`` from the store sends the
very same events (file transport); reads on the write-only tracker fall over in the CLI.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cli_support import torchx
from tests.openlineage.conftest import LineageEndpoint, free_port
from tests.openlineage.support import (
    TERMINAL,
    canonical,
    distances,
    graph_from_events,
    read_lines,
    run_pipeline,
    schema_errors,
    torchx_run_id,
)
from trackers.backends.openlineage import job_of, run_uuid

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Pipeline:
    cwd: Path
    store: str
    endpoint: LineageEndpoint
    handles: dict[str, str]

    def events(self) -> list[dict[str, Any]]:
        return self.endpoint.events()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    endpoint = LineageEndpoint(tmp_path_factory.mktemp("endpoint"), free_port())
    endpoint.start()
    try:
        cwd = tmp_path_factory.mktemp("pipeline")
        store = f"lineage_fsspec={cwd / 'store'}"
        handles = run_pipeline(cwd, [store, f"openlineage={endpoint.url}"])
        yield Pipeline(cwd, store, endpoint, handles)
    finally:
        endpoint.stop()


def test_every_event_passes_the_spec_schema(pipeline: Pipeline) -> None:
    events = pipeline.events()
    assert len(events) >= 3 * 4  # at least launch, START, environment, COMPLETE per run
    for event in events:
        assert schema_errors(event) == [], json.dumps(event, indent=1)


def test_the_schema_rejects_what_the_spec_forbids(pipeline: Pipeline) -> None:
    """The validator is not vacuous: each broken copy of a real event fails it."""
    event = next(e for e in pipeline.events() if "parent" in e["run"]["facets"])
    breakages = [
        ("eventType", lambda e: e.__setitem__("eventType", "DONE")),
        ("runId", lambda e: e["run"].__setitem__("runId", pipeline.handles["train"])),
        ("job name", lambda e: e["job"].pop("name")),
        ("facet producer", lambda e: e["run"]["facets"]["torchx_run"].pop("_producer")),
        ("parent job", lambda e: e["run"]["facets"]["parent"].pop("job")),
        ("parent root run", lambda e: e["run"]["facets"]["parent"]["root"]["run"].pop("runId")),
        ("schemaURL", lambda e: e.__setitem__("schemaURL", "https://example.invalid/x")),
    ]
    for what, breaking in breakages:
        broken = json.loads(json.dumps(event))
        breaking(broken)
        assert schema_errors(broken), f"a broken {what} passed the schema"


def test_each_run_has_one_start_and_one_terminal_event(pipeline: Pipeline) -> None:
    events = pipeline.events()
    runs = set(pipeline.handles.values())
    assert {torchx_run_id(e) for e in events} == runs
    for run in runs:
        mine = [e for e in events if torchx_run_id(e) == run]
        kinds = Counter(e["eventType"] for e in mine)
        assert kinds["START"] == 1, kinds
        assert sum(kinds[k] for k in TERMINAL) == 1 and kinds["COMPLETE"] == 1, kinds
        assert {e["run"]["runId"] for e in mine} == {run_uuid(run)}
        job = job_of(run)
        assert {(e["job"]["namespace"], e["job"]["name"]) for e in mine} == {
            (job.namespace, job.name)
        }
        assert job.namespace == "local_cwd://torchx"
        start = next(e for e in mine if e["eventType"] == "START")
        end = next(e for e in mine if e["eventType"] == "COMPLETE")
        assert start["eventTime"] < end["eventTime"]


def test_job_names_are_the_app_names(pipeline: Pipeline) -> None:
    names = {step: job_of(handle).name for step, handle in pipeline.handles.items()}
    assert names == {"prepare": "prepare", "train": "train", "evaluate": "evaluate"}


def test_launch_record_and_environment_facets(pipeline: Pipeline) -> None:
    train = pipeline.handles["train"]
    mine = [e for e in pipeline.events() if torchx_run_id(e) == train]
    launch = [
        e["run"]["facets"]["torchx_launch"]["launch"]
        for e in mine
        if "torchx_launch" in e["run"]["facets"]
    ]
    assert len(launch) == 1
    assert launch[0]["component"] == "lineage.python"
    assert launch[0]["parent_run_id"] == pipeline.handles["prepare"]
    assert "--script" in launch[0]["component_args"]
    environment = [
        e["run"]["facets"]["torchx_environment"]["environment"]
        for e in mine
        if "torchx_environment" in e["run"]["facets"]
    ]
    assert len(environment) == 1 and "torchx-lineage" in environment[0]["packages"]
    outputs = [d for e in mine for d in e["outputs"]]
    assert [(d["namespace"], d["name"]) for d in outputs] == [(train, "model")]
    path = outputs[0]["facets"]["torchx_artifact"]["path"]
    assert path == str(pipeline.cwd / "pipeline-out" / "train" / "model.json")
    assert outputs[0]["facets"]["symlinks"]["identifiers"] == [
        {"namespace": "file", "name": path, "type": "FILE"}
    ]


def test_parent_facets_name_the_parent_and_the_root_of_the_pipeline(pipeline: Pipeline) -> None:
    """prepare -> train -> evaluate: each child has one parent facet (on its launch record's
    event), naming its direct parent and, as ``root``, the top of the chain: prepare for both."""
    prepare, train, evaluate = (pipeline.handles[s] for s in ("prepare", "train", "evaluate"))

    def ref(run: str) -> tuple[str, str, str]:
        job = job_of(run)
        return run_uuid(run), job.namespace, job.name

    def named(part: dict[str, Any]) -> tuple[str, str, str]:
        return part["run"]["runId"], part["job"]["namespace"], part["job"]["name"]

    found: dict[str, list[tuple[Any, Any]]] = {prepare: [], train: [], evaluate: []}
    for event in pipeline.events():
        parent = event["run"]["facets"].get("parent")
        if parent is not None:
            assert "torchx_launch" in event["run"]["facets"], event  # the launch record's event
            found[torchx_run_id(event)].append((named(parent), named(parent["root"])))
    assert found[prepare] == []
    assert found[train] == [(ref(prepare), ref(prepare))]
    assert found[evaluate] == [(ref(train), ref(prepare))]


def test_graph_from_events_equals_the_cli_lineage(pipeline: Pipeline) -> None:
    train = pipeline.handles["train"]
    done = torchx(
        pipeline.cwd,
        "tracker",
        "list",
        "lineage",
        train,
        "--tracker",
        pipeline.store,
        "--format",
        "json",
    )
    assert done.returncode == 0, done.stderr
    cli = json.loads(done.stdout)
    cli_edges = {(e["parent"], e["child"], e["artifact_name"]) for e in cli["edges"]}
    edges = graph_from_events(pipeline.events())
    assert edges == cli_edges
    assert edges == {
        (pipeline.handles["prepare"], train, "dataset"),
        (train, pipeline.handles["evaluate"], "model"),
    }
    assert distances(train, edges, upwards=True) == cli["ancestors"]
    assert distances(train, edges, upwards=False) == cli["descendants"]


def test_export_from_the_store_sends_the_same_events(pipeline: Pipeline, tmp_path: Path) -> None:
    """Backfill through the file transport: exactly the live events, nothing normalised."""
    out = tmp_path / "exported.jsonl"
    done = torchx(
        pipeline.cwd,
        "tracker",
        "export",
        "openlineage",
        "--all",
        "--tracker",
        pipeline.store,
        "--to",
        f"file://{out}",
        "--format",
        "json",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    live = pipeline.events()
    assert sum(r["events"] for r in report) == len(live)
    assert canonical(read_lines(out)) == canonical(live)


def test_reads_on_the_write_only_tracker_are_refused_by_name(pipeline: Pipeline) -> None:
    done = torchx(
        pipeline.cwd,
        "tracker",
        "list",
        "metadata",
        pipeline.handles["train"],
        "--tracker",
        f"openlineage={pipeline.endpoint.url}",
    )
    assert done.returncode == 1
    assert "write-only" in done.stderr and "not supported" in done.stderr
