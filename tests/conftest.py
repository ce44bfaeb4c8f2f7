"""Fixtures shared by every test: a clean tracking env and a clean in-memory filesystem.

On CI (``CI=true``) a skipped test is a failure, so a real component that did not start (MLflow,
the S3 server, s3fs's venv, Slurm) cannot pass unseen. Two skips are accepted, by reason: a test
that does not apply to the installed TorchX, and the Kubernetes cluster test (no cluster here).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fsspec.implementations.memory import MemoryFileSystem

pytest.register_assert_rewrite("trackers.testing")

from trackers import reset_current_run  # noqa: E402 (after the assert-rewrite registration)

#: The start of a skip reason for a test that does not apply to the installed TorchX.
NOT_THIS_TORCHX = "not on this TorchX:"
_ACCEPTED_ON_CI = (NOT_THIS_TORCHX, "no Kubernetes cluster")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if os.environ.get("CI") != "true" or not report.skipped or hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
    reason = reason.removeprefix("Skipped: ")
    if not any(accepted in reason for accepted in _ACCEPTED_ON_CI):
        report.outcome = "failed"
        report.longrepr = f"CI=true: this test must run here, but it was skipped: {reason}"


@pytest.fixture(autouse=True)
def clean_tracking_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """No TORCHX_* variable from the developer's shell leaks into a test; no cached run either;
    each test spools into a directory of its own (never the developer's ~/.cache)."""
    for key in list(os.environ):
        if key.startswith("TORCHX_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("TORCHX_TRACKER_SPOOL_DIR", str(tmp_path_factory.mktemp("spool")))
    reset_current_run()
    yield
    reset_current_run()


@pytest.fixture(autouse=True)
def clean_memory_fs() -> Iterator[None]:
    """fsspec's memory filesystem is process-global: empty it around every test."""
    MemoryFileSystem.store.clear()
    MemoryFileSystem.pseudo_dirs[:] = [""]
    yield
    MemoryFileSystem.store.clear()
    MemoryFileSystem.pseudo_dirs[:] = [""]


@pytest.fixture
def body_parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """One entry per snapshot body any reader parses from now on (a read answered by a links
    snapshot's view parses none: trackers.backends.snapshots)."""
    parsed: list[int] = []
    from trackers.backends import snapshots

    original = snapshots._parse_body

    def parse(body: dict[str, object]) -> object:
        parsed.append(1)
        return original(body)

    monkeypatch.setattr(snapshots, "_parse_body", parse)
    yield parsed
