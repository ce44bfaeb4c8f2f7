"""The lineage tree and JSON rendering used by `torchx tracker list lineage`."""

from __future__ import annotations

import json

from launcher_plugin.cli.render import Output, render_lineage_tree, to_jsonable
from trackers.types import LineageEdge, RunLineage


def chain_lineage() -> RunLineage:
    return RunLineage(
        run_id="b",
        ancestors={"a": 1},
        descendants={"c": 1, "d": 2},
        edges=[
            LineageEdge("a", "b", "dataset"),
            LineageEdge("b", "c", "model"),
            LineageEdge("b", "c", "tokenizer"),
            LineageEdge("c", "d", None),
        ],
    )


def test_tree_shows_sources_and_descendants_indented() -> None:
    assert render_lineage_tree(chain_lineage(), "both") == "\n".join(
        [
            "b",
            "├── sources",
            "│   └── a  [dataset]",
            "└── descendants",
            "    └── c  [model, tokenizer]",
            "        └── d",
        ]
    )


def test_tree_marks_cycles_instead_of_looping() -> None:
    lin = RunLineage(
        run_id="a",
        descendants={"b": 1},
        edges=[LineageEdge("a", "b"), LineageEdge("b", "a")],
    )
    text = render_lineage_tree(lin, "descendants")
    assert text.splitlines()[-1].endswith("a  (cycle)")


def test_tree_says_none_when_there_is_nothing() -> None:
    assert render_lineage_tree(RunLineage("x"), "sources") == "x\n└── sources\n    (none)"


def test_json_output_is_valid_even_for_nan_and_objects() -> None:
    out = Output(data={"nan": float("nan"), "obj": object(), "nested": [1, {"a": 2}]})
    loaded = json.loads(out.render("json"))
    assert loaded["nan"] == "nan" and loaded["nested"] == [1, {"a": 2}]
    assert to_jsonable(("x", 1)) == ["x", 1]
