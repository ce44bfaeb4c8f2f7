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

Slurm also gets a ``describe`` that works without accounting storage: TorchX's own first
(``sacct`` on 0.7.0; ``squeue --json`` then ``sacct`` on nightly), then ``squeue``/``scontrol``
(:mod:`launcher_plugin.slurm_status`) when it fails or finds nothing, so ``torchx run --wait``
and ``torchx status`` work on clusters with ``accounting_storage/none``.
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
        sacct_failed = False

        def describe_without_accounting(app_id: str) -> DescribeAppResponse | None:
            # TorchX's describe runs sacct, which fails without accounting storage
            # (accounting_storage/none); then squeue/scontrol answer. After one failure this
            # scheduler stops asking sacct (which prints its error on every `--wait` poll).
            nonlocal sacct_failed
            # (nightly's describe tries `squeue --json` and sacct itself and returns None.)
            if not sacct_failed:
                try:
                    response: DescribeAppResponse | None = describe(app_id)
                    if response is not None:
                        return response
                    sacct_failed = True
                    logger.debug("TorchX's describe found nothing: using squeue/scontrol")
                except (subprocess.CalledProcessError, OSError, KeyError, ValueError) as e:
                    # KeyError/ValueError: nightly parses `squeue --json` in the layout of newer
                    # Slurm releases; Debian 12's Slurm 22.05 lacks `job_resources`.
                    sacct_failed = True
                    logger.debug(
                        "TorchX's describe failed (%s: %s): describing with squeue/scontrol",
                        type(e).__name__,
                        e,
                    )
            return slurm_status.describe_job(app_id)

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
