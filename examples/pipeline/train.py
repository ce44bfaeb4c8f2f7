"""Step 2 of the example pipeline: fit a line by least squares (pure Python) to the train split.

Reads the ``split=train`` rows of the dataset CSV written by ``prepare.py`` and writes
``<out>/model.json`` (``{"slope": ..., "intercept": ...}``). Records into this job's run:

* metadata: the settings (``data``, ``dataset_run_id``, ``method``) and the results (``slope``,
  ``intercept``, ``train_mse``, ``train_rows``);
* artifact ``model``: the JSON file, with its train MSE;
* source: the dataset's run (``--dataset-run-id``) for artifact ``dataset``. The parent run given
  to ``torchx run --parent-run-id`` is recorded as a source automatically;
* metrics (``--apprun ours``; TorchX's ``AppRun`` has no metrics API): the same line also fitted
  by gradient descent for ``--steps`` steps, logging ``train/loss``, ``train/grad_norm`` and
  ``train/lr`` at every step with ``run.log`` (the curves ``torchx tracker ui`` draws), and the
  final loss as a summary value.
"""

from __future__ import annotations

import argparse
import math
import os

from common import add_common_args, current_run, mse, prepare_out_dir, read_rows, write_json


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--data", required=True, help="dataset CSV written by prepare.py")
    parser.add_argument(
        "--dataset-run-id", required=True, help="run id (app handle) of the prepare step"
    )
    parser.add_argument("--steps", type=int, default=300, help="gradient descent steps to log")
    return parser.parse_args(argv)


def fit_line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Ordinary least squares for ``y = slope * x + intercept``: returns ``(slope, intercept)``."""
    n = len(points)
    if n < 2:
        raise ValueError(f"need at least 2 points to fit a line, got {n}")
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        raise ValueError("all x values are equal: the slope is undefined")
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    slope = sxy / sxx
    return slope, mean_y - slope * mean_x


def descend(
    points: list[tuple[float, float]], steps: int, lr: float = 0.05
) -> list[dict[str, float]]:
    """Fit the same line by full-batch gradient descent on standardised x: each step's metrics.

    Returns one ``{"train/loss", "train/grad_norm", "train/lr"}`` per step; the loss is the MSE
    on the original scale, so it falls towards the least-squares MSE.
    """
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    std_x = math.sqrt(sum((x - mean_x) ** 2 for x, _ in points) / n) or 1.0
    w = b = 0.0
    history = []
    for step in range(steps):
        rate = lr * 0.5 * (1 + math.cos(math.pi * step / steps))  # cosine schedule
        errors = [(w * (x - mean_x) / std_x + b) - y for x, y in points]
        grad_w = (
            2 * sum(e * (x - mean_x) / std_x for e, (x, _) in zip(errors, points, strict=True)) / n
        )
        grad_b = 2 * sum(errors) / n
        history.append(
            {
                "train/loss": sum(e * e for e in errors) / n,
                "train/grad_norm": math.hypot(grad_w, grad_b),
                "train/lr": rate,
            }
        )
        w -= rate * grad_w
        b -= rate * grad_b
    return history


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run = current_run(args.apprun)
    data = os.path.abspath(args.data)
    run.add_source(args.dataset_run_id, artifact_name="dataset")
    run.add_metadata(
        step="train",
        apprun=args.apprun,
        data=data,
        dataset_run_id=args.dataset_run_id,
        method="least_squares",
    )

    points = list(read_rows(data, "train"))
    slope, intercept = fit_line(points)
    train_mse = mse(points, slope, intercept)
    path = os.path.join(prepare_out_dir(args.out), "model.json")
    write_json(path, {"slope": slope, "intercept": intercept, "dataset": data})

    log = getattr(run, "log", None)  # our AppRun has metrics; TorchX's has none
    if log is not None and args.steps > 0:
        curve = descend(points, args.steps)
        for step, metrics in enumerate(curve):
            log(metrics, step=step)
        run.log_summary({"final_loss": curve[-1]["train/loss"]})  # type: ignore[attr-defined]

    run.add_metadata(slope=slope, intercept=intercept, train_mse=train_mse, train_rows=len(points))
    run.add_artifact("model", path, {"train_mse": train_mse, "rows": len(points)})
    print(
        f"train: y = {slope:.4f} * x + {intercept:.4f} (train mse {train_mse:.5f}) "
        f"-> {path} [run {run.job_id()}]"
    )


if __name__ == "__main__":
    main()
