"""Runs a job cannot close: a SIGKILLed job gets its FAIL event from ``torchx run``'s reconcile
(the status the store beside it recorded, with the store record's time); a SIGTERMed job sends
ABORT itself and reconcile adds nothing."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from tests.cli_support import torchx
from tests.openlineage.support import canonical, read_lines, torchx_run_id

pytestmark = pytest.mark.e2e

START = "import os, signal, time; from trackers import AppRun; AppRun.run_from_env(); "


def _run(tmp_path: Path, code: str, *, compare_export: bool) -> list[dict[str, object]]:
    store = f"lineage_fsspec={tmp_path / 'store'}"
    events = tmp_path / "events.jsonl"
    done = torchx(
        tmp_path,
        *(
            "run",
            "-s",
            "local_cwd",
            "--tracker",
            store,
            "--tracker",
            f"openlineage=file://{events}",
        ),
        *("utils.python", "-c", START + code),
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    [handle] = re.findall(r"^local_cwd://\S+$", done.stdout, re.MULTILINE)
    live = read_lines(events)
    assert {torchx_run_id(e) for e in live} == {handle}  # type: ignore[arg-type]
    if not compare_export:
        return live
    exported = tmp_path / "exported.jsonl"
    again = torchx(
        tmp_path,
        "tracker",
        "export",
        "openlineage",
        handle,
        "--tracker",
        store,
        "--to",
        f"file://{exported}",
    )
    assert again.returncode == 0, again.stderr
    assert canonical(read_lines(exported)) == canonical(live)  # type: ignore[arg-type]
    return live


def test_sigkilled_job_gets_fail_from_reconcile(tmp_path: Path) -> None:
    # Not compared with an export: a SIGKILL may stop a write after one backend took it and
    # before the other did (the store's copy then waits in the spool).
    live = _run(
        tmp_path, "os.kill(os.getpid(), signal.SIGKILL); time.sleep(60)", compare_export=False
    )
    kinds = Counter(e["eventType"] for e in live)
    assert kinds["START"] == 1 and kinds["FAIL"] == 1 and kinds["COMPLETE"] == kinds["ABORT"] == 0
    # the reconciled FAIL is the store's reconciled status record, time included
    out = tmp_path / "exported.jsonl"
    done = torchx(
        tmp_path,
        "tracker",
        "export",
        "openlineage",
        "--all",
        "--tracker",
        f"lineage_fsspec={tmp_path / 'store'}",
        "--to",
        f"file://{out}",
    )
    assert done.returncode == 0, done.stderr
    fail = [e for e in live if e["eventType"] == "FAIL"]
    assert canonical(fail) == canonical([e for e in read_lines(out) if e["eventType"] == "FAIL"])


def test_sigterm_sends_abort_and_reconcile_adds_nothing(tmp_path: Path) -> None:
    live = _run(
        tmp_path, "os.kill(os.getpid(), signal.SIGTERM); time.sleep(60)", compare_export=True
    )
    kinds = Counter(e["eventType"] for e in live)
    assert kinds["START"] == 1 and kinds["ABORT"] == 1 and kinds["FAIL"] == kinds["COMPLETE"] == 0
