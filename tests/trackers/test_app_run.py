"""AppRun: TorchX's job API, fanned out to every tracker, never fatal unless strict."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from torchx.tracker.api import TrackerArtifact

from tests.trackers.test_snapshots import stored_snapshot
from trackers import AppRun, RunSettings, TrackerConfigError
from trackers.api import LineageTracker
from trackers.backends.fsspec import FsspecTracker, create_tracker
from trackers.types import LinkedRun, MetricPoint, RunStatus

RUN = "local_cwd://torchx/train-1"
PARENT = "local_cwd://torchx/prepare-1"


class BrokenTracker(LineageTracker):
    """Every call fails: by default as an unreachable server would (a transient error)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls = 0
        self.error = error or ConnectionError("store unreachable")

    def _fail(self) -> None:
        self.calls += 1
        raise self.error

    def add_artifact(
        self, run_id: str, name: str, path: str, metadata: Mapping[str, object] | None = None
    ) -> None:
        self._fail()

    def artifacts(self, run_id: str) -> Mapping[str, TrackerArtifact]:
        self._fail()
        return {}

    def add_metadata(self, run_id: str, **kwargs: object) -> None:
        self._fail()

    def metadata(self, run_id: str) -> Mapping[str, object]:
        self._fail()
        return {}

    def add_source(self, run_id: str, source_id: str, artifact_name: str | None = None) -> None:
        self._fail()

    def _source_links(self, run_id: str) -> list[LinkedRun]:
        self._fail()
        return []

    def _descendant_links(self, run_id: str) -> list[LinkedRun]:
        self._fail()
        return []

    def has_run(self, run_id: str) -> bool:
        self._fail()
        return False

    def _all_run_ids(self) -> list[str]:
        self._fail()
        return []

    def add_metrics(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        self._fail()

    def metrics(self, run_id: str, name: str | None = None) -> list[MetricPoint]:
        self._fail()
        return []

    def add_summary(self, run_id: str, **values: object) -> None:
        self._fail()

    def summary(self, run_id: str) -> Mapping[str, object]:
        self._fail()
        return {}

    def _set_status(self, run_id: str, status: RunStatus) -> None:
        self._fail()

    def status(self, run_id: str) -> RunStatus | None:
        self._fail()
        return None


def set_env(monkeypatch: pytest.MonkeyPatch, root: Path, **extra: str) -> None:
    monkeypatch.setenv("TORCHX_JOB_ID", RUN)
    monkeypatch.setenv("TORCHX_TRACKERS", "fsspec")
    monkeypatch.setenv("TORCHX_TRACKER_FSSPEC_CONFIG", str(root))
    for k, v in extra.items():
        monkeypatch.setenv(k, v)


def test_without_env_it_is_a_no_op_run() -> None:
    run = AppRun.run_from_env()
    assert run.job_id() == "<UNDEFINED>"
    assert run.backends == []
    run.add_metadata(a=1)  # no error, nothing written
    assert run.metadata() == {} and run.sources() == [] and run.children() == []


def test_run_from_env_is_a_singleton_until_reset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from trackers import reset_current_run

    first = AppRun.run_from_env()
    set_env(monkeypatch, tmp_path)
    assert AppRun.run_from_env() is first
    reset_current_run()
    assert AppRun.run_from_env().job_id() == RUN


def test_parent_from_env_is_recorded_as_source(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store = create_tracker(str(tmp_path))
    store.add_metadata(PARENT, step="prepare")
    set_env(monkeypatch, tmp_path, TORCHX_PARENT_RUN_ID=PARENT)
    run = AppRun.run_from_env()
    assert [s.parent.id for s in run.sources()] == [PARENT]
    parent = run.sources()[0].parent
    assert [c.id for c in parent.children()] == [RUN]
    assert run.lineage().ancestors == {PARENT: 1}


def test_writes_fan_out_to_every_backend(tmp_path: Path) -> None:
    a, b = create_tracker(str(tmp_path / "a")), create_tracker(str(tmp_path / "b"))
    run = AppRun(RUN, [a, b])
    run.add_metadata(lr=0.1)
    run.add_artifact("model", "/m.pt", {"epoch": 2})
    assert run.flush(timeout=10)
    assert a.metadata(RUN) == b.metadata(RUN) == {"lr": 0.1}
    assert a.artifacts(RUN)["model"].path == b.artifacts(RUN)["model"].path == "/m.pt"


def test_an_unreachable_backend_does_not_stop_the_others_and_keeps_its_records(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken, good = BrokenTracker(), create_tracker(str(tmp_path / "store"))
    spool = tmp_path / "spool"
    run = AppRun(RUN, [broken, good], settings=RunSettings(spool_dir=spool))
    with caplog.at_level(logging.ERROR):
        for i in range(5):
            run.add_metadata(step=i)
        assert not run.flush(timeout=1)  # the broken one never takes them
    assert good.metadata(RUN) == {"step": 4}
    assert broken.calls >= 2  # the first record is retried, the rest wait behind it
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1  # logged once with its cause, not once per attempt
    assert "store unreachable" in errors[0].getMessage()
    assert "kept in the spool and retried" in errors[0].getMessage()
    run.close(timeout=0.5)
    kept = [p for p in spool.rglob("*.jsonl") if "BrokenTracker" in p.parent.name]
    assert len(kept) == 1
    ops = [json.loads(line) for line in kept[0].read_text().splitlines()[1:]]
    assert [op["args"]["values"] for op in ops if op["op"] == "add_metadata"] == [
        {"step": i} for i in range(5)
    ]


def test_a_record_the_backend_rejects_is_skipped_once_and_the_rest_delivered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rejecting = BrokenTracker(ValueError("param 'step' cannot change"))
    run = AppRun(RUN, [rejecting], settings=RunSettings(spool_dir=tmp_path))
    with caplog.at_level(logging.ERROR):
        for i in range(5):
            run.add_metadata(step=i)
        assert run.flush(timeout=10)
    assert rejecting.calls == 5  # each tried once, none retried
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "skipped" in errors[0].getMessage()
    run.close()
    assert not list(tmp_path.rglob("*.jsonl"))  # nothing left to deliver


def test_a_value_changed_after_the_write_is_recorded_as_it_was(tmp_path: Path) -> None:
    class Gated(FsspecTracker):
        """Delivers nothing until the gate opens."""

        gate = threading.Event()

        def add_metadata(self, run_id: str, **kwargs: object) -> None:
            self.gate.wait(10)
            super().add_metadata(run_id, **kwargs)

    base = create_tracker(str(tmp_path))
    store = Gated(base.fs, base.root, base.config)
    run = AppRun(RUN, [store])
    config = {"lr": 0.1, "layers": [1, 2]}
    run.add_metadata(config=config)
    config["lr"] = 99.0  # before the background delivery took it
    config["layers"].append(3)  # type: ignore[attr-defined]
    Gated.gate.set()
    run.close()
    assert store.metadata(RUN)["config"] == {"lr": 0.1, "layers": [1, 2]}


def test_reads_fall_over_to_the_next_backend(tmp_path: Path) -> None:
    good = create_tracker(str(tmp_path))
    good.add_metadata(RUN, lr=0.1)
    assert AppRun(RUN, [BrokenTracker(), good]).metadata() == {"lr": 0.1}


def test_strict_mode_raises(tmp_path: Path) -> None:
    run = AppRun(RUN, [BrokenTracker()], strict=True)
    with pytest.raises(ConnectionError):
        run.add_metadata(a=1)
    run.close(timeout=0)


def test_a_strict_tracker_raises_while_the_others_stay_lenient(tmp_path: Path) -> None:
    strict = BrokenTracker()
    strict.strict = True  # type: ignore[attr-defined]
    lenient = BrokenTracker()
    with pytest.raises(ConnectionError):
        AppRun(RUN, [lenient, strict]).add_metadata(a=1)
    run = AppRun(RUN, [lenient])
    run.add_metadata(a=1)  # logged, not raised
    run.close(timeout=0)


def test_bad_tracker_in_env_is_logged_and_dropped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TORCHX_JOB_ID", RUN)
    monkeypatch.setenv("TORCHX_TRACKERS", "nosuch,fsspec")
    monkeypatch.setenv("TORCHX_TRACKER_FSSPEC_CONFIG", str(tmp_path))
    with caplog.at_level(logging.ERROR):
        run = AppRun.from_env()
    assert len(run.backends) == 1
    assert "nosuch" in caplog.text
    run.add_metadata(ok=True)
    run.flush()
    assert create_tracker(str(tmp_path)).metadata(RUN) == {"ok": True}


def test_bad_tracker_in_env_raises_in_strict_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCHX_TRACKERS", "fsspec")
    monkeypatch.setenv("TORCHX_TRACKER_FSSPEC_CONFIG", "{url: 5}")
    monkeypatch.setenv("TORCHX_TRACKER_STRICT", "1")
    with pytest.raises(TrackerConfigError, match="TORCHX_TRACKER_FSSPEC_CONFIG"):
        AppRun.from_env()


def test_children_and_lineage_work_on_torchx_only_trackers(tmp_path: Path) -> None:
    import fsspec
    from torchx.tracker.backend.fsspec import FsspecTracker as TorchxFsspecTracker

    theirs = TorchxFsspecTracker(fsspec.filesystem("file"), str(tmp_path))
    theirs.add_metadata(PARENT, x=1)
    theirs.add_source(RUN, PARENT, "dataset")
    parent = AppRun(PARENT, [theirs])
    assert [c.id for c in parent.children()] == [RUN]
    assert parent.lineage().descendants == {RUN: 1}


# --- compaction when the run closes ---


def test_a_run_closed_by_app_run_is_compacted_for_its_first_reader(tmp_path: Path) -> None:
    store = create_tracker(str(tmp_path / "runs"))
    run = AppRun(RUN, [store], settings=RunSettings(spool_dir=tmp_path / "spool"))
    for i in range(40):
        run.add_metadata(**{f"k{i}": i})
    run.add_source(PARENT, "dataset")
    run.close()
    snapshots = tmp_path / "runs" / store._run_dir(RUN).rsplit("/", 1)[1] / ".snapshot"
    _, metadata = stored_snapshot((snapshots / "metadata").read_bytes())
    assert len(metadata["records"]) == 40
    header, links = stored_snapshot((snapshots / "links").read_bytes())
    assert len(links["records"]) == 1
    assert header["views"]["sources"]["runs"] == [PARENT]
    reader = create_tracker(str(tmp_path / "runs"))
    assert reader.metadata(RUN) == {f"k{i}": i for i in range(40)}


def _start_and_close_a_run(root: str, spool: str) -> None:
    run = AppRun(RUN, [create_tracker(root)], settings=RunSettings(spool_dir=Path(spool)))
    for i in range(40):
        run.add_metadata(**{f"k{i}": i})
    run.close()


def test_a_run_closed_in_a_process_multiprocessing_started_is_not_compacted_at_close(
    tmp_path: Path,
) -> None:
    """A pool worker's parent may be tearing the pool down while the worker closes its run."""
    import multiprocessing

    root = str(tmp_path / "runs")
    child = multiprocessing.get_context("spawn").Process(
        target=_start_and_close_a_run, args=(root, str(tmp_path / "spool"))
    )
    child.start()
    child.join(60)
    assert child.exitcode == 0
    run_dir = tmp_path / "runs" / create_tracker(root)._run_dir(RUN).rsplit("/", 1)[1]
    assert (run_dir / "metadata").is_dir()
    assert not (run_dir / ".snapshot" / "metadata").exists()
    assert create_tracker(root).metadata(RUN) == {f"k{i}": i for i in range(40)}


class SlowCompactingTracker(FsspecTracker):
    """A store whose compaction takes far longer than a job may take to end."""

    def compact(self, run_id: str) -> None:
        threading.Event().wait(30)


def test_compaction_at_close_is_given_up_at_the_shutdown_limit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import time

    import fsspec

    store = SlowCompactingTracker(fsspec.filesystem("file"), str(tmp_path / "runs"))
    settings = RunSettings(spool_dir=tmp_path / "spool", shutdown_timeout=1.0)
    run = AppRun(RUN, [store], settings=settings)
    run.add_metadata(x=1)
    start = time.monotonic()
    with caplog.at_level(logging.INFO, logger="trackers.delivery"):
        run.close()
    assert time.monotonic() - start < 5
    assert "did not finish within the shutdown limit" in caplog.text
    assert create_tracker(str(tmp_path / "runs")).metadata(RUN) == {"x": 1}
