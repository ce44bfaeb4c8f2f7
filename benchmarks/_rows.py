"""One benchmark row's timings, shared by the side-by-side benchmarks (ours vs TorchX)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

TORCHX = "torchx"
OURS = "ours"


@dataclass
class RowResult:
    """The timings of one row: ``samples[impl]`` holds one duration (s) per repeat."""

    label: str
    samples: dict[str, list[float]] = field(default_factory=dict)
    note: dict[str, str] = field(default_factory=dict)

    def median(self, impl: str) -> float | None:
        times = self.samples.get(impl)
        return statistics.median(times) if times else None

    def ratio(self) -> float | None:
        """TorchX's median over ours (> 1: ours is faster)."""
        torchx_s, ours_s = self.median(TORCHX), self.median(OURS)
        if torchx_s is None or ours_s is None or ours_s == 0:
            return None
        return torchx_s / ours_s

    def noise(self) -> float | None:
        """Half the (max - min) range over the median, in %, for the noisier side."""
        spreads = [
            (max(t) - min(t)) / (2 * statistics.median(t)) * 100
            for t in self.samples.values()
            if t and statistics.median(t) > 0
        ]
        return max(spreads) if spreads else None
