"""Errors raised by trackers; each message names the value at fault and what was expected."""

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


class RunNotFoundError(TrackerError, KeyError):
    """A run id is not in the store that was asked."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""
