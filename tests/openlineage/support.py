"""What the OpenLineage tests share: the spec's rules as a JSON schema, the pipeline, the graph.

:data:`RUN_EVENT_SCHEMA` is written from the facts in issue 14 (OpenLineage spec 2-0-2):
required ``eventTime``, ``producer`` (a URI), ``schemaURL`` (the RunEvent's), ``run.runId`` (a
UUID), ``job.namespace``/``job.name``; ``eventType`` one of six; datasets need ``namespace`` and
``name``; every facet has ``_producer`` and ``_schemaURL``; the ParentRunFacet needs
``parent.run.runId`` and ``parent.job.{namespace,name}``, optionally ``root.{run,job}``.
Formats are checked with patterns (jsonschema's ``format`` needs optional packages to check).
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from tests.cli_support import torchx

REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "examples" / "pipeline"

UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
URI = r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$"
DATE_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
NAME = {"type": "string", "minLength": 1}

FACET = {
    "type": "object",
    "required": ["_producer", "_schemaURL"],
    "properties": {
        "_producer": {"type": "string", "pattern": URI},
        "_schemaURL": {"type": "string", "pattern": URI},
    },
}
FACETS = {"type": "object", "additionalProperties": FACET}
RUN_REF = {
    "type": "object",
    "required": ["runId"],
    "properties": {"runId": {"type": "string", "pattern": UUID}},
}
JOB_REF = {
    "type": "object",
    "required": ["namespace", "name"],
    "properties": {"namespace": NAME, "name": NAME},
}
PARENT_RUN_FACET = {
    "allOf": [FACET],
    "type": "object",
    "required": ["run", "job"],
    "properties": {
        "run": RUN_REF,
        "job": JOB_REF,
        "root": {
            "type": "object",
            "required": ["run", "job"],
            "properties": {"run": RUN_REF, "job": JOB_REF},
        },
    },
}
DATASET = {
    "type": "object",
    "required": ["namespace", "name"],
    "properties": {
        "namespace": NAME,
        "name": NAME,
        "facets": FACETS,
        "inputFacets": FACETS,
        "outputFacets": FACETS,
    },
}
RUN_EVENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["eventTime", "producer", "schemaURL", "eventType", "run", "job"],
    "properties": {
        "eventTime": {"type": "string", "pattern": DATE_TIME},
        "producer": {"type": "string", "pattern": URI},
        "schemaURL": {
            "const": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
        },
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "run": {
            "type": "object",
            "required": ["runId"],
            "properties": {
                "runId": {"type": "string", "pattern": UUID},
                "facets": {
                    "type": "object",
                    "additionalProperties": FACET,
                    "properties": {"parent": PARENT_RUN_FACET},
                },
            },
        },
        "job": {
            "type": "object",
            "required": ["namespace", "name"],
            "properties": {"namespace": NAME, "name": NAME, "facets": FACETS},
        },
        "inputs": {"type": "array", "items": DATASET},
        "outputs": {"type": "array", "items": DATASET},
    },
}
VALIDATOR = Draft202012Validator(RUN_EVENT_SCHEMA)
TERMINAL = ("COMPLETE", "ABORT", "FAIL")


def schema_errors(event: dict[str, Any]) -> list[str]:
    """Every way ``event`` breaks :data:`RUN_EVENT_SCHEMA` (empty when it validates)."""
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(event)
    ]


def torchx_run_id(event: dict[str, Any]) -> str:
    """The TorchX run id an event is about (its ``torchx_run`` facet)."""
    run_id: str = event["run"]["facets"]["torchx_run"]["runId"]
    return run_id


def canonical(events: list[dict[str, Any]]) -> list[str]:
    """Events as sorted canonical JSON texts (for comparing two collections exactly)."""
    return sorted(json.dumps(e, sort_keys=True) for e in events)


def graph_from_events(events: list[dict[str, Any]]) -> set[tuple[str, str, str | None]]:
    """``(parent, child, artifact)`` links the events state: an input dataset whose namespace
    is a run of the events (the run's artifact ``name``), and the ``parent`` facet (unnamed).
    An unnamed link is dropped where the pair also has a named one, as the CLI does."""
    by_uuid = {e["run"]["runId"]: torchx_run_id(e) for e in events}
    runs = set(by_uuid.values())
    edges: set[tuple[str, str, str | None]] = set()
    for e in events:
        child = torchx_run_id(e)
        for dataset in e.get("inputs") or []:
            if dataset["namespace"] in runs:
                edges.add((dataset["namespace"], child, dataset["name"]))
        parent = (e["run"].get("facets") or {}).get("parent")
        if parent is not None:
            edges.add((by_uuid[parent["run"]["runId"]], child, None))
    named = {(p, c) for p, c, a in edges if a is not None}
    return {(p, c, a) for p, c, a in edges if a is not None or (p, c) not in named}


def distances(start: str, edges: set[tuple[str, str, str | None]], upwards: bool) -> dict[str, int]:
    """Runs reachable from ``start`` over ``edges`` (towards parents if ``upwards``), by hops."""
    found: dict[str, int] = {}
    queue = deque([(start, 0)])
    while queue:
        run, hops = queue.popleft()
        for parent, child, _ in edges:
            a, b = (child, parent) if upwards else (parent, child)
            if a == run and b != start and b not in found:
                found[b] = hops + 1
                queue.append((b, hops + 1))
    return found


def run_step(
    cwd: Path,
    trackers: list[str],
    step: str,
    parent: str | None,
    *script_args: str,
    extra_env: Mapping[str, str] | None = None,
) -> str:
    """``torchx run -s local_cwd`` one step of ``examples/pipeline``; returns its handle."""
    cmd = ["run", "-s", "local_cwd"]
    for tracker in trackers:
        cmd += ["--tracker", tracker]
    if parent:
        cmd += ["--parent-run-id", parent]
    out = cwd / "pipeline-out" / step
    cmd += ["lineage.python", "--name", step, "--script", str(PIPELINE / f"{step}.py"), "--"]
    cmd += ["--out", str(out), *script_args]
    done = torchx(cwd, *cmd, extra_env=extra_env)
    assert done.returncode == 0, f"{step} failed\n{done.stdout}\n{done.stderr[-4000:]}"
    handle = next(
        (line.strip() for line in done.stdout.splitlines() if line.startswith("local_cwd://")),
        None,
    )
    assert handle, done.stdout
    return handle


def run_pipeline(
    cwd: Path, trackers: list[str], extra_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """prepare -> train -> evaluate, each linked to the one before; step name -> handle."""
    data = str(cwd / "pipeline-out" / "prepare" / "dataset.csv")
    model = str(cwd / "pipeline-out" / "train" / "model.json")
    prepare = run_step(cwd, trackers, "prepare", None, extra_env=extra_env)
    train = run_step(
        cwd,
        trackers,
        "train",
        prepare,
        *("--data", data, "--dataset-run-id", prepare),
        extra_env=extra_env,
    )
    evaluate = run_step(
        cwd,
        trackers,
        "evaluate",
        train,
        *("--model", model, "--data", data, "--model-run-id", train),
        extra_env=extra_env,
    )
    return {"prepare": prepare, "train": train, "evaluate": evaluate}


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The events of a file transport's file (one JSON event a line)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def unescape_mermaid(text: str) -> str:
    """A Mermaid label back to its text (``#NN;`` entity codes, ``<br>`` line breaks)."""
    return re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), text.replace("<br>", "\n"))
