"""The S3 backend's own behaviour: config forms, errors, layout, listing, fetching, caching and
the conditional writes of TorchX's ``sources/`` file - against the real moto server."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
import time
from base64 import b32encode
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.s3.conftest import Store
from tests.s3.support import Requests
from tests.trackers.test_snapshots import stored_snapshot
from trackers.backends.s3 import CACHE_MIN_RECORDS, S3Config, S3Tracker, create_tracker
from trackers.backends.snapshots import SNAPSHOT_VERSION
from trackers.errors import TrackerConfigError, TrackerError
from trackers.registry import create_tracker as create_named_tracker
from trackers.testing import CHILD, PARENT, RUN

pytestmark = pytest.mark.s3

RECORD = re.compile(r"\d{20}-[0-9a-f]{32}")


def b32(run_id: str) -> str:
    return b32encode(run_id.encode()).decode()


@pytest.fixture
def tracker(make_s3_tracker: Callable[..., S3Tracker]) -> S3Tracker:
    return make_s3_tracker()


# --- config forms ---


def test_config_plain_url() -> None:
    config = S3Config.parse("s3://my-bucket/some/prefix/")
    assert (config.bucket, config.prefix, config.endpoint_url) == ("my-bucket", "some/prefix", None)
    assert config.url == "s3://my-bucket/some/prefix"
    assert S3Config.parse("s3://my-bucket").prefix == ""


def test_config_query_form_and_mapping_form_are_the_same() -> None:
    query = S3Config.parse(
        "s3://b-1/p?endpoint_url=http://127.0.0.1:9000&region=eu-west-1&strict=true"
        "&max_attempts=3&read_timeout=2.5&cache=false"
    )
    mapping = S3Config.parse(
        "{url: s3://b-1/p, endpoint_url: 'http://127.0.0.1:9000', region: eu-west-1, "
        "strict: true, max_attempts: 3, read_timeout: 2.5, cache: false}"
    )
    json_form = S3Config.parse(
        json.dumps(
            {
                "url": "s3://b-1/p",
                "endpoint_url": "http://127.0.0.1:9000/",
                "region": "eu-west-1",
                "strict": "yes",
                "max_attempts": "3",
                "read_timeout": 2.5,
                "cache": False,
            }
        )
    )
    assert query == mapping == json_form
    assert (query.endpoint_url, query.strict, query.max_attempts) == (
        "http://127.0.0.1:9000",
        True,
        3,
    )


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (None, "needs a store: s3://BUCKET/PREFIX"),
        ("", "needs a store"),
        ("/data/runs", "not an s3:// URL"),
        ("gs://b/p", "not an s3:// URL"),
        ("s3://", "not a bucket name"),
        ("s3://bad bucket/p", "not a bucket name"),
        ("s3://b/a//b", "empty, '.' or '..' segment"),
        ("s3://b/a/../b", "empty, '.' or '..' segment"),
        ("s3://b/p#frag", "fragment"),
        ("s3://b/p?nosuch=1", r"unknown option\(s\) \['nosuch'\]"),
        ("s3://b/p?region=a&region=b", "given twice"),
        ("s3://b/p?endpoint_url=localhost:9000", "expected http\\(s\\)://HOST"),
        ("s3://b/p?endpoint_url=http://h:port", "port is not valid"),
        ("s3://b/p?retry_mode=legacy", "standard or adaptive"),
        ("s3://b/p?max_attempts=0", r"\[1, 20\]"),
        ("s3://b/p?max_attempts=2.5", "whole number"),
        ("s3://b/p?read_timeout=nan", "expected a number"),
        ("s3://b/p?strict=maybe", "expected true or false"),
        ("{url: [unclosed", "not a valid YAML/JSON mapping"),
        ("{url: 5}", "needs a string 'url'"),
        ("{url: 's3://b/p?region=x'}", "options as keys"),
    ],
)
def test_malformed_configs_say_what_was_expected(config: str | None, expected: str) -> None:
    with pytest.raises(TrackerConfigError, match=expected):
        S3Config.parse(config)


@pytest.mark.parametrize(
    "config",
    [
        "s3://AKIAEXAMPLE:hunter2secret@bucket/p",
        "{url: s3://bucket/p, aws_secret_access_key: hunter2secret}",
        "{url: s3://bucket/p, aws_access_key_id: AKIAEXAMPLE, secret: hunter2secret}",
        "s3://bucket/p?session_token=hunter2secret",
        "s3://bucket/p?endpoint_url=http://AKIAEXAMPLE:hunter2secret@127.0.0.1:9000",
    ],
)
def test_credentials_in_the_config_are_refused_and_not_echoed(config: str) -> None:
    with pytest.raises(TrackerConfigError, match="credentials do not belong") as info:
        create_named_tracker("s3", config, origin="TORCHX_TRACKER_S3_CONFIG")
    assert "hunter2secret" not in str(info.value)
    assert str(info.value).startswith("TORCHX_TRACKER_S3_CONFIG=")


def test_importing_the_backend_does_not_import_boto3() -> None:
    code = (
        "import sys, trackers, trackers.backends.s3 as s3\n"
        "s3.S3Config.parse('s3://b/p')\n"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_s3_resolves_through_the_registry_and_the_entry_point(store: Store) -> None:
    import importlib_metadata

    (ep,) = [
        ep for ep in importlib_metadata.entry_points(group="torchx.tracker") if ep.name == "s3"
    ]
    assert ep.value == "trackers.backends.s3:create_tracker"
    t = create_named_tracker("s3", store.config(), origin="--tracker s3")
    assert isinstance(t, S3Tracker)
    assert repr(t) == f"S3Tracker({store.url}, endpoint={store.endpoint})"


def test_query_form_reaches_the_server(store: Store) -> None:
    t = create_tracker(f"{store.url}?endpoint_url={store.endpoint}&max_attempts=3")
    t.add_metadata(RUN, a=1)
    assert create_tracker(store.config()).metadata(RUN) == {"a": 1}


def test_botocore_gets_bounded_retries_and_timeouts(make_s3_tracker: Callable[..., Any]) -> None:
    t = make_s3_tracker(retry_mode="adaptive", max_attempts=7, connect_timeout=1.5)
    config = t._client.meta.config
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 7}
    assert (config.connect_timeout, config.read_timeout) == (1.5, 10.0)
    assert config.max_pool_connections >= t.config.max_workers


# --- errors that name what is wrong ---


def test_missing_bucket_is_a_config_error_naming_it(store: Store) -> None:
    config = json.dumps({"url": "s3://no-such-bucket-here/p", "endpoint_url": store.endpoint})
    t = create_tracker(config)  # no request yet
    with pytest.raises(TrackerConfigError, match="bucket 'no-such-bucket-here' does not exist"):
        t.add_metadata(RUN, a=1)
    with pytest.raises(TrackerConfigError, match="no-such-bucket-here.*does not exist"):
        t.run_ids()


def test_strict_checks_the_bucket_when_the_tracker_is_built(store: Store) -> None:
    config = json.dumps(
        {"url": "s3://no-such-bucket-here/p", "endpoint_url": store.endpoint, "strict": True}
    )
    with pytest.raises(TrackerConfigError, match="HeadBucket s3://no-such-bucket-here"):
        create_tracker(config)
    t = create_tracker(store.config(strict=True))
    assert t.strict


def test_no_credentials_is_a_config_error(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    start = time.monotonic()
    with pytest.raises(TrackerConfigError, match="no usable AWS credentials.*AWS_ACCESS_KEY_ID"):
        create_tracker(store.config()).add_metadata(RUN, a=1)
    assert time.monotonic() - start < 10


def test_unknown_profile_is_a_config_error(store: Store) -> None:
    with pytest.raises(TrackerConfigError, match="AWS profile 'nosuch' not found"):
        create_tracker(store.config(profile="nosuch"))


def test_profile_option_uses_that_profile(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config").write_text("[profile research]\nregion = eu-west-1\n")
    (tmp_path / "credentials").write_text(
        "[research]\naws_access_key_id = research-key\naws_secret_access_key = research-secret\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("AWS_DEFAULT_REGION")  # the env would beat the profile's region
    t = create_tracker(store.config(profile="research"))
    assert t._client.meta.region_name == "eu-west-1"
    t.add_metadata(RUN, a=1)
    assert t.metadata(RUN) == {"a": 1}


def test_credentials_never_reach_logs_or_errors(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "wJalrXUtnFEMI-never-log-this"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    caplog.set_level(logging.DEBUG, logger="trackers")
    t = create_tracker(store.config())
    t.add_metadata(RUN, a=1)
    t.metadata(RUN)
    bad = create_tracker(
        json.dumps({"url": "s3://no-such-bucket-here/p", "endpoint_url": store.endpoint})
    )
    with pytest.raises(TrackerError) as info:
        bad.add_metadata(RUN, a=1)
    assert secret not in str(info.value) and secret not in repr(t)
    assert secret not in caplog.text


# --- layout ---


def test_layout_is_the_fsspec_backends(tracker: S3Tracker, store: Store) -> None:
    tracker.add_metadata(PARENT, step="prepare")
    tracker.add_metadata(RUN, lr=0.1)
    tracker.add_artifact(RUN, "model", "/ckpt/m.pt")
    tracker.add_source(RUN, PARENT, "dataset")
    shapes = set()
    for key in store.keys():
        parts = key.split("/")
        parts = ["<record>" if RECORD.fullmatch(p) else p for p in parts]
        parts = [".catalog-<record>" if p.startswith(".catalog-") else p for p in parts]
        shapes.add("/".join(parts))
    assert shapes == {
        f"{b32(PARENT)}/metadata/<record>",
        f"{b32(PARENT)}/links/<record>",  # the descendant link
        f"{b32(PARENT)}/descendants/",  # directory marker, so TorchX writes its reverse link
        f"{b32(RUN)}/metadata/<record>",
        f"{b32(RUN)}/artifacts/<record>",
        f"{b32(RUN)}/links/<record>",
        f"{b32(RUN)}/sources/{b32(PARENT)}",  # TorchX's format: artifact names, one a line
        f"{b32(RUN)}/descendants/",
        ".catalog-<record>",  # catalog segments: files at the root (see trackers/backends/catalog)
    }
    assert store.read(f"{b32(RUN)}/sources/{b32(PARENT)}") == b"dataset\n"
    (record,) = store.keys(f"{b32(RUN)}/metadata/")
    content = json.loads(store.read(record))
    assert content["metadata"] == {"lr": 0.1} and "origin" in content


def test_store_at_the_top_of_a_bucket(store: Store) -> None:
    store.admin.create_bucket(Bucket="lineage-top")
    t = create_tracker(json.dumps({"url": "s3://lineage-top", "endpoint_url": store.endpoint}))
    t.add_metadata(RUN, a=1)
    t.add_source(CHILD, RUN, "x")
    assert t.run_ids() == sorted([RUN, CHILD])
    assert t.metadata(RUN) == {"a": 1}
    assert [d.run_id for d in t.descendants(RUN)] == [CHILD]


# --- reads that scale ---


def test_run_ids_over_10000_runs_lists_common_prefixes_not_runs(
    make_s3_tracker: Callable[..., S3Tracker], store: Store
) -> None:
    ids = [f"slurm://torchx/{i}" for i in range(10_000)]
    body = b'{"metadata": {"x": 1}}'
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda r: store.admin.put_object(
                    Bucket=store.bucket,
                    Key=f"{store.prefix}/{b32(r)}/metadata/{'0' * 20}-{'a' * 32}",
                    Body=body,
                ),
                ids,
            )
        )
    t = make_s3_tracker()
    requests = Requests(t)
    assert t.run_ids() == sorted(ids)
    assert requests.ops == ["ListObjectsV2"] * 10  # 1000 common prefixes a page


def test_records_are_fetched_concurrently_and_bounded(
    make_s3_tracker: Callable[..., S3Tracker], monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = make_s3_tracker()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: writer.add_metadata(RUN, **{f"k{i}": i}), range(60)))
    t = make_s3_tracker(max_workers=4, cache=False)
    in_flight, peak, threads = 0, 0, set()
    lock = threading.Lock()
    original = t._get

    def counting_get(key: str) -> bytes | None:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
            threads.add(threading.current_thread().name)
        try:
            time.sleep(0.01)
            return original(key)
        finally:
            with lock:
                in_flight -= 1

    monkeypatch.setattr(t, "_get", counting_get)
    assert len(t.metadata(RUN)) == 60
    assert 1 < peak <= 4
    assert all(name.startswith("s3-tracker") for name in threads)


# --- the read cache ---


def write_records(t: S3Tracker, n: int, run_id: str = RUN) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: t.add_metadata(run_id, **{f"k{i}": i}), range(n)))


def test_read_cache_turns_many_gets_into_one(tracker: S3Tracker, store: Store) -> None:
    n = CACHE_MIN_RECORDS + 8
    write_records(tracker, n)
    requests = Requests(tracker)
    assert len(tracker.metadata(RUN)) == n
    assert requests.count("GetObject") == n + 1  # the absent snapshot, then each record
    assert f"{b32(RUN)}/.snapshot/metadata" in store.keys()
    requests.clear()
    assert len(tracker.metadata(RUN)) == n
    assert sorted(requests.ops) == ["GetObject", "ListObjectsV2"]  # sent side by side
    tracker.add_metadata(RUN, k0="new", extra=1)  # a record written after the cache
    requests.clear()
    md = tracker.metadata(RUN)
    assert (md["k0"], md["extra"], len(md)) == ("new", 1, n + 1)
    assert requests.count("GetObject") == 2  # the snapshot and the one new record


def test_read_cache_only_serves_listed_records(tracker: S3Tracker, store: Store) -> None:
    n = CACHE_MIN_RECORDS + 2
    write_records(tracker, n)
    cache_key = f"{store.prefix}/{b32(RUN)}/.snapshot/metadata"
    fake = {"99999999999999999999-" + "f" * 32: {"metadata": {"ghost": 1}}}
    store.admin.put_object(
        Bucket=store.bucket, Key=cache_key, Body=json.dumps({"version": 1, "records": fake})
    )
    assert "ghost" not in tracker.metadata(RUN)  # not a listed record: ignored
    store.admin.put_object(Bucket=store.bucket, Key=cache_key, Body=b"{not json")
    assert len(tracker.metadata(RUN)) == n  # unreadable cache: ignored and rewritten
    header, _ = stored_snapshot(store.read(f"{b32(RUN)}/.snapshot/metadata"))
    assert header["version"] == SNAPSHOT_VERSION


def test_read_cache_can_be_turned_off(make_s3_tracker: Callable[..., Any], store: Store) -> None:
    t = make_s3_tracker(cache=False)
    write_records(t, CACHE_MIN_RECORDS + 1)
    assert len(t.metadata(RUN)) == CACHE_MIN_RECORDS + 1
    assert not [k for k in store.keys() if ".cache" in k or ".snapshot" in k]


def test_snapshot_that_cannot_be_written_is_not_an_error(
    tracker: S3Tracker, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trackers.backends.record_store")
    write_records(tracker, CACHE_MIN_RECORDS)
    original = tracker._put_if

    def read_only(run_id: str, key: str, data: bytes, version: str | None, **kw: Any) -> bool:
        if "/.snapshot/" in key:
            raise TrackerError(f"PutObject s3://bucket/{key}: access denied (AccessDenied)")
        return original(run_id, key, data, version, **kw)

    monkeypatch.setattr(tracker, "_put_if", read_only)
    assert len(tracker.metadata(RUN)) == CACHE_MIN_RECORDS
    assert len(tracker.metadata(RUN)) == CACHE_MIN_RECORDS
    assert "could not write the snapshot" in caplog.text


# --- TorchX's sources/ file: conditional writes ---


def sources_file(store: Store, run_id: str, source_id: str) -> list[str]:
    return store.read(f"{b32(run_id)}/sources/{b32(source_id)}").decode().splitlines()


@pytest.fixture
def competing_write(
    tracker: S3Tracker, store: Store, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[bytes], None]]:
    """Arrange for another writer to change the sources file between our read and our write."""
    key = f"{b32(RUN)}/sources/{b32(PARENT)}"
    pending: list[bytes] = []
    original = tracker._get_object

    def get_then_compete(k: str) -> tuple[bytes, str] | None:
        found = original(k)
        if k.endswith(key) and pending:
            store.admin.put_object(Bucket=store.bucket, Key=k, Body=pending.pop())
        return found

    monkeypatch.setattr(tracker, "_get_object", get_then_compete)
    yield pending.append


def test_sources_file_create_race_loses_no_name(
    tracker: S3Tracker, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = f"{b32(RUN)}/sources/{b32(PARENT)}"
    original = tracker._conditional_put
    puts: list[dict[str, str]] = []

    def compete_then_put(k: str, data: bytes, condition: Any) -> bool | None:
        if k.endswith(key) and not puts:  # someone else creates it just before we do
            store.admin.put_object(Bucket=store.bucket, Key=k, Body=b"checkpoint\n")
        puts.append(dict(condition))
        return original(k, data, condition)

    monkeypatch.setattr(tracker, "_conditional_put", compete_then_put)
    tracker.add_source(RUN, PARENT, "dataset")
    assert sources_file(store, RUN, PARENT) == ["checkpoint", "dataset"]
    assert [list(c) for c in puts] == [["IfNoneMatch"], ["IfMatch"]]  # refused, then merged


def test_a_new_sources_file_is_one_conditional_put_without_a_read(
    tracker: S3Tracker, store: Store
) -> None:
    tracker.add_metadata(RUN, x=1)
    requests = Requests(tracker)
    tracker.add_source(RUN, "s3://data/shard-0", "data")  # not a run of this store
    # is the source a run here; the link record; its catalog segment; TorchX's sources/ file,
    # created with If-None-Match instead of a GET that finds nothing and then the PUT
    assert sorted(requests.ops) == ["ListObjectsV2", "PutObject", "PutObject", "PutObject"]
    assert sources_file(store, RUN, "s3://data/shard-0") == ["data"]


def test_sources_file_update_race_loses_no_name(
    tracker: S3Tracker, store: Store, competing_write: Callable[[bytes], None]
) -> None:
    tracker.add_source(RUN, PARENT, "dataset")
    competing_write(b"dataset\ncheckpoint\n")  # someone else's update after our read
    tracker.add_source(RUN, PARENT, "model")
    assert sources_file(store, RUN, PARENT) == ["dataset", "checkpoint", "model"]


def test_concurrent_add_source_keeps_every_name(
    make_s3_tracker: Callable[..., S3Tracker], store: Store
) -> None:
    names = [f"artifact-{i}" for i in range(12)]
    with ThreadPoolExecutor(12) as pool:
        list(pool.map(lambda n: make_s3_tracker().add_source(RUN, PARENT, n), names))
    assert sorted(sources_file(store, RUN, PARENT)) == sorted(names)
    assert sorted(s.artifact_name or "" for s in make_s3_tracker().sources(RUN)) == sorted(names)


def test_store_without_conditional_writes_falls_back_with_a_warning(
    make_s3_tracker: Callable[..., S3Tracker],
    store: Store,
    proxy_factory: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = proxy_factory(rate=0.0, reject_conditional_writes=True)
    t = make_s3_tracker(endpoint=proxy.endpoint)
    t.add_source(RUN, PARENT, "dataset")
    t.add_source(RUN, PARENT, "model")
    assert sources_file(store, RUN, PARENT) == ["dataset", "model"]
    assert caplog.text.count("does not support conditional writes") == 1


# --- packs: what a writer stores a second time, together ---


def test_a_fresh_reader_gets_packed_records_in_few_requests(
    make_s3_tracker: Callable[..., Any], store: Store
) -> None:
    from trackers.backends.s3 import PACK_RECORDS

    writer = make_s3_tracker()
    n = PACK_RECORDS * 3 + 5
    for i in range(n):
        writer.add_metadata(RUN, **{f"k{i}": i})
    assert len([k for k in store.keys() if "/.packs/metadata/" in k]) == 3
    reader = make_s3_tracker()  # another process: nothing in memory
    requests = Requests(reader)
    md = reader.metadata(RUN)
    assert md == {f"k{i}": i for i in range(n)}
    # the absent snapshot, three packs, and the five records not packed yet
    assert requests.count("GetObject") == 1 + 3 + 5


def test_packs_only_serve_listed_records(make_s3_tracker: Callable[..., Any], store: Store) -> None:
    from trackers.backends.s3 import PACK_RECORDS

    writer = make_s3_tracker()
    for i in range(PACK_RECORDS):
        writer.add_metadata(RUN, **{f"k{i}": i})
    ghost = {"99999999999999999999-" + "e" * 32: '{"metadata": {"ghost": 1}}'}
    key = f"{store.prefix}/{b32(RUN)}/.packs/metadata/00000000000000000001-" + "a" * 32
    store.admin.put_object(
        Bucket=store.bucket, Key=key, Body=json.dumps({"version": 1, "records": ghost})
    )
    store.admin.put_object(Bucket=store.bucket, Key=key + "x", Body=b"{broken")
    md = make_s3_tracker().metadata(RUN)
    assert "ghost" not in md and len(md) == PACK_RECORDS
