"""Errors raised by trackers, and the policy that sorts failures into "retry" and "skip".

Each message names the value at fault and what was expected. :func:`is_transient` is the one
error policy: delivery (:mod:`trackers.delivery`), sync and ``AppRun``'s log lines all ask it.
"""

from __future__ import annotations


class TrackerError(Exception):
    """Base class of every error this package raises on purpose."""


class BackendUnavailable(TrackerError):
    """The store cannot be reached now (refused, timed out, 5xx after retries): try again later.

    The delivery worker keeps an operation that failed with this (or an ``OSError``) in the spool
    and retries it; any other error means the operation itself is at fault and it is dropped.
    """


class TrackerConfigError(TrackerError, ValueError):
    """A tracker name or config string cannot be used (names the env var or flag and the form)."""


class TrackerNotFoundError(TrackerConfigError):
    """No factory is registered under a tracker name (the message lists the known names)."""


class UnsupportedOperation(TrackerError, NotImplementedError):
    """The tracker cannot do this at all (a read on a write-only tracker): not retried, and
    ``AppRun``'s reads fall over to the next tracker."""


class RunNotFoundError(TrackerError, KeyError):
    """A run id is not in the store that was asked."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def is_transient(error: BaseException) -> bool:
    """Whether a failed operation should be kept and retried: the store may come back, or the
    failure is about this process's setup (missing or rejected credentials), not the operation,
    so another attempt (or ``torchx tracker sync`` from elsewhere) can succeed."""
    return isinstance(error, BackendUnavailable | OSError | TrackerConfigError)
