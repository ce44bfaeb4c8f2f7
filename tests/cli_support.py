"""Running this venv's ``torchx`` CLI (and jobs) from tests, as a user's shell would.

One place for the clean environment every end-to-end test needs: no ``TORCHX_*`` setting of the
test run leaks in (``TORCHX_TRACKER_SPOOL_DIR`` included, so a job spools under ``HOME``),
``HOME`` is a scratch directory (a developer's ``~/.torchxconfig`` is not read), and this venv's
``bin`` comes first on ``PATH`` (``torchx``, and the ``python`` local jobs start).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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


def kubernetes_dryrun_cfg(**extra: str) -> dict[str, object]:
    """A ``kubernetes`` scheduler cfg whose dryrun needs no cluster, on either TorchX.

    torchx-nightly validates the spec against the API server during dryrun unless
    ``validate_spec`` is false; 0.7.0 has no such option.
    """
    from torchx.schedulers.kubernetes_scheduler import create_scheduler

    cfg: dict[str, object] = {"queue": "default", **extra}
    if create_scheduler("probe").run_opts().get("validate_spec") is not None:
        cfg["validate_spec"] = False
    return cfg


def kubernetes_model(obj: object, klass: str) -> Any:
    """``obj`` (JSON-able) as the kubernetes client model ``klass``, as the client reads replies.

    kubernetes 37 (beside torchx-nightly) takes the reply text and a content type; earlier
    versions (beside torchx 0.7.0) take a response object with ``.data``.
    """
    import inspect

    from kubernetes.client import ApiClient

    text = json.dumps(obj)
    with ApiClient() as api:
        if "content_type" in inspect.signature(api.deserialize).parameters:
            return api.deserialize(text, klass, "application/json")

        class Response:
            data = text

        return api.deserialize(Response(), klass)


def job_ids(listed: Any) -> list[str]:
    """The run ids of ``torchx tracker list jobs --format json`` (objects, newest first)."""
    return [job["run_id"] for job in listed]
