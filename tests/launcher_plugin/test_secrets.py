"""Secrets reach the job by reference: never in a spec, an sbatch script, a log or CLI output."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from launcher_plugin.secrets import SecretSpec, check_secrets, parse_secrets
from tests.cli_support import kubernetes_dryrun_cfg
from trackers.errors import TrackerConfigError

SECRET = "s3cr3t-VALUE-7f3a9c"
BIN = Path(sys.executable).parent


def test_parse_forms() -> None:
    assert SecretSpec.parse("MLFLOW_TRACKING_TOKEN") == SecretSpec("MLFLOW_TRACKING_TOKEN")
    assert SecretSpec.parse("TOKEN=secret:mlflow-creds:token") == SecretSpec(
        "TOKEN", "mlflow-creds", "token"
    )
    assert [
        s.env_var for s in parse_secrets([], {"TORCHX_TRACKER_SECRETS": "A, B=secret:s:k"})
    ] == [
        "A",
        "B",
    ]


@pytest.mark.parametrize("bad", ["1X", "X=vault:a:b", "X=secret:Bad_Name:k", "X=secret:ok:"])
def test_bad_specs_are_refused(bad: str) -> None:
    with pytest.raises(TrackerConfigError, match="--tracker-secret"):
        SecretSpec.parse(bad)


def test_scheduler_rules() -> None:
    plain, ref = SecretSpec("TOKEN"), SecretSpec("TOKEN", "creds", "token")
    check_secrets([plain], "local_cwd", {"TOKEN": "x"})
    check_secrets([ref], "kubernetes", {})
    with pytest.raises(TrackerConfigError, match="not set in the launching environment"):
        check_secrets([plain], "slurm", {})
    with pytest.raises(TrackerConfigError, match="secret:NAME:KEY"):
        check_secrets([plain], "kubernetes", {"TOKEN": "x"})
    with pytest.raises(TrackerConfigError, match="not on local_docker"):
        check_secrets([plain], "local_docker", {"TOKEN": "x"})


def torchx(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TORCHX_")}
    full_env.update(env)
    full_env["PATH"] = f"{BIN}{os.pathsep}{full_env.get('PATH', '')}"
    return subprocess.run(
        [str(BIN / "torchx"), "--log_level", "DEBUG", *args],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def everything_written(tmp_path: Path, *outputs: str) -> str:
    """All text the launch produced: CLI output and every file under tmp_path (store, logs)."""
    texts = list(outputs)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(texts)


@pytest.mark.parametrize("scheduler", ["local_cwd", "slurm"])
def test_dryrun_shows_no_secret_value(tmp_path: Path, scheduler: str) -> None:
    done = torchx(
        tmp_path,
        "run",
        "-s",
        scheduler,
        "--dryrun",
        "--tracker",
        f"fsspec={tmp_path / 'runs'}",
        "--tracker-secret",
        "MLFLOW_TRACKING_TOKEN",
        "utils.echo",
        "--msg",
        "hi",
        MLFLOW_TRACKING_TOKEN=SECRET,
    )
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert "MLFLOW_TRACKING_TOKEN" not in done.stdout  # not even the name goes into the spec


def test_kubernetes_spec_has_a_secret_reference(tmp_path: Path) -> None:
    kubernetes = pytest.importorskip("kubernetes")
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    from torchx.runner import get_runner

    os.environ["TORCHX_TRACKER_SECRETS"] = "MLFLOW_TRACKING_TOKEN=secret:mlflow-creds:token"
    os.environ["MLFLOW_TRACKING_TOKEN"] = SECRET  # present, and still must not be used
    try:
        with get_runner() as runner:
            info = runner.dryrun_component(
                "utils.echo",
                ["--msg", "hi"],
                "kubernetes",
                cfg=kubernetes_dryrun_cfg(),
                workspace=None,
            )
    finally:
        del os.environ["TORCHX_TRACKER_SECRETS"], os.environ["MLFLOW_TRACKING_TOKEN"]
    job: dict[str, Any] = kubernetes.client.ApiClient().sanitize_for_serialization(
        info.request.resource
    )
    assert SECRET not in json.dumps(job) + str(info)
    for task in job["spec"]["tasks"]:
        (ref,) = [e for e in task["template"]["spec"]["containers"][0]["env"] if "valueFrom" in e]
        assert ref == {
            "name": "MLFLOW_TRACKING_TOKEN",
            "valueFrom": {"secretKeyRef": {"key": "token", "name": "mlflow-creds"}},
        }
        kubernetes_validate.validate(
            {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": "t"},
                "template": task["template"],
            },
            "1.31.0",
            strict=True,
        )


@pytest.mark.e2e
def test_local_job_gets_the_value_and_nothing_records_it(tmp_path: Path) -> None:
    store = tmp_path / "runs"
    out = tmp_path / "seen.json"
    # The job reports a digest of what it received: the value itself must appear nowhere.
    code = (
        "import hashlib, json, os; from trackers import AppRun;"
        "AppRun.run_from_env().add_metadata(ok=1);"
        "seen = os.environ.get('MLFLOW_TRACKING_TOKEN', '').encode();"
        f"json.dump(hashlib.sha256(seen).hexdigest(), open({str(out)!r}, 'w'))"
    )
    done = torchx(
        tmp_path,
        "run",
        "-s",
        "local_cwd",
        "--tracker",
        f"fsspec={store}",
        "--tracker-secret",
        "MLFLOW_TRACKING_TOKEN",
        "utils.python",
        "-c",
        code,
        MLFLOW_TRACKING_TOKEN=SECRET,
    )
    assert done.returncode == 0, done.stderr
    # the job got it, through the environment
    assert json.loads(out.read_text()) == hashlib.sha256(SECRET.encode()).hexdigest()
    handle = next(line for line in done.stdout.splitlines() if line.startswith("local_cwd://"))
    listed = torchx(tmp_path, "tracker", "list", "metadata", handle, "--tracker", f"fsspec={store}")
    assert "MLFLOW_TRACKING_TOKEN <- launching environment" in listed.stdout
    assert SECRET not in everything_written(tmp_path, done.stdout, done.stderr, listed.stdout)


def test_unset_secret_fails_before_submitting(tmp_path: Path) -> None:
    done = torchx(
        tmp_path,
        "run",
        "-s",
        "local_cwd",
        "--tracker",
        f"fsspec={tmp_path / 'runs'}",
        "--tracker-secret",
        "MISSING_TOKEN",
        "utils.echo",
        "--msg",
        "hi",
    )
    assert done.returncode == 1
    assert "MISSING_TOKEN is not set in the launching environment" in done.stderr
    assert not (tmp_path / "runs").exists()
