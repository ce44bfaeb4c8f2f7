"""A warning logged once per key: a backend that degrades (drops a value...) says so once."""

from __future__ import annotations

import logging
import threading


class WarnOnce:
    """Calling it logs ``message`` the first time ``key`` is seen (thread-safe)."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, key: str, message: str, *args: object) -> None:
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
        self._logger.warning(message, *args)
