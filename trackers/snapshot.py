"""What the job ran on, recorded once as metadata (``env.*`` keys) when the run starts.

Nothing here imports a heavy package: versions come from installed distributions' metadata,
the GPU model from ``nvidia-smi`` when it is on ``PATH``.
"""

from __future__ import annotations

import platform
import shutil
import socket
import subprocess
import sys

import importlib_metadata

#: Distributions whose versions are recorded when installed.
KEY_PACKAGES = (
    "torch",
    "torchx",
    "torchx-nightly",
    "torchx-lineage",
    "numpy",
    "fsspec",
    "mlflow",
    "boto3",
    "tensorboard",
)


def _run(args: list[str], cwd: str | None = None) -> str | None:
    try:
        done = subprocess.run(
            args, cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(cwd: str | None = None) -> dict[str, object]:
    """``{"git_commit": sha, "git_dirty": bool}`` for ``cwd``, or ``{}`` outside a git repo."""
    commit = _run(["git", "rev-parse", "HEAD"], cwd)
    if not commit:
        return {}
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd)
    return {"git_commit": commit, "git_dirty": bool(status)}


def package_versions() -> dict[str, str]:
    """Versions of :data:`KEY_PACKAGES` that are installed."""
    found = {}
    for name in KEY_PACKAGES:
        try:
            found[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return found


def gpu_models() -> list[str]:
    """GPU model names from ``nvidia-smi`` (empty without NVIDIA GPUs or the tool)."""
    if shutil.which("nvidia-smi") is None:
        return []
    out = _run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"])
    return [line.strip() for line in (out or "").splitlines() if line.strip()]


def environment_snapshot() -> dict[str, object]:
    """``env.python``, ``env.platform``, ``env.host``, ``env.packages``, ``env.gpus``, git state."""
    snapshot: dict[str, object] = {
        "env.python": sys.version.split()[0],
        "env.platform": platform.platform(),
        "env.host": socket.gethostname(),
        "env.packages": package_versions(),
        "env.gpus": gpu_models(),
    }
    snapshot.update({f"env.{k}": v for k, v in git_state().items()})
    return snapshot
