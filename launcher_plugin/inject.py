"""Put the tracking env into every role of an AppDef so that it reaches the job intact.

TorchX's ``Runner.dryrun`` already copies ``TORCHX_TRACKERS``, the tracker configs,
``TORCHX_PARENT_RUN_ID`` and ``TORCHX_JOB_ID`` into ``role.env``. Three things then go wrong on
the way to the process, and this module fixes each where it happens:

1. Every scheduler applies ``string.Template.safe_substitute`` (TorchX macros) to env values, so
   ``$$`` becomes ``$`` and ``$app_id`` is replaced inside a config. :func:`escape_macros`
   doubles ``$`` in our values on the copy handed to the scheduler.
2. Slurm passes env as ``srun --export=ALL,K=V,...``, which splits on commas.
   :func:`slurm_carry_env` moves values that ``--export`` cannot carry into an
   ``env -- K=V ... <entrypoint>`` prefix, which the shell quotes byte for byte.
3. On Kubernetes the handle ``torchx run`` prints is ``kubernetes://SESSION/NAMESPACE:NAME`` but
   TorchX sets ``TORCHX_JOB_ID=kubernetes://SESSION/NAME``; :func:`job_id_template` adds the
   namespace so the run id in the pod equals the printed handle.

It also validates every tracker before anything is submitted, and rewrites ``fsspec`` configs
into the form TorchX's own ``fsspec`` factory reads (see :meth:`FsspecTracker.job_config`).
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping

from torchx.specs import AppDef, macros
from torchx.tracker.api import TrackerBase

from launcher_plugin.plan import TrackingPlan
from trackers.api import capabilities
from trackers.env import (
    ENV_TORCHX_JOB_ID,
    ENV_TORCHX_PARENT_RUN_ID,
    ENV_TORCHX_TRACKERS,
    parse_tracker_names,
    tracker_config_env_var_name,
    tracker_env,
)
from trackers.registry import create_tracker

logger: logging.Logger = logging.getLogger(__name__)

#: Schedulers whose ``schedule()`` returns ``NAMESPACE:NAME`` as the app id.
NAMESPACED_SCHEDULERS = frozenset({"kubernetes", "kubernetes_mcad"})

#: The name TorchX registers its own fsspec factory under: configs for it must be TorchX's form.
TORCHX_FSSPEC_NAME = "fsspec"


def job_id_template(scheduler: str, session: str, cfg: Mapping[str, object]) -> str:
    """``TORCHX_JOB_ID`` before the scheduler fills in ``${app_id}``; equals the printed handle.

    Same form as ``torchx.specs.builders.make_app_handle``: ``{scheduler}://{session}/{app_id}``.
    """
    if scheduler in NAMESPACED_SCHEDULERS:
        namespace = cfg.get("namespace") or "default"
        return f"{scheduler}://{session}/{namespace}:{macros.app_id}"
    return f"{scheduler}://{session}/{macros.app_id}"


def job_config(name: str, tracker: TrackerBase, config: str | None) -> str | None:
    """The config string a job gets for tracker ``name``.

    A backend that can say how to reopen itself from another process (``job_config``: absolute
    paths, the experiment pinned...) is asked; for the name ``fsspec`` the answer must also be
    readable by TorchX's own fsspec factory. Other trackers get their config unchanged.
    """
    made = capabilities(tracker).job_config(torchx_compatible=name == TORCHX_FSSPEC_NAME)
    return config if made is None else made


def plan_tracking(
    app: AppDef, scheduler: str, session: str, cfg: Mapping[str, object]
) -> TrackingPlan:
    """Validate and normalise the tracking env that the runner put into ``app``'s roles.

    Raises ``TrackerConfigError`` (naming the env var) for an unknown tracker or a bad config,
    before anything is submitted.
    """
    env = app.roles[0].env if app.roles else {}
    plan = TrackingPlan(
        job_id=job_id_template(scheduler, session, cfg),
        parent_run_id=env.get(ENV_TORCHX_PARENT_RUN_ID) or None,
    )
    configs: dict[str, str | None] = {}
    for name in parse_tracker_names(env.get(ENV_TORCHX_TRACKERS, "")):
        var = tracker_config_env_var_name(name)
        tracker = create_tracker(name, env.get(var), origin=var)
        plan.trackers[name] = tracker
        configs[name] = job_config(name, tracker, env.get(var))
    plan.env = tracker_env(configs, plan.job_id, plan.parent_run_id)
    return plan


def apply_plan(app: AppDef, plan: TrackingPlan) -> None:
    """Write the plan's env into every role (in place, as ``Runner.dryrun`` does)."""
    for role in app.roles:
        for key in [
            k for k in role.env if k.startswith("TORCHX_TRACKER_") and k.endswith("_CONFIG")
        ]:
            del role.env[key]
        role.env.pop(ENV_TORCHX_TRACKERS, None)
        role.env.update(plan.env)


def escape_macros(app: AppDef, plan: TrackingPlan, scheduler: str | None = None) -> AppDef:
    """A copy of ``app`` whose tracking values survive TorchX's macro substitution unchanged.

    On Kubernetes the kubelet then expands ``$(VAR)`` and turns ``$$`` into ``$`` in env values,
    so ``$`` is doubled once more there.
    """
    dollar = "$$$$" if scheduler in NAMESPACED_SCHEDULERS else "$$"
    escaped = copy.deepcopy(app)
    for role in escaped.roles:
        for key in plan.env:
            if key != ENV_TORCHX_JOB_ID and key in role.env:
                role.env[key] = role.env[key].replace("$", dollar)
    return escaped


# srun --export=ALL,K=V splits on commas; anything beyond this set goes through `env` instead.
_SRUN_EXPORT_SAFE = re.compile(r"[A-Za-z0-9_./:@%+=${}\-]*")


# Sets NAME to the concatenation of N args, for each `NAME N part...` group before `--`.
_SH_SET_ENV = (
    'while [ "$1" != -- ]; do n=$1; c=$2; shift 2; v=; '
    'while [ "$c" -gt 0 ]; do v=$v$1; shift; c=$((c-1)); done; export "$n=$v"; done; '
    'shift; exec "$@"'
)


def slurm_carry_env(request: object, literal_keys: frozenset[str] = frozenset()) -> None:
    """Move env values that ``srun --export`` would corrupt into an ``env -- K=V`` prefix.

    ``request`` is TorchX's ``SlurmBatchRequest``; each replica's ``env``, ``entrypoint`` and
    ``args`` are rewritten in place, before the sbatch script is rendered.
    TorchX replaces every ``${app_id}`` in every srun argument with ``"$SLURM_JOB_ID"``; values
    of ``literal_keys`` that contain it are passed in pieces split inside the macro and joined
    by ``sh`` in the job.
    """
    for replica in getattr(request, "replicas", {}).values():
        split = {k: v for k, v in replica.env.items() if k in literal_keys and macros.app_id in v}
        unsafe = {
            k: v
            for k, v in replica.env.items()
            if k not in split and not _SRUN_EXPORT_SAFE.fullmatch(v)
        }
        if not unsafe and not split:
            continue
        for key in [*unsafe, *split]:
            del replica.env[key]
        command = [replica.entrypoint, *replica.args]
        if split:
            pieces: list[str] = []
            for key, value in split.items():
                parts = value.replace(macros.app_id, "$\0{app_id}").split("\0")
                pieces += [key, str(len(parts)), *parts]
            command = ["sh", "-c", _SH_SET_ENV, "sh", *pieces, "--", *command]
        if unsafe:
            command = ["env", "--", *(f"{k}={v}" for k, v in unsafe.items()), *command]
        replica.entrypoint, replica.args = command[0], command[1:]


__all__ = [
    "TrackingPlan",
    "apply_plan",
    "escape_macros",
    "job_id_template",
    "plan_tracking",
    "slurm_carry_env",
]
