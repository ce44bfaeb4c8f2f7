"""Kubernetes specs checked as a cluster would check them (no cluster runs here).

The Volcano Job TorchX emits is serialised with the kubernetes client, each task's pod template
is read back into the client's models (and must serialise to the same object), and validated
against the Kubernetes OpenAPI schemas of a pinned Kubernetes version in strict mode (unknown
fields are errors), with `kubernetes-validate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

kubernetes = pytest.importorskip("kubernetes")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

from torchx.runner import get_runner  # noqa: E402

from tests.cli_support import kubernetes_dryrun_cfg, kubernetes_model  # noqa: E402

#: The Kubernetes version whose OpenAPI schemas the pod templates must satisfy.
K8S_VERSION = "1.31.0"
HOSTILE = "prepare,v1 \"q\" 's' $HOME $$ $(TORCHX_JOB_ID) \\ \n é 日本"


def dryrun_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, namespace: str | None
) -> dict[str, Any]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCHX_TRACKERS", "fsspec,lineage_fsspec")
    monkeypatch.setenv("TORCHX_TRACKER_FSSPEC_CONFIG", str(tmp_path / "runs"))
    monkeypatch.setenv("TORCHX_TRACKER_LINEAGE_FSSPEC_CONFIG", str(tmp_path / "runs"))
    monkeypatch.setenv("TORCHX_PARENT_RUN_ID", HOSTILE)
    cfg = kubernetes_dryrun_cfg(**({"namespace": namespace} if namespace else {}))
    with get_runner() as runner:
        info = runner.dryrun_component(
            "dist.ddp", ["-j", "2x1", "--script", "train.py"], "kubernetes", cfg=cfg, workspace=None
        )
    job = info.request.resource
    serialised: dict[str, Any] = kubernetes.client.ApiClient().sanitize_for_serialization(job)
    return serialised


@pytest.mark.parametrize("namespace", [None, "team-a"])
def test_pod_templates_validate_against_kubernetes_openapi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, namespace: str | None
) -> None:
    job = dryrun_job(tmp_path, monkeypatch, namespace)
    assert job["apiVersion"] == "batch.volcano.sh/v1alpha1" and job["kind"] == "Job"
    tasks = job["spec"]["tasks"]
    assert len(tasks) == 2
    for task in tasks:
        pod_template = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": task["name"]},
            "template": task["template"],
        }
        kubernetes_validate.validate(pod_template, K8S_VERSION, strict=True)


@pytest.mark.parametrize("namespace", [None, "team-a"])
def test_pod_templates_round_trip_through_client_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, namespace: str | None
) -> None:
    job = dryrun_job(tmp_path, monkeypatch, namespace)
    api = kubernetes.client.ApiClient()
    for task in job["spec"]["tasks"]:
        model = kubernetes_model(task["template"], "V1PodTemplateSpec")
        assert api.sanitize_for_serialization(model) == task["template"]
        env = {e.name: e.value for e in model.spec.containers[0].env}
        ns = namespace or "default"
        assert env["TORCHX_JOB_ID"] == f"kubernetes://torchx/{ns}:{job['metadata']['name']}"
        assert env["TORCHX_TRACKERS"] == "fsspec,lineage_fsspec"
        assert env["TORCHX_TRACKER_LINEAGE_FSSPEC_CONFIG"] == str(tmp_path / "runs")


def test_an_invalid_pod_template_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The validator is strict: a misspelt field fails (so the test above can fail)."""
    job = dryrun_job(tmp_path, monkeypatch, None)
    template = job["spec"]["tasks"][0]["template"]
    template["spec"]["containers"][0]["enviroment"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(
            {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": "x"},
                "template": template,
            },
            K8S_VERSION,
            strict=True,
        )
