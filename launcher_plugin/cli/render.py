"""Output helpers shared by the ``torchx tracker`` subcommands: tables, JSON and lineage trees."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from tabulate import tabulate

from trackers.jsonsafe import json_safe, text_of
from trackers.types import Direction, LineageEdge, RunLineage


@dataclass
class Output:
    """What a subcommand produced: a table or a text block, and the same data for JSON."""

    data: object
    headers: list[str] = field(default_factory=list)
    rows: list[list[object]] = field(default_factory=list)
    text: str | None = None
    #: The command did not do all it was asked (exit status 1 after printing).
    failed: bool = False
    #: ``(path, why)`` of unreadable records the command skipped (exit status 3 after printing).
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def render(self, fmt: str) -> str:
        """The output in ``fmt``: ``table`` (or the text block), ``json`` or ``csv``."""
        if fmt == "json":
            return json.dumps(to_jsonable(self.data), indent=2, ensure_ascii=False)
        if fmt == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(self.headers)
            writer.writerows(self.rows)
            return text_of(buffer.getvalue().rstrip("\n"))
        if self.text is not None:
            return text_of(self.text)
        return text_of(tabulate(self.rows, headers=self.headers))


def to_jsonable(value: object) -> object:
    """Make ``value`` JSON-safe for output: NaN/inf become strings, bytes that are not UTF-8
    ``\\xNN`` text, anything else the fallback forms of :mod:`trackers.jsonsafe`."""
    return json_safe(value, surrogates="text", finite=True)[0]


def _label(run_id: str, artifacts: list[str | None]) -> str:
    names = [a for a in artifacts if a]
    return f"{run_id}  [{', '.join(names)}]" if names else run_id


def _tree(
    root: str,
    links: Mapping[str, list[tuple[str, str | None]]],
    prefix: str,
    path: set[str],
    lines: list[str],
) -> None:
    grouped: dict[str, list[str | None]] = {}
    for other, artifact in links.get(root, []):
        grouped.setdefault(other, []).append(artifact)
    items = list(grouped.items())
    for i, (other, artifacts) in enumerate(items):
        last = i == len(items) - 1
        cycle = "  (cycle)" if other in path else ""
        lines.append(f"{prefix}{'└── ' if last else '├── '}{_label(other, artifacts)}{cycle}")
        if not cycle:
            _tree(other, links, prefix + ("    " if last else "│   "), path | {other}, lines)


def render_lineage_tree(lineage: RunLineage, direction: Direction) -> str:
    """An indented tree: the run, then its sources (upwards) and its descendants (downwards)."""
    up: dict[str, list[tuple[str, str | None]]] = {}
    down: dict[str, list[tuple[str, str | None]]] = {}
    edges: list[LineageEdge] = lineage.edges
    for e in edges:
        if e.child == lineage.run_id or e.child in lineage.ancestors:
            up.setdefault(e.child, []).append((e.parent, e.artifact_name))
        if e.parent == lineage.run_id or e.parent in lineage.descendants:
            down.setdefault(e.parent, []).append((e.child, e.artifact_name))
    lines = [lineage.run_id]
    sections = []
    if direction in ("both", "sources"):
        sections.append(("sources", up))
    if direction in ("both", "descendants"):
        sections.append(("descendants", down))
    for i, (title, links) in enumerate(sections):
        last = i == len(sections) - 1
        lines.append(f"{'└── ' if last else '├── '}{title}")
        body: list[str] = []
        _tree(lineage.run_id, links, "    " if last else "│   ", {lineage.run_id}, body)
        lines.extend(body or [("    " if last else "│   ") + "(none)"])
    return "\n".join(lines)
