"""Running this venv's ``torchx`` CLI (and jobs) from tests, as a user's shell would.

One place for the clean environment every end-to-end test needs: no ``TORCHX_*`` setting of the
test run leaks in (``TORCHX_TRACKER_SPOOL_DIR`` included, so a job spools under ``HOME``),
``HOME`` is a scratch directory (a developer's ``~/.torchxconfig`` is not read), and this venv's
``bin`` comes first on ``PATH`` (``torchx``, and the ``python`` local jobs start).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

BIN = Path(sys.executable).parent
TORCHX = str(BIN / "torchx")


def clean_env(home: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's env) without TorchX settings, ``HOME=home``."""
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if not k.startswith("TORCHX")
    }
    env["HOME"] = str(home)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def torchx(
    cwd: Path,
    *args: str,
    timeout: float = 240,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``torchx ARGS`` in ``cwd`` (also its ``HOME``) with a clean env plus ``extra_env``."""
    return subprocess.run(
        [TORCHX, *args],
        cwd=cwd,
        env={**clean_env(cwd), **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
