"""``torchx run`` with ``--tracker NAME[=CONFIG]`` and ``--parent-run-id``.

Every flag and behaviour of TorchX's ``run`` stays: this subclasses TorchX's ``CmdRun``, adds two
flags, resolves the trackers (see :mod:`launcher_plugin.tracker_config` for the precedence),
checks them before anything is submitted, and hands them to TorchX's runner through the
launching process's env, which is the channel TorchX's ``Runner.dryrun`` reads. The tracked
schedulers (:mod:`launcher_plugin.schedulers`) then normalise and inject them into every role.

Works with torchx 0.7.0 and torchx-nightly (whose ``run`` also takes ``--stdin``/``--json``: with
``--stdin`` the trackers come from the env or ``.torchxconfig``, and ``--json`` output stays one
JSON object, since everything of ours goes to the log).

When ``torchx run`` waits for the app to end (local schedulers, or ``--wait``), the run is then
reconciled in each of those trackers (:func:`launcher_plugin.reconcile.run_states`): a run the
job left open (SIGKILL, OOM kill) gets the scheduler's final state, written through each
tracker's delivery and spool like the launch record. TorchX's exit code and output stay as they
were; a failure to reconcile is logged.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from torchx.cli.cmd_run import CmdRun as TorchxCmdRun
from torchx.cli.cmd_run import _parse_component_name_and_args
from torchx.runner import Runner

from launcher_plugin.inject import job_config
from launcher_plugin.launch_record import launch_context
from launcher_plugin.launcher_writes import Target
from launcher_plugin.reconcile import RunState, final_status, record_final, run_states
from launcher_plugin.secrets import ENV_TORCHX_TRACKER_SECRETS, check_secrets, parse_secrets
from launcher_plugin.tracker_config import TrackerSpec, resolve_trackers
from trackers.api import LineageTracker
from trackers.env import (
    ENV_TORCHX_PARENT_RUN_ID,
    ENV_TORCHX_TRACKERS,
    tracker_config_env_var_name,
)
from trackers.errors import TrackerConfigError, UnsupportedOperation
from trackers.redact import redact
from trackers.registry import create_tracker
from trackers.types import RunStatus

logger: logging.Logger = logging.getLogger(__name__)


class RedactingFilter(logging.Filter):
    """Masks credentials in log lines (TorchX's runner logs tracker configs at INFO level)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


class CmdRun(TorchxCmdRun):
    """TorchX's ``run`` plus ``--tracker`` and ``--parent-run-id``."""

    def __init__(self) -> None:
        super().__init__()
        #: name -> (config, origin) of the trackers this launch uses, for reconciling at its end.
        self._trackers: dict[str, tuple[str | None, str]] = {}

    def add_arguments(self, subparser: argparse.ArgumentParser) -> None:
        super().add_arguments(subparser)
        subparser.add_argument(
            "--tracker",
            dest="trackers",
            action="append",
            type=TrackerSpec.from_flag,
            default=[],
            metavar="NAME[=CONFIG]",
            help="track this run with tracker NAME (repeatable), e.g. "
            "--tracker fsspec=file:///data/runs. Overrides TORCHX_TRACKERS and .torchxconfig.",
        )
        subparser.add_argument(
            "--tracker-secret",
            dest="tracker_secrets",
            action="append",
            default=[],
            metavar="VAR[=secret:NAME:KEY]",
            help="env var the job needs for its trackers (e.g. MLFLOW_TRACKING_TOKEN), passed by "
            "reference: from the launching environment (local_cwd, slurm) or a Kubernetes "
            "Secret (VAR=secret:NAME:KEY); never written into the job spec. Repeatable.",
        )
        subparser.add_argument(
            "--parent-run-id",
            dest="parent_run_id",
            type=str,
            help="run id (app handle) of the run this one derives from; same as --parent_run_id",
        )

    def run(self, args: argparse.Namespace) -> None:
        logging.getLogger("torchx.runner.api").addFilter(RedactingFilter())
        self._trackers = {}
        try:
            trackers = resolve_trackers(args.trackers, os.environ)
            for name, config in trackers.items():
                origin = f"--tracker {name}" if args.trackers else tracker_config_env_var_name(name)
                create_tracker(name, config, origin=origin)  # fail before submitting anything
                self._trackers[name] = (config, origin)
            secret_specs = parse_secrets(args.tracker_secrets, os.environ)
            if secret_specs:
                check_secrets(secret_specs, args.scheduler, os.environ)
        except TrackerConfigError as e:
            logger.error("%s", e)
            sys.exit(1)
        # TorchX's runner reads the launching env (it beats .torchxconfig, as the CLI must).
        if trackers:
            os.environ[ENV_TORCHX_TRACKERS] = ",".join(trackers)
            for name, config in trackers.items():
                if config is not None:
                    os.environ[tracker_config_env_var_name(name)] = config
        if args.parent_run_id:
            os.environ[ENV_TORCHX_PARENT_RUN_ID] = args.parent_run_id
        if args.tracker_secrets:  # names only; the tracked schedulers read them from here
            os.environ[ENV_TORCHX_TRACKER_SECRETS] = ",".join(args.tracker_secrets)
        with launch_context(*self._component(args)):
            super().run(args)

    def _component(self, args: argparse.Namespace) -> tuple[str, list[str]]:
        """The component and its args, from the command line or (nightly) ``--stdin``'s JSON."""
        if getattr(args, "stdin", False):
            data = self._get_torchx_stdin_args(args) or {}  # TorchX caches it for its own use
            given = data.get("component_args_str") or [
                f"--{k}={v}" for k, v in dict(data.get("component_args") or {}).items()
            ]
            return str(data.get("component_name", "")), [str(a) for a in given]
        component, component_args = _parse_component_name_and_args(
            args.component_name_and_args, self._subparser
        )
        return component, list(component_args)

    # TorchX calls exactly one of the two below to wait for the app: `_wait_and_exit` on 0.7.0,
    # `_wait` on nightly (trackers.torchx_compat.PRIVATE_APIS guards both names).

    def _wait_and_exit(self, runner: Runner, app_handle: str, log: bool) -> None:
        """0.7.0: TorchX's wait, the run reconciled, TorchX's exit (1 unless it succeeded).

        It returns once the app succeeded and raises ``SystemExit`` once it ended otherwise. Any
        other exception (no status, Ctrl-C) means the app's end is unknown, so nothing is
        reconciled.
        """
        try:
            super()._wait_and_exit(runner, app_handle, log)
        except SystemExit:
            self._reconcile(runner, app_handle)
            raise
        self._reconcile(runner, app_handle)

    def _wait(self, runner: Runner, app_handle: str, log: bool, tee_logs: bool = False) -> Any:
        """nightly: TorchX's wait (returns the final status), then the run reconciled."""
        status = super()._wait(runner, app_handle, log, tee_logs)
        self._reconcile(runner, app_handle)
        return status

    def _reconcile(self, runner: Runner, app_handle: str) -> None:
        """Record the scheduler's final state in each tracker that still has the run open.

        The trackers that can read the run's status are asked first (reads only); the writes
        then go through each tracker's delivery and spool (:mod:`launcher_plugin.
        launcher_writes`), so a tracker that is down now gets them from ``torchx tracker sync``
        later. A write-only tracker (one that cannot read the run's status, such as
        ``openlineage``) gets the final state a readable tracker of this launch found open,
        and only then. Each write has one operation id for every tracker, as the job's writes
        do, so the stores' records and the events name the same time.
        """
        targets: dict[str, Target] = {}
        open_in: dict[str, tuple[RunState, RunStatus]] = {}  # where the run is open: its final
        write_only: list[str] = []
        for name, (config, origin) in self._trackers.items():
            try:
                tracker = create_tracker(name, config, origin=origin)
                targets[name] = Target(name, tracker, job_config(name, tracker, config))
                if not isinstance(tracker, LineageTracker):
                    continue  # TorchX's own trackers record no status
                [state] = run_states(tracker, runner, [app_handle], write=False)
            except UnsupportedOperation:
                write_only.append(name)
                continue
            except Exception as e:  # never let tracking change how torchx run ends
                logger.warning(
                    "tracker %s: could not reconcile %s: %s",
                    name,
                    app_handle,
                    redact(f"{type(e).__name__}: {e}"),
                )
                continue
            final = final_status(state)
            if final is not None:
                open_in[name] = (state, final)
        if not open_in:
            return
        # One scheduler state for every tracker: the first that was asked (they agree unless
        # the app changed state between two questions, which a terminal app does not).
        state, final = next(iter(open_in.values()))
        to_write = [targets[name] for name in (*open_in, *write_only) if name in targets]
        _, refused = record_final(to_write, state, final)
        for name, (seen, _) in open_in.items():
            if name not in refused:
                logger.info(
                    "tracker %s: recorded %s for %s (the job left it %s; scheduler: %s)",
                    name,
                    final,
                    app_handle,
                    seen.recorded or "unset",
                    seen.scheduler,
                )
