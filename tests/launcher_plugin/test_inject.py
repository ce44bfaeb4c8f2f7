"""Pure unit tests of the env injection (the integrated dryrun is in test_scheduler_dryrun.py)."""

from __future__ import annotations

from pathlib import Path
from string import Template

import fsspec
import pytest
from torchx.schedulers.slurm_scheduler import SlurmReplicaRequest
from torchx.specs import AppDef, Role, macros

from launcher_plugin.inject import (
    apply_plan,
    escape_macros,
    job_id_template,
    plan_tracking,
    slurm_carry_env,
)
from trackers.errors import TrackerConfigError, TrackerNotFoundError

HOSTILE = "x,y \"q\" 's' $HOME $$ ${app_id} \\ \n é 日本"


def two_role_app(env: dict[str, str]) -> AppDef:
    return AppDef(
        name="app",
        roles=[
            Role(name="trainer", image="img", entrypoint="python", args=["t.py"], env=dict(env)),
            Role(name="reader", image="img", entrypoint="python", args=["r.py"], env=dict(env)),
        ],
    )


@pytest.mark.parametrize(
    ("scheduler", "cfg", "expected"),
    [
        ("local_cwd", {}, "local_cwd://torchx/${app_id}"),
        ("slurm", {}, "slurm://torchx/${app_id}"),
        ("kubernetes", {}, "kubernetes://torchx/default:${app_id}"),
        ("kubernetes", {"namespace": "ml"}, "kubernetes://torchx/ml:${app_id}"),
        ("kubernetes_mcad", {"namespace": "ml"}, "kubernetes_mcad://torchx/ml:${app_id}"),
    ],
)
def test_job_id_equals_the_handle_torchx_prints(
    scheduler: str, cfg: dict[str, str], expected: str
) -> None:
    assert job_id_template(scheduler, "torchx", cfg) == expected


def test_plan_sets_the_same_env_in_every_role(tmp_path: Path) -> None:
    app = two_role_app(
        {
            "TORCHX_TRACKERS": "fsspec,lineage_fsspec",
            "TORCHX_TRACKER_FSSPEC_CONFIG": str(tmp_path),
            "TORCHX_TRACKER_LINEAGE_FSSPEC_CONFIG": str(tmp_path),
            "TORCHX_PARENT_RUN_ID": "local_cwd://torchx/p",
            "USER_VAR": "kept",
        }
    )
    plan = plan_tracking(app, "local_cwd", "torchx", {})
    apply_plan(app, plan)
    for role in app.roles:
        assert role.env["TORCHX_JOB_ID"] == "local_cwd://torchx/${app_id}"
        assert role.env["TORCHX_TRACKERS"] == "fsspec,lineage_fsspec"
        assert role.env["TORCHX_PARENT_RUN_ID"] == "local_cwd://torchx/p"
        assert role.env["TORCHX_TRACKER_LINEAGE_FSSPEC_CONFIG"] == str(tmp_path)
        assert role.env["USER_VAR"] == "kept"
        with fsspec.open(role.env["TORCHX_TRACKER_FSSPEC_CONFIG"], "rt") as f:
            assert f.read() == f"protocol=file\nroot_path={tmp_path}\n"
    assert plan.run_id("abc") == "local_cwd://torchx/abc"


def test_plan_refuses_unknown_tracker_before_submit() -> None:
    app = two_role_app({"TORCHX_TRACKERS": "nosuch"})
    with pytest.raises(TrackerNotFoundError, match="nosuch"):
        plan_tracking(app, "local_cwd", "torchx", {})


def test_plan_names_the_env_var_of_a_bad_config() -> None:
    app = two_role_app({"TORCHX_TRACKERS": "fsspec", "TORCHX_TRACKER_FSSPEC_CONFIG": "{url: 5}"})
    with pytest.raises(TrackerConfigError, match="TORCHX_TRACKER_FSSPEC_CONFIG"):
        plan_tracking(app, "local_cwd", "torchx", {})


def test_escaped_values_survive_torchx_macro_substitution(tmp_path: Path) -> None:
    app = two_role_app({"TORCHX_PARENT_RUN_ID": HOSTILE, "TORCHX_JOB_ID": "x"})
    plan = plan_tracking(app, "local_cwd", "torchx", {})
    apply_plan(app, plan)
    escaped = escape_macros(app, plan)
    values = macros.Values(img_root="", app_id="app-1", replica_id="0", rank0_env="R")
    role = values.apply(escaped.roles[0])
    assert role.env["TORCHX_PARENT_RUN_ID"] == HOSTILE
    assert role.env["TORCHX_JOB_ID"] == "local_cwd://torchx/app-1"
    assert app.roles[0].env["TORCHX_PARENT_RUN_ID"] == HOSTILE  # the original is untouched
    # Without escaping TorchX would have changed it:
    assert Template(HOSTILE).safe_substitute(app_id="app-1") != HOSTILE


def test_slurm_values_srun_export_cannot_carry_go_through_env_prefix() -> None:
    replica = SlurmReplicaRequest(
        name="trainer-0",
        entrypoint="python",
        args=["t.py", "--lr", "0.1"],
        srun_opts={},
        sbatch_opts={},
        env={"SAFE": "abc", "TORCHX_JOB_ID": "slurm://torchx/${app_id}", "BAD": "a,b"},
    )

    class Request:
        replicas = {"trainer-0": replica}

    slurm_carry_env(Request())
    _, srun = replica.materialize()
    export = next(a for a in srun if a.startswith("--export="))
    assert "a,b" not in export and "SAFE=abc" in export
    assert replica.entrypoint == "env"
    assert replica.args == ["--", "BAD=a,b", "python", "t.py", "--lr", "0.1"]
