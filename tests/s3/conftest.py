"""Fixtures for the S3 tests: a real S3-protocol server (moto) on 127.0.0.1 and a store in it.

The server is one process for the whole session, started in its own process group and stopped
by group at the end. Every test gets its own prefix in one bucket, and fake credentials in the
env (moto checks none); nothing from the developer's AWS setup is read.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.s3.support import (
    FAKE_AWS_ENV,
    FOREIGN_AWS_ENV,
    MotoServer,
    admin_client,
    s3fs_python,
    start_moto_server,
)

BUCKET = "lineage-tests"


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """``moto_server`` on a free loopback port, for the whole session."""
    server = start_moto_server(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_admin(moto_server: MotoServer) -> Any:
    """A boto3 client on the server, with the test bucket created."""
    client: Any = admin_client(moto_server.endpoint)
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials; no AWS profile, endpoint or config file of the developer's."""
    import os

    for key in FOREIGN_AWS_ENV:
        monkeypatch.delenv(key, raising=False)
    for key, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@dataclass(frozen=True)
class Store:
    """A fresh prefix in the test bucket on the moto server."""

    endpoint: str
    bucket: str
    prefix: str
    admin: Any

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def config(self, endpoint: str | None = None, **options: object) -> str:
        """The tracker config (a JSON mapping) for this store, through ``endpoint``."""
        return json.dumps({"url": self.url, "endpoint_url": endpoint or self.endpoint, **options})

    def keys(self, under: str = "") -> list[str]:
        """Every key under the store's prefix (or ``prefix/under``), relative to the prefix."""
        start = f"{self.prefix}/"
        found = []
        paginator = self.admin.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=start + under):
            found += [obj["Key"][len(start) :] for obj in page.get("Contents", ())]
        return found

    def read(self, key: str) -> bytes:
        body: bytes = self.admin.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")[
            "Body"
        ].read()
        return body


@pytest.fixture
def store(moto_server: MotoServer, s3_admin: Any) -> Store:
    return Store(moto_server.endpoint, BUCKET, f"t-{uuid.uuid4().hex[:12]}", s3_admin)


@pytest.fixture
def make_s3_tracker(store: Store) -> Callable[..., Any]:
    """``make_s3_tracker(**options)``: a new :class:`S3Tracker` on the test's store."""
    from trackers.backends.s3 import create_tracker

    return lambda endpoint=None, **options: create_tracker(store.config(endpoint, **options))


@pytest.fixture
def proxy_factory(moto_server: MotoServer) -> Iterator[Callable[..., Any]]:
    """``proxy_factory(**kwargs)``: a started :class:`FaultProxy` in front of the server."""
    from tests.s3.faultproxy import FaultProxy

    started: list[FaultProxy] = []

    def make(**kwargs: Any) -> FaultProxy:
        proxy = FaultProxy(moto_server.port, **kwargs).__enter__()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.__exit__(None, None, None)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def s3fs_py() -> Path:
    """The s3fs virtualenv's Python (s3fs, TorchX's own tracker over it, our fsspec backend)."""
    python, why = s3fs_python()
    if python is None:
        pytest.skip(f"no s3fs virtualenv: {why}")
    return python
