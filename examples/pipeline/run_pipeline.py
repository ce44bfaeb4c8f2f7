"""Run the example pipeline (prepare -> train -> evaluate) as three tracked TorchX jobs.

Each step is launched on the ``local_cwd`` scheduler (or ``--scheduler``) with the
``lineage.python`` component::

    torchx run -s local_cwd --tracker TRACKER [--parent-run-id PREVIOUS_HANDLE] \\
        lineage.python --name STEP --script STEP.py -- --out WORKDIR/STEP --apprun APPRUN ...

``torchx run`` prints the app handle (``local_cwd://torchx/train-x1y2``) and waits for the local
job; on any other scheduler the driver adds ``--wait`` (and ``-cfg SCHEDULER_ARGS`` when given).
Each next step gets the previous step's handle as ``--parent-run-id`` (the launcher records the
link) and as ``--dataset-run-id`` / ``--model-run-id`` (the step records it as the source of its
input artifact). At the end the lineage tree of the first run is printed with::

    torchx tracker list lineage PREPARE_HANDLE --tracker TRACKER

Usage (from any directory; files go to ./pipeline-out, runs to ./torchx-runs)::

    python examples/pipeline/run_pipeline.py
    python examples/pipeline/run_pipeline.py --tracker fsspec=/tmp/runs --apprun torchx
    python examples/pipeline/run_pipeline.py --scheduler slurm --scheduler-args time=10 \\
        --tracker fsspec=/shared/runs --workdir /shared/pipeline-out

Exit status: 0 if every step succeeded and the lineage could be listed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: The directory of the step scripts (this file's directory).
PIPELINE_DIR = Path(__file__).resolve().parent

#: The default scheduler of every step; the app handles it prints start with ``local_cwd://``.
SCHEDULER = "local_cwd"

#: The tracked TorchX component that runs a Python script (``components/tracked.py``).
COMPONENT = "lineage.python"

#: Longest a single step (one ``torchx run``) may take, in seconds.
DEFAULT_TIMEOUT = 600.0


class PipelineError(Exception):
    """A step or the final lineage query failed; the message says which and why."""


@dataclass(frozen=True)
class Step:
    """One pipeline step: its name (also the TorchX app name), script and program arguments."""

    name: str
    script: Path
    args: list[str]


@dataclass(frozen=True)
class StepResult:
    """A finished step: its app handle (the run id) and how long ``torchx run`` took."""

    name: str
    handle: str
    seconds: float


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run prepare -> train -> evaluate as tracked TorchX jobs and print the "
        "lineage tree.",
    )
    parser.add_argument(
        "--scheduler",
        default=SCHEDULER,
        help=f"TorchX scheduler every step runs on (default: {SCHEDULER}); on a scheduler that "
        "is not local each step is launched with --wait. The job's files and the store must be "
        "on a file system both this machine and the job see.",
    )
    parser.add_argument(
        "-cfg",
        "--scheduler-args",
        default=None,
        metavar="KEY=VALUE[,...]",
        help="passed to every `torchx run` as -cfg (e.g. partition=debug,time=10)",
    )
    parser.add_argument(
        "--tracker",
        default="fsspec",
        metavar="NAME[=CONFIG]",
        help="tracker for every step and the lineage query (default: fsspec, i.e. the store "
        "./torchx-runs in the current directory); e.g. fsspec=/abs/path/to/store",
    )
    parser.add_argument(
        "--apprun",
        choices=["ours", "torchx"],
        default="ours",
        help="AppRun the steps record through: trackers.AppRun (ours, default) or "
        "torchx.tracker.api.AppRun (torchx)",
    )
    parser.add_argument(
        "--workdir",
        default="pipeline-out",
        help="directory for the steps' files, one subdirectory per step (default: ./pipeline-out)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds each step may take (default: {DEFAULT_TIMEOUT:.0f})",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also print each step's torchx/job log"
    )
    return parser.parse_args(argv)


def launch_env() -> dict[str, str]:
    """The env for ``torchx run``: ``local_cwd`` runs the job's ``python`` from ``PATH``, so this
    interpreter's bin directory (the virtualenv with torchx and the project) goes first."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def torchx_command(env: dict[str, str]) -> list[str]:
    """The ``torchx`` CLI of this interpreter's environment."""
    exe = shutil.which("torchx", path=env["PATH"])
    return [exe] if exe else [sys.executable, "-m", "torchx.cli.main"]


def find_handle(stdout: str, scheduler: str = SCHEDULER) -> str | None:
    """The app handle ``torchx run`` printed: the first stdout line like ``local_cwd://...``."""
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith(f"{scheduler}://"):
            return line
    return None


def _tail(text: str, lines: int = 40) -> str:
    kept = text.rstrip().splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in kept) or "    (empty)"


def run_step(
    step: Step,
    tracker: str,
    parent_run_id: str | None,
    env: dict[str, str],
    timeout: float,
    verbose: bool = False,
    scheduler: str = SCHEDULER,
    scheduler_args: str | None = None,
) -> StepResult:
    """Launch ``step`` with ``torchx run``, wait for it, and return its handle.

    Raises :class:`PipelineError` (with the step's stderr) if the job fails, times out or no
    handle was printed.
    """
    cmd = [*torchx_command(env), "run", "-s", scheduler]
    if not scheduler.startswith("local"):
        cmd.append("--wait")  # torchx run waits only for local jobs by itself
    if scheduler_args:
        cmd += ["-cfg", scheduler_args]
    cmd += ["--tracker", tracker]
    if parent_run_id:
        cmd += ["--parent-run-id", parent_run_id]
    cmd += [COMPONENT, "--name", step.name, "--script", str(step.script), "--", *step.args]
    start = time.monotonic()
    try:
        done = subprocess.run(
            cmd, env=env, capture_output=True, text=True, check=True, timeout=timeout
        )
    except subprocess.CalledProcessError as e:
        raise PipelineError(
            f"step {step.name!r} failed (torchx run exited with status {e.returncode})\n"
            f"  command: {subprocess.list2cmdline(cmd)}\n  stderr:\n{_tail(e.stderr or '')}"
        ) from e
    except subprocess.TimeoutExpired as e:
        stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
        raise PipelineError(
            f"step {step.name!r} did not finish within {timeout:.0f} s\n"
            f"  command: {subprocess.list2cmdline(cmd)}\n  stderr:\n{_tail(stderr or '')}"
        ) from e
    if verbose:
        print(done.stderr, file=sys.stderr, end="")
    handle = find_handle(done.stdout, scheduler)
    if handle is None:
        raise PipelineError(
            f"step {step.name!r}: torchx run printed no {scheduler}:// app handle\n"
            f"  stdout:\n{_tail(done.stdout)}\n  stderr:\n{_tail(done.stderr)}"
        )
    return StepResult(step.name, handle, time.monotonic() - start)


def list_lineage(handle: str, tracker: str, env: dict[str, str]) -> str:
    """``torchx tracker list lineage HANDLE --tracker TRACKER``: the tree, as printed."""
    cmd = [*torchx_command(env), "tracker", "list", "lineage", handle, "--tracker", tracker]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    except subprocess.CalledProcessError as e:
        raise PipelineError(
            f"listing the lineage of {handle} failed (status {e.returncode})\n"
            f"  command: {subprocess.list2cmdline(cmd)}\n  stderr:\n{_tail(e.stderr or '')}"
        ) from e
    return done.stdout.rstrip()


def make_step(name: str, workdir: Path, apprun: str, *extra: str) -> Step:
    """Step ``name`` (script ``<name>.py``) writing into ``workdir/<name>``."""
    args = ["--out", str(workdir / name), "--apprun", apprun, *extra]
    return Step(name, PIPELINE_DIR / f"{name}.py", args)


def run_pipeline(args: argparse.Namespace) -> list[StepResult]:
    """Run prepare, train and evaluate in order, each linked to the one before."""
    workdir = Path(args.workdir).resolve()
    dataset = workdir / "prepare" / "dataset.csv"
    model = workdir / "train" / "model.json"
    env = launch_env()
    results: list[StepResult] = []

    def launch(step: Step) -> str:
        parent = results[-1].handle if results else None
        result = run_step(
            step,
            args.tracker,
            parent,
            env,
            args.timeout,
            args.verbose,
            args.scheduler,
            args.scheduler_args,
        )
        results.append(result)
        print(f"step {result.name}: {result.handle} (succeeded in {result.seconds:.1f} s)")
        return result.handle

    prepare = launch(make_step("prepare", workdir, args.apprun))
    train_inputs = ["--data", str(dataset), "--dataset-run-id", prepare]
    train = launch(make_step("train", workdir, args.apprun, *train_inputs))
    evaluate_inputs = ["--model", str(model), "--data", str(dataset), "--model-run-id", train]
    launch(make_step("evaluate", workdir, args.apprun, *evaluate_inputs))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(
        f"pipeline: tracker {args.tracker}, apprun {args.apprun}, workdir {args.workdir}"
        + ("" if args.scheduler == SCHEDULER else f", scheduler {args.scheduler}")
    )
    try:
        results = run_pipeline(args)
        tree = list_lineage(results[0].handle, args.tracker, launch_env())
    except PipelineError as e:
        print(f"pipeline failed: {e}", file=sys.stderr)
        return 1
    print(f"\nlineage (torchx tracker list lineage {results[0].handle} --tracker {args.tracker}):")
    print(tree)
    return 0


if __name__ == "__main__":
    sys.exit(main())
