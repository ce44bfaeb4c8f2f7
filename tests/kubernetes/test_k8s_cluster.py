"""Two chained jobs on a real Kubernetes cluster; runs only where one is configured.

Needs (else skipped, with the missing piece named):

* ``KUBECONFIG`` pointing at a reachable cluster with Volcano installed (TorchX's kubernetes
  scheduler submits Volcano jobs), e.g. kind: ``kind create cluster`` then Volcano's installer;
* ``TORCHX_LINEAGE_K8S_IMAGE``: an image with Python, ``torchx`` and ``torchx-lineage``
  installed (``pip install torchx-lineage[s3]`` on top of ``ghcr.io/pytorch/torchx``), loaded
  into the cluster (``kind load docker-image ...``);
* ``TORCHX_LINEAGE_K8S_TRACKER``: a ``--tracker`` value both this machine and the pods reach,
  e.g. ``s3={url: s3://runs/k8s, endpoint_url: http://minio.example:9000}``;
* optionally ``TORCHX_LINEAGE_K8S_CFG`` (scheduler args, default ``queue=default``) and
  ``TORCHX_LINEAGE_K8S_SECRETS`` (comma-separated ``--tracker-secret`` values, e.g.
  ``AWS_SECRET_ACCESS_KEY=secret:aws:secret``).

It never ran on the machines this project is built on (no cluster there); docs/kubernetes.md
says how to run it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_support import job_ids

BIN = Path(sys.executable).parent
HANDLE = re.compile(r"^kubernetes://[^\s]+$", re.MULTILINE)


def _cluster_reachable() -> str | None:
    if not os.environ.get("KUBECONFIG"):
        return "KUBECONFIG is not set"
    try:
        from kubernetes import client, config

        config.load_kube_config()
        client.CoreV1Api().list_namespace(_request_timeout=5)
    except Exception as e:
        return f"the cluster in KUBECONFIG is not reachable: {type(e).__name__}: {e}"
    for var in ("TORCHX_LINEAGE_K8S_IMAGE", "TORCHX_LINEAGE_K8S_TRACKER"):
        if not os.environ.get(var):
            return f"{var} is not set (see this module's docstring)"
    return None


#: No Kubernetes cluster runs on these machines or in CI: the one skip CI accepts besides
#: tests that do not apply to the installed TorchX (tests/conftest.py).
pytestmark = pytest.mark.skipif(
    _cluster_reachable() is not None, reason=f"no Kubernetes cluster: {_cluster_reachable()}"
)


def torchx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "torchx"), *args], capture_output=True, text=True, timeout=1800, check=False
    )


def launch(code: str, parent: str | None = None) -> str:
    tracker = os.environ["TORCHX_LINEAGE_K8S_TRACKER"]
    cfg = os.environ.get("TORCHX_LINEAGE_K8S_CFG", "queue=default")
    args = ["run", "-s", "kubernetes", "--workspace", "", "-cfg", cfg, "--wait"]
    args += ["--tracker", tracker]
    for secret in filter(None, os.environ.get("TORCHX_LINEAGE_K8S_SECRETS", "").split(",")):
        args += ["--tracker-secret", secret]
    if parent:
        args += ["--parent-run-id", parent]
    args += ["utils.python", "--image", os.environ["TORCHX_LINEAGE_K8S_IMAGE"], "-c", code]
    done = torchx(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    found = HANDLE.findall(done.stdout)
    assert found, done.stdout
    return found[0]


def listed(*args: str) -> object:
    done = torchx(
        "tracker",
        "list",
        *args,
        "--tracker",
        os.environ["TORCHX_LINEAGE_K8S_TRACKER"],
        "--format",
        "json",
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_two_chained_jobs_are_tracked_and_linked() -> None:
    first = launch(
        "import os; from trackers import AppRun; r = AppRun.run_from_env();"
        "r.add_metadata(step=1, job_id=os.environ['TORCHX_JOB_ID']); r.log({'x': 1.0}, step=0)"
    )
    second = launch(
        "from torchx.tracker.api import AppRun; r = AppRun.run_from_env();r.add_metadata(step=2)",
        parent=first,
    )
    md = listed("metadata", first)
    assert isinstance(md, dict)
    assert md["step"] == 1 and md["launch.scheduler"] == "kubernetes"
    assert md["job_id"] == first  # the run id in the pod is the handle torchx run printed
    lineage = listed("lineage", second, "--sources-only")
    assert isinstance(lineage, dict) and lineage["ancestors"] == {first: 1}
    assert job_ids(listed("jobs", "--parent-run-id", first)) == [second]
    summary = listed("summary", first)
    assert isinstance(summary, dict) and summary["status"] == "SUCCEEDED"
