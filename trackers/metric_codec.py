"""The one codec of metric batches: columns as the record stores, MLflow and the spool keep them.

A batch (:class:`~trackers.types.MetricColumns`) is stored column-wise, names as indices into a
list of distinct names, because encoding is the writer's main cost. Three forms, one per place,
each unchanged since it was first written (old stores and spools must keep reading):

* record stores (``<run>/metrics/<record>``): JSON columns, times in integer microseconds
  (``time_us``), ``name`` a single index when the batch has one name;
* MLflow (``torchx/metrics/<record>.json``): JSON columns, times in float seconds (``time``),
  ``name`` always a list;
* the spool: the same columns as base64 of packed machine numbers (exact for NaN/inf, ~30x
  faster to write than JSON floats), ``None`` steps and ranks as a sentinel; a batch that does
  not pack (a float step...) goes as JSON ``rows``.

``rank`` is present only when some point has one. See ``docs/delivery.md`` for the spool line.
"""

from __future__ import annotations

import array
import base64
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from trackers.types import MetricColumns, MetricPoint

__all__ = [
    "as_columns",
    "decode_columns",
    "encode_columns",
    "pack_columns",
    "unpack_columns",
]

#: How a JSON form keeps times: integer microseconds (record stores) or float seconds (MLflow).
TimeUnit = Literal["us", "s"]
#: ``None`` steps and ranks in the packed form (no real step or rank is this small).
NONE_SENTINEL = -(2**63)


def as_columns(points: Sequence[MetricPoint]) -> MetricColumns:
    """``points`` as columns (a :class:`MetricColumns` is returned as it is)."""
    return points if isinstance(points, MetricColumns) else MetricColumns.from_rows(points)


def _name_index(names: Sequence[str]) -> tuple[list[str], dict[str, int]]:
    """The distinct names in first-seen order, and each one's index among them."""
    distinct = list(dict.fromkeys(names))
    return distinct, {n: i for i, n in enumerate(distinct)}


# --- JSON columns (record stores, MLflow) ---


def encode_columns(cols: MetricColumns, *, times: TimeUnit) -> dict[str, object]:
    """The JSON columns of a batch: ``times="us"`` is the record stores' form (``time_us``, one
    name as a single index), ``times="s"`` MLflow's (``time``, ``name`` always a list)."""
    distinct, index = _name_index(cols.names)
    columns: dict[str, object] = {"names": distinct}
    if times == "us":
        columns["name"] = list(map(index.__getitem__, cols.names)) if len(distinct) > 1 else 0
        columns["value"] = cols.values
        columns["step"] = cols.steps
        columns["time_us"] = [round(t * 1_000_000) for t in cols.times]
    else:
        columns["name"] = [index[n] for n in cols.names]
        columns["value"] = list(cols.values)
        columns["step"] = list(cols.steps)
        columns["time"] = list(cols.times)
    if any(r is not None for r in cols.ranks):
        columns["rank"] = cols.ranks if times == "us" else list(cols.ranks)
    return columns


def decode_columns(cols: Mapping[str, Any], *, times: TimeUnit) -> list[tuple[Any, ...]]:
    """The ``(name, value, step, time, rank)`` rows of JSON columns written with ``times``.

    Raises ``KeyError``, ``TypeError``, ``ValueError``, ``IndexError`` or ``AttributeError``
    for malformed columns (lengths that differ, a name that is not a string...).
    """
    values = list(cols.get("value", []))
    distinct = list(cols.get("names", []))
    index = cols.get("name", 0 if times == "us" else [])
    names = (
        [distinct[i] for i in index] if isinstance(index, list) else [distinct[index]] * len(values)
    )
    if times == "us":
        seconds = [t / 1_000_000 for t in cols.get("time_us", [])]
        steps = cols["step"]
    else:
        seconds = list(cols.get("time", []))
        steps = cols.get("step", [])
    ranks = cols.get("rank") or [None] * len(values)
    if not all(isinstance(n, str) for n in names):
        raise ValueError("a metric name is not a string")
    return list(zip(names, values, steps, seconds, ranks, strict=True))


# --- packed columns (the spool) ---


def _b64(kind: str, values: Sequence[float | int]) -> str:
    return base64.b64encode(array.array(kind, values).tobytes()).decode("ascii")


def _from_b64(kind: str, text: str, byteorder: str) -> list[Any]:
    packed = array.array(kind, base64.b64decode(text, validate=True))
    if byteorder != sys.byteorder:
        packed.byteswap()
    return packed.tolist()


def pack_columns(points: Sequence[MetricPoint]) -> dict[str, Any]:
    """A batch in the spool's packed form (JSON ``rows`` when it does not pack)."""
    cols = as_columns(points)
    try:
        return _packed(cols)
    except (TypeError, ValueError, OverflowError):  # a float step, a step beyond 64 bits...
        return {"rows": [list(point) for point in cols]}  # as JSON (repr for the rest)


def _packed(cols: MetricColumns) -> dict[str, Any]:
    distinct, index = _name_index(cols.names)
    ranks = None
    if any(r is not None for r in cols.ranks):
        ranks = _b64("q", [NONE_SENTINEL if r is None else r for r in cols.ranks])
    return {
        "byteorder": sys.byteorder,
        "names": distinct,
        "name": _b64("q", [index[n] for n in cols.names]),
        "value": _b64("d", cols.values),
        "step": _b64("q", [NONE_SENTINEL if s is None else s for s in cols.steps]),
        "time": _b64("d", cols.times),
        "rank": ranks,
    }


def unpack_columns(packed: Mapping[str, Any]) -> MetricColumns:
    """Inverse of :func:`pack_columns`; raises ``KeyError``, ``TypeError``, ``ValueError`` or
    ``binascii.Error`` for a malformed batch."""
    if "rows" in packed:
        return MetricColumns.from_rows([tuple(row) for row in packed["rows"]])
    order = str(packed["byteorder"])
    distinct = list(packed["names"])
    values = _from_b64("d", packed["value"], order)
    steps = _from_b64("q", packed["step"], order)
    ranks = _from_b64("q", packed["rank"], order) if packed.get("rank") else [None] * len(values)
    cols = MetricColumns(
        [distinct[i] for i in _from_b64("q", packed["name"], order)],
        values,
        [None if s == NONE_SENTINEL else s for s in steps],
        _from_b64("d", packed["time"], order),
        [None if r == NONE_SENTINEL else r for r in ranks],
    )
    if not len(cols.names) == len(values) == len(cols.steps) == len(cols.times):
        raise ValueError("columns of different lengths")
    return cols
