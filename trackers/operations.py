"""The write-operation model: one write of a run as a value to queue, spool and replay.

``AppRun`` turns every write into an :class:`Operation`; :mod:`trackers.delivery` applies it to a
backend from its own thread, :mod:`trackers.spool` keeps its encoded line on disk until then, and
:mod:`trackers.sync` replays spooled lines later. :func:`takes` is the one place that says which
backend can take which write. See ``docs/delivery.md`` for the spool format and guarantees.
"""

from __future__ import annotations

import binascii
import functools
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from torchx.tracker.api import TrackerBase

from trackers import jsonsafe
from trackers.api import LineageTracker
from trackers.ids import check_artifact_name, deterministic_record_names
from trackers.metric_codec import pack_columns, unpack_columns

logger: logging.Logger = logging.getLogger(__name__)

WRITE_OPS = (
    "add_metadata",
    "add_artifact",
    "add_source",
    "add_metrics",
    "add_summary",
    "set_status",
)
#: Operations only a LineageTracker can take (TorchX's trackers have no metrics or status).
LINEAGE_OPS = frozenset({"add_metrics", "add_summary", "set_status"})
#: Operations every TorchX tracker can take.
TORCHX_OPS = frozenset(WRITE_OPS) - LINEAGE_OPS


def takes(tracker: TrackerBase, kind: str) -> bool:
    """Whether ``tracker`` can take a write of ``kind``: a TorchX tracker only TorchX's writes."""
    return kind in TORCHX_OPS or isinstance(tracker, LineageTracker)


@dataclass(frozen=True)
class Operation:
    """One write of a run, as made by the job: ``kind`` is the tracker method, ``args`` its
    arguments. ``id`` names the records it writes, so delivering it twice writes them once."""

    id: str
    kind: str
    args: Mapping[str, Any]

    @property
    def points(self) -> int:
        """Metric points in it (0 for other kinds)."""
        metrics = self.args.get("points") if self.kind == "add_metrics" else None
        return len(metrics) if metrics is not None else 0

    def apply(self, tracker: TrackerBase, run_id: str) -> None:
        """Write it into ``tracker`` for ``run_id`` (nothing for a write it does not take)."""
        if not takes(tracker, self.kind):
            return  # TorchX's own trackers have no metrics, summaries or status
        a = self.args
        with deterministic_record_names(self.id):
            if self.kind == "add_metadata":
                tracker.add_metadata(run_id, **a["values"])
            elif self.kind == "add_artifact":
                tracker.add_artifact(run_id, a["name"], a["path"], a.get("metadata"))
            elif self.kind == "add_source":
                check_artifact_name(a.get("artifact_name"))  # for every backend alike
                tracker.add_source(run_id, a["source_id"], a.get("artifact_name"))
            elif self.kind == "add_metrics":
                cast(LineageTracker, tracker).add_metrics(run_id, a["points"])  # per takes()
            elif self.kind == "add_summary":
                cast(LineageTracker, tracker).add_summary(run_id, **a["values"])
            elif self.kind == "set_status":
                cast(LineageTracker, tracker).set_status(run_id, a["status"])
            else:
                raise ValueError(f"unknown operation {self.kind!r}; expected one of {WRITE_OPS}")

    def snapshot(self) -> Operation:
        """A copy the caller's later changes cannot reach: delivery happens later, on another
        thread, and a dict passed to ``add_metadata`` may be changed by then. Other than
        metric batches (made by the writer, never shared), the arguments go through the spool
        encoding, which is what every backend stores anyway (JSON, with the fallback forms of
        :mod:`trackers.jsonsafe` for the rest)."""
        if self.kind == "add_metrics":
            return self
        copy = Operation.decode(self.line)
        copy.__dict__["line"] = self.line  # the cached encoding is the same
        return copy

    @functools.cached_property
    def line(self) -> bytes:
        """:meth:`encode`, once per operation (it goes into every backend's spool)."""
        return self.encode()

    def encode(self) -> bytes:
        """One spool line (ends with a newline)."""
        args: Mapping[str, Any] = self.args
        if self.kind == "add_metrics":
            args = pack_columns(args["points"])
        try:
            data, notes = jsonsafe.encode(args, where=self.kind)
        except Exception:  # a bug in the fallback itself must not reach the job either
            logger.exception("tracking: %s dropped: its arguments cannot be encoded", self.kind)
            data, notes = b"{}", []
        jsonsafe.log_fallbacks(notes)
        head = json.dumps({"id": self.id, "op": self.kind}).encode("utf-8")
        return head[:-1] + b', "args": ' + data + b"}\n"

    @staticmethod
    def decode(line: bytes | str) -> Operation:
        """The operation of one spool line; raises ``ValueError`` for a malformed line."""
        record = json.loads(line)
        if not isinstance(record, dict) or record.get("op") not in WRITE_OPS:
            raise ValueError(f"not a spooled operation: {str(line)[:120]!r}")
        args = record.get("args") or {}
        if record["op"] == "add_metrics":
            try:
                args = {"points": unpack_columns(args)}
            except (KeyError, TypeError, ValueError, binascii.Error) as e:
                raise ValueError(f"malformed metric batch in spooled operation: {e}") from None
        return Operation(str(record["id"]), record["op"], args)
