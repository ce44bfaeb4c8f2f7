"""Transitive lineage over any ``TrackerBase``: a breadth-first walk over sources and children.

It is written against TorchX's interface, so it also works on trackers that are not ours: for
those, children are found with ``run_ids(parent_run_id=...)``, the filter TorchX's own
``FsspecTracker`` supports.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from torchx.tracker.api import TrackerBase

from trackers.types import Direction, LineageEdge, LinkedRun, RunLineage


def linked_sources(tracker: TrackerBase, run_id: str, artifact_name: str | None) -> list[LinkedRun]:
    """The direct sources of ``run_id`` as :class:`LinkedRun`, optionally for one artifact."""
    return [
        LinkedRun(s.source_run_id, s.artifact_name) for s in tracker.sources(run_id, artifact_name)
    ]


def linked_children(
    tracker: TrackerBase, run_id: str, artifact_name: str | None
) -> list[LinkedRun]:
    """The runs derived directly from ``run_id``, optionally through one artifact."""
    descendants = getattr(tracker, "descendants", None)
    if callable(descendants):
        found: list[LinkedRun] = list(descendants(run_id, artifact_name))
        return found
    # A tracker that only has TorchX's interface: ask which runs name ``run_id`` as a source.
    children = []
    for child in tracker.run_ids(parent_run_id=run_id):
        for src in tracker.sources(child, artifact_name):
            if src.source_run_id == run_id:
                children.append(LinkedRun(child, src.artifact_name))
    return children


def walk_lineage(
    tracker: TrackerBase,
    run_id: str,
    *,
    direction: Direction = "both",
    artifact_name: str | None = None,
    depth: int | None = None,
) -> RunLineage:
    """Walk from ``run_id`` through sources and/or children, at most ``depth`` links away.

    Cycle-safe: each run is expanded once. ``artifact_name`` keeps only links about that artifact.
    """
    if direction not in ("both", "sources", "descendants"):
        raise ValueError(f"direction={direction!r}: expected 'both', 'sources' or 'descendants'")
    if depth is not None and depth < 0:
        raise ValueError(f"depth={depth}: expected a number >= 0, or None for no limit")
    result = RunLineage(run_id=run_id)
    seen_edges: set[LineageEdge] = set()

    def walk(
        neighbours: Callable[[str], Iterable[LinkedRun]],
        distances: dict[str, int],
        make_edge: Callable[[str, LinkedRun], LineageEdge],
    ) -> None:
        queue: deque[tuple[str, int]] = deque([(run_id, 0)])
        expanded = {run_id}
        while queue:
            current, dist = queue.popleft()
            if depth is not None and dist >= depth:
                continue
            for link in neighbours(current):
                edge = make_edge(current, link)
                if edge not in seen_edges:
                    seen_edges.add(edge)
                    result.edges.append(edge)
                if link.run_id == run_id or link.run_id in distances:
                    continue
                distances[link.run_id] = dist + 1
                if link.run_id not in expanded:
                    expanded.add(link.run_id)
                    queue.append((link.run_id, dist + 1))

    if direction in ("both", "sources"):
        walk(
            lambda r: linked_sources(tracker, r, artifact_name),
            result.ancestors,
            lambda cur, link: LineageEdge(link.run_id, cur, link.artifact_name),
        )
    if direction in ("both", "descendants"):
        walk(
            lambda r: linked_children(tracker, r, artifact_name),
            result.descendants,
            lambda cur, link: LineageEdge(cur, link.run_id, link.artifact_name),
        )
    return result
