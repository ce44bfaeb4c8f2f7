"""The S3 backend against the conformance suite, on a real S3-protocol server (moto)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from trackers.backends.s3 import S3Tracker
from trackers.testing import TrackerContract

pytestmark = pytest.mark.s3


class TestS3(TrackerContract):
    @pytest.fixture
    def make_tracker(self, make_s3_tracker: Callable[..., Any]) -> Callable[[], S3Tracker]:
        return make_s3_tracker

    @pytest.fixture
    def tracker(self, make_tracker: Callable[[], S3Tracker]) -> S3Tracker:
        return make_tracker()
