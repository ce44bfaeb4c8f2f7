"""``torchx tracker ui`` over large stores: how soon the first page comes back, and memory.

Two stores: 10,000 runs on the local disk and 1,000 runs on S3 (a moto server on 127.0.0.1),
each run with a launch record and a status. For each store, ``--rounds`` times: start the real
server (``torchx tracker ui --port 0``, its own process group), time the first
``GET /api/runs?limit=50`` (cold: the background index has just started), wait until the index
has read every run, time 5 more first-page requests (warm), read the server's RSS, stop it.
Prints medians.

    python benchmarks/bench_ui.py [--rounds 3] [--local-runs 10000] [--s3-runs 1000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.s3.support import admin_client, aws_test_env, moto  # noqa: E402
from tests.ui.conftest import ui_server  # noqa: E402
from tests.ui.stores import write_many_runs  # noqa: E402


def get(url: str) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=300) as response:
        body: dict[str, object] = json.loads(response.read())
    return time.perf_counter() - started, body


def measure(
    cwd: Path, tracker: str, env: dict[str, str], runs: int, rounds: int
) -> dict[str, float]:
    cold, warm, rss, index_s = [], [], [], []
    for _ in range(rounds):
        with ui_server(cwd, tracker, extra_env=env) as server:
            started = time.perf_counter()
            seconds, page = get(server.url + "api/runs?limit=50")
            assert page["total"] == runs and len(page["rows"]) == 50  # type: ignore[arg-type]
            cold.append(seconds)
            while not get(server.url + "api/store")[1]["index"]["ready"]:  # type: ignore[index]
                time.sleep(0.2)
            index_s.append(time.perf_counter() - started)
            warm += [get(server.url + "api/runs?limit=50")[0] for _ in range(5)]
            rss.append(server.rss_mb())
    return {
        "first page, cold (s)": statistics.median(cold),
        "first page, index complete (s)": statistics.median(warm),
        "index complete after (s)": statistics.median(index_s),
        "server RSS (MB)": statistics.median(rss),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--local-runs", type=int, default=10_000)
    parser.add_argument("--s3-runs", type=int, default=1_000)
    args = parser.parse_args()
    from trackers.backends.fsspec import create_tracker
    from trackers.backends.s3 import create_tracker as create_s3_tracker

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        cwd = Path(tmp)
        store = cwd / "store"
        write_many_runs(create_tracker(str(store)), args.local_runs)
        label = f"local, {args.local_runs} runs"
        results[label] = measure(cwd, f"fsspec={store}", {}, args.local_runs, args.rounds)
        env = aws_test_env({})
        import os

        os.environ.update(env)
        with moto(cwd) as server:
            admin_client(server.endpoint).create_bucket(Bucket="bench-ui")  # type: ignore[attr-defined]
            config = json.dumps({"url": "s3://bench-ui/runs", "endpoint_url": server.endpoint})
            tracker = create_s3_tracker(config)
            write_many_runs(tracker, args.s3_runs)
            tracker.close()
            label = f"S3 (moto), {args.s3_runs} runs"
            results[label] = measure(cwd, f"s3={config}", env, args.s3_runs, args.rounds)
    print(f"medians of {args.rounds} server starts")
    for label, row in results.items():
        print(f"{label}:")
        for name, value in row.items():
            print(f"  {name:32s} {value:8.3f}")


if __name__ == "__main__":
    main()
