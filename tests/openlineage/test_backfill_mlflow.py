"""Backfill from a real MLflow server gives the pipeline's live events.

One three-step ``torchx run -s local_cwd`` pipeline records into an fsspec store, an MLflow
server (``mlflow server`` on 127.0.0.1 in its own process group, ``tests/mlflow/server.py``) and
a live OpenLineage endpoint at once. ``torchx tracker export openlineage --all`` from each store
must then send exactly the live events, ``eventTime`` included: the fsspec store keeps a record
per write, MLflow a journal tag per write (``torchx.write.<operation id>``).

A run MLflow recorded before the journal existed (its journal tags deleted here, last) is read
through the public reads: the same events (run UUIDs, jobs, event types, facets, inputs,
outputs, parent facets with their root) with ``eventTime`` differing only where MLflow keeps
less: the launch record's is the second of the live one (``launch.time``), the terminal
event's the live one to the millisecond (MLflow's end time), and the others are derived (they
still sort after the launch record and before the terminal event).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from tests.cli_support import torchx
from tests.mlflow.server import MLFLOW_ENV_TO_DROP, running_mlflow_server
from tests.openlineage.conftest import LineageEndpoint, free_port
from tests.openlineage.support import (
    TERMINAL,
    canonical,
    read_lines,
    run_pipeline,
    schema_errors,
    torchx_run_id,
)

pytestmark = [pytest.mark.mlflow, pytest.mark.e2e]


@dataclass(frozen=True)
class Recorded:
    cwd: Path
    fsspec: str
    mlflow: str
    env: dict[str, str]
    handles: dict[str, str]
    live: list[dict[str, Any]]

    def export(self, store: str, name: str) -> list[dict[str, Any]]:
        out = self.cwd / f"{name}.jsonl"
        done = torchx(
            self.cwd,
            *("tracker", "export", "openlineage", "--all", "--tracker", store),
            *("--to", f"file://{out}", "--format", "json"),
            extra_env=self.env,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert {r["run_id"] for r in json.loads(done.stdout)} == set(self.handles.values())
        return read_lines(out)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as server:
        endpoint = LineageEndpoint(tmp_path_factory.mktemp("endpoint"), free_port())
        endpoint.start()
        try:
            cwd = tmp_path_factory.mktemp("pipeline")
            env = {"MLFLOW_EXPERIMENT_NAME": "openlineage-backfill"}
            fsspec = f"lineage_fsspec={cwd / 'store'}"
            mlflow = f"mlflow={server.uri}"
            trackers = [fsspec, mlflow, f"openlineage={endpoint.url}"]
            handles = run_pipeline(cwd, trackers, extra_env=env)
            yield Recorded(cwd, fsspec, mlflow, env, handles, endpoint.events())
        finally:
            endpoint.stop()


@pytest.fixture(autouse=True)
def clean_mlflow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No tracking URI, experiment or credential from the developer's shell reaches the jobs."""
    for key in MLFLOW_ENV_TO_DROP:
        monkeypatch.delenv(key, raising=False)


def _timeless(event: dict[str, Any]) -> str:
    """An event as canonical JSON without its ``eventTime``."""
    return json.dumps({k: v for k, v in event.items() if k != "eventTime"}, sort_keys=True)


def _micros(event: dict[str, Any]) -> int:
    """``eventTime`` in microseconds since the epoch."""
    when = dt.datetime.fromisoformat(event["eventTime"])
    return (when - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(microseconds=1)


def _one(events: list[dict[str, Any]], run: str, test: Any) -> dict[str, Any]:
    [found] = [e for e in events if torchx_run_id(e) == run and test(e)]
    return found


def test_export_from_fsspec_is_the_live_events(recorded: Recorded) -> None:
    assert recorded.live and all(schema_errors(e) == [] for e in recorded.live)
    assert canonical(recorded.export(recorded.fsspec, "fsspec")) == canonical(recorded.live)


def test_export_from_mlflow_is_the_live_events(recorded: Recorded) -> None:
    exported = recorded.export(recorded.mlflow, "mlflow")
    assert all(schema_errors(e) == [] for e in exported)
    assert canonical(exported) == canonical(recorded.live)
    # the parts that tell the pipeline, said outright (they are inside the comparison above)
    for run in recorded.handles.values():
        mine = [e for e in exported if torchx_run_id(e) == run]
        kinds = Counter(e["eventType"] for e in mine)
        assert kinds["START"] == 1 and sum(kinds[k] for k in TERMINAL) == 1, kinds
    parents = {
        torchx_run_id(e): e["run"]["facets"]["parent"]["root"]["run"]["runId"]
        for e in exported
        if "parent" in e["run"]["facets"]
    }
    prepare_uuid = next(
        e["run"]["runId"] for e in exported if torchx_run_id(e) == recorded.handles["prepare"]
    )
    assert parents == {
        recorded.handles["train"]: prepare_uuid,
        recorded.handles["evaluate"]: prepare_uuid,
    }


def test_mlflow_status_history_is_every_status_with_its_time(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trackers.backends.mlflow import create_tracker

    for key, value in recorded.env.items():
        monkeypatch.setenv(key, value)
    store = create_tracker(recorded.mlflow.split("=", 1)[1])
    for run in recorded.handles.values():
        history = store.status_history(run)
        assert [status for _, status in history] == ["RUNNING", "SUCCEEDED"], history
        times = [when for when, _ in history]
        assert None not in times
        # the same operations' times as the live START and COMPLETE events, to the microsecond
        live = [
            _one(recorded.live, run, lambda e: e["eventType"] == "START"),
            _one(recorded.live, run, lambda e: e["eventType"] in TERMINAL),
        ]
        # Both come from the operation's nanosecond time: eventTime truncates it to the
        # microsecond; status_history() divides it by 1e9 in floats, two roundings of up to
        # 0.128 and 0.119 µs near 1.8e9 s. So the float, taken exactly, lies in
        # [eventTime, eventTime + 1 µs) give or take 0.25 µs.
        for when, event in zip(times, live, strict=True):
            offset = Fraction(float(when or 0)) * 1_000_000 - _micros(event)
            assert Fraction(-1, 4) <= offset < Fraction(5, 4), (when, event["eventTime"])


def test_mlflow_export_is_idempotent(recorded: Recorded) -> None:
    first = recorded.export(recorded.mlflow, "mlflow-1")
    assert canonical(recorded.export(recorded.mlflow, "mlflow-2")) == canonical(first)


def _drop_journal(recorded: Recorded) -> None:
    """Delete every ``torchx.write.*`` tag: the runs look as an older version recorded them."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(recorded.mlflow.split("=", 1)[1])
    experiment = client.get_experiment_by_name(recorded.env["MLFLOW_EXPERIMENT_NAME"])
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    dropped = 0
    for run in runs:
        for key in [k for k in run.data.tags if k.startswith("torchx.write.")]:
            client.delete_tag(run.info.run_id, key)
            dropped += 1
    assert dropped >= 3 * 4  # launch record, START, environment, end: at least, per run


def test_zz_without_the_journal_export_is_the_live_events_but_for_time(
    recorded: Recorded,
) -> None:
    """Last in the module: it deletes the journal the tests above read."""
    _drop_journal(recorded)
    exported = recorded.export(recorded.mlflow, "mlflow-no-journal")
    assert all(schema_errors(e) == [] for e in exported)
    assert Counter(map(_timeless, exported)) == Counter(map(_timeless, recorded.live))
    assert canonical(exported) != canonical(recorded.live)  # the times: no journal, no exact time
    for run in recorded.handles.values():

        def launch(e: dict[str, Any]) -> bool:
            return "torchx_launch" in e["run"]["facets"]

        def end(e: dict[str, Any]) -> bool:
            return e["eventType"] in TERMINAL

        live_launch, ours_launch = (_one(x, run, launch) for x in (recorded.live, exported))
        assert _micros(ours_launch) == _micros(live_launch) // 1_000_000 * 1_000_000
        live_end, ours_end = (_one(x, run, end) for x in (recorded.live, exported))
        # MLflow keeps the end in whole milliseconds: the operation's float time rounded
        # (trackers.backends.mlflow.encoding.millis), while eventTime truncates its nanoseconds
        # to the microsecond. At a tie (eventTime .380500) the float may round either way, so
        # the end is the nearest millisecond to the live time, half a millisecond either side.
        offset = _micros(ours_end) - _micros(live_end)
        assert _micros(ours_end) % 1000 == 0 and -500 <= offset <= 500, (ours_end, live_end)
        mine = sorted((e for e in exported if torchx_run_id(e) == run), key=_micros)
        assert mine[0] is ours_launch and mine[-1] is ours_end
    again = recorded.export(recorded.mlflow, "mlflow-no-journal-2")
    assert canonical(again) == canonical(exported)
