"""The conformance suite every backend passes: round trips of every write path, lineage, order.

A backend's test module subclasses :class:`TrackerContract` and provides a ``tracker`` fixture
(and ``make_tracker`` for a second handle on the same store, as another process would have).
It ships in the package so a third-party backend can run it; it needs pytest (not a dependency
of torchx-lineage). Call ``pytest.register_assert_rewrite("trackers.testing")`` in a conftest.py
for pytest's detailed assertion messages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from trackers.api import LineageTracker, capabilities
from trackers.registry import create_tracker
from trackers.types import MetricPoint

RUN = "local_cwd://torchx/train-1"
PARENT = "local_cwd://torchx/prepare-1"
CHILD = "local_cwd://torchx/eval-1"


class TrackerContract:
    """Behaviour shared by all :class:`LineageTracker` backends."""

    @pytest.fixture
    def tracker(self) -> LineageTracker:
        raise NotImplementedError

    @pytest.fixture
    def make_tracker(self) -> Callable[[], LineageTracker]:
        raise NotImplementedError

    # --- metadata ---
    def test_metadata_round_trips_values_of_json_types(self, tracker: LineageTracker) -> None:
        tracker.add_metadata(RUN, lr=0.1, epochs=3, name="résumé", tags=["a", "b"], cfg={"x": 1})
        assert tracker.metadata(RUN) == {
            "lr": 0.1,
            "epochs": 3,
            "name": "résumé",
            "tags": ["a", "b"],
            "cfg": {"x": 1},
        }

    def test_metadata_last_write_wins_every_time(self, tracker: LineageTracker) -> None:
        # TorchX's FsspecTracker returns either value about half the time.
        for i in range(30):
            tracker.add_metadata(RUN, bs=i)
            assert tracker.metadata(RUN)["bs"] == i

    def test_metadata_of_unknown_run_is_empty(self, tracker: LineageTracker) -> None:
        assert tracker.metadata("local_cwd://torchx/nope") == {}
        assert not tracker.has_run("local_cwd://torchx/nope")

    def test_concurrent_writers_lose_no_record(
        self, make_tracker: Callable[[], LineageTracker]
    ) -> None:
        # Every replica of a role shares one run id; separate handles stand in for processes.
        def write(worker: int) -> None:
            t = make_tracker()
            for i in range(25):
                t.add_metadata(RUN, **{f"w{worker}_{i}": i})

        threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert len(make_tracker().metadata(RUN)) == 8 * 25

    # --- artifacts ---
    def test_artifacts_round_trip_with_metadata(self, tracker: LineageTracker) -> None:
        tracker.add_artifact(RUN, "model", "/ckpt/model.pt", {"epoch": 3})
        tracker.add_artifact(RUN, "log", "/logs/train.log")
        arts = tracker.artifacts(RUN)
        assert set(arts) == {"model", "log"}
        assert arts["model"].path == "/ckpt/model.pt"
        assert arts["model"].metadata == {"epoch": 3}
        assert arts["log"].metadata is None

    def test_artifact_added_again_returns_newest(self, tracker: LineageTracker) -> None:
        for i in range(10):
            tracker.add_artifact(RUN, "model", f"/ckpt/{i}.pt")
            assert tracker.artifacts(RUN)["model"].path == f"/ckpt/{i}.pt"

    # --- sources, descendants, lineage ---
    def test_sources_keep_every_artifact_name(self, tracker: LineageTracker) -> None:
        tracker.add_metadata(PARENT, step="prepare")
        tracker.add_source(RUN, PARENT, "checkpoint")
        tracker.add_source(RUN, PARENT, "dataset")
        names = sorted(s.artifact_name or "" for s in tracker.sources(RUN))
        assert names == ["checkpoint", "dataset"]
        assert [s.artifact_name for s in tracker.sources(RUN, "dataset")] == ["dataset"]

    def test_source_without_artifact_name(self, tracker: LineageTracker) -> None:
        tracker.add_source(RUN, PARENT)
        assert [(s.source_run_id, s.artifact_name) for s in tracker.sources(RUN)] == [
            (PARENT, None)
        ]

    def test_add_source_twice_is_one_link(self, tracker: LineageTracker) -> None:
        tracker.add_metadata(PARENT, step="prepare")
        tracker.add_source(RUN, PARENT, "dataset")
        tracker.add_source(RUN, PARENT, "dataset")
        assert len(list(tracker.sources(RUN))) == 1
        assert len(tracker.descendants(PARENT)) == 1

    def test_descendant_link_is_written_into_parent(self, tracker: LineageTracker) -> None:
        tracker.add_metadata(PARENT, step="prepare")
        tracker.add_source(RUN, PARENT, "dataset")
        assert [(d.run_id, d.artifact_name) for d in tracker.descendants(PARENT)] == [
            (RUN, "dataset")
        ]
        assert tracker.run_ids(parent_run_id=PARENT) == [RUN]

    def test_external_source_does_not_become_a_run(self, tracker: LineageTracker) -> None:
        tracker.add_source(RUN, "hf://datasets/mnist", "dataset")
        assert tracker.run_ids() == [RUN]
        assert [s.source_run_id for s in tracker.sources(RUN)] == ["hf://datasets/mnist"]

    def test_run_ids_lists_every_run(self, tracker: LineageTracker) -> None:
        ids = [f"slurm://torchx/{i}" for i in range(5)]
        for i in ids:
            tracker.add_metadata(i, x=1)
        assert tracker.run_ids() == sorted(ids)

    def test_run_ids_rejects_unknown_filters(self, tracker: LineageTracker) -> None:
        with pytest.raises(TypeError, match="parent_run_id"):
            tracker.run_ids(owner="me")

    def test_lineage_is_transitive_both_ways(self, tracker: LineageTracker) -> None:
        chain = [f"local_cwd://torchx/step-{i}" for i in range(5)]
        tracker.add_metadata(chain[0], step=0)
        for prev, cur in zip(chain, chain[1:], strict=False):
            tracker.add_metadata(cur, step=1)
            tracker.add_source(cur, prev, "data")
        lin = tracker.lineage(chain[2])
        assert lin.ancestors == {chain[1]: 1, chain[0]: 2}
        assert lin.descendants == {chain[3]: 1, chain[4]: 2}
        assert tracker.lineage(chain[2], direction="sources").descendants == {}
        assert tracker.lineage(chain[2], direction="descendants").ancestors == {}
        assert tracker.lineage(chain[4], depth=1).ancestors == {chain[3]: 1}

    def test_lineage_filters_by_artifact(self, tracker: LineageTracker) -> None:
        for r in (PARENT, RUN, CHILD):
            tracker.add_metadata(r, x=1)
        tracker.add_source(RUN, PARENT, "dataset")
        tracker.add_source(CHILD, RUN, "model")
        assert tracker.lineage(CHILD, artifact_name="model").ancestors == {RUN: 1}
        assert tracker.lineage(CHILD, artifact_name="dataset").ancestors == {}

    def test_lineage_survives_cycles(self, tracker: LineageTracker) -> None:
        a, b, c = "x://s/a", "x://s/b", "x://s/c"
        for r in (a, b, c):
            tracker.add_metadata(r, x=1)
        tracker.add_source(b, a)
        tracker.add_source(c, b)
        tracker.add_source(a, c)
        lin = tracker.lineage(a)
        assert lin.ancestors == {c: 1, b: 2}
        assert lin.descendants == {b: 1, c: 2}
        assert len(lin.edges) == 3

    def test_lineage_of_diamond_counts_shortest_distance(self, tracker: LineageTracker) -> None:
        top, left, right, bottom = "d://s/top", "d://s/l", "d://s/r", "d://s/bottom"
        for r in (top, left, right, bottom):
            tracker.add_metadata(r, x=1)
        tracker.add_source(left, top)
        tracker.add_source(right, top)
        tracker.add_source(bottom, left)
        tracker.add_source(bottom, right)
        assert tracker.lineage(bottom).ancestors == {left: 1, right: 1, top: 2}
        assert tracker.lineage(top).descendants == {left: 1, right: 1, bottom: 2}

    # --- metrics and summaries ---
    def test_metric_batches_round_trip_in_order(self, tracker: LineageTracker) -> None:
        first = [MetricPoint("loss", 1.0 / (i + 1), i, 1000.0 + i) for i in range(50)]
        second = [MetricPoint("acc", 0.5, 49, 1049.5), MetricPoint("loss", 0.01, 50, 1050.0)]
        tracker.add_metrics(RUN, first)
        tracker.add_metrics(RUN, second)
        assert tracker.metrics(RUN) == first + second
        assert [p.step for p in tracker.metrics(RUN, "loss")] == list(range(51))
        assert tracker.metrics(RUN, "acc") == [second[0]]

    def test_metric_special_values_and_ranks_survive(self, tracker: LineageTracker) -> None:
        points = [
            MetricPoint("x", float("inf"), None, 1.0, rank=3),
            MetricPoint("x", float("-inf"), 2, 2.0, rank=0),
            MetricPoint("x", float("nan"), 3, 3.0),
        ]
        tracker.add_metrics(RUN, points)
        got = tracker.metrics(RUN, "x")
        assert got[:2] == points[:2]
        assert got[2].value != got[2].value and got[2].step == 3

    def test_steps_going_back_after_a_resume_are_kept_in_write_order(
        self, tracker: LineageTracker, make_tracker: Callable[[], LineageTracker]
    ) -> None:
        before = [MetricPoint("loss", 1.0 - i / 10, i, 1000.0 + i) for i in range(10)]
        tracker.add_metrics(RUN, before)
        # The job restarts from its step-5 checkpoint: same run id, a new process.
        after = [MetricPoint("loss", 0.7 - i / 100, i, 2000.0 + i) for i in range(5, 10)]
        make_tracker().add_metrics(RUN, after)
        assert tracker.metrics(RUN, "loss") == before + after

    def test_an_operation_delivered_twice_is_stored_once(self, tracker: LineageTracker) -> None:
        from trackers.operations import Operation

        ops = [
            Operation("00000000000000001000-a1", "add_metadata", {"values": {"lr": 0.1}}),
            Operation(
                "00000000000000002000-a2",
                "add_metrics",
                {"points": [MetricPoint("loss", 0.5, 1, 2.0), MetricPoint("loss", 0.4, 2, 2.5)]},
            ),
            Operation(
                "00000000000000003000-a3",
                "add_artifact",
                {"name": "model", "path": "/m.pt", "metadata": {"epoch": 1}},
            ),
            Operation("00000000000000004000-a4", "add_source", {"source_id": PARENT}),
            Operation("00000000000000005000-a5", "add_summary", {"values": {"best": 0.9}}),
            Operation("00000000000000006000-a6", "set_status", {"status": "SUCCEEDED"}),
        ]
        for op in ops + ops:  # a replay after the first delivery went through unacknowledged
            op.apply(tracker, RUN)
        assert [(p.step, p.value) for p in tracker.metrics(RUN)] == [(1, 0.5), (2, 0.4)]
        assert tracker.metadata(RUN) == {"lr": 0.1}
        assert list(tracker.artifacts(RUN)) == ["model"]
        assert [s.source_run_id for s in tracker.sources(RUN)] == [PARENT]
        assert tracker.summary(RUN) == {"best": 0.9}
        assert tracker.status(RUN) == "SUCCEEDED"

    def test_metrics_of_unknown_run_are_empty(self, tracker: LineageTracker) -> None:
        tracker.add_metrics(RUN, [])
        assert tracker.metrics("local_cwd://torchx/nope") == []

    def test_summary_last_write_wins(self, tracker: LineageTracker) -> None:
        tracker.add_summary(RUN, best_acc=0.8, epochs=1)
        tracker.add_summary(RUN, best_acc=0.9)
        assert tracker.summary(RUN) == {"best_acc": 0.9, "epochs": 1}

    def test_concurrent_metric_writers_lose_no_point(
        self, make_tracker: Callable[[], LineageTracker]
    ) -> None:
        def write(worker: int) -> None:
            t = make_tracker()
            for batch in range(10):
                t.add_metrics(
                    RUN, [MetricPoint(f"w{worker}", float(i), batch * 20 + i) for i in range(20)]
                )

        threads = [threading.Thread(target=write, args=(w,)) for w in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        got = make_tracker().metrics(RUN)
        assert len(got) == 6 * 10 * 20
        assert sorted(p.step or 0 for p in got if p.name == "w0") == list(range(200))

    # --- status ---
    def test_status_last_write_wins(self, tracker: LineageTracker) -> None:
        assert tracker.status(RUN) is None
        tracker.set_status(RUN, "RUNNING")
        assert tracker.status(RUN) == "RUNNING"
        tracker.set_status(RUN, "FAILED")
        assert tracker.status(RUN) == "FAILED"

    def test_status_history_ends_with_the_status_and_its_times_are_real(
        self, tracker: LineageTracker
    ) -> None:
        # A backend keeps every status (then all, in order) or only the last; a time it gives
        # is when that status was recorded (seconds since the epoch), so ordered and in range.
        assert tracker.status_history(RUN) == []
        before = time.time()
        tracker.set_status(RUN, "RUNNING")
        tracker.set_status(RUN, "FAILED")
        after = time.time()
        history = tracker.status_history(RUN)
        assert [s for _, s in history] in (["RUNNING", "FAILED"], ["FAILED"])
        times = [t for t, _ in history if t is not None]
        assert all(before - 1 <= t <= after + 1 for t in times), (before, history, after)
        assert times == sorted(times)

    def test_status_rejects_unknown_values(self, tracker: LineageTracker) -> None:
        with pytest.raises(ValueError, match="SUCCEEDED"):
            tracker.set_status(RUN, "DONE")  # type: ignore[arg-type]

    # --- optional capabilities: the backend's own or LineageTracker's defaults ---
    def test_strict_is_a_bool_capabilities_agree_on(self, tracker: LineageTracker) -> None:
        assert isinstance(tracker.strict, bool)
        assert capabilities(tracker).strict is tracker.strict

    def test_job_config_reopens_the_same_store(self, tracker: LineageTracker) -> None:
        tracker.add_metadata(RUN, lr=0.1)
        config = tracker.job_config()
        assert config == capabilities(tracker).job_config()
        if config is None:  # the job gets the config the tracker was built from, unchanged
            return
        assert tracker.registry_name, "a tracker with a job_config() needs its registry_name"
        again = create_tracker(tracker.registry_name, config, origin="job_config()")
        assert again.metadata(RUN) == {"lr": 0.1}

    def test_ensure_root_and_close_can_repeat_and_leave_it_usable(
        self, tracker: LineageTracker
    ) -> None:
        tracker.ensure_root()
        capabilities(tracker).ensure_root()
        tracker.add_metadata(RUN, a=1)
        tracker.close()
        capabilities(tracker).close()
        assert tracker.metadata(RUN) == {"a": 1}

    # --- hostile input ---
    @pytest.mark.parametrize(
        "run_id",
        ["../../etc/passwd", "/abs/path", "a/../../b", 'local://s/x,y "q" $HOME\\\n日本'],
    )
    def test_odd_run_ids_round_trip_and_stay_in_the_store(
        self, tracker: LineageTracker, run_id: str
    ) -> None:
        tracker.add_metadata(run_id, ok=True)
        tracker.add_artifact(run_id, "../../evil", "../../evil")
        assert tracker.metadata(run_id) == {"ok": True}
        assert run_id in tracker.run_ids()
        assert tracker.artifacts(run_id)["../../evil"].path == "../../evil"
