"""Step 1 of the example pipeline: write a small synthetic dataset (y = slope * x + noise).

Writes ``<out>/dataset.csv`` with columns ``x,y,split``; a ``test_fraction`` of the rows is held
out (``split=test``) for the evaluate step. Records into this job's run:

* metadata: the settings (``rows``, ``slope``, ``noise``, ``seed``...) and the row counts;
* artifact ``dataset``: the CSV, with its row counts.

Run it through the driver (``run_pipeline.py``) or on its own, e.g.::

    torchx run -s local_cwd --tracker fsspec lineage.python --name prepare \\
        --script examples/pipeline/prepare.py -- --out pipeline-out/prepare
"""

from __future__ import annotations

import argparse
import csv
import os
import random

from common import add_common_args, current_run, prepare_out_dir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--rows", type=int, default=200, help="number of rows in all")
    parser.add_argument("--slope", type=float, default=3.0, help="true slope of y = slope * x")
    parser.add_argument("--intercept", type=float, default=0.0, help="true intercept")
    parser.add_argument("--noise", type=float, default=0.1, help="std dev of the gaussian noise")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="share held out")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args(argv)
    if args.rows < 4:
        parser.error("--rows must be at least 4")
    if not 0.0 < args.test_fraction < 1.0:
        parser.error("--test-fraction must be between 0 and 1 (exclusive)")
    return args


def make_rows(args: argparse.Namespace) -> list[tuple[float, float, str]]:
    """``rows`` points ``(x, y, split)`` with x uniform in [0, 1) and gaussian noise on y."""
    rng = random.Random(args.seed)
    n_test = max(1, round(args.rows * args.test_fraction))
    rows = []
    for i in range(args.rows):
        x = rng.random()
        y = args.slope * x + args.intercept + rng.gauss(0.0, args.noise)
        rows.append((x, y, "test" if i < n_test else "train"))
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run = current_run(args.apprun)
    run.add_metadata(
        step="prepare",
        apprun=args.apprun,
        rows=args.rows,
        slope=args.slope,
        intercept=args.intercept,
        noise=args.noise,
        test_fraction=args.test_fraction,
        seed=args.seed,
    )

    rows = make_rows(args)
    path = os.path.join(prepare_out_dir(args.out), "dataset.csv")
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["x", "y", "split"])
        writer.writerows((f"{x:.6f}", f"{y:.6f}", split) for x, y, split in rows)

    n_train = sum(1 for *_, split in rows if split == "train")
    n_test = len(rows) - n_train
    run.add_metadata(train_rows=n_train, test_rows=n_test)
    run.add_artifact(
        "dataset", path, {"rows": len(rows), "train_rows": n_train, "test_rows": n_test}
    )
    print(f"prepare: wrote {len(rows)} rows ({n_test} held out) to {path} [run {run.job_id()}]")


if __name__ == "__main__":
    main()
