"""Fixtures for the fault tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.blackhole import blackhole


@pytest.fixture
def blackhole_port() -> Iterator[int]:
    """A port on 127.0.0.1 where a server (its own process) accepts and never answers."""
    with blackhole() as port:
        yield port
