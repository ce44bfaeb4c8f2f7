"""The S3 backend: a run store in an S3 bucket (or any S3-compatible store), on boto3 itself.

No s3fs/aiobotocore: those pin botocore exactly and fight the boto3 a user already has. The
layout, merging, links and lineage are :mod:`trackers.backends.record_store`'s, the same as the
fsspec backend's (TorchX 0.7.0's layout), so a store written here reads the same through
``--tracker fsspec=s3://bucket/prefix`` (s3fs) and through TorchX's own ``FsspecTracker``.

Config (``--tracker s3=CONFIG``, ``TORCHX_TRACKER_S3_CONFIG``), one of:

* ``s3://BUCKET`` or ``s3://BUCKET/PREFIX`` - the store root;
* the same URL with options as a query string (quote it in a shell, ``?`` and ``&`` are special):
  ``s3://BUCKET/PREFIX?endpoint_url=http://127.0.0.1:9000&region=us-east-1``;
* a YAML/JSON mapping: ``{url: s3://BUCKET/PREFIX, endpoint_url: http://minio:9000,
  region: eu-west-1, profile: research, strict: true}``.

Options (query or mapping keys):

``endpoint_url``
    an S3-compatible store (MinIO, Ceph, moto...): ``http(s)://host[:port][/path]``. Without it,
    boto3's own settings apply (``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``, ``~/.aws/config``),
    else AWS. Custom endpoints are addressed path-style (botocore's default for them).
``region``, ``profile``
    a region name and a profile of ``~/.aws/config``; default: boto3's (``AWS_DEFAULT_REGION``,
    ``AWS_PROFILE``...).
``strict`` (default ``false``)
    check the bucket and the credentials when the tracker is built (one ``HeadBucket``), so a
    typo fails ``torchx run`` before anything is submitted; the tracker's ``strict`` attribute is
    then true.
``retry_mode`` (standard), ``max_attempts`` (5), ``connect_timeout`` (5 s), ``read_timeout`` (10)
    botocore's retries (``standard`` or ``adaptive``; attempts include the first, 1-20) and socket
    timeouts (0-300 s). A request that still fails raises :class:`~trackers.errors.TrackerError`
    naming the bucket, the key and the endpoint.
``max_workers`` (16)
    how many records of a run are fetched at once (1-64).
``cache`` (default ``true``)
    keep a read cache object per run and category (see below).

Credentials come only from boto3's standard chain (env vars, ``AWS_PROFILE``/``profile``, shared
files, SSO, container and instance roles); a config that carries any (``key``, ``secret``,
``token``..., or ``user:pass@`` in a URL) is refused, and none is ever logged.

How it stays correct and fast:

* Every record is its own object with a unique name (``<time_ns>-<uuid4>``), written with one
  PUT; a retried PUT re-sends the same bytes to the same key (botocore retries inside one call),
  so a write whose response was lost and that was sent again is still one record.
* The one object that is read, changed and written back is TorchX's ``sources/<b32(src)>`` file
  (artifact names, one a line). It is updated with conditional writes - ``If-None-Match: *`` to
  create it, ``If-Match: <etag>`` to change it - in a loop, so concurrent ``add_source`` calls do
  not lose each other's names (on a store that supports them, as AWS S3 and MinIO do).
* Listings are paginated (``list_objects_v2``, ``Delimiter="/"`` for runs, starting after the
  catalog's ``.catalog*`` objects at the root), so ``run_ids()`` over 10,000 runs is 10 requests
  however many catalog segments wait. A run's records are fetched concurrently by a bounded
  thread pool. Listing timestamps are parsed without dateutil (most of botocore's time on a
  1000-object page).
* Records never change, so a reader that had to fetch 32 or more of one run's records one by one
  stores them together in ``<run>/.cache/<category>`` (plain JSON, written by readers, never
  needed). A later reader lists the record names as always, takes the bodies it finds there and
  fetches only the others: one request instead of thousands. A stale or missing cache only means
  more GETs; TorchX and the fsspec backend never look inside ``.cache``.
"""

from __future__ import annotations

import importlib
import json
import logging
import posixpath
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import datetime
from functools import partial
from typing import Any, TypeVar, overload
from urllib.parse import parse_qsl, urlsplit

from trackers.backends.catalog import CATALOG, SEGMENT_PREFIX
from trackers.backends.record_store import (
    ARTIFACTS,
    LINKS,
    METADATA,
    METRICS,
    SNAPSHOT_CATEGORIES,
    STATUS,
    SUMMARY,
    RecordStoreTracker,
)
from trackers.backends.version_tokens import Version
from trackers.config_options import (
    FieldParser,
    as_bool,
    as_choice,
    as_int,
    as_number,
    as_str,
    check_known,
    load_mapping_config,
    parse_fields,
)
from trackers.errors import BackendUnavailable, TrackerConfigError, TrackerError
from trackers.helper_threads import leave_signals_to_main_thread
from trackers.ids import record_name
from trackers.redact import looks_like_credential, redact
from trackers.warn_once import WarnOnce

logger: logging.Logger = logging.getLogger(__name__)

T = TypeVar("T")

INSTALL_HINT = "pip install 'torchx-lineage[s3]'"

#: Record categories whose objects never change once written (so they may be cached).
CACHEABLE = frozenset({METADATA, ARTIFACTS, LINKS, METRICS, SUMMARY, STATUS})
#: ``<run>/.cache/<category>``: the read cache of one category of one run.
CACHE_DIR = ".cache"
#: A read that fetched at least this many records one by one writes the cache.
CACHE_MIN_RECORDS = 32
#: No cache object larger than this (it is read whole).
CACHE_MAX_BYTES = 32 * 1024 * 1024
#: ``<run>/.packs/<category>/<name>``: records a writer also stored together, a pack each.
PACKS_DIR = ".packs"
#: A tracker that has written this many records of one category of one run writes them again as
#: one pack, so a first read costs one GET per pack instead of one per record.
PACK_RECORDS = 64

# botocore's bucket-name check (S3-compatible stores allow more than AWS's 3-63 lowercase).
_BUCKET = re.compile(r"[A-Za-z0-9.\-_]{1,255}")
_CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "InvalidClientTokenId",
    }
)
#: Answers that mean "not now" rather than "never": the delivery worker retries them later.
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeTooSkewed",
    }
)
_CONFLICT_CODES = frozenset(
    {"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412", "409"}
)
_UNSUPPORTED_CODES = frozenset({"NotImplemented", "501"})


@dataclass(frozen=True)
class S3Config:
    """Where the store is and how to talk to it; see the module docstring for each option."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    strict: bool = False
    retry_mode: str = "standard"
    max_attempts: int = 5
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    max_workers: int = 16
    cache: bool = True

    @property
    def url(self) -> str:
        """``s3://bucket/prefix`` (``s3://bucket`` for a store at the bucket's top)."""
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @classmethod
    def parse(cls, config: str | None) -> S3Config:
        """Read ``s3://BUCKET[/PREFIX][?OPTIONS]`` or a YAML/JSON mapping with a ``url`` key."""
        text = (config or "").strip()
        if not text:
            raise TrackerConfigError(
                "the s3 tracker needs a store: s3://BUCKET/PREFIX, or a mapping such as "
                "{url: s3://BUCKET/PREFIX, endpoint_url: http://127.0.0.1:9000}"
            )
        if text.startswith("{"):
            options = load_mapping_config(
                text, "{url: s3://BUCKET/PREFIX, endpoint_url: http://127.0.0.1:9000}"
            )
            url = options.pop("url", None)
            if not isinstance(url, str):
                raise TrackerConfigError(
                    "a mapping config needs a string 'url' key, e.g. {url: s3://BUCKET/PREFIX}"
                )
            bucket, prefix, query = _split_url(url)
            if query:
                raise TrackerConfigError(
                    "a mapping config takes options as keys, not as a ?query in its url"
                )
            return cls._build(bucket, prefix, options)
        bucket, prefix, query = _split_url(text)
        given: dict[str, object] = {}
        for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
            if key in given:
                raise TrackerConfigError(f"option {key!r} is given twice in the query")
            given[key] = value
        return cls._build(bucket, prefix, given)

    @classmethod
    def _build(cls, bucket: str, prefix: str, options: Mapping[str, object]) -> S3Config:
        secrets = sorted(k for k in options if looks_like_credential(k))
        if secrets:
            raise TrackerConfigError(
                f"credentials do not belong in the tracker config (got {', '.join(secrets)}): "
                "boto3 reads them from its standard chain (AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE or 'profile', ~/.aws/credentials, roles)"
            )
        known = {f.name for f in fields(cls)} - {"bucket", "prefix"}
        check_known(
            options,
            known,
            lambda unknown: f"unknown option(s) {unknown}; known: url, {', '.join(sorted(known))}",
        )
        values = parse_fields(options, _OPTION_PARSERS)
        return cls(bucket=bucket, prefix=prefix, **values)


def _split_url(url: str) -> tuple[str, str, str]:
    """``s3://bucket/a/b?x=1`` -> ``("bucket", "a/b", "x=1")``, checked."""
    parts = urlsplit(url.strip())
    if parts.scheme != "s3":
        raise TrackerConfigError(
            f"store {redact(url)!r} is not an s3:// URL; expected s3://BUCKET/PREFIX"
        )
    if "@" in parts.netloc:
        raise TrackerConfigError(
            "credentials do not belong in the store URL (user:password@ found); boto3 reads "
            "them from its standard chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, "
            "~/.aws/credentials, roles)"
        )
    if parts.fragment:
        raise TrackerConfigError(f"store URL {url!r}: a '#' fragment is not allowed")
    bucket = parts.netloc
    if not _BUCKET.fullmatch(bucket):
        raise TrackerConfigError(
            f"store URL {url!r}: {bucket!r} is not a bucket name (letters, digits, '.', '-', "
            "'_'); expected s3://BUCKET/PREFIX"
        )
    prefix = parts.path.strip("/")
    if prefix and any(seg in ("", ".", "..") for seg in prefix.split("/")):
        raise TrackerConfigError(
            f"store URL {url!r}: the prefix {prefix!r} has an empty, '.' or '..' segment"
        )
    return bucket, prefix, parts.query


def _as_endpoint(name: str, value: object) -> str:
    text = as_str(name, value)
    parts = urlsplit(text)
    if "@" in parts.netloc:
        raise TrackerConfigError(
            f"option {name!r}: credentials do not belong in the endpoint URL (user:password@)"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TrackerConfigError(
            f"option {name!r}={text!r}: expected http(s)://HOST[:PORT], e.g. http://127.0.0.1:9000"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise TrackerConfigError(f"option {name!r}={text!r}: the port is not valid") from None
    return text.rstrip("/")


_OPTION_PARSERS: Mapping[str, FieldParser] = {
    "endpoint_url": _as_endpoint,
    "region": as_str,
    "profile": as_str,
    "strict": as_bool,
    "retry_mode": lambda n, v: as_choice(n, v, ("standard", "adaptive")),
    "max_attempts": lambda n, v: as_int(n, v, 1, 20),
    "connect_timeout": lambda n, v: as_number(n, v, 0.1, 300),
    "read_timeout": lambda n, v: as_number(n, v, 0.1, 300),
    "max_workers": lambda n, v: as_int(n, v, 1, 64),
    "cache": as_bool,
}


def _import(module: str) -> Any:
    """``module`` of boto3/botocore, imported on first use (never at package import)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise TrackerConfigError(f"the s3 tracker needs boto3 ({e}): {INSTALL_HINT}") from e


def _fast_timestamp(default: Callable[[str], Any]) -> Callable[[str], Any]:
    """botocore's timestamp parser with a fast path for the ISO 8601 form S3 lists objects in.

    botocore parses every ``LastModified`` of a listing with dateutil: about 50 ms of the
    ~65 ms it spends on a 1000-object page here, paid on every read of a run (each read lists
    its category). ``datetime.fromisoformat`` gives the same aware datetime; anything else
    (HTTP dates in headers, epoch numbers) goes to botocore's own parser.
    """

    def parse(value: str) -> Any:
        if isinstance(value, str) and value[-1:] == "Z" and "T" in value:
            try:
                return datetime.fromisoformat(value[:-1] + "+00:00")
            except ValueError:
                pass
        return default(value)

    return parse


def _make_client(config: S3Config) -> Any:
    """A boto3 S3 client for ``config`` (boto3 is imported here, not at package import)."""
    boto3_session, botocore_config, botocore_exceptions, botocore_session, parsers = (
        _import(name)
        for name in (
            "boto3.session",
            "botocore.config",
            "botocore.exceptions",
            "botocore.session",
            "botocore.parsers",
        )
    )
    # A botocore session of our own, so the faster timestamp parser affects only this client.
    core = botocore_session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=_fast_timestamp(parsers.DEFAULT_TIMESTAMP_PARSER)
    )
    try:
        session = boto3_session.Session(
            botocore_session=core, profile_name=config.profile, region_name=config.region
        )
    except botocore_exceptions.ProfileNotFound:
        raise TrackerConfigError(
            f"AWS profile {config.profile!r} not found in the AWS config files "
            "(AWS_CONFIG_FILE or ~/.aws/config, AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials)"
        ) from None
    client_config = botocore_config.Config(
        # total_max_attempts counts the first attempt too (botocore's max_attempts does not).
        retries={"mode": config.retry_mode, "total_max_attempts": config.max_attempts},
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        max_pool_connections=max(10, config.max_workers),
        user_agent_extra="torchx-lineage",
    )
    return session.client("s3", endpoint_url=config.endpoint_url, config=client_config)


class S3Tracker(RecordStoreTracker):
    """Runs kept as small immutable JSON objects under ``s3://bucket/prefix``.

    Construction makes the client but sends no request, unless ``strict`` (then it checks the
    bucket). The client is thread-safe; one tracker can be shared by threads.
    """

    registry_name = "s3"

    def __init__(self, config: S3Config, client: Any = None) -> None:
        self.config = config
        self.bucket = config.bucket
        self.root = config.prefix
        self.strict = config.strict
        self._client: Any = client if client is not None else _make_client(config)
        self._made_dirs: set[str] = set()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._warn_once = WarnOnce(logger)
        self._unpacked: dict[str, dict[str, bytes]] = {}
        if config.strict:
            self.verify()

    @property
    def endpoint(self) -> str:
        """The endpoint the client talks to (from the config, boto3's settings, or AWS)."""
        return redact(str(self._client.meta.endpoint_url))

    def __repr__(self) -> str:
        return f"S3Tracker({self.config.url}, endpoint={self.endpoint})"

    def verify(self) -> None:
        """Check that the bucket exists and the credentials are accepted (one ``HeadBucket``).

        Raises :class:`TrackerConfigError` for a missing bucket or unusable credentials and
        :class:`TrackerError` for an unreachable endpoint, each naming bucket and endpoint.
        """
        self._call("HeadBucket", None, lambda: self._client.head_bucket(Bucket=self.bucket))

    def close(self) -> None:
        """Stop the fetch threads (they also stop when the tracker is garbage-collected)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    # --- errors ---
    def _call(self, op: str, key: str | None, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except TrackerError:
            raise
        except Exception as e:
            raise self._failure(op, key, e) from e

    def _failure(self, op: str, key: str | None, error: Exception) -> TrackerError:
        """A clear error for a request that failed after botocore's retries."""
        bx = _import("botocore.exceptions")

        where = f"s3://{self.bucket}/{key}" if key is not None else f"s3://{self.bucket}"
        at = f"{op} {where} (endpoint {self.endpoint})"
        retries = (
            f"max_attempts={self.config.max_attempts}, connect_timeout="
            f"{self.config.connect_timeout:g}s, read_timeout={self.config.read_timeout:g}s"
        )
        if isinstance(error, bx.NoCredentialsError | bx.PartialCredentialsError):
            return TrackerConfigError(
                f"{at}: no usable AWS credentials ({error}). boto3 looks in AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE (or the config's 'profile'), "
                "~/.aws/credentials and ~/.aws/config, then container and instance roles; "
                "credentials never go in the tracker config"
            )
        if isinstance(error, bx.ClientError):
            response: Mapping[str, Any] = error.response
            err = response.get("Error", {})
            code = str(err.get("Code", ""))
            message = str(err.get("Message", "")) or "(no message)"
            meta = response.get("ResponseMetadata", {})
            attempts = 1 + int(meta.get("RetryAttempts", 0))
            status = meta.get("HTTPStatusCode")
            if code == "NoSuchBucket" or (op == "HeadBucket" and status == 404):
                return TrackerConfigError(
                    f"{at}: bucket {self.bucket!r} does not exist; create it, or fix the "
                    "bucket or endpoint_url in the tracker config"
                )
            if code in _CREDENTIAL_CODES:
                return TrackerConfigError(
                    f"{at}: the AWS credentials were rejected ({code}: {message}); boto3 took "
                    "them from its standard chain (env, profile, shared files, roles)"
                )
            if code in _TRANSIENT_CODES or (isinstance(status, int) and status >= 500):
                return BackendUnavailable(
                    f"{at} failed after {attempts} attempt(s) ({retries}): "
                    f"{code or status}: {message}"
                )
            if code in ("AccessDenied", "AllAccessDisabled", "403") or status == 403:
                return TrackerError(f"{at}: access denied ({code}: {message})")
            return TrackerError(
                f"{at} failed after {attempts} attempt(s) ({retries}): {code or status}: {message}"
            )
        if isinstance(error, bx.HTTPClientError | bx.ConnectionError):
            return BackendUnavailable(
                f"{at}: the S3 endpoint cannot be reached ({retries}): {error}"
            )
        return TrackerError(f"{at} failed: {type(error).__name__}: {error}")

    # --- requests ---
    def _dir_prefix(self, prefix: str) -> str:
        return f"{prefix}/" if prefix else ""

    def _pages(self, prefix: str, start_after: str = "") -> Iterator[Mapping[str, Any]]:
        """The ``list_objects_v2`` pages (1000 entries each) of what is directly under ``prefix``:
        objects in ``Contents``, sub-directories in ``CommonPrefixes``; with ``start_after``,
        only names after it (S3's ``StartAfter``, relative to ``prefix``).

        The listing always starts after ``prefix/`` itself: a directory marker there (every
        run's ``descendants/`` has one) is no entry, but would fill a page's 1000th place, so
        a parent with 1000 children would cost a second page.
        """
        listing = self._dir_prefix(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        after = listing + start_after
        options = {"StartAfter": after} if after else {}
        pages = self._call(
            "ListObjectsV2",
            listing,
            lambda: iter(
                paginator.paginate(Bucket=self.bucket, Prefix=listing, Delimiter="/", **options)
            ),
        )
        while True:  # each next() is one request, retried by botocore; errors made clear here
            page = self._call("ListObjectsV2", listing, lambda: next(pages, None))
            if page is None:
                return
            yield page

    def _get_object(self, key: str) -> tuple[bytes, str] | None:
        """The body and ETag of ``key``, ``None`` if it does not exist.

        botocore retries a request until its response headers arrive; a body cut off after that
        (a dropped connection, a read timeout) is fetched again here.
        """
        bx = _import("botocore.exceptions")

        body_errors = (bx.ResponseStreamingError, bx.IncompleteReadError, bx.ReadTimeoutError)
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=key)
            except bx.ClientError as e:
                if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise self._failure("GetObject", key, e) from e
            except Exception as e:
                raise self._failure("GetObject", key, e) from e
            try:
                return response["Body"].read(), str(response.get("ETag", ""))
            except body_errors as e:
                if attempt == self.config.max_attempts:
                    raise self._failure("GetObject", key, e) from e
                time.sleep(random.uniform(0, 0.05 * 2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _get(self, key: str) -> bytes | None:
        found = self._get_object(key)
        return None if found is None else found[0]

    def _put_object(self, key: str, data: bytes, **conditions: str) -> None:
        self._call(
            "PutObject",
            key,
            lambda: self._client.put_object(Bucket=self.bucket, Key=key, Body=data, **conditions),
        )

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.config.max_workers,
                    thread_name_prefix="s3-tracker",
                    initializer=leave_signals_to_main_thread,
                )
            return self._pool

    def _fetch(self, keys: Sequence[str]) -> dict[str, bytes | None]:
        """GET ``keys`` concurrently (at most ``max_workers`` at a time)."""
        found = self._side_by_side([partial(self._get, k) for k in keys])
        return dict(zip(keys, found, strict=True))

    def _side_by_side(self, calls: Sequence[Callable[[], T]]) -> list[T]:
        """Independent reads at once on the pool: one round trip for a run's listings and its
        snapshot, not one per request; the GETs of many records (none of the calls submits to
        the pool itself, so a full pool cannot deadlock)."""
        if len(calls) <= 1:
            return super()._side_by_side(calls)
        futures = [self._executor().submit(call) for call in calls]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    # --- storage primitives ---
    def _put(self, run_id: str, key: str, data: bytes) -> None:
        self._put_object(key, data)
        if self.config.cache:
            self._add_to_pack(key, data)

    def _get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        unique = list(dict.fromkeys(keys))
        found: dict[str, bytes | None] = {}
        groups: dict[str, list[str]] = {}
        if self.config.cache and len(unique) >= CACHE_MIN_RECORDS:
            for key in unique:
                groups.setdefault(posixpath.dirname(key), []).append(key)
            groups = {
                d: members
                for d, members in groups.items()
                if len(members) >= CACHE_MIN_RECORDS and self._cache_key(d) is not None
            }
            for directory, members in groups.items():
                if posixpath.basename(directory) not in SNAPSHOT_CATEGORIES:
                    found.update(self._read_cache(directory, members))
                rest = [m for m in members if m not in found]
                if len(rest) >= CACHE_MIN_RECORDS:
                    found.update(self._read_packs(directory, rest))
        missing = [k for k in unique if k not in found]
        found.update(self._fetch(missing))
        fetched = set(missing)
        for directory, members in groups.items():
            if posixpath.basename(directory) in SNAPSHOT_CATEGORIES:
                continue  # the run's snapshot holds these (record_store)
            if self.cache_on_read and sum(1 for k in members if k in fetched) >= CACHE_MIN_RECORDS:
                self._write_cache(directory, {k: found[k] for k in members})
        return [found[k] for k in keys]

    def _list_names(self, prefix: str) -> list[str]:
        start = len(self._dir_prefix(prefix))
        names = []
        for page in self._pages(prefix):
            for obj in page.get("Contents", ()):
                name = str(obj["Key"])[start:]
                if name:  # not the directory marker itself
                    names.append(name)
        return names

    @overload
    def _list_catalog(self) -> list[str]: ...

    @overload
    def _list_catalog(self, *, at_most: int) -> list[str] | None: ...

    def _list_catalog(self, *, at_most: int | None = None) -> list[str] | None:
        """The catalog objects only (one request a thousand), not the whole root listing;
        with ``at_most``, one request for at most that many and one more (``None`` when that
        one more is there)."""
        listing = self._dir_prefix(self.root)
        names = []
        paginator = self._client.get_paginator("list_objects_v2")
        limit = {} if at_most is None else {"PaginationConfig": {"PageSize": at_most + 1}}
        pages = self._call(
            "ListObjectsV2",
            listing + CATALOG,
            lambda: iter(paginator.paginate(Bucket=self.bucket, Prefix=listing + CATALOG, **limit)),
        )
        while True:
            page = self._call("ListObjectsV2", listing + CATALOG, lambda: next(pages, None))
            if page is None:
                break
            for obj in page.get("Contents", ()):
                name = str(obj["Key"])[len(listing) :]
                if name == CATALOG or (name.startswith(SEGMENT_PREFIX) and "/" not in name):
                    names.append(name)
            if at_most is not None and (len(names) > at_most or page.get("IsTruncated")):
                return None
        return names

    def _delete(self, keys: Sequence[str]) -> None:
        for i in range(0, len(keys), 1000):
            delete = {"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True}
            try:
                self._client.delete_objects(Bucket=self.bucket, Delete=delete)
            except Exception as e:
                raise self._failure("DeleteObjects", keys[i], e) from e

    def _reader_snapshots(self) -> bool:
        """Reads store snapshots and catalog entries only with the ``cache`` option on, and not
        for a reader that must not write (``cache_on_read`` off, e.g. ``torchx tracker ui``)."""
        return self.config.cache and self.cache_on_read

    def _list_versions(self, prefix: str) -> dict[str, Version]:
        start = len(self._dir_prefix(prefix))
        found: dict[str, Version] = {}
        for page in self._pages(prefix):
            for obj in page.get("Contents", ()):
                name = str(obj["Key"])[start:]
                if name:
                    found[name] = str(obj.get("ETag") or "") or None
        return found

    def _list_dirs(self, prefix: str) -> list[str]:
        """Sub-directories of ``prefix``, except those whose name starts with ``.`` (or another
        character that sorts before ``/``).

        The listing starts after ``prefix//`` (``StartAfter``): the catalog's objects at the
        store's root (``.catalog``, one ``.catalog-*`` segment per status or link written until
        a reader merges them) all sort before it, and run directories (base32: ``A-Z2-7=``)
        all after it. So listing runs costs one request per 1000 runs, however many segments
        are waiting, instead of paging through them too.
        """
        start = len(self._dir_prefix(prefix))
        dirs = []
        for page in self._pages(prefix, start_after="/"):
            for common in page.get("CommonPrefixes", ()):
                name = str(common["Prefix"])[start:].rstrip("/")
                if name:
                    dirs.append(name)
        return dirs

    def _is_dir(self, prefix: str) -> bool:
        listed = self._call(
            "ListObjectsV2",
            self._dir_prefix(prefix),
            lambda: self._client.list_objects_v2(
                Bucket=self.bucket, Prefix=self._dir_prefix(prefix), MaxKeys=1
            ),
        )
        return bool(listed.get("KeyCount", len(listed.get("Contents", ()))))

    def _mkdir(self, prefix: str) -> None:
        """A zero-byte ``prefix/`` marker, so s3fs (and TorchX over it) sees the directory.

        Only ``<run>/descendants/`` is made this way: TorchX's ``add_source`` writes its reverse
        link into a parent only when that directory exists.
        """
        with self._lock:
            if prefix in self._made_dirs:
                return
        self._put_object(f"{prefix}/", b"")
        with self._lock:
            self._made_dirs.add(prefix)

    # --- conditional writes for TorchX's sources/ file (the record store's one shared object) ---
    def _read_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        found = self._get_object(key)
        return (None, None) if found is None else (found[0], found[1] or None)

    def _put_if(
        self, run_id: str, key: str, data: bytes, version: str | None, *, exists: bool
    ) -> bool:
        if not exists:
            condition = {"IfNoneMatch": "*"}
        elif version:
            condition = {"IfMatch": version}
        else:  # a store that sends no ETag cannot take If-Match
            condition = None
        written = None if condition is None else self._conditional_put(key, data, condition)
        if written is None:
            self._warn_conditional()
            self._put_object(key, data)
            return True
        return written

    def _create_if_absent(self, run_id: str, key: str, data: bytes) -> bool:
        """One PUT with ``If-None-Match: *``, where reading first cost a GET that found nothing
        and then that same PUT. A store without conditional writes is asked once; after that
        the caller reads first, as it must there."""
        if self.__dict__.get("_no_conditional_writes"):
            return False
        return bool(self._conditional_put(key, data, {"IfNoneMatch": "*"}))

    def _conditional_put(self, key: str, data: bytes, condition: Mapping[str, str]) -> bool | None:
        """``True`` when written, ``False`` when the condition failed (someone else wrote
        first), ``None`` when the store does not take conditional writes."""
        client_error = _import("botocore.exceptions").ClientError
        try:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data, **condition)
            return True
        except client_error as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in _CONFLICT_CODES:
                return False
            if code not in _UNSUPPORTED_CODES:
                raise self._failure("PutObject", key, e) from e
        except Exception as e:
            raise self._failure("PutObject", key, e) from e
        self.__dict__["_no_conditional_writes"] = True
        return None

    def _warn_conditional(self) -> None:
        self._warn_once(
            "conditional",
            "%s does not support conditional writes (If-Match/If-None-Match); TorchX's "
            "sources/ files are written unconditionally, so concurrent add_source calls for "
            "the same pair may drop an artifact name there (our links/ records keep all)",
            self.endpoint,
        )

    # --- the read cache ---
    def _cache_key(self, directory: str, kind: str = CACHE_DIR) -> str | None:
        """``<run>/<kind>/<category>`` for ``<root>/<run>/<category>``, else ``None``."""
        run_dir, category = posixpath.split(directory)
        if category not in CACHEABLE or posixpath.dirname(run_dir) != self.root:
            return None
        return posixpath.join(run_dir, kind, category)

    # --- packs: records a writer stores a second time, together ---
    def _add_to_pack(self, key: str, data: bytes) -> None:
        directory, name = posixpath.split(key)
        packs = self._cache_key(directory, PACKS_DIR)
        if packs is None:
            return
        with self._lock:
            pending = self._unpacked.setdefault(directory, {})
            pending[name] = data
            if len(pending) < PACK_RECORDS:
                return
            del self._unpacked[directory]
        payload = _records_payload(pending)
        if payload is None:
            return
        try:
            self._put_object(posixpath.join(packs, record_name()), payload)
        except TrackerError as e:  # the records themselves are stored; only reads get slower
            self._warn_once("pack", "could not write a pack of records (reads still work): %s", e)

    def _read_packs(self, directory: str, members: Sequence[str]) -> dict[str, bytes | None]:
        """Listed ``members`` found in this category's packs (one LIST, one GET per pack)."""
        packs = self._cache_key(directory, PACKS_DIR)
        if packs is None:
            return {}
        keys = [posixpath.join(packs, n) for n in self._list_names(packs)]
        wanted = {posixpath.basename(m): m for m in members}
        found: dict[str, bytes | None] = {}
        for key, data in self._fetch(keys).items():
            for name, text in _parse_records(data, key, self.bucket).items():
                if name in wanted:
                    found[wanted[name]] = text.encode("utf-8")
        return found

    def _read_cache(self, directory: str, members: Sequence[str]) -> dict[str, bytes | None]:
        key = self._cache_key(directory)
        data = self._get(key) if key is not None else None
        cached = _parse_records(data, key or "", self.bucket)
        found: dict[str, bytes | None] = {}
        for member in members:
            text = cached.get(posixpath.basename(member))
            if text is not None:
                found[member] = text.encode("utf-8")
        return found

    def _write_cache(self, directory: str, records: Mapping[str, bytes | None]) -> None:
        key = self._cache_key(directory)
        payload = _records_payload(records) if key is not None else None
        if key is None or payload is None:
            return
        try:
            self._put_object(key, payload)
        except TrackerError as e:  # e.g. read-only credentials: reads work without it
            self._warn_once("cache", "could not write the read cache (reads still work): %s", e)


def _records_payload(records: Mapping[str, bytes | None]) -> bytes | None:
    """A cache or pack object: ``{"version": 1, "records": {name: text}}`` (None if too big)."""
    texts: dict[str, str] = {}
    for member, data in records.items():
        if data is None:
            continue
        try:
            texts[posixpath.basename(member)] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue  # not ours: fetched one by one each time
    payload = json.dumps({"version": 1, "records": texts}, ensure_ascii=False).encode()
    return payload if len(payload) <= CACHE_MAX_BYTES else None


def _parse_records(data: bytes | None, key: str, bucket: str) -> dict[str, str]:
    """The records of a cache or pack object; empty (and logged) when it is unreadable."""
    if data is None:
        return {}
    try:
        records = json.loads(data)["records"]
        if not isinstance(records, dict):
            raise TypeError("records is not a mapping")
    except (ValueError, KeyError, TypeError) as e:
        logger.info("ignoring unreadable cache object s3://%s/%s (%s)", bucket, key, e)
        return {}
    return {k: v for k, v in records.items() if isinstance(k, str) and isinstance(v, str)}


def create_tracker(config: str | None) -> S3Tracker:
    """Entry-point factory: ``config`` is ``s3://BUCKET[/PREFIX][?OPTIONS]`` or a mapping."""
    return S3Tracker(S3Config.parse(config))
