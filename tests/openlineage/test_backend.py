"""The openlineage tracker without jobs: config forms, identities, error classes for the spool,
credentials kept out of text, reads refused, and AppRun falling over to a store."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from openlineage.client.serde import Serde

from tests.openlineage.conftest import free_port
from trackers import AppRun
from trackers.app_run import RunSettings
from trackers.backends.openlineage import (
    OpenLineageConfig,
    Write,
    create_tracker,
    event_of,
    event_time,
    job_of,
    run_uuid,
)
from trackers.errors import (
    BackendUnavailable,
    TrackerConfigError,
    TrackerError,
    UnsupportedOperation,
    is_transient,
)
from trackers.registry import create_tracker as create_named

START = Write("set_status", {"status": "RUNNING"}, "01764868279123456789-" + "a" * 32)


@pytest.mark.parametrize(
    ("config", "kind", "target"),
    [
        ("http://127.0.0.1:5000", "http", "http://127.0.0.1:5000"),
        ("https://lineage.example.com/", "http", "https://lineage.example.com"),
        ("", "client", ""),
        (None, "client", ""),
    ],
)
def test_config_forms(config: str | None, kind: str, target: str) -> None:
    parsed = OpenLineageConfig.parse(config)
    assert (parsed.kind, parsed.target) == (kind, target)


def test_file_config_is_made_absolute_for_the_job(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    tracker = create_named("openlineage", "file://ol/events.jsonl", origin="--tracker")
    assert tracker.job_config() == f"file://{tmp_path}/ol/events.jsonl"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "config",
    [
        "http://user:hunter2@127.0.0.1:5000",
        "http://127.0.0.1:5000/api/v1/lineage",
        "http://127.0.0.1:5000/?api_key=hunter2",
        "http://127.0.0.1:notaport",
        "kafka://broker:9092",
        "file://",
    ],
)
def test_malformed_configs_are_refused_without_echoing_secrets(config: str) -> None:
    with pytest.raises(TrackerConfigError) as raised:
        create_named("openlineage", config, origin="--tracker openlineage")
    assert "hunter2" not in str(raised.value)


def test_run_uuid_is_uuid5_of_the_run_id_and_stable() -> None:
    run = "local_cwd://torchx/train-bx7k2c9dq1zz"
    namespace = uuid.uuid5(uuid.NAMESPACE_URL, "torchx-lineage:run")
    assert run_uuid(run) == str(uuid.uuid5(namespace, run))
    assert run_uuid(run) != run_uuid(run + "x")
    odd = "local_cwd://torchx/\udcff-bytes"  # an id holding a byte that is not UTF-8
    assert uuid.UUID(run_uuid(odd)).version == 5


@pytest.mark.parametrize(
    ("run", "namespace", "name"),
    [
        ("local_cwd://torchx/train-bx7k2c9dq1zz", "local_cwd://torchx", "train"),
        ("local_cwd://torchx/my-application", "local_cwd://torchx", "my-application"),
        ("kubernetes://s/default:train-bx7k2c9dq1zz", "kubernetes://s", "default:train"),
        ("slurm://torchx/1234", "slurm://torchx", "1234"),
        ("not a run id", "torchx", "not a run id"),
    ],
)
def test_job_of(run: str, namespace: str, name: str) -> None:
    assert (job_of(run).namespace, job_of(run).name) == (namespace, name)


def test_event_time_is_the_operation_time() -> None:
    assert event_time("1764868279123456789-ab") == "2025-12-04T17:11:19.123456+00:00"


def test_unreachable_endpoint_is_backend_unavailable_fast() -> None:
    tracker = create_tracker(f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as raised:
        tracker.emit("local_cwd://torchx/a-bcdfghjklm", START)
    assert is_transient(raised.value)
    assert time.monotonic() - started < 5


class _Answer(BaseHTTPRequestHandler):
    code = 201
    seen: list[dict[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append(dict(self.headers))
        self.send_response(type(self).code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def answering() -> Iterator[tuple[str, type[_Answer]]]:
    handler = type("Answer", (_Answer,), {"seen": []})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("code", "error", "transient"),
    [(503, BackendUnavailable, True), (401, TrackerConfigError, True), (400, TrackerError, False)],
)
def test_http_answers_sort_into_retry_or_skip(
    answering: tuple[str, type[_Answer]], code: int, error: type[Exception], transient: bool
) -> None:
    url, handler = answering
    handler.code = code
    with pytest.raises(error) as raised:
        create_tracker(url).emit("local_cwd://torchx/a-bcdfghjklm", START)
    assert is_transient(raised.value) is transient


def test_api_key_is_sent_but_never_shown(
    answering: tuple[str, type[_Answer]], monkeypatch: Any
) -> None:
    url, handler = answering
    monkeypatch.setenv("OPENLINEAGE_API_KEY", "hunter2-secret")
    tracker = create_tracker(url)
    assert tracker.emit("local_cwd://torchx/a-bcdfghjklm", START)
    assert handler.seen[-1]["Authorization"] == "Bearer hunter2-secret"
    assert "hunter2" not in repr(tracker)
    handler.code = 401
    with pytest.raises(TrackerConfigError) as raised:
        tracker.emit("local_cwd://torchx/a-bcdfghjklm", START)
    assert "hunter2" not in str(raised.value)


def test_reads_raise_unsupported_and_apprun_falls_over(tmp_path: Path) -> None:
    ol = create_tracker(f"file://{tmp_path / 'events.jsonl'}")
    for read in (ol.metadata, ol.artifacts, ol.status, ol.sources, ol.has_run):
        with pytest.raises(UnsupportedOperation, match="write-only"):
            read("local_cwd://torchx/a-bcdfghjklm")
    store = create_named("lineage_fsspec", str(tmp_path / "store"), origin="test")
    run = AppRun(
        "local_cwd://torchx/a-bcdfghjklm",
        [ol, store],
        settings=RunSettings(spool_dir=tmp_path / "spool"),
    )
    run.add_artifact("model", "/data/model.pt")
    assert run.flush(30)
    assert set(run.artifacts()) == {"model"}  # from the store, after the OpenLineage refusal
    run.close()
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["RUNNING", "COMPLETE"]
    assert events[0]["outputs"][0]["name"] == "model"


PARENT = "local_cwd://torchx/prepare-bx7k2c9dq1zz"
ROOT = "local_cwd://torchx/ingest-cx7k2c9dq1zz"


def _parent_of(write: Write) -> dict[str, Any] | None:
    event = event_of("local_cwd://torchx/train-dx7k2c9dq1zz", write)
    if event is None:
        return None
    facets = json.loads(Serde.to_json(event))["run"]["facets"]
    parent: dict[str, Any] | None = facets.get("parent")
    return parent


def test_the_parent_facet_comes_with_the_launch_record_and_names_the_root() -> None:
    """The launch record's event carries the parent facet, ``root`` from ``launch.root_run_id``
    (a record written before that key: the parent); the parent link itself sends nothing, so a
    run has one parent facet, the same from every path (live, sync, backfill)."""
    op = START.op_id
    launch = {"launch.run_id": "x", "launch.parent_run_id": PARENT, "launch.root_run_id": ROOT}
    parent = _parent_of(Write("add_metadata", {"values": launch}, op))
    assert parent is not None
    assert parent["run"]["runId"] == run_uuid(PARENT) and parent["job"]["name"] == "prepare"
    assert parent["root"]["run"]["runId"] == run_uuid(ROOT)
    root_job = parent["root"]["job"]
    assert (root_job["namespace"], root_job["name"]) == ("local_cwd://torchx", "ingest")
    older = {k: v for k, v in launch.items() if k != "launch.root_run_id"}
    parent = _parent_of(Write("add_metadata", {"values": older}, op))
    assert parent is not None and parent["root"]["run"]["runId"] == run_uuid(PARENT)
    link = Write("add_source", {"source_id": PARENT, "artifact_name": None}, op)
    assert event_of("local_cwd://torchx/train-dx7k2c9dq1zz", link) is None
    no_parent = {"launch.run_id": "x"}
    assert _parent_of(Write("add_metadata", {"values": no_parent}, op)) is None


def test_backfill_through_public_reads_gives_the_record_events_but_for_time(
    tmp_path: Path,
) -> None:
    """The path MLflow takes (public reads only), run on a record store whose exact path is
    known: a failed child run gives the same events (launch record with parent and root, link,
    START, environment, artifact, error, FAIL) but for the times the public reads lack."""
    from trackers.backends.fsspec import create_tracker as create_fsspec
    from trackers.backends.openlineage_backfill import _interface_writes, store_writes
    from trackers.operations import Operation

    store = create_fsspec(str(tmp_path / "store"))
    run = "local_cwd://torchx/train-dx7k2c9dq1zz"
    writes = [
        (
            "add_metadata",
            {
                "values": {
                    "launch.time": "2026-12-05T07:00:00+00:00",
                    "launch.parent_run_id": PARENT,
                    "launch.root_run_id": ROOT,
                }
            },
        ),
        ("add_source", {"source_id": PARENT, "artifact_name": "dataset"}),
        ("set_status", {"status": "RUNNING"}),
        ("add_metadata", {"values": {"env.python": "3.11", "lr": 0.1}}),
        ("add_artifact", {"name": "model", "path": "/m.json", "metadata": {"rows": 3}}),
        ("add_metadata", {"values": {"error.type": "ValueError", "error.message": "bad"}}),
        ("set_status", {"status": "FAILED"}),
    ]
    # launch.time is the second of the launch record's operation, as torchx run writes it
    start_ns = int(dt.datetime(2026, 12, 5, 7, tzinfo=dt.timezone.utc).timestamp()) * 10**9
    for i, (kind, args) in enumerate(writes):
        op_id = f"{start_ns + 123_456_789 + i * 1000:020d}-{i:032x}"
        Operation(op_id, kind, args).apply(store, run)

    def events(made: list[Write]) -> list[dict[str, Any]]:
        sent = [event_of(run, w) for w in made]
        return [json.loads(Serde.to_json(e)) for e in sent if e is not None]

    exact, public = events(store_writes(store, run)), events(_interface_writes(store, run))
    assert [e["eventType"] for e in exact] == [
        "OTHER",
        "RUNNING",
        "START",
        "OTHER",
        "RUNNING",
        "OTHER",
        "FAIL",
    ]

    def timeless(found: list[dict[str, Any]]) -> list[str]:
        return sorted(json.dumps({**e, "eventTime": None}, sort_keys=True) for e in found)

    assert timeless(public) == timeless(exact)
    assert public[0]["eventTime"] == exact[0]["eventTime"][:19] + ".000000+00:00"
    # the terminal time comes from status_history's float seconds: the live time to within the
    # microsecond a float of seconds since 1970 can hold (~0.24 us), rounded
    assert public[-1]["eventType"] == "FAIL"
    ends = [dt.datetime.fromisoformat(e[-1]["eventTime"]) for e in (public, exact)]
    assert abs(ends[0] - ends[1]) <= dt.timedelta(microseconds=1)
