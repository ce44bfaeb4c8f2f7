"""Metrics through AppRun: non-blocking log, bounded memory, flush, rank gating, run status."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

import trackers
from trackers import AppRun, RunSettings, TrackerConfigError
from trackers.backends.fsspec import FsspecTracker, create_tracker
from trackers.metric_queue import DROPPED_METRIC, MetricQueue
from trackers.torchx_compat import torchx_distribution
from trackers.types import MetricPoint

RUN = "local_cwd://torchx/train-1"


class StalledTracker(FsspecTracker):
    """An fsspec store whose metric writes hang until released, as a stuck server would."""

    def __init__(self, root: Path) -> None:
        base = create_tracker(str(root))
        super().__init__(base.fs, base.root, base.config)
        self.release = threading.Event()

    def add_metrics(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        self.release.wait(30)
        super().add_metrics(run_id, points)


@pytest.fixture
def store(tmp_path: Path) -> FsspecTracker:
    return create_tracker(str(tmp_path / "runs"))


def test_points_logged_equal_points_read_back(store: FsspecTracker) -> None:
    with AppRun(RUN, [store], settings=RunSettings(flush_interval=0.05)) as run:
        for step in range(5000):
            run.log({"loss": 1.0 / (step + 1), "lr": 0.1}, step=step)
    loss = store.metrics(RUN, "loss")
    assert [p.step for p in loss] == list(range(5000))
    assert loss[10].value == 1.0 / 11
    assert len(store.metrics(RUN)) == 10_000
    assert store.status(RUN) == "SUCCEEDED"


def test_flush_makes_points_durable(store: FsspecTracker) -> None:
    run = AppRun(RUN, [store], settings=RunSettings(flush_interval=60))
    run.log({"x": 1.0}, step=0)
    assert store.metrics(RUN) == []  # still queued: the interval is long
    assert run.flush(timeout=10)
    assert [p.value for p in store.metrics(RUN)] == [1.0]
    run.close()


def test_summary_is_written_with_the_metrics(store: FsspecTracker) -> None:
    with AppRun(RUN, [store]) as run:
        run.log_summary({"best_acc": 0.7})
        run.log_summary({"best_acc": 0.9, "epochs": 3})
    assert store.summary(RUN) == {"best_acc": 0.9, "epochs": 3}


def test_untracked_run_starts_no_thread() -> None:
    before = threading.active_count()
    run = AppRun.run_from_env()
    for step in range(1000):
        run.log({"x": 1.0}, step=step)
    trackers.log({"x": 2.0})
    assert threading.active_count() == before
    assert run.flush() is True


def test_only_rank_zero_logs_by_default(store: FsspecTracker) -> None:
    with AppRun(RUN, [store], rank=1) as run:
        run.log({"x": 1.0}, step=0)
    assert store.metrics(RUN) == []
    with AppRun(RUN, [store], rank=0) as run:
        run.log({"x": 1.0}, step=0)
    assert [p.rank for p in store.metrics(RUN)] == [None]


def test_all_ranks_opt_in_tags_points_with_rank(store: FsspecTracker) -> None:
    for rank in (0, 1, 2):
        with AppRun(RUN, [store], rank=rank, settings=RunSettings(all_ranks=True)) as run:
            run.log({"x": float(rank)}, step=0)
    assert sorted(p.rank or 0 for p in store.metrics(RUN)) == [0, 1, 2]


class StalledSink:
    """A writer sink that hangs until released: back-pressure applies only when the writer
    thread itself cannot keep up (a stalled backend stalls only its own delivery thread)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.points: list[MetricPoint] = []
        self.summary: dict[str, object] = {}

    def __call__(self, points: Sequence[MetricPoint], summary: Mapping[str, object]) -> None:
        self.release.wait(30)
        self.points.extend(points)
        self.summary.update(summary)


def test_drop_policy_bounds_memory_and_records_the_count() -> None:
    sink = StalledSink()
    queue = MetricQueue(sink, max_queued=1000, policy="drop", flush_interval=0.01)
    queue.put({"x": 0.0}, 0, None)
    time.sleep(0.2)  # the writer is now stuck inside the sink
    for step in range(1, 20_001):
        queue.put({"x": float(step)}, step, None)
        assert queue.queued <= 1000
    sink.release.set()
    assert queue.close(timeout=30)
    points = [p for p in sink.points if p.name == "x"]
    dropped = [p for p in sink.points if p.name == DROPPED_METRIC]
    assert len(points) + int(dropped[-1].value) == 20_001
    assert sink.summary[DROPPED_METRIC] == int(dropped[-1].value)


def test_block_policy_waits_for_room_and_loses_nothing() -> None:
    sink = StalledSink()
    queue = MetricQueue(sink, max_queued=100, flush_interval=0.01)
    queue.put({"x": 0.0}, 0, None)
    time.sleep(0.2)
    done = threading.Event()

    def train() -> None:
        for step in range(1, 1001):
            queue.put({"x": float(step)}, step, None)
        done.set()

    threading.Thread(target=train, daemon=True).start()
    assert not done.wait(0.5)  # blocked: the queue is full and the writer is stuck
    sink.release.set()
    assert done.wait(30)
    assert queue.close(timeout=30)
    assert [p.step for p in sink.points] == list(range(1001))


def test_a_stalled_backend_does_not_block_logging_and_gets_everything_later(
    tmp_path: Path,
) -> None:
    stalled = StalledTracker(tmp_path)
    run = AppRun(RUN, [stalled], settings=RunSettings(max_queued=100, flush_interval=0.01))
    run.log({"x": 0.0}, step=0)
    time.sleep(0.2)  # the backend's delivery thread is now stuck inside add_metrics
    for step in range(1, 1001):
        run.log({"x": float(step)}, step=step)  # the queue holds 100: this drains to the spool
    assert not run.flush(timeout=0.2)
    stalled.release.set()
    run.close(timeout=30)
    assert [p.step for p in stalled.metrics(RUN, "x")] == list(range(1001))


def test_close_reports_undelivered_records_and_the_sync_command(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stalled = StalledTracker(tmp_path)
    run = AppRun(RUN, [stalled], settings=RunSettings(flush_interval=0.01))
    run.log({"x": 1.0})
    start = time.monotonic()
    run.close(timeout=0.3)
    assert time.monotonic() - start < 5
    assert "2 record(s) not delivered to FsspecTracker(" in caplog.text  # the points, the status
    assert f"Deliver them with: torchx tracker sync {RUN}" in caplog.text
    stalled.release.set()


def test_context_manager_records_failure(store: FsspecTracker) -> None:
    with pytest.raises(RuntimeError), AppRun(RUN, [store]) as run:
        run.log({"x": 1.0})
        raise RuntimeError("boom")
    assert store.status(RUN) == "FAILED"
    assert len(store.metrics(RUN)) == 1


def test_queue_refuses_bad_settings() -> None:
    def sink(points: Sequence[MetricPoint], summary: Mapping[str, object]) -> None:
        pass

    with pytest.raises(ValueError, match="policy"):
        MetricQueue(sink, policy="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_queued"):
        MetricQueue(sink, max_queued=0)


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("TORCHX_TRACKER_BACKPRESSURE", "sometimes"),
        ("TORCHX_TRACKER_MAX_QUEUED", "lots"),
        ("TORCHX_TRACKER_FLUSH_INTERVAL", "-1"),
        ("TORCHX_TRACKER_ALL_RANKS", "perhaps"),
    ],
)
def test_malformed_settings_name_the_env_var(var: str, value: str) -> None:
    with pytest.raises(TrackerConfigError, match=var):
        RunSettings.from_env({var: value})


@pytest.fixture
def env_run(monkeypatch: pytest.MonkeyPatch, store: FsspecTracker) -> Iterator[FsspecTracker]:
    monkeypatch.setenv("TORCHX_JOB_ID", RUN)
    monkeypatch.setenv("TORCHX_TRACKERS", "fsspec")
    monkeypatch.setenv("TORCHX_TRACKER_FSSPEC_CONFIG", store.root)
    yield store
    trackers.reset_current_run()


def test_run_from_env_records_running_and_a_snapshot(env_run: FsspecTracker) -> None:
    AppRun.run_from_env().flush()
    assert env_run.status(RUN) == "RUNNING"
    md = env_run.metadata(RUN)
    assert md["env.python"].count(".") == 2  # type: ignore[union-attr]
    assert torchx_distribution() in md["env.packages"]  # type: ignore[operator]


def test_module_level_log_goes_to_the_current_run(env_run: FsspecTracker) -> None:
    trackers.log({"loss": 0.5}, step=7)
    trackers.log_summary({"final_loss": 0.5})
    assert trackers.flush(timeout=10)
    assert [(p.name, p.value, p.step) for p in env_run.metrics(RUN)] == [("loss", 0.5, 7)]
    assert env_run.summary(RUN) == {"final_loss": 0.5}


def test_metric_columns_behave_as_a_sequence_of_points() -> None:
    from trackers.types import MetricColumns

    points = [MetricPoint("a", 1.0, 0, 1.5), MetricPoint("b", 2.0, None, 2.5, 3)]
    cols = MetricColumns.from_rows(points)
    assert len(cols) == 2 and list(cols) == points
    assert cols[1] == points[1] and cols[0:1] == points[:1]
    assert cols.names == ["a", "b"] and cols.ranks == [None, 3]
