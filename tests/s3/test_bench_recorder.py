"""``benchmarks/bench_reads_s3.py`` writes its 10,000-run graph through a recorder: our S3
backend's own write code with the storage calls answered from memory. When the backend starts
using a storage call the recorder does not answer, the benchmark breaks (it did once: the
one-step create of TorchX's link files). This keeps the recorder in step with the backend, in
the test run rather than at the next benchmark."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.s3.conftest import Store

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def bench() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("bench_reads_s3")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_the_benchmark_recorder_stores_what_our_s3_backend_writes(
    bench: ModuleType, store: Store, make_s3_tracker: Callable[..., Any]
) -> None:
    recorder = bench._Recorder(store.bucket, store.prefix)
    for tracker in (make_s3_tracker(), recorder):
        bench.write_layout_sample(tracker, bench.graph_sources(12))
    stored = {f"{store.prefix}/{key}": store.read(key) for key in store.keys() if key}

    assert bench._normalized(stored) == bench._normalized(recorder.objects)
    # TorchX's own link files are among them (the write that once broke the recorder).
    assert any("/sources/" in key for key in recorder.objects)
