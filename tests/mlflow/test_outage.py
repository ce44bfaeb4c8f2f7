"""A real job against a real ``mlflow server`` that crashes mid-run (issue #7).

The job is a Python process that uses ``AppRun.run_from_env()`` as a TorchX job does; the server
is SIGKILLed (its whole process group, like a crash) while the job logs, then started again on
the same port with the same SQLite store and artifact root. Every metric point and metadata key
must end up in MLflow exactly once: delivered late by the job itself when the server is back in
time, or by ``torchx tracker sync`` from the spool the job left when it is not.

The tests and the job coordinate through a file the job writes its step into, and through the
job's log; the only sleeps are the job's own pacing and the polls.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.entities import Run, ViewType
from mlflow.tracking import MlflowClient

from tests.mlflow.server import MlflowServer, free_port, running_mlflow_server
from trackers.backends.mlflow import TAG_RUN_ID, create_tracker

pytestmark = pytest.mark.mlflow

TORCHX = str(Path(sys.executable).parent / "torchx")

#: Steps the job logs (two metrics each), and metadata every ``METADATA_EVERY`` steps.
STEPS = 300
METADATA_EVERY = 10
#: Seconds between steps: the job logs for about ``STEPS * PAUSE`` s.
PAUSE = 0.03
#: The step at which the server is killed.
KILL_AT = 100
#: The step at which the first test's job waits for the server to be back (so that it goes on
#: logging while it catches up): the server takes several seconds to start on a busy machine.
RESUME_AT = 250

JOB = textwrap.dedent(
    """
    import logging, os, sys, time

    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    from trackers.app_run import AppRun

    steps, every, pause = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    step_file, gate, gate_file = sys.argv[4], int(sys.argv[5]), sys.argv[6]
    run = AppRun.run_from_env()
    for i in range(steps):
        if i == gate:
            while not os.path.exists(gate_file):
                time.sleep(0.05)
        run.log({"loss": 1.0 / (i + 1), "acc": i / steps}, step=i)
        if i % every == 0:
            run.add_metadata(**{f"k{i}": i})
        with open(step_file + ".tmp", "w") as f:
            f.write(str(i))
        os.replace(step_file + ".tmp", step_file)
        time.sleep(pause)
    print("job: logged every step", flush=True)
    """
)


@dataclass
class Job:
    """The job process, its step file and its log."""

    proc: subprocess.Popen[bytes]
    run_id: str
    step_file: Path
    log: Path
    gate_file: Path

    def resume(self) -> None:
        """Let the job go on past its gate."""
        self.gate_file.touch()

    def step(self) -> int:
        try:
            return int(self.step_file.read_text() or -1)
        except (OSError, ValueError):
            return -1

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def job_env(run_id: str, uri: str, experiment: str, spool: Path, shutdown: float) -> dict[str, str]:
    """The env TorchX would give the job: nothing of the test's own TORCHX_*/MLFLOW_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TORCHX_", "MLFLOW_"))}
    env.update(
        TORCHX_JOB_ID=run_id,
        TORCHX_TRACKERS="mlflow",
        TORCHX_TRACKER_MLFLOW_CONFIG=json.dumps({"uri": uri, "experiment": experiment}),
        TORCHX_TRACKER_SPOOL_DIR=str(spool),
        TORCHX_TRACKER_FLUSH_INTERVAL="0.1",
        TORCHX_TRACKER_SHUTDOWN_TIMEOUT=str(shutdown),
        # Detect the outage in seconds (the backend's defaults are 10 s and 2 retries).
        MLFLOW_HTTP_REQUEST_TIMEOUT="2",
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
        PYTHONUNBUFFERED="1",
    )
    return env


def start_job(
    tmp: Path, uri: str, experiment: str, spool: Path, shutdown: float, gate: int = -1
) -> Job:
    """The job; with ``gate``, it waits before that step until :meth:`Job.resume`."""
    run_id = f"local_cwd://torchx/outage-{uuid.uuid4().hex[:8]}"
    step_file, log, gate_file = tmp / "step", tmp / "job.log", tmp / "resume"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                JOB,
                str(STEPS),
                str(METADATA_EVERY),
                str(PAUSE),
                str(step_file),
                str(gate),
                str(gate_file),
            ],
            env=job_env(run_id, uri, experiment, spool, shutdown),
            cwd=tmp,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Job(proc, run_id, step_file, log, gate_file)


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, job: Job | None = None
) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` (with the job's log) if not."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            detail = f"\njob log:\n{job.output()[-4000:]}" if job is not None else ""
            pytest.fail(f"timed out after {timeout} s waiting for {what}{detail}")
        time.sleep(0.05)


def fixed_port() -> int:
    """A free port for a server that is restarted on it, outside the kernel's ephemeral range:
    while the server is down, a port of that range can become the local end of any outgoing
    connection on this machine, and the restart would find it taken."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return free_port()
    for port in random.sample(range(10_000, low), min(50, max(0, low - 10_000))):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def crash(server: MlflowServer, port: int) -> None:
    """SIGKILL the server's process group (a crash: no shutdown of any kind)."""
    os.killpg(server.pid, signal.SIGKILL)
    wait_for(lambda: not port_open(port), 30, f"port {port} to close after the kill")


def the_runs(
    client: MlflowClient, experiment: str, run_id: str, view: int = ViewType.ACTIVE_ONLY
) -> list[Run]:
    """The MLflow runs (default: not deleted) tagged with TorchX run ``run_id``."""
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"experiment {experiment} was not created"
    return list(
        client.search_runs(
            [exp.experiment_id],
            filter_string=f"tags.`{TAG_RUN_ID}` = '{run_id}'",
            run_view_type=view,
            max_results=1000,
        )
    )


def assert_everything_once(uri: str, experiment: str, config: str, run_id: str) -> None:
    """Every step of both metrics, every metadata key, status FINISHED: each exactly once."""
    client = MlflowClient(tracking_uri=uri)
    runs = the_runs(client, experiment, run_id)
    assert len(runs) == 1, [(r.info.run_id, r.info.status) for r in runs]
    # Not even a deleted one: the outage made no second run.
    assert len(the_runs(client, experiment, run_id, ViewType.ALL)) == 1
    run = runs[0]
    mlflow_run = run.info.run_id
    expected = {
        "loss": {i: 1.0 / (i + 1) for i in range(STEPS)},
        "acc": {i: i / STEPS for i in range(STEPS)},
    }
    for key, values in expected.items():
        history = client.get_metric_history(mlflow_run, key)
        steps = Counter(m.step for m in history)
        assert len(history) == STEPS, (
            f"{key}: {len(history)} points; repeated steps "
            f"{sorted(s for s, n in steps.items() if n > 1)[:20]}, missing "
            f"{sorted(set(range(STEPS)) - set(steps))[:20]}"
        )
        assert set(steps) == set(range(STEPS))
        assert {m.step: m.value for m in history} == values
    params, tags = run.data.params, run.data.tags
    for i in range(0, STEPS, METADATA_EVERY):
        key = f"k{i}"
        # A param, or (when the first attempt was stored but not acknowledged, and the replay
        # found the param there) the backend's metadata tag holding the same value.
        if key in params:
            assert params[key] == str(i), (key, params[key])
        else:
            assert json.loads(tags[f"torchx.metadata.{key}"]) == {"key": key, "value": i}
    assert run.info.status == "FINISHED", run.info.status

    tracker = create_tracker(config)
    metadata = tracker.metadata(run_id)
    assert {k: metadata.get(k) for k in expected_metadata()} == expected_metadata()
    points = tracker.metrics(run_id)
    counts = Counter((p.name, p.step) for p in points)
    assert len(points) == 2 * STEPS, f"{len(points)} exact points"
    assert set(counts) == {(n, s) for n in expected for s in range(STEPS)}
    assert max(counts.values()) == 1
    assert {(p.name, p.step): p.value for p in points} == {
        (n, s): v for n, values in expected.items() for s, v in values.items()
    }
    assert tracker.status(run_id) == "SUCCEEDED"


def expected_metadata() -> dict[str, int]:
    return {f"k{i}": i for i in range(0, STEPS, METADATA_EVERY)}


def segments(spool: Path) -> list[Path]:
    return sorted(spool.rglob("*.jsonl"))


def json_in(stdout: str) -> list[dict[str, object]]:
    """The JSON list in ``stdout``, from its first line that opens one (see the last check of
    the sync test for what else may be printed)."""
    lines = stdout.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("["))
    data = json.loads("".join(lines[start:]))
    assert isinstance(data, list)
    return data


def sync(run_id: str, spool: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``torchx tracker sync RUN_ID --spool-dir DIR --format json`` as a user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TORCHX_", "MLFLOW_"))}
    env.update(HOME=str(cwd), MLFLOW_HTTP_REQUEST_TIMEOUT="10")
    return subprocess.run(
        [TORCHX, "tracker", "sync", run_id, "--spool-dir", str(spool), "--format", "json"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@dataclass(frozen=True)
class Crash:
    """A job whose MLflow server was SIGKILLed at step ``KILL_AT`` (and is still down)."""

    job: Job
    port: int
    root: Path
    spool: Path
    uri: str
    experiment: str
    config: str
    down_at: float
    killed_at: int


@contextmanager
def job_through_a_crash(tmp_path: Path, *, shutdown: float, gate: int = -1) -> Iterator[Crash]:
    """Start a server on a fixed port and a job logging to it; kill the server mid-run."""
    port, root, spool = fixed_port(), tmp_path / "server", tmp_path / "spool"
    experiment = f"outage-{uuid.uuid4().hex[:12]}"
    job: Job | None = None
    try:
        with running_mlflow_server(root, port=port) as first:
            config = json.dumps({"uri": first.uri, "experiment": experiment})
            job = start_job(tmp_path, first.uri, experiment, spool, shutdown=shutdown, gate=gate)
            wait_for(lambda: job.step() >= KILL_AT, 120, f"step {KILL_AT}", job)
            crash(first, port)
            down_at, killed_at = time.monotonic(), job.step()
        # (Leaving the block above can take seconds: PID 1 of this box reaps the server's
        # orphaned worker late, and the helper waits until the whole process group is gone.)
        yield Crash(job, port, root, spool, first.uri, experiment, config, down_at, killed_at)
    finally:
        if job is not None:
            job.stop()


def test_server_killed_mid_run_and_restarted_gets_every_record_exactly_once(
    tmp_path: Path,
) -> None:
    with job_through_a_crash(tmp_path, shutdown=60, gate=RESUME_AT) as crashed:
        job = crashed.job
        # Down while the job goes on logging: until it noticed, and some 100 steps (~3 s); then
        # it waits at step RESUME_AT until the server is back, and logs the rest while the
        # records of the outage are caught up.
        wait_for(lambda: "not reachable" in job.output(), 60, "the job to see the outage", job)
        wait_for(
            lambda: (
                job.step() >= min(crashed.killed_at + 100, RESUME_AT - 1)
                or job.proc.poll() is not None
            ),
            60,
            "the job to go on while the server is down",
            job,
        )
        assert job.proc.poll() is None, f"the job ended during the outage:\n{job.output()}"
        with running_mlflow_server(crashed.root, port=crashed.port) as second:
            assert second.uri == crashed.uri
            assert job.proc.poll() is None and job.step() < RESUME_AT, job.output()
            job.resume()
            code = job.proc.wait(timeout=240)
            output = job.output()
            assert code == 0, output
            assert "job: logged every step" in output
            assert "is back after" in output, output
            assert "not delivered" not in output, output
            assert_everything_once(second.uri, crashed.experiment, crashed.config, job.run_id)
        assert segments(crashed.spool) == []


def test_records_left_while_the_server_is_down_are_delivered_by_sync_exactly_once(
    tmp_path: Path,
) -> None:
    with job_through_a_crash(tmp_path, shutdown=2) as crashed:
        job, spool, uri, experiment, config = (
            crashed.job,
            crashed.spool,
            crashed.uri,
            crashed.experiment,
            crashed.config,
        )
        # Down until the job has ended: it logs the rest of its steps into the spool only.
        started = time.monotonic()
        code = job.proc.wait(timeout=120)
        took = time.monotonic() - started
        job_ended_ms = time.time() * 1000
        output = job.output()
        assert code == 0, output
        assert "job: logged every step" in output
        # The rest of the steps (~6 s) plus the shutdown limit (2 s), with room for a slow box.
        assert took < 60, f"the job took {took:.1f} s after the kill:\n{output}"
        undelivered = [line for line in output.splitlines() if "not delivered to" in line]
        assert len(undelivered) == 1, output
        line = undelivered[0]
        assert f"run {job.run_id}: " in line
        assert "within the shutdown limit (2 s)" in line
        assert line.endswith(f"Deliver them with: torchx tracker sync {job.run_id}"), line
        left = int(line.split(f"run {job.run_id}: ", 1)[1].split(" record(s)", 1)[0])
        assert left > 0
        assert len(segments(spool)) == 1, segments(spool)
        assert str(segments(spool)[0].parent) in line

        with running_mlflow_server(crashed.root, port=crashed.port) as second:
            assert second.uri == uri
            client = MlflowClient(tracking_uri=uri)
            # What the job could deliver before the crash is there; the rest is not (yet).
            (before,) = the_runs(client, experiment, job.run_id)
            assert before.info.status == "RUNNING"
            assert len(client.get_metric_history(before.info.run_id, "loss")) < STEPS

            done = sync(job.run_id, spool, tmp_path)
            assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
            (result,) = json_in(done.stdout)
            assert result["run_id"] == job.run_id
            assert result["tracker"] == "mlflow"
            assert (result["delivered"], result["skipped"], result["left"]) == (left, 0, 0)
            assert segments(spool) == []
            assert not any(spool.iterdir()), list(spool.rglob("*"))
            assert_everything_once(uri, experiment, config, job.run_id)
            # The status came late, but the run ended when the job did, not when sync ran.
            (after,) = the_runs(client, experiment, job.run_id)
            assert after.info.end_time <= job_ended_ms, (after.info.end_time, job_ended_ms)

            again = sync(job.run_id, spool, tmp_path)
            assert again.returncode == 1, f"{again.stdout}\n{again.stderr}"
            assert again.stdout == ""
            assert (
                f"torchx tracker: nothing spooled for run {job.run_id!r} under {spool}"
                in again.stderr.splitlines()
            ), again.stderr
            assert_everything_once(uri, experiment, config, job.run_id)
            # Last, so that everything above is checked anyway: --format json is for programs.
            assert done.stdout.startswith("["), (
                f"`torchx tracker sync --format json` printed more than JSON:\n{done.stdout}"
            )
