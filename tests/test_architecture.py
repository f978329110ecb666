"""The package's layers, read from its imports (ast): no cycle, and no module imports a higher layer.

The pipeline runs upward: core < front < ops < graph < figures < weights < backends < the public API
< what users call by name. docs/internals.md explains each layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cnndsl"

LAYERS = [
    {"cnndsl.core"},
    {"cnndsl.front"},
    {"cnndsl.ops"},
    {"cnndsl.graph"},
    {"cnndsl.figures"},
    {"cnndsl.weights"},
    {"cnndsl.backends"},
    {"cnndsl.api", "cnndsl.check", "cnndsl.library"},
    {"cnndsl.importers"},
    {"cnndsl.lexer", "cnndsl.embed"},
    {"cnndsl.train"},
    {"cnndsl.sphinx", "cnndsl.markdown", "cnndsl.serve"},
    {"cnndsl.cli", "cnndsl.__main__", "cnndsl"},
]

# Imports that still run upward or close a cycle; each is work in progress and this list only shrinks.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The cnndsl modules a file imports, at the top or inside a function."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "cnndsl")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "cnndsl":
                continue
            for alias in node.names:  # `from . import syntax` names a module, `from .x import f` a function
                candidate = f"{target}.{alias.name}"
                is_module = (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists() or (
                    PACKAGE.parent / candidate.replace(".", "/") / "__init__.py"
                ).exists()
                found.add(candidate if is_module else target)
    return found


def import_graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    for path in PACKAGE.rglob("*.py"):
        source = module_name(path)
        graph.add_node(source)
        for target in imports_of(path):
            if target != source:
                graph.add_edge(source, target)
    return graph


def layer_of(module: str) -> int:
    """The layer of a module: that of its longest listed prefix."""
    best, rank = -1, None
    for index, names in enumerate(LAYERS):
        for prefix in names:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    if rank is None:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in tests/test_architecture.py")
    return rank


def upward_imports(graph: nx.DiGraph) -> set[tuple[str, str]]:
    return {(source, target) for source, target in graph.edges if layer_of(target) > layer_of(source)}


def package_cycles(graph: nx.DiGraph) -> list[list[str]]:
    """Cycles among modules, leaving out a package's `__init__` importing its own members."""
    edges = [(s, t) for s, t in graph.edges if not t.startswith(s + ".") and (s, t) not in KNOWN_VIOLATIONS]
    return list(nx.simple_cycles(nx.DiGraph(edges)))


def test_every_module_has_a_layer():
    for module in import_graph():
        layer_of(module)


def test_no_module_imports_a_higher_layer():
    assert upward_imports(import_graph()) - KNOWN_VIOLATIONS == set()


def test_the_known_violations_are_still_there():
    """A fixed violation leaves KNOWN_VIOLATIONS, so the list can only shrink."""
    assert set(import_graph().edges) >= KNOWN_VIOLATIONS


def test_no_import_cycles():
    assert package_cycles(import_graph()) == []


@pytest.mark.parametrize(
    "planted",
    [
        [("cnndsl.graph.ir", "cnndsl.figures.costs")],
        [("cnndsl.figures.report", "cnndsl.figures.costs"), ("cnndsl.figures.costs", "cnndsl.figures.report")],
    ],
    ids=["upward", "cycle"],
)
def test_a_planted_upward_import_or_cycle_is_found(planted):
    graph = import_graph()
    graph.add_edges_from(planted)
    assert upward_imports(graph) - KNOWN_VIOLATIONS or package_cycles(graph)
