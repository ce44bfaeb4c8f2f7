"""Fixtures for ``torchx tracker ui``: the real server in a process group, a real Chromium.

The server is started as a user would (``torchx tracker ui --tracker ... --port 0``), in its own
session; the URL is read from what it prints, and the whole group is killed at teardown. The
browser is Debian's ``chromium`` (``scripts/system_deps.sh`` installs it) driven by playwright
through ``executable_path``: ``playwright install`` (a browser download) is never used. A
missing chromium fails these tests, it does not skip them.

Screenshots go to the test's tmp dir, or to ``docs/`` when ``TORCHX_LINEAGE_SCREENSHOTS=docs``
(how the README's pictures are made).
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.cli_support import TORCHX, clean_env

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
URL_LINE = re.compile(r" at (http://127\.0\.0\.1:\d+/) ")
REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
#: Read at import: the autouse clean_tracking_env fixture drops TORCHX_* before each test.
SCREENSHOTS_TO_DOCS = os.environ.get("TORCHX_LINEAGE_SCREENSHOTS") == "docs"


@dataclass
class UiServer:
    """A running ``torchx tracker ui``: its URL and process."""

    url: str
    process: subprocess.Popen[str]
    stderr_path: Path
    lines: list[str] = field(default_factory=list)

    def rss_mb(self) -> float:
        """The server process's resident memory now, from /proc (MB)."""
        return self._memory_mb("VmRSS")

    def peak_rss_mb(self) -> float:
        """The most resident memory the server process has had (its high-water mark, MB)."""
        return self._memory_mb("VmHWM")

    def _memory_mb(self, field: str) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        found = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
        assert found is not None, status
        return int(found.group(1)) / 1024

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


@contextmanager
def ui_server(
    cwd: Path, tracker: str, extra_env: Mapping[str, str] | None = None, timeout: float = 90
) -> Iterator[UiServer]:
    """``torchx tracker ui --tracker TRACKER --port 0`` in ``cwd``, until the block ends."""
    stderr_path = cwd / f"ui-stderr-{time.monotonic_ns()}.log"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [TORCHX, "tracker", "ui", "--tracker", tracker, "--port", "0"],
            cwd=cwd,
            env={**clean_env(cwd), **(extra_env or {})},
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            start_new_session=True,
        )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        url = None
        while url is None:
            left = deadline - time.monotonic()
            if left <= 0 or process.poll() is not None:
                raise AssertionError(
                    f"torchx tracker ui printed no URL (exit {process.poll()}): {seen}\n"
                    f"{stderr_path.read_text(errors='replace')}"
                )
            try:
                line = lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            seen.append(line)
            match = URL_LINE.search(line)
            url = match.group(1) if match else None
        yield UiServer(url, process, stderr_path, seen)
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen[str]) -> None:
    """SIGINT the server's process group (Ctrl-C), then SIGKILL what is left."""
    for sig, wait in ((signal.SIGINT, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium through playwright (fails when it is not installed)."""
    assert Path(CHROMIUM).is_file(), (
        f"{CHROMIUM} is missing: run scripts/system_deps.sh (apt-get install chromium)"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Watched:
    """A page plus what went wrong in it: script errors, console errors, dialogs opened."""

    page: Any
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def goto_loaded(self, url: str) -> None:
        self.page.goto(url)
        self.page.wait_for_selector("body[data-loaded=true]", timeout=30_000)


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    """A fresh browser context and page that record script errors and dialogs."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(30_000)
    w = Watched(page)
    page.on("pageerror", lambda e: w.errors.append(f"pageerror: {e}"))
    page.on(
        "console", lambda m: w.errors.append(f"console: {m.text}") if m.type == "error" else None
    )

    def on_dialog(dialog: Any) -> None:
        w.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    try:
        yield w
    finally:
        context.close()


def screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    """Save a full-page PNG: into docs/ when TORCHX_LINEAGE_SCREENSHOTS=docs, else tmp_path."""
    target = DOCS if SCREENSHOTS_TO_DOCS else tmp_path
    path = target / f"ui-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000, path  # a real picture, not an empty page
    return path
