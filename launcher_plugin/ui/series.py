"""Metric points into chart series, and downsampling for display (never for export).

A run's points of one metric form several series: one per rank (when every rank logs), and
within a rank one per attempt. A restarted job continues the same run and logs its steps again
(points are never merged by step, see the README's "Resume"), so a step lower than the one
before starts a new attempt: ``rank 0``, ``rank 0 · restart 1``...

A chart gets at most ``max_points`` points per series, chosen by Largest-Triangle-Three-Buckets
(Steinarsson, 2013): the first and last point stay, every bucket in between keeps the point
that spans the largest triangle with its neighbours, so peaks and the curve's shape survive.
Non-finite values (NaN, inf) cannot be drawn; they are counted, not plotted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from trackers.jsonsafe import text_of
from trackers.types import MetricPoint

__all__ = ["DEFAULT_MAX_POINTS", "Series", "chart_series", "lttb", "split_series"]

#: Points per drawn series unless the request asks for another number.
DEFAULT_MAX_POINTS = 2000


@dataclass
class Series:
    """The points of one metric from one rank in one attempt, in the order they were logged."""

    name: str
    rank: int | None
    attempt: int
    steps: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``rank 0 · restart 1``; empty for a run of one rank and one attempt."""
        parts = [] if self.rank is None else [f"rank {self.rank}"]
        if self.attempt:
            parts.append(f"restart {self.attempt}")
        return " · ".join(parts)


def split_series(points: Iterable[MetricPoint]) -> dict[str, list[Series]]:
    """Series by metric name (in the order names first appear); see the module docstring."""
    by_name: dict[str, dict[int | None, list[Series]]] = {}
    for p in points:
        ranks = by_name.setdefault(p.name, {})
        attempts = ranks.setdefault(p.rank, [])
        current = attempts[-1] if attempts else None
        x = float(p.step) if p.step is not None else float(len(current.steps) if current else 0)
        if current is None or (p.step is not None and current.steps and x < current.steps[-1]):
            current = Series(p.name, p.rank, len(attempts))
            attempts.append(current)
        current.steps.append(x)
        current.values.append(float(p.value))
    return {
        name: [s for rank in sorted(ranks, key=_rank_order) for s in ranks[rank]]
        for name, ranks in by_name.items()
    }


def _rank_order(rank: int | None) -> int:
    return -1 if rank is None else rank


def lttb(
    xs: Sequence[float], ys: Sequence[float], threshold: int
) -> tuple[list[float], list[float]]:
    """At most ``threshold`` of the points ``(xs[i], ys[i])``, by Largest-Triangle-Three-Buckets."""
    n = len(xs)
    if threshold >= n or n <= 2:
        return list(xs), list(ys)
    if threshold < 3:
        return [xs[0], xs[-1]], [ys[0], ys[-1]]
    out_x, out_y = [xs[0]], [ys[0]]
    every = (n - 2) / (threshold - 2)
    a = 0
    for i in range(threshold - 2):
        # Candidates: bucket i; the third corner: the average of bucket i + 1 (the last point
        # for the last bucket).
        start, end = int(i * every) + 1, int((i + 1) * every) + 1
        next_end = min(int((i + 2) * every) + 1, n)
        count = next_end - end
        avg_x = math.fsum(xs[end:next_end]) / count
        avg_y = math.fsum(ys[end:next_end]) / count
        ax, ay = xs[a], ys[a]
        best, best_area = start, -1.0
        for j in range(start, end):
            area = abs((ax - avg_x) * (ys[j] - ay) - (ax - xs[j]) * (avg_y - ay))
            if area > best_area:
                best, best_area = j, area
        out_x.append(xs[best])
        out_y.append(ys[best])
        a = best
    out_x.append(xs[-1])
    out_y.append(ys[-1])
    return out_x, out_y


def chart_series(
    series: Series, max_points: int, *, run_id: str | None = None
) -> dict[str, object]:
    """One series as a chart draws it: finite points only, downsampled to ``max_points``."""
    finite = [(x, y) for x, y in zip(series.steps, series.values, strict=True) if math.isfinite(y)]
    xs, ys = lttb([x for x, _ in finite], [y for _, y in finite], max_points)
    label = series.label
    if run_id is not None:
        label = f"{text_of(run_id)} · {label}" if label else text_of(run_id)
    return {
        "label": label or series.name,
        "rank": series.rank,
        "attempt": series.attempt,
        "run_id": None if run_id is None else text_of(run_id),
        "points": len(series.values),
        "shown": len(xs),
        "not_finite": len(series.values) - len(finite),
        "x": xs,
        "y": ys,
    }
