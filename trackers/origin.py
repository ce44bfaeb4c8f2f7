"""Which process wrote a record: host, pid, rank and restart count, from the job's env.

Every replica of a role shares one run id, so records say where they came from; a requeued
Slurm job (same run id) is told apart by its restart count.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

#: Env vars that carry the global rank, in the order they are trusted.
RANK_VARS = ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
#: Env vars that count restarts of the same job.
RESTART_VARS = ("SLURM_RESTART_COUNT", "TORCHELASTIC_RESTART_COUNT")

_cache: tuple[int, dict[str, object]] | None = None


def _first_int(env: Mapping[str, str], names: tuple[str, ...]) -> int | None:
    for name in names:
        raw = env.get(name, "").strip()
        if raw.lstrip("-").isdigit():
            return int(raw)
    return None


def global_rank(environ: Mapping[str, str] | None = None) -> int | None:
    """The process's global rank, or ``None`` when no launcher set one."""
    return _first_int(os.environ if environ is None else environ, RANK_VARS)


def record_origin() -> dict[str, object]:
    """``{"host", "pid", "rank", "restart"}`` for this process (rank/restart may be None)."""
    global _cache
    pid = os.getpid()
    if _cache is None or _cache[0] != pid:  # recomputed after a fork
        _cache = (
            pid,
            {
                "host": socket.gethostname(),
                "pid": pid,
                "rank": global_rank(),
                "restart": _first_int(os.environ, RESTART_VARS),
            },
        )
    return dict(_cache[1])
