"""``torchx run`` with ``--tracker NAME[=CONFIG]`` and ``--parent-run-id``.

Every flag and behaviour of TorchX's ``run`` stays: this subclasses TorchX's ``CmdRun``, adds two
flags, resolves the trackers (see :mod:`launcher_plugin.tracker_config` for the precedence),
checks them before anything is submitted, and hands them to TorchX's runner through the
launching process's env, which is the channel TorchX's ``Runner.dryrun`` reads. The tracked
schedulers (:mod:`launcher_plugin.schedulers`) then normalise and inject them into every role.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from torchx.cli.cmd_run import CmdRun as TorchxCmdRun
from torchx.cli.cmd_run import _parse_component_name_and_args

from launcher_plugin.launch_record import launch_context
from launcher_plugin.secrets import ENV_TORCHX_TRACKER_SECRETS, check_secrets, parse_secrets
from launcher_plugin.tracker_config import TrackerSpec, resolve_trackers
from trackers.env import (
    ENV_TORCHX_PARENT_RUN_ID,
    ENV_TORCHX_TRACKERS,
    tracker_config_env_var_name,
)
from trackers.errors import TrackerConfigError
from trackers.redact import redact
from trackers.registry import create_tracker

logger: logging.Logger = logging.getLogger(__name__)


class RedactingFilter(logging.Filter):
    """Masks credentials in log lines (TorchX's runner logs tracker configs at INFO level)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def _tracker_flag(value: str) -> TrackerSpec:
    try:
        return TrackerSpec.parse(value)
    except TrackerConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class CmdRun(TorchxCmdRun):
    """TorchX's ``run`` plus ``--tracker`` and ``--parent-run-id``."""

    def add_arguments(self, subparser: argparse.ArgumentParser) -> None:
        super().add_arguments(subparser)
        subparser.add_argument(
            "--tracker",
            dest="trackers",
            action="append",
            type=_tracker_flag,
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
        try:
            trackers = resolve_trackers(args.trackers, os.environ)
            for name, config in trackers.items():
                origin = f"--tracker {name}" if args.trackers else tracker_config_env_var_name(name)
                create_tracker(name, config, origin=origin)  # fail before submitting anything
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
        component, component_args = _parse_component_name_and_args(
            args.component_name_and_args, self._subparser
        )
        with launch_context(component, component_args):
            super().run(args)
