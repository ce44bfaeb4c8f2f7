"""Faults at the HTTP layer: 500/503/SlowDown and dropped connections, before and after moto
applied the request. Every acknowledged record must be there afterwards, and none twice.

The faults come from :class:`tests.s3.faultproxy.FaultProxy`, a loopback proxy between boto3
and moto that fails a seeded, deterministic ~25 % of requests (at most two attempts of one
request in a row, so botocore's five attempts always get through).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from base64 import b32encode
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.s3.conftest import Store
from tests.s3.faultproxy import AFTER, ALL_FAULTS, FaultProxy
from tests.s3.support import free_port
from trackers.backends.s3 import S3Tracker, create_tracker
from trackers.errors import TrackerError
from trackers.testing import PARENT, RUN
from trackers.types import MetricPoint

pytestmark = pytest.mark.s3

WRITERS = 8
PER_WRITER = 30


@pytest.fixture
def proxy(proxy_factory: Callable[..., FaultProxy]) -> FaultProxy:
    return proxy_factory(rate=0.25, seed=20240611, faults=ALL_FAULTS, max_consecutive=2)


def _b32(run_id: str) -> str:
    return b32encode(run_id.encode()).decode()


def faulty_tracker(store: Store, proxy: FaultProxy, **options: object) -> S3Tracker:
    return create_tracker(store.config(proxy.endpoint, **options))


def test_acknowledged_writes_survive_faults_once_each(store: Store, proxy: FaultProxy) -> None:
    acknowledged: list[str] = []
    failed: list[BaseException] = []
    lock = threading.Lock()

    def writer(w: int) -> None:
        t = faulty_tracker(store, proxy)
        for i in range(PER_WRITER):
            key = f"w{w}_{i}"
            try:
                t.add_metadata(RUN, **{key: i})
            except TrackerError as e:  # allowed, but then not acknowledged
                failed.append(e)
                continue
            with lock:
                acknowledged.append(key)

    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(writer, range(WRITERS)))

    # The faults really happened, including writes applied by moto whose answer was lost.
    assert set(proxy.injected) == set(ALL_FAULTS) - {"truncate-after"}, proxy.injected  # PUTs
    assert sum(proxy.injected_by_method[("PUT", f)] for f in AFTER) >= 5, proxy.injected_by_method
    assert not failed, failed[:3]  # botocore's retries got every write through

    clean = create_tracker(store.config(cache=False))
    metadata = clean.metadata(RUN)
    assert set(acknowledged) <= set(metadata)
    # none twice: each key is in exactly one record object
    records = [k for k in store.keys() if "/metadata/" in k and "/.packs/" not in k]
    keys = Counter(k for r in records for k in json.loads(store.read(r))["metadata"])
    assert max(keys.values()) == 1
    assert len(records) == len(acknowledged) == WRITERS * PER_WRITER


def test_reads_through_faults_return_everything_once(store: Store, proxy: FaultProxy) -> None:
    writer = create_tracker(store.config())
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: writer.add_metadata(RUN, **{f"k{i}": i}), range(120)))
    writer.add_metrics(RUN, [MetricPoint("loss", 1.0 / (i + 1), i, float(i)) for i in range(50)])
    t = faulty_tracker(store, proxy, cache=False)
    for _ in range(3):
        assert t.metadata(RUN) == {f"k{i}": i for i in range(120)}
        assert [p.step for p in t.metrics(RUN, "loss")] == list(range(50))
        assert t.run_ids() == [RUN]
    assert proxy.injected_by_method[("GET", "truncate-after")] > 0  # bodies cut off midway
    assert proxy.injected_by_method[("GET", "drop-before")] > 0


def test_links_and_sources_file_through_faults(store: Store, proxy: FaultProxy) -> None:
    t = faulty_tracker(store, proxy)
    t.add_metadata(PARENT, step="prepare")
    names = [f"artifact-{i}" for i in range(12)]
    for name in names:
        t.add_source(RUN, PARENT, name)
        t.add_source(RUN, PARENT, name)  # twice: still one name, one link
    lines = store.read(f"{_b32(RUN)}/sources/{_b32(PARENT)}").decode().splitlines()
    assert lines == names  # conditional writes replayed after a lost answer add nothing twice
    clean = create_tracker(store.config())
    assert [s.artifact_name for s in clean.sources(RUN)] == names
    assert [d.artifact_name for d in clean.descendants(PARENT)] == names
    assert (
        proxy.injected_by_method[("PUT", "drop-after")]
        + proxy.injected_by_method[("PUT", "500-after")]
        > 0
    )


def test_failures_beyond_the_retries_name_bucket_key_and_cause(
    store: Store, proxy_factory: Callable[..., FaultProxy]
) -> None:
    always = proxy_factory(rate=1.0, faults=("slowdown-before",), max_consecutive=100)
    t = faulty_tracker(store, always, max_attempts=2)
    with pytest.raises(TrackerError) as info:
        t.add_metadata(RUN, a=1)
    message = str(info.value)
    assert f"PutObject s3://{store.bucket}/{store.prefix}/" in message
    assert f"{store.prefix}/{_b32(RUN)}/" in message and always.endpoint in message
    assert "after 2 attempt(s)" in message and "SlowDown" in message


# --- endpoints that cannot be reached ---


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def test_refused_endpoint_fails_fast_with_defaults(store: Store) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(TrackerError, match="the S3 endpoint cannot be reached") as info:
        create_tracker(store.config(endpoint)).add_metadata(RUN, a=1)
    assert time.monotonic() - start < 10  # 5 attempts, backoff under a second in all
    assert endpoint in str(info.value) and f"s3://{store.bucket}/{store.prefix}/" in str(info.value)


def test_silent_endpoint_fails_within_the_timeouts(store: Store, silent_endpoint: str) -> None:
    t = create_tracker(store.config(silent_endpoint, read_timeout=1, max_attempts=2))
    start = time.monotonic()
    with pytest.raises(TrackerError, match="cannot be reached.*read_timeout=1s") as info:
        t.metadata(RUN)
    assert time.monotonic() - start < 10  # 2 attempts x 1 s, plus a short backoff
    assert "ListObjectsV2" in str(info.value) and silent_endpoint in str(info.value)
