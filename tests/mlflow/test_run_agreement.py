"""RunAgreement on its own: one MLflow run per TorchX run id, however many agree at once.

Against the session's real MLflow server (``tests/mlflow/conftest.py``), each test in a new
experiment, with the protocol's waits shortened.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from mlflow.entities import Run, ViewType
from mlflow.tracking import MlflowClient

from tests.mlflow.server import MlflowServer
from trackers.backends.mlflow.encoding import (
    TAG_CANONICAL,
    TAG_DUPLICATE_OF,
    TAG_RUN_ID,
    TAG_RUN_KEY,
    run_key,
)
from trackers.backends.mlflow.run_agreement import RunAgreement

pytestmark = pytest.mark.mlflow

RUN = "slurm://torchx/4242"


@pytest.fixture
def experiment_id(client: MlflowClient, experiment: str) -> str:
    return client.create_experiment(experiment)


@pytest.fixture
def make_agreement(mlflow_server: MlflowServer, experiment_id: str) -> Callable[..., RunAgreement]:
    def make(**waits: float) -> RunAgreement:
        options = {"settle_min_s": 0.2, "creator_grace_s": 1.0, "rank_wait_s": 1.0, "poll_s": 0.05}
        return RunAgreement(
            MlflowClient(tracking_uri=mlflow_server.uri),
            lambda create: experiment_id,
            where=mlflow_server.uri,
            **{**options, **waits},
        )

    return make


def runs(client: MlflowClient, experiment_id: str, deleted_too: bool = False) -> list[Run]:
    view = ViewType.ALL if deleted_too else ViewType.ACTIVE_ONLY
    return list(client.search_runs([experiment_id], run_view_type=view))


def other_creator(client: MlflowClient, experiment_id: str, *, marked: bool) -> str:
    """A run as another process would have created it (marked once it has agreed)."""
    tags = {TAG_RUN_ID: RUN, TAG_RUN_KEY: run_key(RUN)}
    if marked:
        tags[TAG_CANONICAL] = "true"
    return client.create_run(experiment_id, run_name=RUN, tags=tags).info.run_id


def test_find_never_creates(
    make_agreement: Callable[..., RunAgreement], client: MlflowClient, experiment_id: str
) -> None:
    agreement = make_agreement()
    assert agreement.find(RUN) is None
    assert not agreement.exists(RUN)
    assert runs(client, experiment_id) == []


def test_ensure_creates_one_marked_scheduled_run_and_remembers_it(
    make_agreement: Callable[..., RunAgreement], client: MlflowClient, experiment_id: str
) -> None:
    agreement = make_agreement()
    created = agreement.ensure(RUN)
    (run,) = runs(client, experiment_id)
    assert run.info.run_id == created and run.info.run_name == RUN
    assert run.info.status == "SCHEDULED"
    assert run.data.tags[TAG_RUN_ID] == RUN and run.data.tags[TAG_RUN_KEY] == run_key(RUN)
    assert run.data.tags[TAG_CANONICAL] == "true"
    assert agreement.ensure(RUN) == agreement.find(RUN) == created
    assert make_agreement().find(RUN) == created  # another process finds the same run
    assert agreement.exists(RUN)


def test_a_marked_run_wins_over_an_earlier_unmarked_one(
    make_agreement: Callable[..., RunAgreement], client: MlflowClient, experiment_id: str
) -> None:
    other_creator(client, experiment_id, marked=False)
    time.sleep(0.01)
    marked = other_creator(client, experiment_id, marked=True)
    assert make_agreement().ensure(RUN) == marked
    assert make_agreement().find(RUN) == marked


def test_of_two_marked_runs_the_earliest_wins(
    make_agreement: Callable[..., RunAgreement], client: MlflowClient, experiment_id: str
) -> None:
    first = other_creator(client, experiment_id, marked=True)
    time.sleep(0.01)
    other_creator(client, experiment_id, marked=True)
    assert make_agreement().find(RUN) == first


def test_an_unmarked_run_is_adopted_after_the_grace_time(
    make_agreement: Callable[..., RunAgreement], client: MlflowClient, experiment_id: str
) -> None:
    # Its creator died while settling: nobody marks it, so the next writer does.
    abandoned = other_creator(client, experiment_id, marked=False)
    agreement = make_agreement(creator_grace_s=0.3)
    assert agreement.find(RUN) == abandoned  # a read takes it, but does not remember it
    assert agreement.ensure(RUN) == abandoned
    assert client.get_run(abandoned).data.tags[TAG_CANONICAL] == "true"
    assert len(runs(client, experiment_id, deleted_too=True)) == 1


def test_creators_racing_in_threads_agree_and_losers_delete_theirs(
    make_agreement: Callable[..., RunAgreement], client: MlflowClient, experiment_id: str
) -> None:
    n = 4
    agreements = [make_agreement(settle_min_s=0.5) for _ in range(n)]
    barrier = threading.Barrier(n)
    chosen: list[str] = []

    def create(agreement: RunAgreement) -> None:
        barrier.wait()
        chosen.append(agreement.ensure(RUN))

    threads = [threading.Thread(target=create, args=(a,)) for a in agreements]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(chosen) == n and len(set(chosen)) == 1
    (active,) = runs(client, experiment_id)
    assert active.info.run_id == chosen[0]
    losers = [
        r for r in runs(client, experiment_id, deleted_too=True) if r.info.run_id != chosen[0]
    ]
    assert all(r.info.lifecycle_stage == "deleted" for r in losers)
    assert all(r.data.tags[TAG_DUPLICATE_OF] == chosen[0] for r in losers)


def test_a_rank_above_zero_waits_for_rank_zeros_run(
    make_agreement: Callable[..., RunAgreement],
    client: MlflowClient,
    experiment_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RANK", "1")
    created: list[str] = []
    rank0 = threading.Timer(
        0.3, lambda: created.append(other_creator(client, experiment_id, marked=True))
    )
    rank0.start()
    try:
        got = make_agreement(rank_wait_s=10.0).ensure(RUN)
    finally:
        rank0.join()
    assert [got] == created
    assert len(runs(client, experiment_id, deleted_too=True)) == 1  # it created none itself


def test_a_rank_above_zero_creates_the_run_when_nobody_does(
    make_agreement: Callable[..., RunAgreement],
    client: MlflowClient,
    experiment_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RANK", "3")
    start = time.monotonic()
    got = make_agreement(rank_wait_s=0.3).ensure(RUN)
    assert time.monotonic() - start >= 0.3
    assert [r.info.run_id for r in runs(client, experiment_id)] == [got]


def test_forget_looks_the_run_up_again(
    make_agreement: Callable[..., RunAgreement], client: MlflowClient, experiment_id: str
) -> None:
    agreement = make_agreement()
    first = agreement.ensure(RUN)
    client.delete_run(first)  # deleted behind its back
    assert agreement.find(RUN) == first  # remembered
    agreement.forget()
    assert agreement.find(RUN) is None
    second = agreement.ensure(RUN)
    assert second != first
