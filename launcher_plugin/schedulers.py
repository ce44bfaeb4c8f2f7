"""TorchX's schedulers, each wrapped so that every launch is tracked.

:func:`install` routes every scheduler the installed TorchX ships (same names, same order, so
the same default) through :func:`install_tracking_hooks`; see
:func:`trackers.torchx_compat.install_tracked_schedulers` for how, and why not entry points.
Importing :mod:`launcher_plugin` installs them, which the ``torchx`` CLI always does (our
``run`` and ``tracker`` subcommands live there); a program that drives ``torchx.runner``
itself imports ``launcher_plugin`` first. Each scheduler instance gets:

* in ``_submit_dryrun``: validates and normalises the tracking env (:mod:`launcher_plugin.inject`)
  before the scheduler request is rendered, so ``--dryrun`` shows exactly what the job gets;
* in ``_submit_dryrun`` too: secrets named with ``--tracker-secret`` are checked, kept out of
  every role's env, and on Kubernetes added as Secret references (:mod:`launcher_plugin.secrets`);
* in ``schedule``: creates the store root before submitting (TorchX's ``FsspecTracker`` refuses a
  missing root) and, once the app handle is known, writes the launch record.

Slurm also gets a ``describe`` that works without accounting storage: ``squeue``/``scontrol``
(:mod:`launcher_plugin.slurm_status`) first, then TorchX's own for jobs the controller forgot, so
``torchx run --wait`` and ``torchx status`` work on clusters with ``accounting_storage/none`` and
on Slurm releases whose ``squeue --json`` torchx-nightly cannot parse.
"""

from __future__ import annotations

import logging
import os
import subprocess
from typing import Any

from torchx.schedulers.api import DescribeAppResponse, Scheduler
from torchx.specs import AppDef, AppDryRunInfo
from torchx.specs.builders import make_app_handle

from launcher_plugin import inject, secrets, slurm_status
from launcher_plugin.launch_record import write_launch_record
from trackers.api import capabilities
from trackers.env import ENV_TORCHX_JOB_ID
from trackers.torchx_compat import install_tracked_schedulers

logger: logging.Logger = logging.getLogger(__name__)

_PLAN_ATTR = "_torchx_lineage_plan"


def install_tracking_hooks(scheduler: Scheduler[Any], name: str) -> Scheduler[Any]:
    """Wrap ``scheduler``'s ``_submit_dryrun`` and ``schedule`` (on the instance) with tracking.

    ``name`` is the name the scheduler is registered under: it starts the app handle that
    ``torchx run`` prints (``local_cwd://...``), which can differ from ``scheduler.backend``
    (``local``).

    The instance keeps its own class, so ``isinstance`` checks (TorchX's ``WorkspaceMixin``,
    ``DockerWorkspaceMixin``...) and the scheduler's own factory arguments stay as they were.
    """
    submit_dryrun = scheduler._submit_dryrun
    schedule = scheduler.schedule

    def tracked_submit_dryrun(app: AppDef, cfg: Any) -> AppDryRunInfo[Any]:
        plan = inject.plan_tracking(app, name, scheduler.session_name, cfg)
        plan.secrets = secrets.parse_secrets([], os.environ)
        if plan.secrets:
            secrets.check_secrets(plan.secrets, name, os.environ)
        inject.apply_plan(app, plan)
        for role in app.roles:
            secrets.strip_secret_values(role.env, plan.secrets)
        info: AppDryRunInfo[Any] = submit_dryrun(inject.escape_macros(app, plan, name), cfg)
        if name == "slurm":
            literal = frozenset(plan.env) - {ENV_TORCHX_JOB_ID}
            inject.slurm_carry_env(info.request, literal)
        if name in secrets.KUBERNETES_SCHEDULERS:
            secrets.add_kubernetes_secret_refs(info.request, plan.secrets)
        setattr(info, _PLAN_ATTR, plan)
        return info

    def tracked_schedule(dryrun_info: AppDryRunInfo[Any]) -> str:
        plan: inject.TrackingPlan | None = getattr(dryrun_info, _PLAN_ATTR, None)
        if plan is not None:
            for tracker in plan.trackers.values():
                capabilities(tracker).ensure_root()
        app_id: str = schedule(dryrun_info)
        if plan is not None and plan.trackers:
            handle = make_app_handle(name, scheduler.session_name, app_id)
            write_launch_record(plan, handle, dryrun_info)
        return app_id

    scheduler._submit_dryrun = tracked_submit_dryrun
    scheduler.schedule = tracked_schedule
    if name == "slurm":
        describe = scheduler.describe

        def describe_without_accounting(app_id: str) -> DescribeAppResponse | None:
            # squeue/scontrol first: they describe every job the controller still holds, on
            # any Slurm version, without accounting storage. TorchX's own describe answers for
            # jobs the controller has forgotten: sacct on 0.7.0 (fails without accounting);
            # nightly tries `squeue --json` first, whose parser expects a newer Slurm's layout
            # (on Slurm 22.05 it raises KeyError or describes the wrong jobs).
            unreachable: RuntimeError | None = None
            try:
                response = slurm_status.describe_job(app_id)
            except RuntimeError as ours:
                unreachable = ours
            else:
                if response is not None:
                    return response
            try:
                theirs: DescribeAppResponse | None = describe(app_id)
            except (subprocess.CalledProcessError, OSError, KeyError, ValueError) as e:
                logger.debug("TorchX's describe failed too (%s: %s)", type(e).__name__, e)
                if unreachable is not None:
                    raise unreachable from e
                return None
            return theirs

        scheduler.describe = describe_without_accounting
    return scheduler


def install() -> None:
    """Track every scheduler the installed TorchX ships (idempotent)."""
    install_tracked_schedulers(install_tracking_hooks)


def create(name: str, session_name: str, **kwargs: Any) -> Scheduler[Any]:
    """TorchX's scheduler ``name``, tracked (what ``torchx run -s NAME`` uses)."""
    from torchx.schedulers import get_scheduler_factories

    install()
    factories = get_scheduler_factories()
    if name not in factories:
        raise KeyError(f"no scheduler {name!r} in this TorchX; it has: {', '.join(factories)}")
    scheduler: Scheduler[Any] = factories[name](session_name, **kwargs)
    return scheduler
