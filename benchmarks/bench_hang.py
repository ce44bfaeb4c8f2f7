"""A backend whose server accepts connections and never answers: what it costs the training loop.

Why (issue #7): a hung tracking server must not slow training down, and the job must still end
within the shutdown limit. This script runs the same training loop three ways, in one process,
side by side:

* ``baseline``: an ``AppRun`` with only a local ``lineage_fsspec`` tracker (a temp dir);
* ``mlflow``: the same plus an ``mlflow`` tracker at ``http://127.0.0.1:<blackhole port>``;
* ``s3``: the same plus an ``s3`` tracker at that endpoint (bucket ``bench-hang``, dummy
  credentials from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``read_timeout: 5``).

The blackhole (``tests/faults/blackhole.py``) is a TCP server in its own process group that
accepts every connection, reads and discards, and never sends a byte. Each run is built the way
a job builds it, from env vars and ``AppRun.from_env(env)`` (``TORCHX_JOB_ID``,
``TORCHX_TRACKERS``, ``TORCHX_TRACKER_<NAME>_CONFIG``), with ``TORCHX_TRACKER_SPOOL_DIR`` in a
temp dir and ``TORCHX_TRACKER_SHUTDOWN_TIMEOUT`` = ``--shutdown-timeout`` (3 s). The script sets
``MLFLOW_HTTP_REQUEST_TIMEOUT=5`` for the whole process (our backend's default is 10 s).

Before the loop (untimed) one ``add_metadata`` starts each backend's delivery thread and spool
file, as ``run_from_env()`` does when it records RUNNING. The loop (timed): one
``add_source``, ``--steps`` (100,000) ``run.log({"loss", "acc"}, step=i)``
calls, an ``add_metadata(m<i>=i)`` every 100 steps (1000 writes), one ``add_artifact``. Then
``run.close()`` is timed on its own; it must end within the shutdown timeout.
(The default was 10,000 steps until 2026-12-07: a ~15 ms loop, too short to time on a shared
box, whose repeats differed by 15–40 %.)

Columns: median loop seconds over ``--repeats`` (5) and their noise (half the max-min range over
the median), the ratio to the baseline's median (the target is 1: no slower), median close
seconds, the close limit, the longest wall time of one repeat of the scenario (build + loop +
close) and how much of the loop ran. Scenarios take turns going first; one untimed baseline run
warms the process up. The loop runs with garbage collection paused, as ``timeit`` does.

So that a backend that blocks the training thread cannot make this script run for hours, the
loop gives up once it has run for ``--budget`` seconds (checked after each blocking call:
``add_source``, ``add_metadata``); its time is then a lower bound (shown as ``>=``). ``close()``
runs in a helper thread that is waited for at most ``--budget`` seconds (shown as ``>``; the
thread is abandoned). What happened in each repeat (tracking errors logged for the run, points
that reached the local store) is printed as it runs.

Run from the repository root::

    .venv/bin/python benchmarks/bench_hang.py              # 100,000 steps, 5 repeats
    .venv/bin/python benchmarks/bench_hang.py --quick      # 1,000 steps, 1 repeat, 20 s budget
    .venv/bin/python benchmarks/bench_hang.py --repeats 9 --budget 120

Exit status 0 when, for both hanging backends, the loop ratio is at most ``--max-ratio`` (1.25:
room for noise) and the median close time at most the shutdown timeout + 1 s.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.faults.blackhole

from tabulate import tabulate  # noqa: E402

from tests.faults.blackhole import blackhole  # noqa: E402
from trackers import AppRun  # noqa: E402
from trackers.backends.fsspec import create_tracker as create_fsspec_tracker  # noqa: E402

SCENARIOS = ("baseline", "mlflow", "s3")
FSSPEC = "lineage_fsspec"
METADATA_EVERY = 100
MLFLOW_HTTP_REQUEST_TIMEOUT = "5"
S3_READ_TIMEOUT = 5
#: Close may take this much longer than the shutdown timeout and still meet the target.
CLOSE_SLACK_S = 1.0
#: Process-wide env for the benchmark: MLflow's timeout, dummy AWS credentials, no AWS files.
PROCESS_ENV = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": MLFLOW_HTTP_REQUEST_TIMEOUT,
    "AWS_ACCESS_KEY_ID": "bench-hang-dummy-key-id",
    "AWS_SECRET_ACCESS_KEY": "bench-hang-dummy-secret",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
#: Env vars of the developer's shell that would point a tracker somewhere else.
ENV_TO_DROP = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_RUN_ID",
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)


@dataclass
class Sample:
    """One repeat of one scenario."""

    loop_s: float
    steps_run: int  # log() calls made
    cut: bool  # the loop gave up at the budget
    close_s: float
    close_done: bool
    wall_s: float
    errors: list[str] = field(default_factory=list)
    stored_points: int | None = None


@dataclass
class Scenario:
    name: str
    samples: list[Sample] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(s, attr) for s in self.samples)

    def loop_noise(self) -> float:
        """Half the (max - min) range of the loop times over their median, in %."""
        times = [s.loop_s for s in self.samples]
        median = statistics.median(times)
        return (max(times) - min(times)) / (2 * median) * 100 if median > 0 else 0.0

    @property
    def cut(self) -> bool:
        """Some loop gave up at the budget: its median is a lower bound."""
        return any(s.cut for s in self.samples)

    @property
    def close_open(self) -> bool:
        """Some close() was still running when abandoned: its median is a lower bound."""
        return any(not s.close_done for s in self.samples)


class _RunLog(logging.Handler):
    """Keeps the WARNING+ records that mention one run id (and silences the rest)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.run_id = ""
        self.records: list[str] = []
        self._lock_records = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a broken log call must not break the benchmark
            return
        if self.run_id and self.run_id in message:
            with self._lock_records:
                self.records.append(message.splitlines()[0])

    def take(self) -> list[str]:
        with self._lock_records:
            records, self.records = self.records, []
        return records


@contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the block (a backend may read it directly)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def scenario_env(name: str, port: int, work: Path, run_id: str, limit: float) -> dict[str, str]:
    """The TORCHX_* env of a job that tracks into scenario ``name``."""
    env = {
        "TORCHX_JOB_ID": run_id,
        "TORCHX_TRACKERS": FSSPEC,
        "TORCHX_TRACKER_LINEAGE_FSSPEC_CONFIG": str(work / "store"),
        "TORCHX_TRACKER_SPOOL_DIR": str(work / "spool"),
        "TORCHX_TRACKER_SHUTDOWN_TIMEOUT": f"{limit:g}",
    }
    endpoint = f"http://127.0.0.1:{port}"
    if name == "mlflow":
        env["TORCHX_TRACKERS"] += ",mlflow"
        env["TORCHX_TRACKER_MLFLOW_CONFIG"] = endpoint
    elif name == "s3":
        env["TORCHX_TRACKERS"] += ",s3"
        env["TORCHX_TRACKER_S3_CONFIG"] = (
            f'{{url: "s3://bench-hang/runs", endpoint_url: "{endpoint}", '
            f"region: us-east-1, read_timeout: {S3_READ_TIMEOUT}}}"
        )
    return env


def run_once(name: str, port: int, work: Path, args: argparse.Namespace, log: _RunLog) -> Sample:
    """Build the run from env, time the loop, then time ``close()``."""
    run_id = f"local_cwd://bench-hang/{name}-{uuid.uuid4().hex[:8]}"
    torchx_env = scenario_env(name, port, work, run_id, args.shutdown_timeout)
    base = {
        k: v for k, v in os.environ.items() if not k.startswith("TORCHX_") and k not in ENV_TO_DROP
    }
    log.run_id = run_id
    log.take()
    wall_start = time.perf_counter()
    with patched_environ(torchx_env):
        run = AppRun.from_env({**base, **torchx_env})
        # Untimed, as in a job: run_from_env() writes RUNNING and the environment snapshot
        # before training starts, which starts each backend's delivery thread and spool file.
        run.add_metadata(**{"bench.scenario": name})
        steps, budget = args.steps, args.budget
        steps_run, cut = 0, False
        gc.collect()
        gc.disable()
        start = time.perf_counter()
        try:
            run.add_source(f"local_cwd://bench-hang/parent-{name}")
            cut = time.perf_counter() - start > budget
            for i in range(0 if cut else steps):
                run.log({"loss": 1.0 / (i + 1), "acc": i / steps}, step=i)
                steps_run = i + 1
                if i % METADATA_EVERY == 0:
                    run.add_metadata(**{f"m{i}": i})
                    if time.perf_counter() - start > budget:
                        cut = True
                        break
            if not cut:
                run.add_artifact("model", str(work / "model.pt"), {"step": steps})
            loop_s = time.perf_counter() - start
        finally:
            gc.enable()

        closer = threading.Thread(target=run.close, name=f"bench-hang-close-{name}", daemon=True)
        start = time.perf_counter()
        closer.start()
        closer.join(max(budget, args.shutdown_timeout + 10))
        close_s = time.perf_counter() - start
    close_done = not closer.is_alive()
    wall_s = time.perf_counter() - wall_start
    stored = None
    if close_done:
        try:
            stored = len(create_fsspec_tracker(str(work / "store")).metrics(run_id))
        except Exception as e:  # reported, not fatal: this is a timing benchmark
            log.records.append(f"reading the local store failed: {e}")
    return Sample(loop_s, steps_run, cut, close_s, close_done, wall_s, log.take(), stored)


def describe(name: str, rep: int, sample: Sample, args: argparse.Namespace) -> str:
    """One line (plus error lines) saying what happened in one repeat."""
    if not sample.cut:
        loop = f"loop {sample.loop_s:.3f} s ({sample.steps_run} steps)"
    else:
        loop = (
            f"loop given up after {sample.steps_run}/{args.steps} steps and "
            f"{sample.loop_s:.1f} s (budget {args.budget:g} s)"
        )
    close = (
        f"close {sample.close_s:.2f} s"
        if sample.close_done
        else f"close still running after {sample.close_s:.1f} s (abandoned)"
    )
    stored = (
        f"{sample.stored_points}/{2 * args.steps} points in the local store"
        if sample.stored_points is not None
        else "local store not read"
    )
    lines = [f"[{rep}] {name}: {loop}; {close}; wall {sample.wall_s:.2f} s; {stored}"]
    if sample.errors:
        lines.append(f"      {len(sample.errors)} tracking message(s) for the run, e.g.:")
        shown = dict.fromkeys(_shorten(e) for e in sample.errors)
        lines.extend(f"        {e}" for e in list(shown)[:3])
    return "\n".join(lines)


def _shorten(text: str, width: int = 200) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def table(results: Sequence[Scenario], args: argparse.Namespace) -> str:
    baseline = results[0].median("loop_s")
    rows = []
    for sc in results:
        at_least = ">= " if sc.cut else ""
        loop = sc.median("loop_s")
        ratio = loop / baseline if baseline > 0 else float("nan")
        rows.append(
            [
                sc.name,
                f"{at_least}{loop:.3f}",
                f"{sc.loop_noise():.0f}",
                "1" if sc is results[0] else f"{at_least}{ratio:.2f}",
                f"{'> ' if sc.close_open else ''}{sc.median('close_s'):.2f}",
                f"{args.shutdown_timeout:g}",
                f"{max(s.wall_s for s in sc.samples):.2f}",
                f"{min(s.steps_run for s in sc.samples)}/{args.steps}",
            ]
        )
    headers = [
        "scenario",
        "loop median (s)",
        "loop noise (±%)",
        "loop ratio to baseline",
        "close median (s)",
        "close limit (s)",
        "max wall (s)",
        "steps run (min)",
    ]
    return tabulate(rows, headers=headers, tablefmt="github")


def verdicts(results: Sequence[Scenario], args: argparse.Namespace) -> tuple[list[str], bool]:
    baseline = results[0].median("loop_s")
    lines, ok = [], True
    close_limit = args.shutdown_timeout + CLOSE_SLACK_S
    for sc in results[1:]:
        ratio = sc.median("loop_s") / baseline if baseline > 0 else float("inf")
        loop_ok = not sc.cut and ratio <= args.max_ratio
        close_ok = not sc.close_open and sc.median("close_s") <= close_limit
        ok = ok and loop_ok and close_ok
        lines.append(
            f"{sc.name}: loop {'>= ' if sc.cut else ''}{ratio:.2f}x the baseline "
            f"(target <= {args.max_ratio:g}): {'met' if loop_ok else 'NOT met'}; "
            f"close {'> ' if sc.close_open else ''}{sc.median('close_s'):.2f} s "
            f"(target <= {close_limit:g} s): "
            f"{'met' if close_ok else 'NOT met'}"
        )
    return lines, ok


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--repeats", "--repeat", type=int, default=None, help="repeats per scenario (5)"
    )
    parser.add_argument("--steps", type=int, default=None, help="log() calls per loop (100000)")
    parser.add_argument(
        "--budget", type=float, default=None, help="seconds a loop or close may run (60)"
    )
    parser.add_argument("--quick", action="store_true", help="1 repeat, 1000 steps, 20 s budget")
    parser.add_argument("--shutdown-timeout", type=float, default=3.0, help="seconds (3)")
    parser.add_argument("--max-ratio", type=float, default=1.25, help="loop target (1.25)")
    parser.add_argument("--tmpdir", default=None, help="where the temp dirs go")
    args = parser.parse_args(argv)
    quick = args.quick
    args.repeats = args.repeats or (1 if quick else 5)
    args.steps = args.steps or (1000 if quick else 100_000)
    args.budget = args.budget or (20.0 if quick else 60.0)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for key in ENV_TO_DROP:
        os.environ.pop(key, None)
    os.environ.update(PROCESS_ENV)
    log = _RunLog()
    root_logger = logging.getLogger()
    root_logger.addHandler(log)  # also keeps Python's last-resort handler quiet
    results = [Scenario(name) for name in SCENARIOS]
    tmp = Path(tempfile.mkdtemp(prefix="bench-hang-", dir=args.tmpdir))
    print(
        f"{args.steps} log() calls, {len(range(0, args.steps, METADATA_EVERY))} add_metadata, "
        f"1 add_source, 1 add_artifact per loop; {args.repeats} repeat(s); shutdown timeout "
        f"{args.shutdown_timeout:g} s; MLFLOW_HTTP_REQUEST_TIMEOUT={MLFLOW_HTTP_REQUEST_TIMEOUT}; "
        f"s3 read_timeout {S3_READ_TIMEOUT} s; budget {args.budget:g} s",
        flush=True,
    )
    try:
        with blackhole() as port:
            print(f"blackhole on 127.0.0.1:{port}", flush=True)
            # Untimed warm-up: the first loop in a process pays for cold code paths.
            warm = run_once("baseline", port, tmp / "warm-up", args, log)
            print(describe("baseline", 0, warm, args) + " (warm-up, not counted)", flush=True)
            for rep in range(1, args.repeats + 1):
                # Take turns going first, so no scenario always runs on a cold (or warm) cache.
                first = (rep - 1) % len(results)
                order = results[first:] + results[:first]
                for sc in order:
                    work = tmp / f"{sc.name}-{rep}"
                    sample = run_once(sc.name, port, work, args, log)
                    sc.samples.append(sample)
                    print(describe(sc.name, rep, sample, args), flush=True)
    finally:
        root_logger.removeHandler(log)
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(table(results, args))
    print()
    lines, ok = verdicts(results, args)
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    from _sigterm import exit_cleanly_on_sigterm  # benchmarks/ is sys.path[0]

    exit_cleanly_on_sigterm()
    sys.exit(main())
