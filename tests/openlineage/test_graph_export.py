"""``torchx tracker list lineage RUN --format dot|mermaid`` on a diamond A -> B, A -> C,
B -> D, C -> D whose run ids and artifact names hold quotes, backslashes, line breaks, ``|``,
``#`` and markup: Graphviz renders the DOT as it is; the Mermaid text has one node per run and
one edge per link, and every label reads back as the run id and its status.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli_support import torchx
from tests.openlineage.support import unescape_mermaid
from trackers.registry import create_tracker

A = 'local_cwd://torchx/a-"quoted" \\ back'
B = "local_cwd://torchx/b\nsecond line"
C = "local_cwd://torchx/c|pipe #hash <b>x</b> `tick`"
D = "slurm://torchx/d;{}[]()-->|end|"
LINKS = [(A, B, 'data "v1"'), (A, C, "data\\raw"), (B, D, None), (C, D, "model|best")]
STATUS = {A: "SUCCEEDED", B: "FAILED", C: "KILLED", D: "RUNNING"}


@pytest.fixture
def diamond(tmp_path: Path) -> str:
    flag = f"lineage_fsspec={tmp_path / 'store'}"
    tracker = create_tracker("lineage_fsspec", str(tmp_path / "store"), origin="test")
    for run, status in STATUS.items():
        tracker.set_status(run, status)  # type: ignore[attr-defined]
    for parent, child, artifact in LINKS:
        tracker.add_source(child, parent, artifact)
    return flag


def _lineage(cwd: Path, flag: str, run: str, fmt: str) -> str:
    done = torchx(cwd, "tracker", "list", "lineage", run, "--tracker", flag, "--format", fmt)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_dot_output_renders_with_graphviz(diamond: str, tmp_path: Path) -> None:
    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("Graphviz `dot` is not installed (Debian: apt-get install graphviz)")
    text = _lineage(tmp_path, diamond, A, "dot")
    done = subprocess.run(
        [dot, "-Tsvg"], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr + text
    svg = done.stdout
    assert svg.count('class="node"') == 4
    assert svg.count('class="edge"') == 4
    texts = [html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]
    expected = [line for run, status in STATUS.items() for line in [*run.split("\n"), status]]
    expected += [artifact for _, _, artifact in LINKS if artifact]
    assert sorted(texts) == sorted(expected)


def test_mermaid_has_one_node_per_run_and_one_edge_per_link(diamond: str, tmp_path: Path) -> None:
    text = _lineage(tmp_path, diamond, D, "mermaid")  # D: every run is an ancestor
    lines = text.strip().splitlines()
    assert lines[0] == "flowchart LR"
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str, str | None]] = []
    for line in lines[1:]:
        node = re.fullmatch(r'    (n\d+)\["([^"]*)"\]', line)
        edge = re.fullmatch(r'    (n\d+) -->(?:\|"([^"]*)"\|)? (n\d+)', line)
        style = re.fullmatch(r"    style (n\d+) stroke-width:3px", line)
        assert node or edge or style, f"unparsed line {line!r}"
        if node:
            nodes[node[1]] = unescape_mermaid(node[2])
        elif edge:
            label = unescape_mermaid(edge[2]) if edge[2] is not None else None
            edges.append((edge[1], edge[3], label))
    assert sorted(nodes.values()) == sorted(f"{run}\n{status}" for run, status in STATUS.items())
    run_of = {node: label.rsplit("\n", 1)[0] for node, label in nodes.items()}
    drawn = sorted(repr((run_of[p], run_of[c], a)) for p, c, a in edges)
    assert drawn == sorted(map(repr, LINKS))
    json_edges = json.loads(_lineage(tmp_path, diamond, D, "json"))["edges"]
    assert len(edges) == len(json_edges) == 4
