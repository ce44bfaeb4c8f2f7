"""The ``torchx`` CLI with torchx-lineage installed behaves as TorchX alone, on either TorchX.

Runs in whichever venv runs the suite (scripts/test.sh runs it on torchx 0.7.0 and on
torchx-nightly). "TorchX alone" is what a fresh interpreter that never imported our package
sees: we register no ``torchx.schedulers`` entry point, so that is TorchX's own answer.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.cli_support import clean_env, torchx
from tests.conftest import NOT_THIS_TORCHX
from trackers.backends.fsspec import create_tracker
from trackers.torchx_compat import has_plugin_registry

pytestmark = pytest.mark.e2e

NIGHTLY = has_plugin_registry()
HANDLE = re.compile(r"^local_cwd://torchx/\S+$", re.MULTILINE)
#: What TorchX prints when two registrations claim one name (nightly's plugin registry).
DUPLICATE_WARNINGS = re.compile(r"registered via both|duplicate plugin|registered by several")


def torchx_alone(tmp_path: Path, code: str) -> str:
    """``code``'s stdout in a fresh interpreter that never imports torchx-lineage."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


def test_help_lists_our_commands_and_theirs_without_warnings(tmp_path: Path) -> None:
    done = torchx(tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    for command in ("run", "tracker", "builtins", "runopts", "status", "log"):
        assert re.search(rf"\b{command}\b", done.stdout), command
    assert not DUPLICATE_WARNINGS.search(done.stderr), done.stderr


def test_builtins_keeps_torchx_components_and_adds_ours(tmp_path: Path) -> None:
    done = torchx(tmp_path, "builtins")
    assert done.returncode == 0, done.stderr
    for name in ("dist.ddp", "utils.python", "utils.echo", "lineage.python", "lineage.ddp"):
        assert re.search(rf"\b{re.escape(name)}\b", done.stdout), name
    assert not DUPLICATE_WARNINGS.search(done.stderr), done.stderr


def test_schedulers_and_default_are_torchx_own(tmp_path: Path) -> None:
    alone = json.loads(
        torchx_alone(
            tmp_path,
            "import json; from torchx.schedulers import get_scheduler_factories as f, "
            "get_default_scheduler_name as d; print(json.dumps([list(f()), d()]))",
        )
    )
    from torchx.schedulers import get_default_scheduler_name, get_scheduler_factories

    import launcher_plugin  # noqa: F401  (installs the tracked schedulers in this process)

    assert [list(get_scheduler_factories()), get_default_scheduler_name()] == alone
    assert alone[1] == "local_docker"  # TorchX's default on both versions
    if NIGHTLY:
        assert alone[0] == ["local_docker", "local_cwd", "slurm", "kubernetes"]
    else:
        assert alone[0][:4] == ["local_docker", "local_cwd", "slurm", "kubernetes"]
        assert len(alone[0]) == 10


def test_run_without_scheduler_flag_uses_torchx_default(tmp_path: Path) -> None:
    import argparse

    from launcher_plugin.cli.cmd_run import CmdRun

    parser = argparse.ArgumentParser()
    CmdRun().add_arguments(parser)
    args = parser.parse_args(["utils.echo", "--msg", "hi"])
    alone = torchx_alone(
        tmp_path,
        "from torchx.schedulers import get_default_scheduler_name; "
        "print(get_default_scheduler_name())",
    )
    assert args.scheduler == alone == "local_docker"


def test_run_without_scheduler_flag_submits_to_the_default(tmp_path: Path) -> None:
    """No Docker daemon runs here: the default scheduler, local_docker, is what fails."""
    done = torchx(tmp_path, "run", "--workspace", "", "utils.echo", "--msg", "hi", timeout=120)
    assert done.returncode != 0
    assert "docker" in done.stderr.lower(), done.stderr[-2000:]
    assert "aws_batch" not in done.stderr and "boto" not in done.stderr.lower()


@pytest.mark.parametrize("scheduler", ["local_cwd", "slurm", "kubernetes"])
def test_runopts_of_each_shipped_scheduler(tmp_path: Path, scheduler: str) -> None:
    done = torchx(tmp_path, "runopts", scheduler)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "no run options printed"
    assert not DUPLICATE_WARNINGS.search(done.stderr), done.stderr


def test_runopts_lists_what_torchx_alone_lists(tmp_path: Path) -> None:
    """`torchx runopts` through our CLI prints TorchX's own command's scheduler sections.

    TorchX's ``runopts`` command, run in an interpreter that never imports our package, is
    TorchX alone (0.7.0 alone stops at ``ray`` without the ray package: a NameError of its own).
    """
    code = (
        "import argparse, sys\n"
        "from torchx.cli.cmd_runopts import CmdRunopts\n"
        "try:\n"
        "    CmdRunopts().run(argparse.Namespace(scheduler=None))\n"
        "except Exception as e:\n"
        "    print('FAILED', type(e).__name__)\n"
    )
    alone = torchx_alone(tmp_path, code)
    done = torchx(tmp_path, "runopts")
    sections = re.compile(r"^(\w+):\s*$", re.MULTILINE)
    assert sections.findall(done.stdout) == sections.findall(alone)
    assert (done.returncode == 0) == ("FAILED" not in alone), done.stderr
    assert len(sections.findall(alone)) >= 4
    assert not DUPLICATE_WARNINGS.search(done.stderr), done.stderr


def test_run_json_prints_one_object_and_tracks(tmp_path: Path) -> None:
    if not NIGHTLY:
        pytest.skip(f"{NOT_THIS_TORCHX} `torchx run --json` exists on torchx-nightly only")
    store = tmp_path / "store"
    done = torchx(
        tmp_path,
        *("run", "--json", "-s", "local_cwd", "--tracker", f"lineage_fsspec={store}"),
        *("utils.python", "-c", "from trackers import AppRun; AppRun.run_from_env()"),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # exactly one JSON object, nothing else on stdout
    handle = result["handle"]
    assert result["state"] == "SUCCEEDED"
    tracker = create_tracker(str(store))
    assert tracker.status(handle) == "SUCCEEDED"
    assert tracker.metadata(handle)["launch.component"] == "utils.python"


def test_run_stdin_records_the_component(tmp_path: Path) -> None:
    if not NIGHTLY:
        pytest.skip(f"{NOT_THIS_TORCHX} `torchx run --stdin` exists on torchx-nightly only")
    store = tmp_path / "store"
    request = {
        "component_name": "utils.python",
        "scheduler": "local_cwd",
        "scheduler_args": {},
        "component_args_str": ["-c", "from trackers import AppRun; AppRun.run_from_env()"],
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "torchx"), "run", "--stdin"],
        input=json.dumps(request),
        cwd=tmp_path,
        env={
            **clean_env(tmp_path),
            "TORCHX_TRACKERS": "lineage_fsspec",
            "TORCHX_TRACKER_LINEAGE_FSSPEC_CONFIG": str(store),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (handle,) = HANDLE.findall(done.stdout)
    metadata = create_tracker(str(store)).metadata(handle)
    assert metadata["launch.component"] == "utils.python"
    assert metadata["launch.component_args"] == request["component_args_str"]


NAMESPACE_TRACKER = '''
from torchx.plugins import register

from trackers.backends.fsspec import create_tracker


@register.tracker(name="nsdemo")
def nsdemo(config):
    """A tracker registered only through TorchX's namespace-package registry."""
    return create_tracker(config)
'''


def test_tracker_registered_through_torchx_plugin_registry_is_found(tmp_path: Path) -> None:
    if not NIGHTLY:
        pytest.skip(f"{NOT_THIS_TORCHX} TorchX's plugin registry exists on torchx-nightly only")
    plugin_dir = tmp_path / "plugins" / "torchx_plugins" / "tracker"  # no __init__.py anywhere
    plugin_dir.mkdir(parents=True)
    (plugin_dir / "nsdemo_tracker.py").write_text(textwrap.dedent(NAMESPACE_TRACKER))
    store = tmp_path / "store"
    code = (
        "from trackers import AppRun; r = AppRun.run_from_env(); r.add_metadata(seen='ours');"
        "from torchx.tracker.api import AppRun as T; T.run_from_env().add_metadata(t='theirs')"
    )
    done = torchx(
        tmp_path,
        *("run", "-s", "local_cwd", "--tracker", f"nsdemo={store}"),
        *("utils.python", "-c", code),
        extra_env={"PYTHONPATH": str(tmp_path / "plugins")},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (handle,) = HANDLE.findall(done.stdout)
    metadata = create_tracker(str(store)).metadata(handle)
    assert metadata["seen"] == "ours" and metadata["t"] == "theirs"
    assert metadata["launch.run_id"] == handle  # the launcher built it too
    assert not DUPLICATE_WARNINGS.search(done.stderr), done.stderr


def test_torchx_apprun_finds_our_entry_point_trackers(tmp_path: Path) -> None:
    """TorchX's own AppRun (either version) builds our backends from their entry points."""
    store = tmp_path / "store"
    code = "from torchx.tracker.api import AppRun; AppRun.run_from_env().add_metadata(k='v')"
    done = torchx(
        tmp_path,
        *("run", "-s", "local_cwd", "--tracker", f"lineage_fsspec={store}"),
        *("utils.python", "-c", code),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (handle,) = HANDLE.findall(done.stdout)
    assert create_tracker(str(store)).metadata(handle)["k"] == "v"
    assert not DUPLICATE_WARNINGS.search(done.stderr), done.stderr


def test_run_masks_credentials_in_torchx_runner_log_lines(tmp_path: Path) -> None:
    """TorchX's runner logs tracker configs at INFO; the filter is attached in a real run."""
    config = f"{tmp_path}/runs/token=SECRETVALUE1"
    done = torchx(
        tmp_path,
        *("run", "--dryrun", "-s", "local_cwd", "--tracker", f"lineage_fsspec={config}"),
        *("utils.echo", "--msg", "hi"),
    )
    assert done.returncode == 0, done.stderr
    logged = [line for line in done.stderr.splitlines() if "racker configurations" in line]
    assert logged and "token=***" in logged[0], done.stderr
    assert "SECRETVALUE1" not in done.stderr


@pytest.mark.parametrize(
    ("flag", "code", "message"),
    [
        ("nosuch=x", 1, "unknown tracker 'nosuch'; known trackers:"),
        ("bad-name=x", 2, "must match [A-Za-z][A-Za-z0-9_]*"),
        ("mlflow=http://u:pw@127.0.0.1:9/", 1, "contains a password"),
    ],
    ids=["unknown-name", "not-an-env-var-name", "malformed-config"],
)
def test_bad_tracker_flag_stops_before_submitting(
    tmp_path: Path, flag: str, code: int, message: str
) -> None:
    done = torchx(tmp_path, "run", "-s", "local_cwd", "--tracker", flag, "utils.echo")
    assert done.returncode == code, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not HANDLE.search(done.stdout)  # nothing was submitted
