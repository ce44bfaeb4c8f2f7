"""``torchx tracker reconcile`` writes through the spool: a store that takes no writes now gets
the scheduler's final state from ``torchx tracker sync`` later, exactly once, and a configured
write-only tracker (OpenLineage, file transport) gets the run's FAIL event at reconcile time.

The store is a real S3-protocol server (moto) behind the loopback fault proxy, which answers
every PUT with 503 (reads pass) until the test lets writes through.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from torchx.specs import AppState

from tests.launcher_plugin.test_reconcile import FakeRunner
from tests.s3.conftest import Store

pytest.importorskip("openlineage.client")

RUN = "slurm://torchx/4242"  # SIGKILLed: the job never recorded an end


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    from torchx.cli.main import create_parser

    from launcher_plugin.cli import cmd_tracker

    args = create_parser({"tracker": cmd_tracker.CmdTracker()}).parse_args(["tracker", *argv])
    code = 0
    try:
        args.func(args)
    except SystemExit as e:
        code = int(e.code or 0)
    return code, json.loads(capsys.readouterr().out)


def _fail_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in events if e["eventType"] == "FAIL"]


def test_reconcile_keeps_the_status_in_the_spool_until_sync_delivers_it_once(
    store: Store,
    make_s3_tracker: Callable[..., Any],
    proxy_factory: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from launcher_plugin.cli import cmd_tracker

    make_s3_tracker().set_status(RUN, "RUNNING")
    proxy = proxy_factory(rate=1.0, faults=("503-before",), max_consecutive=10**6, methods=("PUT",))
    events = tmp_path / "events.jsonl"
    monkeypatch.setenv("TORCHX_TRACKER_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("TORCHX_TRACKER_SHUTDOWN_TIMEOUT", "3")
    monkeypatch.setenv("TORCHX_TRACKERS", "openlineage")
    monkeypatch.setenv("TORCHX_TRACKER_OPENLINEAGE_CONFIG", f"file://{events}")
    monkeypatch.setattr(cmd_tracker, "get_runner", lambda: FakeRunner({RUN: AppState.FAILED}))
    through_proxy = store.config(proxy.endpoint, max_attempts=2)

    code, done = _cli(
        ["reconcile", RUN, "--tracker", f"s3={through_proxy}", "--format", "json"], capsys
    )
    assert code == 1  # not recorded yet: said in the exit status
    assert done == [
        {
            "run_id": RUN,
            "status": "RUNNING",
            "scheduler": "FAILED",
            "written": "FAILED",
            "delivered": False,
        }
    ]
    assert proxy.injected["503-before"] > 0
    assert make_s3_tracker().status(RUN) == "RUNNING"  # the store took nothing
    # the write-only tracker got the same reconciled status, at reconcile time
    [fail] = _fail_events(events)
    assert fail["run"]["facets"]["torchx_run"]["runId"] == RUN

    proxy.rate = 0.0  # the store takes writes again
    code, synced = _cli(["sync", RUN, "--format", "json"], capsys)
    assert code == 0, json.dumps(synced)
    assert {(r["tracker"], r["left"]) for r in synced} == {("s3", 0)}
    direct = make_s3_tracker()
    assert direct.status(RUN) == "FAILED"
    assert direct.metadata(RUN)["reconciled.from_scheduler"] == "FAILED"
    assert [s for _, s in direct.status_history(RUN)] == ["RUNNING", "FAILED"]
    assert len(_fail_events(events)) == 1  # nothing sent twice
    # the store's record and the event carry the same operation: the same time
    [write] = [w for w in direct.write_history(RUN) if w.args.get("status") == "FAILED"]
    from trackers.backends.openlineage import event_time

    assert fail["eventTime"] == event_time(write.op_id)
