"""The spool and delivery: nothing lost while a store is away, nothing written twice on replay."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from trackers import AppRun, RunSettings
from trackers.backends.fsspec import FsspecTracker, create_tracker
from trackers.operations import Operation
from trackers.spool import Segment, segment_paths
from trackers.sync import sync_spool
from trackers.types import MetricColumns, MetricPoint

RUN = "local_cwd://torchx/train-1"


class FlakyTracker(FsspecTracker):
    """An fsspec store that is unreachable (ConnectionError) until ``up`` is set."""

    def __init__(self, root: Path) -> None:
        base = create_tracker(str(root))
        super().__init__(base.fs, base.root, base.config)
        self.up = threading.Event()
        self.attempts = 0

    def _check(self) -> None:
        self.attempts += 1
        if not self.up.is_set():
            raise ConnectionError("connection refused")

    def add_metadata(self, run_id: str, **kwargs: object) -> None:
        self._check()
        super().add_metadata(run_id, **kwargs)

    def add_metrics(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        self._check()
        super().add_metrics(run_id, points)

    def set_status(self, run_id: str, status: str) -> None:  # type: ignore[override]
        self._check()
        super().set_status(run_id, status)  # type: ignore[arg-type]

    def add_summary(self, run_id: str, **values: object) -> None:
        self._check()
        super().add_summary(run_id, **values)


def ref(store: Path) -> tuple[str, str]:
    return ("lineage_fsspec", str(store))


def test_operations_survive_the_spool_encoding() -> None:
    cols = MetricColumns(["loss", "acc"], [math.nan, math.inf], [1, None], [1.5, 2.5], [None, 3])
    metrics = Operation.decode(Operation("1-a", "add_metrics", {"points": cols}).line)
    assert list(metrics.args["points"])[1] == MetricPoint("acc", math.inf, None, 2.5, 3)
    assert math.isnan(list(metrics.args["points"])[0].value)
    odd = Operation.decode(Operation("2-b", "add_metadata", {"values": {"obj": object}}).line)
    assert odd.args["values"] == {"obj": repr(object)}  # as the record stores write it


def test_metric_batches_numbers_cannot_pack_are_spooled_as_json() -> None:
    cols = MetricColumns(["x", "x"], [1.0, 2.0], [1.5, 2**70], [1.0, 2.0], [None, None])
    back = Operation.decode(Operation("1-a", "add_metrics", {"points": cols}).line)
    assert [(p.step, p.value) for p in back.args["points"]] == [(1.5, 1.0), (2**70, 2.0)]


def test_a_malformed_spool_line_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="malformed metric batch"):
        Operation.decode(b'{"id": "1", "op": "add_metrics", "args": {"value": "%%"}}')
    with pytest.raises(ValueError, match="not a spooled operation"):
        Operation.decode(b'{"op": "rm -rf", "args": {}}')


def test_delivering_an_operation_twice_writes_its_records_once(tmp_path: Path) -> None:
    store = create_tracker(str(tmp_path))
    cols = MetricColumns(["loss"], [0.5], [3], [10.0], [None])
    for op in (
        Operation("00000000000000000001-aa", "add_metadata", {"values": {"lr": 0.1}}),
        Operation("00000000000000000002-bb", "add_metrics", {"points": cols}),
        Operation("00000000000000000003-cc", "add_source", {"source_id": "data://x"}),
    ):
        op.apply(store, RUN)
        op.apply(store, RUN)  # a replay: the job died before the acknowledgement was written
    assert len(store.metrics(RUN)) == 1
    assert len(list((tmp_path / store._run_dir(RUN).split("/")[-1] / "metadata").iterdir())) == 1
    assert [s.source_run_id for s in store.sources(RUN)] == ["data://x"]


def test_an_outage_mid_run_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    flaky = FlakyTracker(tmp_path / "store")
    flaky.up.set()
    run = AppRun(RUN, [flaky], settings=RunSettings(flush_interval=0.01, spool_dir=tmp_path))
    run.add_metadata(before=1)
    assert run.flush(timeout=10)
    flaky.up.clear()  # the store goes away mid-run
    for step in range(100):
        run.log({"loss": float(step)}, step=step)
    run.add_metadata(during=2)
    assert not run.flush(timeout=0.5)
    assert [p.name for p in tmp_path.rglob("*.jsonl")]  # waiting on disk, not only in memory
    flaky.up.set()  # back: delivery resumes by itself
    assert run.flush(timeout=30)
    run.close()
    assert [p.step for p in flaky.metrics(RUN, "loss")] == list(range(100))
    assert flaky.metadata(RUN) == {"before": 1, "during": 2}
    assert flaky.status(RUN) == "SUCCEEDED"
    assert not list(tmp_path.rglob("*.jsonl"))  # all delivered: the segment is gone


def test_a_restarted_job_delivers_what_its_predecessor_left_first(tmp_path: Path) -> None:
    store = tmp_path / "store"
    spool = tmp_path / "spool"
    down = FlakyTracker(store)
    first = AppRun(RUN, [down], settings=RunSettings(spool_dir=spool), refs=[ref(store)])
    first.add_metadata(epoch=1, attempt="first")
    first.close(timeout=0.3)  # the store never came back while the first process lived
    assert len(segment_paths(spool, RUN)) == 1

    good = create_tracker(str(store))
    second = AppRun(RUN, [good], settings=RunSettings(spool_dir=spool), refs=[ref(store)])
    second.add_metadata(attempt="second")
    second.close()
    assert good.metadata(RUN) == {"epoch": 1, "attempt": "second"}  # the older write first
    assert good.status(RUN) == "SUCCEEDED"
    assert segment_paths(spool, RUN) == []


def test_sync_delivers_leftovers_from_the_header_and_twice_is_harmless(tmp_path: Path) -> None:
    store = tmp_path / "store"
    spool = tmp_path / "spool"
    settings = RunSettings(spool_dir=spool, flush_interval=0.01)
    run = AppRun(RUN, [FlakyTracker(store)], settings=settings, refs=[ref(store)])
    for step in range(10):
        run.log({"x": float(step)}, step=step)
    run.add_metadata(k="v")
    run.close(timeout=0.5)
    [segment] = segment_paths(spool, RUN)
    good = create_tracker(str(store))
    first = Operation.decode(segment.read_text().splitlines()[1])
    first.apply(good, RUN)  # it went through, but the job died before recording that

    [result] = sync_spool(spool, RUN)
    assert (result.run_id, result.tracker, result.left) == (RUN, "lineage_fsspec", 0)
    assert (result.delivered, result.skipped) == (3, 0)  # metadata, the points, the status
    assert [p.step for p in good.metrics(RUN, "x")] == list(range(10))
    assert good.metadata(RUN) == {"k": "v"}
    assert len(good._read_records(RUN, "metadata")) == 1  # delivered twice, stored once
    assert good.status(RUN) == "SUCCEEDED"
    assert sync_spool(spool, RUN) == []  # nothing left


def test_sync_leaves_a_segment_whose_writer_still_runs(tmp_path: Path) -> None:
    live = Segment.create(tmp_path, RUN, "lineage_fsspec", str(tmp_path / "store"))
    live.append(Operation("1-a", "add_metadata", {"values": {"a": 1}}).line)
    [result] = sync_spool(tmp_path, RUN)
    assert result.note.startswith("in use")
    assert not create_tracker(str(tmp_path / "store")).has_run(RUN)
    live.release()
    assert segment_paths(tmp_path, RUN)  # not delivered, so kept


def test_sync_stops_at_a_store_that_is_still_down_and_keeps_the_rest(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    segment = Segment.create(spool, RUN, "mlflow", '{"uri": "http://127.0.0.1:9"}')
    for i in range(3):
        segment.append(Operation(f"{i}-a", "add_metadata", {"values": {"i": i}}).line)
    segment.release()
    [result] = sync_spool(spool, RUN)
    assert (result.delivered, result.left) == (0, 3)
    assert result.note.startswith("stopped:") and "not reachable" in result.note
    assert segment_paths(spool, RUN)


def test_the_spool_of_a_hostile_run_id_stays_under_the_root(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    segment = Segment.create(spool, "../../etc/passwd", "../../x", "/x")
    segment.append(Operation("1-a", "add_metadata", {"values": {"a": 1}}).line)
    segment.release()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files and all(spool in p.parents for p in files)
    assert [s.name for s in segment_paths(spool, "../../etc/passwd")] == [segment.path.name]


def test_strict_mode_raises_at_once_while_records_wait_for_the_store(tmp_path: Path) -> None:
    flaky = FlakyTracker(tmp_path / "store")
    run = AppRun(RUN, [flaky], strict=True, settings=RunSettings(spool_dir=tmp_path / "spool"))
    with pytest.raises(ConnectionError):
        run.add_metadata(a=1)
    with pytest.raises(Exception, match="wait in the spool"):
        run.add_metadata(b=2)
    flaky.up.set()
    assert run.flush(timeout=30)
    assert flaky.metadata(RUN) == {"a": 1, "b": 2}  # raised, and still not lost
    run.close()


def _header(path: Path) -> Mapping[str, object]:
    return dict(json.loads(path.read_text().splitlines()[0]))


def test_a_segment_names_its_tracker_so_sync_can_rebuild_it(tmp_path: Path) -> None:
    store = tmp_path / "store"
    run = AppRun(RUN, [FlakyTracker(store)], settings=RunSettings(spool_dir=tmp_path / "s"))
    run.add_metadata(a=1)
    run.close(timeout=0.2)
    [segment] = segment_paths(tmp_path / "s", RUN)
    header = _header(segment)
    assert header["run_id"] == RUN and header["tracker"] == "lineage_fsspec"
    assert create_tracker(str(header["config"])).root == create_tracker(str(store)).root
