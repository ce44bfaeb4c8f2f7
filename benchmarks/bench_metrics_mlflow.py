"""Metric logging into MLflow: what the training thread pays, and how long until durable.

Why: MLflow users log with ``mlflow.log_metric`` (one HTTP request per point) or with MLflow's own
asynchronous logging (``synchronous=False``, a background queue inside MLflow). Ours is
``AppRun.log`` (a lock-free queue, batches sent with ``log_batch`` by a writer thread). The same
points go through each, into the same local ``mlflow server`` (started exactly as the tests start
it: ``tests/mlflow/server.py``, 127.0.0.1, one worker, its own process group), each approach into
its own MLflow run. Reported per approach, medians over repeats:

* training-thread time: from the first to the last logging call returning;
* end-to-end time: until every point is stored (``flush_async_logging`` / ``run.flush``);
* ratios of MLflow's numbers to ours (> 1: ours is faster).

Run from the repository root::

    .venv/bin/python benchmarks/bench_metrics_mlflow.py            # 1000 points, 3 repeats
    .venv/bin/python benchmarks/bench_metrics_mlflow.py --points 5000 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.mlflow.server, the server the tests use

import mlflow  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from tabulate import tabulate  # noqa: E402

from tests.mlflow.server import running_mlflow_server  # noqa: E402
from trackers import AppRun, RunSettings  # noqa: E402
from trackers.backends.mlflow import create_tracker  # noqa: E402

Timing = tuple[float, float]  # (training-thread seconds, end-to-end seconds)


def per_call(uri: str, experiment: str, points: int) -> Timing:
    """``mlflow.log_metric`` once per point (synchronous: both times are the same)."""
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run():
        start = time.perf_counter()
        for i in range(points):
            mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
        elapsed = time.perf_counter() - start
    return elapsed, elapsed


def mlflow_async(uri: str, experiment: str, points: int) -> Timing:
    """MLflow's own asynchronous logging, then ``flush_async_logging``."""
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run():
        start = time.perf_counter()
        for i in range(points):
            mlflow.log_metric("loss", 1.0 / (i + 1), step=i, synchronous=False)
        thread = time.perf_counter() - start
        mlflow.flush_async_logging()
        end_to_end = time.perf_counter() - start
    return thread, end_to_end


def ours(uri: str, experiment: str, points: int) -> Timing:
    """``AppRun.log`` into our MLflow backend, then ``flush``."""
    tracker = create_tracker(f'{{uri: "{uri}", experiment: "{experiment}"}}')
    run = AppRun(f"local_cwd://bench/{uuid.uuid4().hex[:8]}", [tracker], settings=RunSettings())
    run.add_metadata(created=True)  # the MLflow run exists before timing starts, as for MLflow
    run.flush()  # (writes are delivered by a background thread)
    start = time.perf_counter()
    for i in range(points):
        run.log({"loss": 1.0 / (i + 1)}, step=i)
    thread = time.perf_counter() - start
    run.flush()
    end_to_end = time.perf_counter() - start
    run.close()
    return thread, end_to_end


def stored_points(uri: str, experiment: str) -> list[int]:
    """Points of ``loss`` in every run of ``experiment`` (to check nothing was lost)."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    return [len(client.get_metric_history(r.info.run_id, "loss")) for r in runs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    approaches: dict[str, Callable[[str, str, int], Timing]] = {
        "mlflow.log_metric per point": per_call,
        "mlflow.log_metric(synchronous=False)": mlflow_async,
        "ours: AppRun.log": ours,
    }
    results: dict[str, list[Timing]] = {name: [] for name in approaches}
    with tempfile.TemporaryDirectory() as tmp, running_mlflow_server(Path(tmp)) as server:
        for repeat in range(args.repeats):
            for name, approach in approaches.items():
                experiment = f"bench-{repeat}-{uuid.uuid4().hex[:6]}"
                results[name].append(approach(server.uri, experiment, args.points))
                counts = stored_points(server.uri, experiment)
                if counts != [args.points]:
                    print(f"FAIL: {name} stored {counts} points, expected [{args.points}]")
                    return 1
    medians = {
        name: (statistics.median(t for t, _ in ts), statistics.median(e for _, e in ts))
        for name, ts in results.items()
    }
    our_thread, our_e2e = medians["ours: AppRun.log"]
    rows = [
        [
            name,
            f"{thread:.4f}",
            f"{e2e:.3f}",
            f"{thread / our_thread:,.0f}x" if name != "ours: AppRun.log" else "",
            f"{e2e / our_e2e:,.1f}x" if name != "ours: AppRun.log" else "",
        ]
        for name, (thread, e2e) in medians.items()
    ]
    print(f"{args.points} points, medians of {args.repeats} repeats, every point read back")
    print(
        tabulate(
            rows,
            headers=["approach", "thread s", "end-to-end s", "thread ratio", "end-to-end ratio"],
        )
    )
    return 0


if __name__ == "__main__":
    from _sigterm import exit_cleanly_on_sigterm  # benchmarks/ is sys.path[0]

    exit_cleanly_on_sigterm()
    sys.exit(main())
