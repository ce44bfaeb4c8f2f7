"""Benchmark: our MLflow backend against one MLflow call per value, on a real local server.

Why this exists: MLflow's per-value APIs (``MlflowClient.log_param``, ``log_metric``,
``mlflow.log_metric``) make one HTTP request per value; our backend sends a job's metadata and
metric batches with ``log_batch`` in as few requests as MLflow's limits allow. Targets:

* at least 20x fewer HTTP round trips for the same data;
* at least 10x less wall time.

A real ``mlflow server`` is started for the run exactly as the tests start it
(``tests/mlflow/server.py``: 127.0.0.1, free port, SQLite store, local artifact root, one
worker, its own process group, stopped at the end). Every approach writes into a run that
already exists (run creation is not timed: it is the same one-time cost for all, and ours adds a
short settle wait there, reported separately). HTTP round trips are counted by the server
itself, from its access log: every request any client made, our ``/health`` probe included.

Run from the repository root::

    .venv/bin/python benchmarks/bench_mlflow.py            # 1000 values, 3 repeats
    .venv/bin/python benchmarks/bench_mlflow.py --quick    # 200 values, 1 repeat
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.mlflow.server, the same server the tests use

import mlflow  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from tabulate import tabulate  # noqa: E402

from tests.mlflow.server import MlflowServer, running_mlflow_server  # noqa: E402
from trackers.backends.mlflow import MLflowTracker, create_tracker  # noqa: E402
from trackers.types import MetricPoint  # noqa: E402

OURS = "ours (log_batch)"
CLIENT = "MlflowClient, one call per value"
FLUENT = "mlflow.log_metric, one call per value"
TARGET_REQUESTS = 20.0
TARGET_TIME = 10.0
_REQUEST_LINE = re.compile(r'"(GET|POST|PUT|PATCH|DELETE|HEAD) /')


class RequestCounter:
    """Counts the requests the server logged (uvicorn's access log, one line per request)."""

    def __init__(self, server: MlflowServer) -> None:
        self.log = server.log

    def total(self) -> int:
        time.sleep(0.05)  # let the server write its last access-log lines
        return len(_REQUEST_LINE.findall(self.log.read_text(errors="replace")))


@dataclass
class Row:
    """One kind of data written by each approach: wall times and request counts per repeat."""

    label: str
    seconds: dict[str, list[float]] = field(default_factory=dict)
    requests: dict[str, list[int]] = field(default_factory=dict)

    def add(self, approach: str, seconds: float, requests: int) -> None:
        self.seconds.setdefault(approach, []).append(seconds)
        self.requests.setdefault(approach, []).append(requests)

    def median_s(self, approach: str) -> float:
        return statistics.median(self.seconds[approach])

    def median_requests(self, approach: str) -> float:
        return statistics.median(self.requests[approach])


def measured(counter: RequestCounter, fn: Callable[[], None]) -> tuple[float, int]:
    before = counter.total()
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    return elapsed, counter.total() - before


def run_benchmark(server: MlflowServer, n: int, repeats: int) -> tuple[list[Row], dict[str, float]]:
    counter = RequestCounter(server)
    experiment = f"bench-{uuid.uuid4().hex[:8]}"
    config = f'{{"uri": "{server.uri}", "experiment": "{experiment}"}}'
    client = MlflowClient(tracking_uri=server.uri)
    mlflow.set_tracking_uri(server.uri)
    values = {f"param_{i:04d}": i * 0.5 for i in range(n)}
    now = time.time()
    points = [MetricPoint("loss", 1.0 / (i + 1), i, now + i / 1000) for i in range(n)]

    first_write: dict[str, float] = {}
    metadata_row, metrics_row = Row(f"{n} metadata entries"), Row(f"{n} metric points")
    for repeat in range(repeats):
        # ours: a fresh tracker (as a new job would have) and a run it created, untimed
        tracker: MLflowTracker = create_tracker(config)
        run_id = f"local_cwd://torchx/bench-{repeat}-{uuid.uuid4().hex[:6]}"
        seconds, requests = measured(counter, partial(tracker.add_metadata, run_id, warmup=1))
        first_write.setdefault("seconds", seconds)
        first_write.setdefault("requests", requests)
        seconds, requests = measured(counter, partial(tracker.add_metadata, run_id, **values))
        metadata_row.add(OURS, seconds, requests)
        assert len(tracker.metadata(run_id)) == n + 1
        seconds, requests = measured(counter, partial(tracker.add_metrics, run_id, points))
        metrics_row.add(OURS, seconds, requests)
        assert len(tracker.metrics(run_id)) == n

        # MlflowClient, one call per value, into a run created beforehand
        exp_id = tracker._experiment(create=True)
        assert exp_id is not None
        mlflow_run = client.create_run(exp_id, run_name=f"client-{repeat}").info.run_id

        def client_params(run: str = mlflow_run) -> None:
            for key, value in values.items():
                client.log_param(run, key, value)

        def client_metrics(run: str = mlflow_run) -> None:
            for p in points:
                client.log_metric(
                    run, p.name, p.value, timestamp=int(p.timestamp * 1000), step=p.step
                )

        seconds, requests = measured(counter, client_params)
        metadata_row.add(CLIENT, seconds, requests)
        seconds, requests = measured(counter, client_metrics)
        metrics_row.add(CLIENT, seconds, requests)
        assert len(client.get_run(mlflow_run).data.params) == n
        assert len(client.get_metric_history(mlflow_run, "loss")) == n

        # the fluent API, one call per value, in an active run started beforehand
        with mlflow.start_run(experiment_id=exp_id, run_name=f"fluent-{repeat}") as active:

            def fluent_metrics() -> None:
                for p in points:
                    mlflow.log_metric(
                        p.name, p.value, step=p.step, timestamp=int(p.timestamp * 1000)
                    )

            seconds, requests = measured(counter, fluent_metrics)
            metrics_row.add(FLUENT, seconds, requests)
        assert len(client.get_metric_history(active.info.run_id, "loss")) == n
        print(f"repeat {repeat + 1}/{repeats} done", file=sys.stderr)
    return [metadata_row, metrics_row], first_write


def report(rows: list[Row], first_write: dict[str, float], n: int) -> bool:
    table = []
    ok = True
    for row in rows:
        ours_s, ours_r = row.median_s(OURS), row.median_requests(OURS)
        table.append([row.label, OURS, f"{ours_s:.3f}", f"{ours_r:g}", "", ""])
        for approach in (CLIENT, FLUENT):
            if approach not in row.seconds:
                continue
            s, r = row.median_s(approach), row.median_requests(approach)
            time_ratio, request_ratio = s / ours_s, r / ours_r
            ok &= time_ratio >= TARGET_TIME and request_ratio >= TARGET_REQUESTS
            table.append(
                ["", approach, f"{s:.3f}", f"{r:g}", f"{request_ratio:.0f}x", f"{time_ratio:.0f}x"]
            )
    headers = ["data", "written by", "median s", "HTTP requests", "fewer requests", "faster"]
    print(tabulate(table, headers=headers, tablefmt="github"))
    print(
        f"\nours, first write to a new run (experiment lookup, run creation with its settle wait, "
        f"1 value): {first_write['seconds']:.3f} s, {first_write['requests']:g} requests "
        "(one-time per run and process, not in the rows above)"
    )
    verdict = "met" if ok else "NOT met"
    print(
        f"targets (>= {TARGET_REQUESTS:g}x fewer requests and >= {TARGET_TIME:g}x faster than "
        f"every one-call-per-value approach, {n} values): {verdict}"
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--values", type=int, default=1000, help="values per row (default 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (default 3)")
    parser.add_argument("--quick", action="store_true", help="200 values, 1 repeat")
    args = parser.parse_args(argv)
    n, repeats = (200, 1) if args.quick else (args.values, args.repeats)
    with tempfile.TemporaryDirectory(prefix="bench_mlflow-") as tmp:
        print(f"starting mlflow server (SQLite store in {tmp}) ...", file=sys.stderr)
        with running_mlflow_server(Path(tmp)) as server:
            print(f"server {server.uri}; {n} values, {repeats} repeat(s)", file=sys.stderr)
            rows, first_write = run_benchmark(server, n, repeats)
    return 0 if report(rows, first_write, n) else 1


if __name__ == "__main__":
    from _sigterm import exit_cleanly_on_sigterm  # benchmarks/ is sys.path[0]

    exit_cleanly_on_sigterm()
    sys.exit(main())
