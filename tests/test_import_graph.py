"""No import cycles among the package's modules, lazy or not.

A function-level import or one under ``if TYPE_CHECKING:`` hides a cycle from Python but not
from a reader: the two modules still cannot be understood (or moved) one without the other. So
every ``import`` statement counts, wherever it is. Importing ``a.b`` also runs ``a/__init__``;
that implicit edge is not counted (else every package that re-exports its modules would be a
cycle), but an explicit ``import a`` or ``from a import name`` of a package is.
"""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("trackers", "launcher_plugin", "components")


def module_files() -> dict[str, Path]:
    """Every module of :data:`PACKAGES` by dotted name (a package by its ``__init__.py``)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported_names(source: str, module: str, is_package: bool) -> Iterator[tuple[str, str]]:
    """``(from, name)`` of every import statement of ``source`` (``name`` empty for ``import
    x``), at any depth of the tree (functions, ``if TYPE_CHECKING:``...); relative imports are
    resolved against ``module``."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((alias.name, "") for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - (node.level - 1)])
                base = f"{anchor}.{base}" if base else anchor
            yield from ((base, alias.name) for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports: ``from a import b`` loads module ``a.b`` when
    there is one, else ``a`` (``b`` is a name defined in ``a``)."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets = set()
        for base, name in imported_names(path.read_text(), module, path.name == "__init__.py"):
            target = f"{base}.{name}" if f"{base}.{name}" in files else base
            if target in files and target != module:
                targets.add(target)
        graph[module] = targets
    return graph


def test_the_parser_sees_lazy_and_type_checking_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from trackers.app_run import AppRun\n"
        "def f():\n    from . import lifecycle\n    import trackers.spool\n"
    )
    names = set(imported_names(source, "trackers.capture.tensorboard", is_package=False))
    expected = {
        ("trackers.app_run", "AppRun"),
        ("trackers.capture", "lifecycle"),
        ("trackers.spool", ""),
        ("typing", "TYPE_CHECKING"),
    }
    assert names == expected


def test_the_graph_resolves_names_to_modules() -> None:
    graph = import_graph()
    assert "trackers.operations" in graph["trackers.spool"]
    assert "trackers.api" not in graph["trackers.spool"]
    assert "launcher_plugin.inject" in graph["launcher_plugin"]


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles of ``graph``, each found once: one edge of each is cut before looking again."""
    graph = {module: set(targets) for module, targets in graph.items()}
    cycles = []
    while True:
        try:
            graphlib.TopologicalSorter(graph).prepare()
            return cycles
        except graphlib.CycleError as e:
            cycle: list[str] = e.args[1]
            cycles.append(cycle)
            graph[cycle[1]].discard(cycle[0])  # graphlib lists a cycle against the edges


def test_cycles_are_found() -> None:
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert sorted(sorted(c[:-1]) for c in import_cycles(graph)) == [["a", "b"], ["c", "d", "e"]]


def test_no_import_cycles() -> None:
    cycles = [" -> ".join(reversed(c)) for c in import_cycles(import_graph())]
    assert not cycles, (
        f"import cycles: {'; '.join(cycles)}. Move the shared piece into a lower module or pass "
        "the dependency in; a lazy or TYPE_CHECKING import does not break a cycle."
    )
