"""The package's layers, read from its imports (ast): no cycle, and no module imports a higher layer.

The pipeline runs upward: core < front < ops < graph < figures < weights < backends < the public API
< what users call by name. docs/internals.md explains each layer.
"""

from __future__ import annotations

import ast
from functools import cache
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


@cache
def syntax_tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def import_statements(path: Path, where: str = "anywhere") -> list[ast.Import | ast.ImportFrom]:
    """A file's import statements: "anywhere", only those run when it is imported ("top"), or only those
    inside a function ("local"); imports for type checkers only are neither."""
    tree = syntax_tree(path)

    def inside(blocks) -> set[int]:
        return {id(node) for block in ast.walk(tree) if isinstance(block, blocks) for node in ast.walk(block)}

    local = inside(ast.FunctionDef | ast.AsyncFunctionDef)
    typing_only = {  # `if TYPE_CHECKING:` never runs
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test).endswith("TYPE_CHECKING")
        for node in ast.walk(block)
    }
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        and (
            where == "anywhere"
            or (where == "local" and id(node) in local)
            or (where == "top" and id(node) not in local | typing_only)
        )
    ]


def cnndsl_targets(path: Path, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The cnndsl modules one import statement names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name.split(".")[0] == "cnndsl"}
    if node.level:
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != "cnndsl":
        return set()
    found = set()
    for alias in node.names:  # `from . import syntax` names a module, `from .x import f` a function
        candidate = f"{target}.{alias.name}"
        is_module = (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists() or (
            PACKAGE.parent / candidate.replace(".", "/") / "__init__.py"
        ).exists()
        found.add(candidate if is_module else target)
    return found


def imports_of(path: Path, where: str = "anywhere") -> set[str]:
    """The cnndsl modules a file imports, at the top or inside a function."""
    return {target for node in import_statements(path, where) for target in cnndsl_targets(path, node)}


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


# What a function-local import may defer: the packages whose import costs start-up time or that are optional.
HEAVY = {
    "torch", "torchvision", "onnx", "onnxruntime", "graphviz", "lark", "pygments", "safetensors", "numpy", "PIL",
    "sphinx", "docutils", "markdown", "matplotlib", "google", "yaml", "http", "multiprocessing", "ultralytics",
}  # fmt: skip
# What only one command uses: the CLI loads it when that command is asked for, to keep the others' start-up short.
FEATURES = ("cnndsl.train", "cnndsl.serve", "cnndsl.importers", "cnndsl.check", "cnndsl.library")


def defers_a_feature(target: str) -> bool:
    return any(target == feature or target.startswith(feature + ".") for feature in FEATURES)


def module_path(module: str) -> Path:
    base = PACKAGE.parent / module.replace(".", "/")
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def heavy_on_import(module: str, seen: dict[str, set[str]]) -> set[str]:
    """The HEAVY packages that importing `module` imports, through its own top-level imports and its packages'."""
    if module in seen:
        return seen[module]
    seen[module] = set()
    path = module_path(module)
    found = {
        alias.name.split(".")[0] if isinstance(node, ast.Import) else (node.module or "").split(".")[0]
        for node in import_statements(path, "top")
        for alias in (node.names if isinstance(node, ast.Import) else [None])
        if isinstance(node, ast.Import) or not node.level
    } & HEAVY
    parents = [".".join(module.split(".")[:n]) for n in range(1, module.count(".") + 1)]
    for other in imports_of(path, "top") | set(parents):
        found |= heavy_on_import(other, seen)
    seen[module] = found
    return found


def test_a_function_imports_a_module_only_to_defer_a_heavy_dependency():
    """A function-local import of a cnndsl module is a deferral: it keeps torch, onnx, graphviz, Lark, ... or a
    command that only some runs use (train, serve, import) out of start-up; anything else belongs at the top of
    the file."""
    seen: dict[str, set[str]] = {}
    needless = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        for node in import_statements(path, "local"):
            for target in cnndsl_targets(path, node):
                if not heavy_on_import(target, seen) - heavy_on_import(source, seen) and not defers_a_feature(target):
                    needless.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports {target}")
    assert needless == []
