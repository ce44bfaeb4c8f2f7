"""The MLflow backend against the whole conformance suite, on a real tracking server."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from trackers.backends.mlflow import MLflowTracker, create_tracker
from trackers.testing import TrackerContract

pytestmark = pytest.mark.mlflow


class TestMLflowServer(TrackerContract):
    """Every contract test, each in its own experiment of the session's server."""

    @pytest.fixture
    def make_tracker(self, config: str) -> Callable[[], MLflowTracker]:
        return lambda: create_tracker(config)

    @pytest.fixture
    def tracker(self, make_tracker: Callable[[], MLflowTracker]) -> MLflowTracker:
        return make_tracker()
