"""How concurrent processes agree on one MLflow run per TorchX run id.

Every replica of a role shares one run id, and the launcher writes its launch record while the
job starts, so several processes may create the run at once. Each creator creates its own run,
waits a settle time, then all pick the same one and mark it ``torchx.canonical``; losers delete
theirs (tagged ``torchx.duplicate_of``). Ranks > 0 first wait for rank 0 to create it.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from trackers.backends.mlflow.encoding import (
    MAX_TAG_VALUE,
    TAG_CANONICAL,
    TAG_DUPLICATE_OF,
    TAG_RUN_ID,
    TAG_RUN_KEY,
    run_key,
)
from trackers.backends.mlflow.errors import retry_insert_race
from trackers.errors import TrackerError
from trackers.origin import global_rank
from trackers.warn_once import WarnOnce

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

logger: logging.Logger = logging.getLogger(__name__)

__all__ = ["RunAgreement", "search_runs"]

#: A creator waits at least this long (or 4x its create latency) before choosing the run.
SETTLE_MIN_S = 0.3
#: How long a process waits for another's unmarked run to be marked before adopting it.
CREATOR_GRACE_S = 10.0
#: How long a rank > 0 waits for the run to appear before creating one itself.
RANK_WAIT_S = 20.0
POLL_S = 0.1


def search_runs(client: MlflowClient, experiment_id: str, filter_string: str) -> list[Run]:
    """Every active run of the experiment matching ``filter_string``, oldest first (all pages)."""
    from mlflow.entities import ViewType

    runs: list[Run] = []
    token: str | None = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=filter_string,
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=1000,
            order_by=["attributes.start_time ASC"],
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


class RunAgreement:
    """The MLflow run of each TorchX run id: found, or created so that every process shares one.

    Args:
        client: the MLflow client.
        experiment: the experiment id; ``experiment(True)`` creates it when missing,
            ``experiment(False)`` returns ``None`` then.
        where: the tracking URI as shown in messages.
        settle_min_s, creator_grace_s, rank_wait_s, poll_s: the protocol's waits (tests shorten
            them).

    Safe to share between threads; one process may hold several.
    """

    def __init__(
        self,
        client: MlflowClient,
        experiment: Callable[[bool], str | None],
        *,
        where: str,
        settle_min_s: float = SETTLE_MIN_S,
        creator_grace_s: float = CREATOR_GRACE_S,
        rank_wait_s: float = RANK_WAIT_S,
        poll_s: float = POLL_S,
    ) -> None:
        from mlflow.exceptions import MlflowException

        self._client = client
        self._experiment = experiment
        self.where = where
        self.settle_min_s = settle_min_s
        self.creator_grace_s = creator_grace_s
        self.rank_wait_s = rank_wait_s
        self.poll_s = poll_s
        self._mlflow_error: type[Exception] = MlflowException
        self._lock = threading.Lock()
        self._run_locks: dict[str, threading.Lock] = {}
        self._runs: dict[str, str] = {}  # TorchX run id -> MLflow run id (canonical only)
        self._warn_once = WarnOnce(logger)

    def find(self, run_id: str) -> str | None:
        """The MLflow run id of ``run_id``, ``None`` if there is none; never creates one."""
        return self._mlflow_run(run_id, create=False)

    def ensure(self, run_id: str) -> str:
        """The MLflow run id of ``run_id``, created (once, whoever else tries) if missing."""
        found = self._mlflow_run(run_id, create=True)
        assert found is not None  # create=True never returns None
        return found

    def exists(self, run_id: str) -> bool:
        """Whether ``run_id`` has an MLflow run (agreed on or still being settled)."""
        return run_id in self._runs or bool(self.runs_of(run_id))

    def forget(self) -> None:
        """Drop the remembered run ids (one was deleted behind our back): look them up again."""
        with self._lock:
            self._runs.clear()

    def runs_of(self, run_id: str) -> list[Run]:
        """The active MLflow runs carrying ``run_id``'s key, oldest first."""
        experiment = self._experiment(False)
        if experiment is None:
            return []
        return search_runs(self._client, experiment, f"tags.`{TAG_RUN_KEY}` = '{run_key(run_id)}'")

    def _run_lock(self, run_id: str) -> threading.Lock:
        with self._lock:
            return self._run_locks.setdefault(run_id, threading.Lock())

    def _mlflow_run(self, run_id: str, create: bool) -> str | None:
        """The MLflow run id for ``run_id``: found, or (``create``) created exactly once."""
        if not run_id:
            raise ValueError("run id must be a non-empty string")
        known = self._runs.get(run_id)
        if known is not None:
            return known
        with self._run_lock(run_id):
            known = self._runs.get(run_id)
            if known is not None:
                return known
            if create:
                self._experiment(True)
            chosen = self._resolve(run_id, create)
            if chosen is not None and (create or self._is_marked(chosen)):
                self._runs[run_id] = chosen.info.run_id
            return chosen.info.run_id if chosen is not None else None

    @staticmethod
    def _is_marked(run: Run) -> bool:
        return run.data.tags.get(TAG_CANONICAL) == "true"

    @staticmethod
    def _order(run: Run) -> tuple[int, str]:
        return (run.info.start_time or 0, run.info.run_id)

    def _resolve(self, run_id: str, create: bool) -> Run | None:
        """Find the run, or create it so that concurrent creators end up sharing one.

        A creator settles, then every process picks the same run - marked runs first, then the
        smallest (start_time, MLflow run id) - and losers delete theirs.
        """
        own: Run | None = None
        settle = self.settle_min_s
        started = time.monotonic()
        rank = global_rank()
        rank_deadline = started + self.rank_wait_s if create and rank not in (None, 0) else started
        while True:
            runs = self.runs_of(run_id)
            marked = [r for r in runs if self._is_marked(r)]
            if len(marked) > 1:
                self._warn_once(
                    f"split:{run_id}",
                    "run %s has %d MLflow runs marked canonical; using the earliest",
                    run_id,
                    len(marked),
                )
            chosen: Run | None = min(marked, key=self._order) if marked else None
            if chosen is None and runs:
                if not create:
                    return min(runs, key=self._order)  # someone is settling; not cached
                newest_age = time.time() - max(r.info.start_time or 0 for r in runs) / 1000
                waited = time.monotonic() - started
                if (
                    own is not None
                    or waited > settle + self.creator_grace_s
                    or (newest_age > settle + self.creator_grace_s)
                ):
                    chosen = min(runs, key=self._order)
                    retry_insert_race(
                        functools.partial(
                            self._client.set_tag, chosen.info.run_id, TAG_CANONICAL, "true"
                        ),
                        self._mlflow_error,
                    )
                else:
                    time.sleep(self.poll_s)
                    continue
            if chosen is not None:
                if own is not None and own.info.run_id != chosen.info.run_id:
                    self._client.set_tag(own.info.run_id, TAG_DUPLICATE_OF, chosen.info.run_id)
                    self._client.delete_run(own.info.run_id)
                    logger.debug(
                        "run %s: MLflow run %s lost the creation race to %s and was deleted",
                        run_id,
                        own.info.run_id,
                        chosen.info.run_id,
                    )
                return chosen
            if not create:
                return None
            if own is not None:
                raise TrackerError(
                    f"MLflow at {self.where}: the run created for {run_id!r} "
                    f"({own.info.run_id}) disappeared while it was being set up"
                )
            if time.monotonic() < rank_deadline:
                time.sleep(self.poll_s)  # rank > 0: give rank 0 the chance to create it
                continue
            t0 = time.monotonic()
            own = self._create_run(run_id)
            settle = max(self.settle_min_s, 4 * (time.monotonic() - t0))
            time.sleep(settle)

    def _create_run(self, run_id: str) -> Run:
        experiment = self._experiment(True)
        assert experiment is not None  # create=True never returns None
        if len(run_id) > MAX_TAG_VALUE:
            raise TrackerError(f"run id of {len(run_id)} characters is too long for MLflow")
        run = self._client.create_run(
            experiment,
            run_name=run_id,
            tags={TAG_RUN_ID: run_id, TAG_RUN_KEY: run_key(run_id)},
        )
        # Not started yet as far as we know: the job says RUNNING through set_status.
        self._client.update_run(run.info.run_id, status="SCHEDULED")
        return run
