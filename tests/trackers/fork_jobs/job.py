"""A job whose worker processes track into the run: the subject of ``test_forked_workers.py``.

Run as a script (``python job.py --method fork --who parent --kind pool``), directly or as a
TorchX job. Each of ``--workers`` tasks ``i`` (one per worker process, except where a pool
hands two tasks to one process) calls ``AppRun.run_from_env()`` and writes ``--records``
metadata keys ``w<i>.r<j>`` and ``--points`` metric points ``w<i>/loss`` at steps 0..points-1,
then ``run.flush(--flush-timeout)`` (default FLUSH_BOUND), and writes whether that flush
returned True into ``--results/flush-<i>`` (the test reads those files; a flush that hangs
leaves none).

``--who parent``: the parent calls ``run_from_env()`` before starting the workers (they inherit
the run with fork, or build it again under spawn/forkserver). ``--who worker``: only the
workers do. ``--kind``: ``process`` (``multiprocessing.Process``), ``pool`` (``with Pool() as
pool: pool.map(...)``, which terminates the workers with SIGTERM on the way out),
``executor`` (``ProcessPoolExecutor``) or ``dataloader`` (torch ``DataLoader`` with
``num_workers=2``, fork). The script prints ``training done`` when the training code has ended.
Self-contained on purpose: a TorchX job runs it from any directory.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from trackers import AppRun

FLUSH_BOUND = 60.0

Task = tuple[int, int, int, str, float]  # worker index, records, points, results dir, bound


def work(task: Task) -> bool:
    i, records, points, results, bound = task
    run = AppRun.run_from_env()
    for j in range(records):
        run.add_metadata(**{f"w{i}.r{j}": j})
    for step in range(points):
        run.log({f"w{i}/loss": 1.0 / (step + 1)}, step=step)
    flushed = run.flush(bound)
    Path(results, f"flush-{i}").write_text("ok" if flushed else "timeout", encoding="ascii")
    return flushed


class _Tasks:
    """A map-style dataset whose item ``i`` is one worker task (for the DataLoader kind)."""

    def __init__(self, tasks: list[Task]) -> None:
        self.tasks = tasks

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, index: int) -> int:
        return int(work(self.tasks[index]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", choices=("fork", "forkserver", "spawn"), default="fork")
    parser.add_argument("--who", choices=("parent", "worker"), default="parent")
    parser.add_argument(
        "--kind", choices=("process", "pool", "executor", "dataloader"), default="process"
    )
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--records", type=int, default=20)
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--results", required=True)
    parser.add_argument("--flush-timeout", type=float, default=FLUSH_BOUND)
    args = parser.parse_args(argv)
    Path(args.results).mkdir(parents=True, exist_ok=True)
    if args.who == "parent":
        AppRun.run_from_env().add_metadata(parent_pid_started=True)
    tasks: list[Task] = [
        (i, args.records, args.points, args.results, args.flush_timeout)
        for i in range(args.workers)
    ]
    ctx = multiprocessing.get_context(args.method)
    if args.kind == "process":
        procs = [ctx.Process(target=work, args=(task,)) for task in tasks]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
    elif args.kind == "pool":
        with ctx.Pool(args.workers) as pool:
            pool.map(work, tasks, chunksize=1)
    elif args.kind == "executor":
        with ProcessPoolExecutor(args.workers, mp_context=ctx) as executor:
            list(executor.map(work, tasks))
    else:
        from torch.utils.data import DataLoader

        loader = DataLoader(
            _Tasks(tasks),  # type: ignore[arg-type]
            batch_size=None,
            num_workers=2,
            multiprocessing_context=ctx,
        )
        list(loader)
    print("training done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
