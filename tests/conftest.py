"""Fixtures shared by every test: a clean tracking env and a clean in-memory filesystem."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fsspec.implementations.memory import MemoryFileSystem

from trackers import reset_current_run


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
