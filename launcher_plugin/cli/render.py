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
    #: Further formats this output has, already rendered (``dot``, ``mermaid`` for lineage).
    formats: dict[str, str] = field(default_factory=dict)

    def render(self, fmt: str) -> str:
        """The output in ``fmt``: ``table`` (or the text block), ``json``, ``csv`` or one of
        :attr:`formats`."""
        if fmt in self.formats:
            return self.formats[fmt]
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


# --- graphs: Graphviz DOT and Mermaid ---------------------------------------------------------


def lineage_nodes(lineage: RunLineage) -> list[str]:
    """Every run of ``lineage`` once: the run, its ancestors, its descendants, edge ends."""
    nodes = [lineage.run_id, *lineage.ancestors, *lineage.descendants]
    for e in lineage.edges:
        nodes += [e.parent, e.child]
    return list(dict.fromkeys(nodes))


def _node_label(run_id: str, statuses: Mapping[str, str | None]) -> str:
    status = statuses.get(run_id)
    return f"{run_id}\n{status}" if status else run_id


def _dot_string(text: str) -> str:
    """``text`` as a DOT double-quoted string: backslashes and quotes escaped, line breaks as
    DOT's ``\\n`` escape, other control characters as visible ``\\xNN`` text."""
    out = []
    for c in text_of(text).replace("\r\n", "\n"):
        if c == "\\":
            out.append("\\\\")
        elif c == '"':
            out.append('\\"')
        elif c in "\n\r\u2028\u2029\x85\x0b\x0c":
            out.append("\\n")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\\\x{ord(c):02x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def render_lineage_dot(lineage: RunLineage, statuses: Mapping[str, str | None]) -> str:
    """A Graphviz ``digraph``: one node per run (its id and recorded status; the run asked
    about drawn bold), one edge per link from source to derived run, labelled with the
    artifact name. Every id and label is a quoted, escaped DOT string."""
    ids = {run: f"n{i}" for i, run in enumerate(lineage_nodes(lineage))}
    lines = [
        "digraph lineage {",
        '  graph [rankdir=LR, charset="UTF-8"];',
        "  node [shape=box];",
    ]
    for run, node in ids.items():
        label = _dot_string(_node_label(run, statuses))
        bold = ", style=bold" if run == lineage.run_id else ""
        lines.append(f"  {node} [label={label}, tooltip={_dot_string(run)}{bold}];")
    for e in lineage.edges:
        label = f" [label={_dot_string(e.artifact_name)}]" if e.artifact_name else ""
        lines.append(f"  {ids[e.parent]} -> {ids[e.child]}{label};")
    lines.append("}")
    return "\n".join(lines)


#: Characters a Mermaid quoted label shows as they are; any other is an entity code (``#NN;``).
_MERMAID_SAFE = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 :/._-=+,@"
)


def _mermaid_string(text: str) -> str:
    """``text`` as a Mermaid quoted label: line breaks as ``<br>``, every character outside
    :data:`_MERMAID_SAFE` as a decimal entity code (``"`` -> ``#34;``), so no quote, bracket,
    pipe, ``#`` or markup in a run id can end the label or be read as syntax."""
    out = []
    for c in text_of(text).replace("\r\n", "\n"):
        if c in "\n\r\u2028\u2029\x85\x0b\x0c":
            out.append("<br>")
        elif c in _MERMAID_SAFE:
            out.append(c)
        else:
            out.append(f"#{ord(c)};")
    return '"' + "".join(out) + '"'


def render_lineage_mermaid(lineage: RunLineage, statuses: Mapping[str, str | None]) -> str:
    """A Mermaid ``flowchart``: one node per run (id and status), one edge per link, labelled
    with the artifact name; ids and labels escaped as :func:`_mermaid_string` says."""
    ids = {run: f"n{i}" for i, run in enumerate(lineage_nodes(lineage))}
    lines = ["flowchart LR"]
    for run, node in ids.items():
        lines.append(f"    {node}[{_mermaid_string(_node_label(run, statuses))}]")
    for e in lineage.edges:
        label = f"|{_mermaid_string(e.artifact_name)}|" if e.artifact_name else ""
        lines.append(f"    {ids[e.parent]} -->{label} {ids[e.child]}")
    lines.append(f"    style {ids[lineage.run_id]} stroke-width:3px")
    return "\n".join(lines)
