"""Step 3 of the example pipeline: the model's mean squared error on the held-out split.

Reads the model JSON written by ``train.py`` and the ``split=test`` rows of the dataset CSV, and
writes ``<out>/report.json``. Records into this job's run:

* metadata: the settings (``model``, ``data``, ``model_run_id``) and the results (``mse``,
  ``test_rows``);
* artifact ``report``: the JSON report, with its MSE;
* source: the model's run (``--model-run-id``) for artifact ``model``. The parent run given to
  ``torchx run --parent-run-id`` is recorded as a source automatically.
"""

from __future__ import annotations

import argparse
import json
import os

from common import add_common_args, current_run, mse, prepare_out_dir, read_rows, write_json


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--model", required=True, help="model JSON written by train.py")
    parser.add_argument("--data", required=True, help="dataset CSV written by prepare.py")
    parser.add_argument(
        "--model-run-id", required=True, help="run id (app handle) of the train step"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run = current_run(args.apprun)
    model_path, data = os.path.abspath(args.model), os.path.abspath(args.data)
    run.add_source(args.model_run_id, artifact_name="model")
    run.add_metadata(
        step="evaluate",
        apprun=args.apprun,
        model=model_path,
        data=data,
        model_run_id=args.model_run_id,
    )

    with open(model_path, encoding="utf-8") as f:
        model = json.load(f)
    points = list(read_rows(data, "test"))
    test_mse = mse(points, model["slope"], model["intercept"])
    path = os.path.join(prepare_out_dir(args.out), "report.json")
    write_json(path, {"mse": test_mse, "test_rows": len(points), "model": model_path})

    run.add_metadata(mse=test_mse, test_rows=len(points))
    run.add_artifact("report", path, {"mse": test_mse, "rows": len(points)})
    print(
        f"evaluate: held-out mse {test_mse:.5f} on {len(points)} rows -> {path} "
        f"[run {run.job_id()}]"
    )


if __name__ == "__main__":
    main()
