"""Shared by test_scheduler_dryrun.py and test_hostile_values_local.py.

Hostile values (each a separate case so a failure names the character class at fault), the
tracking env filter, the expected data: URL of the ``fsspec`` tracker, and the emulations of what
sits between a scheduler request and the job's process: ``srun`` (Slurm) and the kubelet's
``$(VAR)`` expansion (Kubernetes).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote

import fsspec

VENV_BIN = Path(sys.executable).parent
TORCHX = str(VENV_BIN / "torchx")

#: The session name of ``get_runner()`` and of ``torchx run``.
SESSION = "torchx"

#: One value per kind of trouble. ``${app_id}`` is TorchX's own macro; ``$(TORCHX_JOB_ID)`` is
#: Kubernetes' env reference syntax; commas split ``srun --export``; the rest trip shells.
HOSTILE_FRAGMENTS: dict[str, str] = {
    "comma": "a,b,,c",
    "single_quote": "it's",
    "double_quote": 'say "hi"',
    "spaces": "two  spaces here",
    "dollar_home": "$HOME",
    "double_dollar": "$$",
    "app_id_macro": "${app_id}",
    "kube_var_ref": "$(TORCHX_JOB_ID)",
    "backslash": "back\\slash\\n\\",
    "newline": "line1\nline2",
    "non_ascii": "é 日本",
}
HOSTILE_FRAGMENTS["all"] = " ".join(HOSTILE_FRAGMENTS.values())

#: The values safe for TorchX's own ``fsspec`` job config (a properties line cannot hold a
#: newline, so our backend then hands out the raw path instead of a data: URL).
DATA_URL_SAFE = {k: v for k, v in HOSTILE_FRAGMENTS.items() if "\n" not in v}
DATA_URL_SAFE["all"] = " ".join(v for k, v in DATA_URL_SAFE.items() if k != "all")

TRACKING_KEYS = (
    "TORCHX_JOB_ID",
    "TORCHX_PARENT_RUN_ID",
    "TORCHX_TRACKERS",
    "TORCHX_TRACKER_STRICT",
)
_TRACKER_CONFIG = re.compile(r"TORCHX_TRACKER_[A-Z0-9_]+_CONFIG")


def tracking_env(env: Mapping[str, str]) -> dict[str, str]:
    """The tracking part of a role's / process's env."""
    return {k: v for k, v in env.items() if k in TRACKING_KEYS or _TRACKER_CONFIG.fullmatch(k)}


def parent_run_id_for(fragment: str) -> str:
    return f"local_cwd://torchx/parent-{fragment}-end"


def store_dir(base: Path, fragment: str, name: str = "store") -> Path:
    """A store root under ``base`` whose name holds ``fragment`` (no ``/`` allowed in names)."""
    assert "/" not in fragment
    return base / f"{name} {fragment} end"


def fsspec_data_url_text(config: str) -> str:
    """What the ``fsspec`` tracker's data: URL config reads as (TorchX's properties format)."""
    assert config.startswith("data:,"), config
    with fsspec.open(config, "rt", encoding="utf-8") as f:
        text: str = f.read()
    assert unquote(config[len("data:,") :]) == text
    return text


def properties_for(root: Path) -> str:
    return f"protocol=file\nroot_path={root}\n"


# --------------------------------------------------------------------------- Slurm
def srun_block(script: str) -> str:
    """The ``srun ...`` command of a TorchX sbatch script (spans lines: quoted newlines, ``:``)."""
    start = script.index("\nset +e\nsrun ") + len("\nset +e\n")
    end = script.index("\nexitcode=$?", start)
    return script[start:end]


def srun_export_args(block: str) -> list[str]:
    """Every ``--export=...`` argument of the srun command, as srun receives it."""
    return [arg for arg in shlex.split(block) if arg.startswith("--export=")]


FAKE_SRUN = """#!{python}
# A fake srun: runs every heterogeneous component (argv split on ':') one after the other,
# with the environment real srun would give it. srun's own --options are dropped, except
# --export=ALL,K=V,... which is split on EVERY comma, as real srun does: an item with '='
# sets a variable, an item without one names a variable to pass through.
import os
import subprocess
import sys

groups = [[]]
for arg in sys.argv[1:]:
    if arg == ":":
        groups.append([])
    else:
        groups[-1].append(arg)

rc = 0
for group in groups:
    env = dict(os.environ)
    i = 0
    while i < len(group) and group[i].startswith("--"):
        opt = group[i]
        i += 1
        if opt.startswith("--export="):
            items = opt[len("--export="):].split(",")
            if "ALL" not in items:
                env = {{}}
            for item in items:
                if item in ("ALL", "NONE", ""):
                    continue
                key, sep, value = item.partition("=")
                if sep:
                    env[key] = value
                elif key in os.environ:
                    env[key] = os.environ[key]
    rc = subprocess.run(group[i:], env=env).returncode or rc
sys.exit(rc)
"""


def run_srun_block(block: str, workdir: Path, slurm_job_id: str = "1234") -> None:
    """Run the srun command as the sbatch script would, with a fake ``srun`` first on PATH."""
    fake_bin = workdir / "fake-slurm-bin"
    fake_bin.mkdir(exist_ok=True)
    srun = fake_bin / "srun"
    srun.write_text(FAKE_SRUN.format(python=sys.executable))
    srun.chmod(0o755)
    script = workdir / "srun-block.sh"
    script.write_text(f"set -e\n{block}\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCHX_")}
    env["PATH"] = f"{fake_bin}{os.pathsep}{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["SLURM_JOB_ID"] = slurm_job_id
    done = subprocess.run(
        ["bash", str(script)], cwd=workdir, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


#: A job's entrypoint args that dump its whole environment to the JSON file named by argv[1].
DUMP_ENV_CODE = (
    "import json, os, sys; "
    "json.dump(dict(os.environ), open(sys.argv[1], 'w', encoding='utf-8'), ensure_ascii=False)"
)


def read_json(path: Path) -> dict[str, str]:
    data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return data


# --------------------------------------------------------------------------- Kubernetes
def kubelet_expand(value: str, defined: Mapping[str, str]) -> str:
    """The kubelet's expansion of an env value (kubernetes third_party/forked/golang/expansion).

    ``$(NAME)`` becomes the value of an env var defined earlier in the container (unchanged if
    not defined), ``$$`` becomes ``$``; any other ``$`` stays. See ``V1EnvVar.value``'s docs.
    """
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(value):
        if value[cursor] == "$" and cursor + 1 < len(value):
            out.append(value[checkpoint:cursor])
            rest = value[cursor + 1 :]
            if rest[0] == "$":
                out.append("$")
                advance = 1
            elif rest[0] == "(":
                close = rest.find(")", 1)
                if close == -1:
                    out.append("$(")
                    advance = 1
                else:
                    name = rest[1:close]
                    out.append(defined.get(name, f"$({name})"))
                    advance = close + 1
            else:
                out.append("$" + rest[0])
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + value[checkpoint:]


def kubelet_container_env(env_list: list[dict[str, str]]) -> dict[str, str]:
    """A container's process env as the kubelet builds it from ``spec.containers[].env``."""
    result: dict[str, str] = {}
    for item in env_list:
        result[item["name"]] = kubelet_expand(item.get("value", ""), result)
    return result
