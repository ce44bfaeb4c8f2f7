"""How MLflow failures are told apart: the server is down, overloaded, or the call itself failed.

An HTTP server is probed (``GET /health``) before the first call and after a connection failure,
so a dead server fails a call in seconds, not after MLflow's minutes of retries; connection
failures and exhausted 5xx retries become :class:`~trackers.errors.BackendUnavailable`, which the
delivery thread retries later.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import re
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping

from trackers.errors import BackendUnavailable, TrackerError
from trackers.redact import redact

__all__ = ["HTTP_ENV_DEFAULTS", "MLflowCalls", "retry_insert_race"]

#: Set in the process (unless already set) by the first tracker for an HTTP(S) URI.
HTTP_ENV_DEFAULTS: Mapping[str, str] = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}
#: After a failed probe, calls fail at once for this long before the server is probed again.
UNREACHABLE_RETRY_AFTER_S = 2.0
#: How MLflow's SQL stores report two writers inserting the same row (SQLite, MySQL, Postgres).
_INSERT_RACE = re.compile(r"UNIQUE constraint failed|IntegrityError|Duplicate entry|duplicate key")


class MLflowCalls:
    """Runs MLflow calls for one tracking URI; every failure becomes a TrackerError naming it.

    Args:
        uri: the tracking URI (shown redacted in messages).
        mlflow_error: ``mlflow.exceptions.MlflowException`` (passed in: importing this module
            must not import mlflow).
        on_run_gone: called when MLflow says a run is deleted or not active, so cached run ids
            are looked up again.
    """

    def __init__(
        self, uri: str, mlflow_error: type[Exception], on_run_gone: Callable[[], None]
    ) -> None:
        self.uri = uri
        self.display_uri = redact(uri)
        self.http = urllib.parse.urlsplit(uri).scheme.lower() in ("http", "https")
        self.mlflow_error = mlflow_error
        #: Whether the server answered a probe since the last connection failure.
        self.reachable = False
        self._on_run_gone = on_run_gone
        self._down_until = 0.0
        self._down_reason = ""
        if self.http:
            for key, value in HTTP_ENV_DEFAULTS.items():
                os.environ.setdefault(key, value)

    @contextlib.contextmanager
    def calling(self, op: str) -> Iterator[None]:
        """Run MLflow calls for ``op``; any failure becomes a TrackerError naming the URI."""
        self.ensure_reachable(op)
        try:
            yield
        except TrackerError:
            raise
        except Exception as e:
            cause = _connection_error(e) if self.http else None
            if cause is not None:
                self.reachable = False
                raise BackendUnavailable(
                    f"MLflow tracking server {self.display_uri} is not reachable ({op}): "
                    f"{_short(cause)}. Check the URI and that the server is running "
                    "(timeouts and retries: MLFLOW_HTTP_REQUEST_TIMEOUT, "
                    "MLFLOW_HTTP_REQUEST_MAX_RETRIES)"
                ) from None
            if self.http and _gave_up_on_5xx(e):
                raise BackendUnavailable(
                    f"MLflow tracking server {self.display_uri} kept failing ({op}): {_short(e)}"
                ) from None
            if isinstance(e, self.mlflow_error):
                if "must be in the 'active' state" in str(e) or getattr(e, "error_code", "") in (
                    "RESOURCE_DOES_NOT_EXIST",
                    "INVALID_STATE",
                ):
                    self._on_run_gone()  # a run was deleted behind our back: look runs up again
                message = getattr(e, "message", str(e))
                raise TrackerError(f"MLflow at {self.display_uri}: {op} failed: {message}") from e
            raise

    def ensure_reachable(self, op: str) -> None:
        if not self.http or self.reachable:
            return
        now = time.monotonic()
        if now < self._down_until:
            raise BackendUnavailable(
                f"MLflow tracking server {self.display_uri} is not reachable ({op}): "
                f"{self._down_reason} (next attempt in {self._down_until - now:.0f} s)"
            )
        timeout = _env_float("MLFLOW_HTTP_REQUEST_TIMEOUT", 10.0)
        try:
            _probe(self.uri.rstrip("/") + "/health", timeout)
        except OSError as e:
            self._down_reason = _short(e)
            self._down_until = time.monotonic() + UNREACHABLE_RETRY_AFTER_S
            raise BackendUnavailable(
                f"MLflow tracking server {self.display_uri} is not reachable ({op}): "
                f"{self._down_reason} (waited at most {timeout:g} s; "
                "set MLFLOW_HTTP_REQUEST_TIMEOUT to change that)"
            ) from None
        self.reachable = True


def retry_insert_race(call: Callable[[], object], mlflow_error: type[Exception]) -> None:
    """Run ``call``, again if the store lost a race inserting the same row (tag, param).

    MLflow's SQL store writes a tag by "look, then insert": two processes setting one tag
    key of one run at the same moment make one of them fail on the unique constraint.
    """
    for attempt in range(5):
        try:
            call()
            return
        except mlflow_error as e:
            if attempt == 4 or not _INSERT_RACE.search(str(e)):
                raise
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def _error_chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, then its causes (``__cause__``, else ``__context__``), each once."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _connection_error(error: BaseException) -> BaseException | None:
    """The network-level cause (refused, timeout, DNS...) in ``error``'s chain, if any."""
    for current in _error_chain(error):
        module = type(current).__module__.split(".")[0]
        name = type(current).__name__
        if name == "RetryError":  # the server kept answering 5xx: it is reachable
            return None
        if isinstance(current, ConnectionError | TimeoutError | socket.gaierror) or (
            module in ("requests", "urllib3") and name != "HTTPError"
        ):
            return current
    return None


def _gave_up_on_5xx(error: BaseException) -> bool:
    """Whether ``error``'s chain shows the client retried 5xx answers until it gave up."""
    return any(
        type(current).__name__ in ("RetryError", "MaxRetryError")
        or "too many 5" in str(current).lower()
        for current in _error_chain(error)
    )


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    reason = re.search(
        r"(Connection refused|timed out|Name or service not known|"
        r"Temporary failure in name resolution|Connection reset by peer|"
        r"No route to host|Network is unreachable|Remote end closed connection|"
        r"Connection aborted)",
        text,
    )
    if reason:
        return reason.group(1)
    return text if len(text) <= 300 else text[:300] + "..."


def _probe(url: str, timeout: float) -> None:
    """One GET of ``url``; raises OSError only when nothing answers (any HTTP reply is fine)."""
    request = urllib.request.Request(url, method="GET", headers={"User-Agent": "torchx-lineage"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read(64)
    except urllib.error.HTTPError:
        return  # it answered (401/404/...): reachable; MLflow reports what the answer means
    except urllib.error.URLError as e:
        if isinstance(e.reason, ssl.SSLError):
            return  # TLS settings are MLflow's business (MLFLOW_TRACKING_SERVER_CERT_PATH...)
        if isinstance(e.reason, OSError):
            raise e.reason from None
        raise OSError(str(e.reason)) from None
    except (ssl.SSLError, http.client.HTTPException):
        return  # something answered, in a way urllib does not like: let MLflow deal with it
