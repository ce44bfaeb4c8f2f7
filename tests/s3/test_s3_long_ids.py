"""Run ids of any length in the S3 store (moto): names fit S3's 1024-byte keys, ids come back
whole, and a store written here still reads through the fsspec backend (same layout)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.s3.conftest import Store
from tests.trackers.long_ids import assert_names_fit, exercise, long_id
from trackers.ids import encode_run_id, path_id

pytestmark = pytest.mark.s3


@pytest.mark.parametrize("length", [300, 2000])
def test_a_long_run_id_is_recorded_in_s3(
    store: Store, make_s3_tracker: Callable[..., Any], length: int
) -> None:
    run_id = long_id(length, "s3")
    exercise(make_s3_tracker(), run_id)
    keys = store.keys()
    assert_names_fit([f"{store.prefix}/{k}" for k in keys], max_key_bytes=1024)
    assert f"{encode_run_id(run_id)}/.run_id" in keys
    fresh = make_s3_tracker(cache=False)
    assert run_id in fresh.run_ids()
    assert fresh.metadata(run_id)["lr"] == 0.1
    assert path_id(run_id) != run_id
