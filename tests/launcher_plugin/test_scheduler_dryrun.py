"""The tracked schedulers end to end, up to the request each scheduler would submit.

Every test goes through TorchX's own ``Runner.dryrun`` (which reads the launching env, as
``torchx run`` does) and then reads the tracking env back out of the scheduler request of EVERY
replica of EVERY role. Hostile values are then followed further, through what sits between the
request and the job's process:

* Slurm: the sbatch script's ``srun`` line is run by bash with a fake ``srun`` that honours
  ``--export=ALL,K=V,...`` exactly as real srun does (split on every comma);
* Kubernetes: the Volcano job is serialized with the kubernetes client and each task's pod
  template deserialized again; and the kubelet's ``$(VAR)`` / ``$$`` expansion of env values is
  applied as the kubelet would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torchx.runner.config as torchx_config
from kubernetes.client import ApiClient, V1PodTemplateSpec
from torchx.components import dist as torchx_dist
from torchx.runner import Runner, get_runner
from torchx.schedulers.slurm_scheduler import create_scheduler as create_plain_slurm
from torchx.specs import AppDef, AppDryRunInfo, Role, macros

from tests.cli_support import kubernetes_dryrun_cfg, kubernetes_model
from tests.launcher_plugin.hostile_helpers import (
    DATA_URL_SAFE,
    DUMP_ENV_CODE,
    HOSTILE_FRAGMENTS,
    SESSION,
    TORCHX,
    VENV_BIN,
    fsspec_data_url_text,
    kubelet_container_env,
    kubelet_expand,
    parent_run_id_for,
    properties_for,
    read_json,
    run_srun_block,
    srun_block,
    srun_export_args,
    store_dir,
    tracking_env,
)
from trackers.errors import TrackerConfigError, TrackerNotFoundError

SCHEDULERS = ["local_cwd", "local_docker", "slurm", "kubernetes"]
BASE_CFG: dict[str, dict[str, object]] = {
    "local_cwd": {},
    "local_docker": {},
    "slurm": {},
    "kubernetes": kubernetes_dryrun_cfg(),
}
_ENV_ARG = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.DOTALL)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def isolated_launch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Launch from an empty directory: no .torchxconfig (cwd, $HOME or TORCHXCONFIG) is read."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TORCHXCONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(torchx_config, "DEFAULT_CONFIG_DIRS", [str(tmp_path)])
    # TorchX's slurm dryrun asks `sinfo` for the partition's memory: keep these tests
    # independent of whether a Slurm is installed, configured or running on this machine.
    from torchx.schedulers.slurm_scheduler import SlurmScheduler

    monkeypatch.setattr(SlurmScheduler, "_partition_memmb", lambda self, partition: None)


@pytest.fixture
def runner() -> Iterator[Runner]:
    with get_runner() as r:
        yield r


@pytest.fixture
def launching_env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set the launching process's tracking env, the channel ``torchx run --tracker`` uses."""

    def set_env(trackers: dict[str, str | None], parent_run_id: str | None = None) -> None:
        monkeypatch.setenv("TORCHX_TRACKERS", ",".join(trackers))
        for name, config in trackers.items():
            if config is not None:
                monkeypatch.setenv(f"TORCHX_TRACKER_{name.upper()}_CONFIG", config)
        if parent_run_id is not None:
            monkeypatch.setenv("TORCHX_PARENT_RUN_ID", parent_run_id)

    return set_env


# --------------------------------------------------------------------------- apps
def ddp_app() -> AppDef:
    """TorchX's dist.ddp, two nodes of one process: one role, two replicas."""
    return torchx_dist.ddp(script="train.py", j="2x1")


def two_role_app(out_dir: Path) -> AppDef:
    """Two roles (2 + 1 replicas); each replica dumps its env to out_dir/env-ROLE-REPLICA.json."""

    def role(name: str, replicas: int) -> Role:
        return Role(
            name=name,
            image="ghcr.io/pytorch/torchx:0.7.0",
            entrypoint=sys.executable,
            args=["-c", DUMP_ENV_CODE, f"{out_dir}/env-{name}-{macros.replica_id}.json"],
            num_replicas=replicas,
            env={"USER_VAR": "kept"},
        )

    return AppDef(name="tworole", roles=[role("trainer", 2), role("reader", 1)])


# --------------------------------------------------------------------------- request readers
deserialize = kubernetes_model


def kubernetes_tasks(info: AppDryRunInfo[Any]) -> tuple[str, list[dict[str, Any]]]:
    """(Volcano job name, the tasks as the API server receives them)."""
    with ApiClient() as api:
        resource = api.sanitize_for_serialization(info.request.resource)
    return resource["metadata"]["name"], resource["spec"]["tasks"]


def slurm_replica_env(replica: Any) -> dict[str, str]:
    """A Slurm replica's env: its --export env plus any ``env -- K=V`` prefix of its command."""
    env = dict(replica.env)
    if replica.entrypoint == "env" and replica.args[:1] == ["--"]:
        for arg in replica.args[1:]:
            match = _ENV_ARG.fullmatch(arg)
            if match is None:
                break
            env[match.group(1)] = match.group(2)
    return env


def replica_envs(scheduler: str, info: AppDryRunInfo[Any]) -> tuple[str, dict[str, dict[str, str]]]:
    """(the app id the scheduler will report, replica label -> env) of a dryrun request."""
    request = info.request
    if scheduler == "local_cwd":
        envs = {
            f"{role}/{i}": dict(param.env)
            for role, params in request.role_params.items()
            for i, param in enumerate(params)
        }
        return request.app_id, envs
    if scheduler == "local_docker":
        envs = {}
        for container in request.containers:
            labels = container.kwargs["labels"]
            role = labels["torchx.pytorch.org/role-name"]
            envs[f"{role}/{labels['torchx.pytorch.org/replica-id']}"] = dict(
                container.kwargs["environment"]
            )
        return request.app_id, envs
    if scheduler == "slurm":
        envs = {name: slurm_replica_env(r) for name, r in request.replicas.items()}
        return macros.app_id, envs  # filled in from $SLURM_JOB_ID by the sbatch script
    if scheduler == "kubernetes":
        # What the API server receives, read back as the pod template the kubelet gets, and the
        # process env the kubelet builds from it.
        name, tasks = kubernetes_tasks(info)
        envs = {}
        for task in tasks:
            template = deserialize(task["template"], "V1PodTemplateSpec")
            assert isinstance(template, V1PodTemplateSpec)
            (container,) = template.spec.containers
            env_list = [{"name": e.name, "value": e.value} for e in container.env]
            envs[task["name"]] = kubelet_container_env(env_list)
        return name, envs
    raise AssertionError(scheduler)


def expected_job_id(scheduler: str, app_id: str, cfg: dict[str, str]) -> str:
    if scheduler == "kubernetes":
        return f"kubernetes://{SESSION}/{cfg.get('namespace') or 'default'}:{app_id}"
    return f"{scheduler}://{SESSION}/{app_id}"


def assert_tracking_env(
    env: dict[str, str], job_id: str, parent: str | None, lineage_root: Path, fsspec_root: Path
) -> None:
    """The exact tracking env of one replica (the fsspec data: URL compared by what it reads as)."""
    got = tracking_env(env)
    fsspec_config = got.pop("TORCHX_TRACKER_FSSPEC_CONFIG")
    expected = {
        "TORCHX_JOB_ID": job_id,
        "TORCHX_TRACKERS": "lineage_fsspec,fsspec",
        "TORCHX_TRACKER_LINEAGE_FSSPEC_CONFIG": str(lineage_root),
    }
    if parent is not None:
        expected["TORCHX_PARENT_RUN_ID"] = parent
    assert got == expected
    assert fsspec_data_url_text(fsspec_config) == properties_for(fsspec_root)


# --------------------------------------------------------------------------- plain values
@pytest.mark.parametrize("component", ["dist.ddp", "lineage.ddp"])
@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_dryrun_sets_exact_tracking_env_in_every_ddp_replica(
    scheduler: str,
    component: str,
    runner: Runner,
    launching_env: Callable[..., None],
    tmp_path: Path,
) -> None:
    """The component found by name, as ``torchx run`` does; ``lineage.ddp`` takes the parent
    run id as a component argument instead of from the launching env."""
    lineage_root, fsspec_root = tmp_path / "runs", tmp_path / "torchx-runs"
    parent = "local_cwd://torchx/parent-1"
    args = ["-j", "2x1", "--script", "train.py"]
    if component == "lineage.ddp":
        launching_env({"lineage_fsspec": str(lineage_root), "fsspec": str(fsspec_root)})
        args += ["--parent_run_id", parent]
    else:
        launching_env(
            {"lineage_fsspec": str(lineage_root), "fsspec": str(fsspec_root)}, parent_run_id=parent
        )
    cfg = BASE_CFG[scheduler]
    info = runner.dryrun_component(component, args, scheduler, cfg=cfg, workspace=None)

    app_id, envs = replica_envs(scheduler, info)
    assert len(envs) == 2
    for env in envs.values():
        assert_tracking_env(
            env, expected_job_id(scheduler, app_id, cfg), parent, lineage_root, fsspec_root
        )
    assert not lineage_root.exists() and not fsspec_root.exists(), "a dryrun created a store"


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_dryrun_sets_exact_tracking_env_in_every_role_of_a_two_role_app(
    scheduler: str, runner: Runner, launching_env: Callable[..., None], tmp_path: Path
) -> None:
    lineage_root, fsspec_root = tmp_path / "runs", tmp_path / "torchx-runs"
    launching_env({"lineage_fsspec": str(lineage_root), "fsspec": str(fsspec_root)})
    cfg = BASE_CFG[scheduler]
    info = runner.dryrun(two_role_app(tmp_path), scheduler, cfg=cfg, workspace=None)

    app_id, envs = replica_envs(scheduler, info)
    assert len(envs) == 3
    for env in envs.values():
        assert env["USER_VAR"] == "kept"
        assert_tracking_env(
            env, expected_job_id(scheduler, app_id, cfg), None, lineage_root, fsspec_root
        )


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_dryrun_without_trackers_sets_only_the_job_id(scheduler: str, runner: Runner) -> None:
    cfg = BASE_CFG[scheduler]
    info = runner.dryrun(ddp_app(), scheduler, cfg=cfg, workspace=None)
    app_id, envs = replica_envs(scheduler, info)
    for env in envs.values():
        assert tracking_env(env) == {"TORCHX_JOB_ID": expected_job_id(scheduler, app_id, cfg)}


@pytest.mark.parametrize("namespace", [None, "team-a"])
def test_kubernetes_job_id_is_the_handle_torchx_run_prints(
    namespace: str | None, runner: Runner, launching_env: Callable[..., None], tmp_path: Path
) -> None:
    """``schedule()`` returns ``NAMESPACE:NAME`` (NAME = the Volcano job's metadata.name)."""
    launching_env({"lineage_fsspec": str(tmp_path / "runs")})
    cfg = dict(BASE_CFG["kubernetes"], **({"namespace": namespace} if namespace else {}))
    info = runner.dryrun(two_role_app(tmp_path), "kubernetes", cfg=cfg, workspace=None)

    name, envs = replica_envs("kubernetes", info)
    handle = f"kubernetes://{SESSION}/{namespace or 'default'}:{name}"
    assert {env["TORCHX_JOB_ID"] for env in envs.values()} == {handle}


# --------------------------------------------------------------------------- hostile values
#: (scheduler, cfg) pairs whose request holds each replica's env as data. Slurm's env is only
#: known once bash and srun have run the script: see the srun tests below.
HOSTILE_CASES = [
    ("local_cwd", {}),
    ("local_docker", {}),
    ("kubernetes", kubernetes_dryrun_cfg()),
    ("kubernetes", kubernetes_dryrun_cfg(namespace="team-a")),
]


@pytest.mark.parametrize(
    ("scheduler", "cfg"),
    HOSTILE_CASES,
    ids=["local_cwd", "local_docker", "kubernetes", "kubernetes-team-a"],
)
@pytest.mark.parametrize("fragment", list(HOSTILE_FRAGMENTS), ids=list(HOSTILE_FRAGMENTS))
def test_hostile_values_reach_every_replica_byte_for_byte(
    scheduler: str,
    cfg: dict[str, str],
    fragment: str,
    runner: Runner,
    launching_env: Callable[..., None],
    tmp_path: Path,
) -> None:
    """Parent run id and tracker configs equal the launching values exactly in every replica.

    Kubernetes: the Volcano job through the kubernetes client's serializer, each task's pod
    template deserialized again, then the kubelet's expansion of env values (``$(VAR)``, ``$$``)
    applied: what the container's process sees. The job id is ``kubernetes://SESSION/NS:NAME``.
    """
    value = HOSTILE_FRAGMENTS[fragment]
    parent = parent_run_id_for(value)
    lineage_root = store_dir(tmp_path, value, "lineage")
    fsspec_root = store_dir(tmp_path, DATA_URL_SAFE.get(fragment, "no-newline"), "fsspec")
    launching_env(
        {"lineage_fsspec": str(lineage_root), "fsspec": str(fsspec_root)}, parent_run_id=parent
    )
    info = runner.dryrun(two_role_app(tmp_path), scheduler, cfg=cfg, workspace=None)

    app_id, envs = replica_envs(scheduler, info)
    assert len(envs) == 3
    for env in envs.values():
        assert env["USER_VAR"] == "kept"
        assert_tracking_env(
            env, expected_job_id(scheduler, app_id, cfg), parent, lineage_root, fsspec_root
        )


def test_kubelet_emulation_follows_the_documented_rules() -> None:
    defined = {"A": "x"}
    assert kubelet_expand("$(A)", defined) == "x"
    assert kubelet_expand("$$(A)", defined) == "$(A)"
    assert kubelet_expand("$(B)", defined) == "$(B)"
    assert kubelet_expand("$$", defined) == "$"
    assert kubelet_expand("$HOME ${app_id} $", defined) == "$HOME ${app_id} $"
    assert kubelet_expand("$(A", defined) == "$(A"


#: What srun's --export parser treats specially: it splits the list on commas outside quotes and
#: strips quotes (Slurm's _find_quote_token). It does no ``$`` expansion, so ``$HOME``/``$$`` may
#: pass through --export as they are; ``${app_id}`` is TorchX's concern (see the srun test below).
SRUN_EXPORT_SPECIAL = (",", "'", '"', "\n")


@pytest.mark.parametrize("fragment", list(HOSTILE_FRAGMENTS), ids=list(HOSTILE_FRAGMENTS))
def test_slurm_script_passes_no_comma_or_quote_value_through_srun_export(
    fragment: str, runner: Runner, launching_env: Callable[..., None], tmp_path: Path
) -> None:
    value = HOSTILE_FRAGMENTS[fragment]
    parent = parent_run_id_for(value)
    lineage_root = store_dir(tmp_path, value, "lineage")
    launching_env({"lineage_fsspec": str(lineage_root)}, parent_run_id=parent)
    info = runner.dryrun(two_role_app(tmp_path), "slurm", cfg={}, workspace=None)

    script = info.request.materialize()
    assert str(info).endswith(script)
    exports = srun_export_args(srun_block(script))
    assert len(exports) == 3  # one per replica (heterogeneous job components)
    for export in exports:
        assert export.startswith("--export=ALL,")
        assert "'" not in export and '"' not in export and "\n" not in export, export
        for item in export[len("--export=ALL,") :].split(","):
            key, sep, _ = item.partition("=")
            assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), (item, export)
        if any(c in value for c in SRUN_EXPORT_SPECIAL):
            assert parent not in export
            assert str(lineage_root) not in export


@pytest.mark.parametrize("fragment", list(HOSTILE_FRAGMENTS), ids=list(HOSTILE_FRAGMENTS))
def test_slurm_srun_line_delivers_hostile_values_byte_for_byte(
    fragment: str, runner: Runner, launching_env: Callable[..., None], tmp_path: Path
) -> None:
    """The sbatch script's srun command, run by bash through a srun that splits --export on
    commas: every replica's process gets the launching values and the printed handle."""
    value = HOSTILE_FRAGMENTS[fragment]
    parent = parent_run_id_for(value)
    lineage_root = store_dir(tmp_path, value, "lineage")
    fsspec_root = store_dir(tmp_path, DATA_URL_SAFE.get(fragment, "no-newline"), "fsspec")
    launching_env(
        {"lineage_fsspec": str(lineage_root), "fsspec": str(fsspec_root)}, parent_run_id=parent
    )
    out = tmp_path / "out"
    out.mkdir()
    info = runner.dryrun(two_role_app(out), "slurm", cfg={}, workspace=None)

    run_srun_block(srun_block(info.request.materialize()), tmp_path, slurm_job_id="1234")
    dumps = sorted(out.glob("env-*.json"))
    assert [p.name for p in dumps] == [
        "env-reader-0.json",
        "env-trainer-0.json",
        "env-trainer-1.json",
    ]
    for dump in dumps:
        env = read_json(dump)
        assert env["USER_VAR"] == "kept"
        assert_tracking_env(env, f"slurm://{SESSION}/1234", parent, lineage_root, fsspec_root)


def test_fake_srun_splits_export_on_commas_like_real_srun(tmp_path: Path) -> None:
    """TorchX's own (untracked) Slurm scheduler passes env through --export; the fake srun
    must corrupt a comma value there, or the test above could not catch a regression."""
    out = tmp_path / "out"
    out.mkdir()
    app = AppDef(
        name="plain",
        roles=[
            Role(
                name="r",
                image="",
                entrypoint=sys.executable,
                args=["-c", DUMP_ENV_CODE, f"{out}/env.json"],
                env={"X": "a,b", "Y": "plain"},
            )
        ],
    )
    info = create_plain_slurm("torchx").submit_dryrun(app, {})
    run_srun_block(srun_block(info.request.materialize()), tmp_path)
    env = read_json(out / "env.json")
    assert env["Y"] == "plain"
    assert env["X"] == "a"  # what real srun does with --export=ALL,X=a,b


def test_cli_slurm_dryrun_with_tracker_flags_delivers_values_to_the_job(tmp_path: Path) -> None:
    """``torchx run --dryrun -s slurm --tracker ... --parent-run-id ...``: the printed sbatch
    script's srun line, run through the fake srun, hands the job the flags' values.

    (Every hostile fragment but ``${app_id}``, whose Slurm defect has its own case above.)"""
    value = " ".join(v for k, v in HOSTILE_FRAGMENTS.items() if k not in ("all", "app_id_macro"))
    parent = parent_run_id_for(value)
    lineage_root = store_dir(tmp_path, value, "lineage")
    fsspec_root = store_dir(tmp_path, DATA_URL_SAFE["comma"], "fsspec")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCHX")}
    env.update(HOME=str(tmp_path), PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}")
    done = subprocess.run(
        [
            TORCHX,
            "run",
            "--dryrun",
            "-s",
            "slurm",
            "--tracker",
            f"lineage_fsspec={lineage_root}",
            "--tracker",
            f"fsspec={fsspec_root}",
            "--parent-run-id",
            parent,
            "utils.python",
            "-c",
            "import json, os; json.dump(dict(os.environ), open('job-env.json', 'w'))",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    run_srun_block(srun_block(done.stdout), tmp_path, slurm_job_id="77")
    job_env = read_json(tmp_path / "job-env.json")
    assert_tracking_env(job_env, f"slurm://{SESSION}/77", parent, lineage_root, fsspec_root)
    assert not lineage_root.exists() and not fsspec_root.exists(), "a dryrun created a store"


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_dryrun_refuses_unknown_tracker_listing_known_ones(
    scheduler: str, runner: Runner, launching_env: Callable[..., None]
) -> None:
    launching_env({"nosuch": "x"})
    with pytest.raises(TrackerNotFoundError, match=r"'nosuch'.*known trackers: .*lineage_fsspec"):
        runner.dryrun(ddp_app(), scheduler, cfg=BASE_CFG[scheduler], workspace=None)


@pytest.mark.parametrize("config", ["{url: 5}", "nosuchproto://x"])
@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_dryrun_refuses_malformed_fsspec_config_naming_the_env_var(
    scheduler: str, config: str, runner: Runner, launching_env: Callable[..., None]
) -> None:
    launching_env({"fsspec": config})
    with pytest.raises(TrackerConfigError, match="TORCHX_TRACKER_FSSPEC_CONFIG"):
        runner.dryrun(ddp_app(), scheduler, cfg=BASE_CFG[scheduler], workspace=None)


def test_run_with_unknown_tracker_submits_nothing(
    runner: Runner, launching_env: Callable[..., None], tmp_path: Path
) -> None:
    launching_env({"lineage_fsspec": str(tmp_path / "runs"), "nosuch": None})
    app = AppDef(
        name="never",
        roles=[
            Role(
                name="r",
                image="",
                entrypoint=sys.executable,
                args=["-c", "open('ran', 'w').close()"],
            )
        ],
    )
    with pytest.raises(TrackerNotFoundError):
        runner.run(app, "local_cwd", cfg={}, workspace=None)
    assert not (tmp_path / "ran").exists()
    assert not (tmp_path / "runs").exists()
