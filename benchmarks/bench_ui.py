"""``torchx tracker ui`` over large stores: how soon the first page comes back, and memory.

Two stores: 10,000 runs on the local disk and 1,000 runs on S3 (a moto server on 127.0.0.1),
each run with a launch record and a status, written through our tracker. Each is measured twice:
as written (its catalog is ~3 segments per run: a read-only viewer does not merge them) and
after one ``compact_catalog()`` (how any ``torchx tracker list`` or ``torchx tracker compact``
leaves it). For each, ``--rounds`` times: start the real server (``torchx tracker ui --port 0``,
its own process group), time the first ``GET /api/runs?limit=50`` (cold: nothing read yet), then
the time until the catalog is loaded and until every row is known (read, or held whole by the
catalog: what sorting and filtering by every column need), 5 more first pages (warm), and
the server's peak and final RSS; stop it. Prints medians, and checks them against :data:`BOUNDS`
(exit status 1 when one is over).

    python benchmarks/bench_ui.py [--rounds 3] [--local-runs 10000] [--s3-runs 1000]
"""

from __future__ import annotations

import argparse
import json
import os
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

#: The bounds the README states (medians on a shared 2-core machine), by the store label's first
#: word: the cold first page and the server's peak resident memory. The first page reads its 50
#: rows: locally a few file reads each; on S3 up to 9 requests each (launch record, status
#: history and, before the catalog is loaded, sources: a listing, the snapshot, the records),
#: and moto answers one at a time, ~7 ms each here, so ~3.3 s of its work on an idle machine.
BOUNDS = {
    "local,": {"first page, cold (s)": 1.0, "server peak RSS (MB)": 300.0},
    "S3": {"first page, cold (s)": 5.0, "server peak RSS (MB)": 300.0},
}


def get(url: str) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=300) as response:
        body: dict[str, object] = json.loads(response.read())
    return time.perf_counter() - started, body


def measure(
    cwd: Path, tracker: str, env: dict[str, str], runs: int, rounds: int
) -> dict[str, float]:
    cold, warm, catalog_s, index_s, peak, final = [], [], [], [], [], []
    for _ in range(rounds):
        with ui_server(cwd, tracker, extra_env=env) as server:
            started = time.perf_counter()
            seconds, page = get(server.url + "api/runs?limit=50")
            assert page["total"] == runs and len(page["rows"]) == 50  # type: ignore[arg-type]
            assert all(r["component"] for r in page["rows"])  # type: ignore[attr-defined]
            cold.append(seconds)
            catalog_at = None
            while True:
                index = get(server.url + "api/store")[1]["index"]
                assert isinstance(index, dict)
                if index["catalog"] and catalog_at is None:
                    catalog_at = time.perf_counter() - started
                if index["ready"]:
                    break
                time.sleep(0.1)
            catalog_s.append(catalog_at or 0.0)
            index_s.append(time.perf_counter() - started)
            warm += [get(server.url + "api/runs?limit=50")[0] for _ in range(5)]
            peak.append(server.peak_rss_mb())
            final.append(server.rss_mb())
    return {
        "first page, cold (s)": statistics.median(cold),
        "first page, warm (s)": statistics.median(warm),
        "catalog loaded after (s)": statistics.median(catalog_s),
        "every row known after (s)": statistics.median(index_s),
        "server peak RSS (MB)": statistics.median(peak),
        "server RSS at the end (MB)": statistics.median(final),
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
        local = create_tracker(str(store))
        write_many_runs(local, args.local_runs)
        for state in ("as written", "merged"):
            if state == "merged":
                local.compact_catalog()
            label = f"local, {args.local_runs:,} runs, catalog {state}"
            results[label] = measure(cwd, f"fsspec={store}", {}, args.local_runs, args.rounds)
        env = aws_test_env({})
        os.environ.update(env)
        with moto(cwd) as server:
            admin_client(server.endpoint).create_bucket(Bucket="bench-ui")  # type: ignore[attr-defined]
            config = json.dumps({"url": "s3://bench-ui/runs", "endpoint_url": server.endpoint})
            tracker = create_s3_tracker(config)
            write_many_runs(tracker, args.s3_runs)
            for state in ("as written", "merged"):
                if state == "merged":
                    tracker.compact_catalog()
                label = f"S3 (moto), {args.s3_runs:,} runs, catalog {state}"
                results[label] = measure(cwd, f"s3={config}", env, args.s3_runs, args.rounds)
            tracker.close()
    print(f"medians of {args.rounds} server starts")
    over = []
    for label, row in results.items():
        print(f"{label}:")
        for name, value in row.items():
            bound = BOUNDS[label.split(" ", 1)[0]].get(name)
            mark = "" if bound is None else f"  (bound {bound:g})"
            print(f"  {name:28s} {value:8.3f}{mark}")
            if bound is not None and value > bound:
                over.append(f"{label}: {name} {value:.3f} > {bound:g}")
    for line in over:
        print(f"OVER THE BOUND: {line}")
    sys.exit(1 if over else 0)


if __name__ == "__main__":
    from _sigterm import exit_cleanly_on_sigterm  # benchmarks/ is sys.path[0]

    exit_cleanly_on_sigterm()
    main()
