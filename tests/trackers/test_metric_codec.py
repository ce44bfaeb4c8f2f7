"""The metric codec keeps today's formats byte for byte: old stores, MLflow records and spools read.

The literals below were written by the code before ``trackers.metric_codec`` existed (record
store ``add_metrics``, MLflow's ``torchx/metrics/*.json``, ``Operation.encode``), for one batch
with two names, a NaN, an infinity, a ``None`` step and ranks, and one batch with one name.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from trackers.backends.fsspec import create_tracker
from trackers.ids import encode_run_id
from trackers.metric_codec import decode_columns, encode_columns, pack_columns, unpack_columns
from trackers.operations import Operation
from trackers.types import MetricColumns, MetricPoint

RUN = "local_cwd://torchx/codec-1"
MIXED = MetricColumns(
    ["loss", "acc", "loss"],
    [0.5, float("nan"), float("inf")],
    [1, None, 3],
    [1700000000.123456, 1700000000.5, 1700000001.0],
    [0, None, 1],
)
ONE_NAME = MetricColumns(
    ["loss", "loss"], [0.25, 0.125], [7, 8], [1700000002.25, 1700000003.0], [None, None]
)

RECORD_MIXED = (
    b'{"points": {"names": ["loss", "acc"], "name": [0, 1, 0], "value": [0.5, NaN, Infinity], '
    b'"step": [1, null, 3], "time_us": [1700000000123456, 1700000000500000, 1700000001000000], '
    b'"rank": [0, null, 1]}, "origin": {"host": "vm", "pid": 1521, "rank": null, "restart": null}}'
)
RECORD_ONE_NAME = (
    b'{"points": {"names": ["loss"], "name": 0, "value": [0.25, 0.125], "step": [7, 8], '
    b'"time_us": [1700000002250000, 1700000003000000]}, '
    b'"origin": {"host": "vm", "pid": 1521, "rank": null, "restart": null}}'
)
MLFLOW_MIXED = (
    '{"points": {"names": ["loss", "acc"], "name": [0, 1, 0], "value": [0.5, NaN, Infinity], '
    '"step": [1, null, 3], "time": [1700000000.123456, 1700000000.5, 1700000001.0], '
    '"rank": [0, null, 1]}}'
)
SPOOL_MIXED = (
    b'{"id": "00000001700000000000000000-abc", "op": "add_metrics", "args": {"byteorder": '
    b'"little", "names": ["loss", "acc"], "name": "AAAAAAAAAAABAAAAAAAAAAAAAAAAAAAA", "value": '
    b'"AAAAAAAA4D8AAAAAAAD4fwAAAAAAAPB/", "step": "AQAAAAAAAAAAAAAAAAAAgAMAAAAAAAAA", "time": '
    b'"tOYHQPxU2UEAACBA/FTZQQAAQED8VNlB", "rank": "AAAAAAAAAAAAAAAAAAAAgAEAAAAAAAAA"}}\n'
)
SPOOL_ONE_NAME = (
    b'{"id": "x-1", "op": "add_metrics", "args": {"byteorder": "little", "names": ["loss"], '
    b'"name": "AAAAAAAAAAAAAAAAAAAAAA==", "value": "AAAAAAAA0D8AAAAAAADAPw==", "step": '
    b'"BwAAAAAAAAAIAAAAAAAAAA==", "time": "AACQQPxU2UEAAMBA/FTZQQ==", "rank": null}}\n'
)
SPOOL_ROWS = b'{"id": "x-2", "op": "add_metrics", "args": {"rows": [["a", 1.0, 1.5, 2.0, null]]}}\n'


def same(points: list[MetricPoint] | MetricColumns, cols: MetricColumns) -> bool:
    """Equal point for point (``repr`` so that NaN equals NaN)."""
    return repr([tuple(p) for p in points]) == repr([tuple(p) for p in cols])


def test_record_store_reads_todays_records(tmp_path: Path) -> None:
    metrics = tmp_path / encode_run_id(RUN) / "metrics"
    metrics.mkdir(parents=True)
    (metrics / "00000000000000000001-a").write_bytes(RECORD_MIXED)
    (metrics / "00000000000000000002-b").write_bytes(RECORD_ONE_NAME)
    points = create_tracker(str(tmp_path)).metrics(RUN)
    assert same(points, MetricColumns.from_rows([*MIXED, *ONE_NAME]))


def test_record_store_writes_todays_columns() -> None:
    for cols, record in ((MIXED, RECORD_MIXED), (ONE_NAME, RECORD_ONE_NAME)):
        expected = json.loads(record)["points"]
        written = encode_columns(cols, times="us")
        assert json.dumps(written) == json.dumps(expected)  # same keys, order and values


def test_mlflow_record_reads_and_writes_todays_form() -> None:
    cols = json.loads(MLFLOW_MIXED)["points"]
    assert same([MetricPoint._make(r) for r in decode_columns(cols, times="s")], MIXED)
    assert json.dumps({"points": encode_columns(MIXED, times="s")}) == MLFLOW_MIXED


@pytest.mark.parametrize(
    ("line", "cols"),
    [(SPOOL_MIXED, MIXED), (SPOOL_ONE_NAME, ONE_NAME)],
    ids=["mixed", "one-name"],
)
def test_spool_reads_and_writes_todays_lines(line: bytes, cols: MetricColumns) -> None:
    op = Operation.decode(line)
    assert op.kind == "add_metrics" and same(op.args["points"], cols)
    assert Operation(op.id, "add_metrics", {"points": cols}).encode() == line


def test_spool_rows_fallback_reads_and_writes() -> None:
    cols = MetricColumns(["a"], [1.0], [1.5], [2.0], [None])  # a float step does not pack
    assert Operation("x-2", "add_metrics", {"points": cols}).encode() == SPOOL_ROWS
    assert same(Operation.decode(SPOOL_ROWS).args["points"], cols)
    assert pack_columns(cols) == {"rows": [["a", 1.0, 1.5, 2.0, None]]}


def test_packed_big_endian_spool_reads_the_same() -> None:
    packed = pack_columns(MIXED)
    swapped = dict(packed, byteorder="big")
    for key in ("name", "value", "step", "time", "rank"):
        raw = bytearray(base64.b64decode(packed[key]))
        for i in range(0, len(raw), 8):
            raw[i : i + 8] = raw[i : i + 8][::-1]
        swapped[key] = base64.b64encode(bytes(raw)).decode("ascii")
    assert same(unpack_columns(swapped), MIXED)


@pytest.mark.parametrize(
    "cols",
    [
        {"names": ["a"], "name": [0, 1], "value": [1.0, 2.0], "step": [1, 2], "time_us": [1, 2]},
        {"names": [3], "name": 0, "value": [1.0], "step": [1], "time_us": [1]},
        {"names": ["a"], "name": 0, "value": [1.0, 2.0], "step": [1], "time_us": [1, 2]},
        {"names": ["a"], "name": 0, "value": [1.0], "time_us": [1]},
    ],
    ids=["index-out-of-range", "name-not-a-string", "lengths-differ", "no-step"],
)
def test_malformed_columns_raise(cols: dict[str, object]) -> None:
    with pytest.raises((KeyError, ValueError, IndexError)):
        decode_columns(cols, times="us")
