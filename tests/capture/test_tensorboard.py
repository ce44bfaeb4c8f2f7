"""TensorBoard scalars are recorded into the run too, and TensorBoard's own output is unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

from trackers.backends.fsspec import create_tracker  # noqa: E402

RUN = "local_cwd://torchx/tb-1"

SCRIPT = textwrap.dedent(
    """
    import sys
    if sys.argv[1] == "torch-first":
        from torch.utils.tensorboard import SummaryWriter
    from trackers import AppRun
    run = AppRun.run_from_env()
    from torch.utils.tensorboard import SummaryWriter
    writer = SummaryWriter(sys.argv[2])
    for step in range(20):
        writer.add_scalar("loss", 1.0 / (step + 1), step)
        writer.add_scalars("acc", {"train": step / 20, "val": step / 40}, step)
    writer.close()
    """
)


def scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    found: dict[str, list[tuple[int, float]]] = {}
    for events in sorted({p.parent for p in logdir.rglob("events.out.tfevents.*")}):
        acc = EventAccumulator(str(events))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            key = f"{events.relative_to(logdir)}:{tag}"
            found[key] = [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)]
    return found


def run_script(tmp_path: Path, order: str, logdir: Path, capture: bool) -> None:
    env = dict(os.environ)
    env.update(
        {
            "TORCHX_JOB_ID": RUN,
            "TORCHX_TRACKERS": "fsspec",
            "TORCHX_TRACKER_FSSPEC_CONFIG": str(tmp_path / f"runs-{order}-{capture}"),
            "TORCHX_TRACKER_CAPTURE_TENSORBOARD": "1" if capture else "0",
        }
    )
    subprocess.run(
        [sys.executable, "-c", SCRIPT, order, str(logdir)], env=env, check=True, timeout=300
    )


@pytest.mark.parametrize("order", ["torch-first", "tracker-first"])
def test_summary_writer_scalars_are_captured_unchanged(tmp_path: Path, order: str) -> None:
    with_capture, without = tmp_path / "tb-on", tmp_path / "tb-off"
    run_script(tmp_path, order, with_capture, capture=True)
    run_script(tmp_path, order, without, capture=False)
    assert scalars(with_capture) == scalars(without) != {}
    store = create_tracker(str(tmp_path / f"runs-{order}-True"))
    loss = store.metrics(RUN, "loss")
    assert [(p.step, p.value) for p in loss] == [(s, 1.0 / (s + 1)) for s in range(20)]
    assert [p.value for p in store.metrics(RUN, "acc/val")][:3] == [0.0, 1 / 40, 2 / 40]
    off = create_tracker(str(tmp_path / f"runs-{order}-False"))
    assert off.metrics(RUN) == []
