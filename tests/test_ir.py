"""The typed IR (cnndsl/graph/ir.py): records checked when built, stored one per node, edge and graph, and read
only through the IR module's accessors."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

import cnndsl
from cnndsl.core.errors import SourcePos
from cnndsl.graph import ir
from cnndsl.ops import REGISTRY

PACKAGE = Path(__file__).resolve().parent.parent / "cnndsl"
POS = SourcePos("net.cnn", 2, 5)

GRAPH_VIEWS = {"nodes", "edges", "graph"}
DATA_VIEWS = {"pred", "succ", "adj"}


def _owner_is_a_graph(node: ast.expr) -> bool:
    """`graph`, `g`, `self.graph`, `network.graph`: the expression names a networkx graph."""
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
    return name == "g" or name.endswith("graph")


def string_keyed_reads(source: str) -> list[int]:
    """Lines that read node, edge or graph attributes by key: `graph.nodes[n]`, `graph.graph[...]`,
    `graph.edges[a, b]`, `graph.pred[a][b]`, `graph.nodes(data=True)`, `graph.graph.get(...)`."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute):
            view = node.value
            if view.attr in GRAPH_VIEWS and _owner_is_a_graph(view.value):
                lines.append(node.lineno)
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Subscript):
            inner = node.value.value
            if isinstance(inner, ast.Attribute) and inner.attr in DATA_VIEWS:
                lines.append(node.lineno)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            function = node.func
            if function.attr in ("nodes", "edges") and any(keyword.arg == "data" for keyword in node.keywords):
                lines.append(node.lineno)
            if function.attr == "get" and isinstance(function.value, ast.Attribute) and function.value.attr == "graph":
                lines.append(node.lineno)
            if function.attr in ("get_node_attributes", "set_node_attributes", "get_edge_attributes"):
                lines.append(node.lineno)
    return sorted(set(lines))


def _package_files() -> dict[str, str]:
    return {
        path.relative_to(PACKAGE).as_posix(): path.read_text(encoding="utf-8")
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).as_posix() != "graph/ir.py"
    }


def test_no_module_but_the_ir_reads_the_ir_by_string_keys():
    found = {name: lines for name, source in _package_files().items() if (lines := string_keyed_reads(source))}
    assert found == {}


@pytest.mark.parametrize(
    "line",
    [
        'graph.nodes[n]["shape"]',
        "self.graph.graph['groups']",
        "network.graph.edges[a, b]",
        "g.pred[a][b]",
        "list(graph.nodes(data=True))",
        'graph.graph.get("warnings")',
    ],
)
def test_the_check_finds_a_planted_string_keyed_read(line):
    assert string_keyed_reads(f"x = {line}\n") == [1]


def test_the_check_leaves_other_nodes_lists_alone():
    """diagram_structure's groups keep their own `nodes` lists."""
    assert string_keyed_reads("first = child.nodes[0]\nlast = run.instances[-1].nodes[-1]\n") == []


# ---- records are checked when built --------------------------------------------------------------------
@pytest.mark.parametrize(
    "fields, error, message",
    [
        ({"op": "convolution"}, ValueError, "op must name a registered layer kind, not 'convolution'"),
        ({"attrs": [("c", 8)]}, TypeError, "attrs must be <class 'dict'>, not list"),
        ({"shape": [8, 4, 4]}, TypeError, "shape must be <class 'tuple'>, not list"),
        ({"shape": (8, 4.0, 4)}, TypeError, "shape must hold whole numbers, not (8, 4.0, 4)"),
        ({"pos": "net.cnn:2:5"}, TypeError, "pos must be <class 'cnndsl.core.errors.SourcePos'>, not str"),
        ({"group": "layer1"}, TypeError, "group must be <class 'tuple'>, not str"),
        ({"tap": 1}, TypeError, "tap must be (<class 'str'>, <class 'NoneType'>), not int"),
    ],
)
def test_a_layer_with_a_wrong_field_is_refused(fields, error, message):
    good = {"op": "conv", "attrs": {"c": 8}, "shape": (8, 4, 4), "pos": POS}
    with pytest.raises(error) as caught:
        ir.Layer(**{**good, **fields})
    assert str(caught.value).startswith(message)


def test_an_unknown_edge_kind_is_refused():
    with pytest.raises(ValueError) as caught:
        ir.Edge("residual", 0)
    assert str(caught.value) == "edge kind must be one of ['branch', 'concat', 'sequence', 'skip'], not 'residual'"
    assert ir.Edge("skip", 1) == ir.Edge("skip", 1)


def test_a_builder_refuses_an_edge_of_an_unknown_kind():
    builder = ir.GraphBuilder(ir.NetworkInfo("net", "net.cnn"), max_nodes=10)
    first = builder.add(REGISTRY["input"], {}, (3, 8, 8), POS, builder.root, [])
    with pytest.raises(ValueError, match="not 'residual'"):
        builder.add(REGISTRY["relu"], {}, (3, 8, 8), POS, builder.root, [(first, "residual")])


def test_a_group_of_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="group kind must be one of .* not 'module'"):
        ir.Group("module", "m", POS)


# ---- how a network is stored and read ------------------------------------------------------------------
def test_each_node_edge_and_graph_holds_one_record():
    network = cnndsl.parse("network n { input 3x8x8\n enc: conv3x3(4)\n residual { conv3x3(4), bn }\n relu }")
    graph = network.graph
    assert list(graph.graph) == ["network"]  # nothing parked on the graph (`input_override` is passed instead)
    assert all(list(graph.nodes[node]) == ["layer"] for node in graph)
    assert all(list(graph.edges[edge]) == ["edge"] for edge in graph.edges)
    info = ir.network_info(graph)
    assert (info.name, info.file, info.input, info.outputs) == ("n", "<string>", 0, [("output", 5)])
    layers = [(record.name, record.op, record.shape, record.tap) for _, record in ir.layers(graph)]
    assert layers == [
        ("input", "input", (3, 8, 8), None),
        ("conv1", "conv", (4, 8, 8), "enc"),
        ("conv2", "conv", (4, 8, 8), None),
        ("bn", "bn", (4, 8, 8), None),
        ("add", "add", (4, 8, 8), None),
        ("relu", "relu", (4, 8, 8), None),
    ]
    # the add's inputs in order: the body's output, then the shortcut
    assert [(source, ir.edge(graph, source, 4)) for source in ir.inputs_of(graph, 4)] == [
        (3, ir.Edge("sequence", 0)),
        (1, ir.Edge("skip", 1)),
    ]


def test_the_graph_is_a_plain_digraph_whose_records_answer_no_string_keys():
    """No adapter stands between the backends and the records: `graph.nodes[n]["shape"]` and `layer["shape"]`
    fail, so a reader that still uses them fails at once."""
    graph = cnndsl.parse("network n { input 3x8x8\n conv3x3(4) }").graph
    assert type(graph) is nx.DiGraph
    with pytest.raises(KeyError):
        graph.nodes[1]["shape"]
    with pytest.raises(KeyError):
        graph.graph["groups"]
    with pytest.raises(TypeError):
        ir.layer(graph, 1)["shape"]
    with pytest.raises(TypeError):
        ir.network_info(graph)["groups"]


def test_analysis_writes_its_own_record_apart_from_the_layer():
    network = cnndsl.parse("network n { input 3x8x8\n conv(4, k=3, s=2) }")
    conv = ir.layer(network.graph, 1)
    # by hand: 4·3·3·3 + 4 weights; 4·4·4 outputs of 3·3·3 MACs each, float32; rf 3, jump 2
    assert conv.figures == ir.Figures(params=112, macs=1728, memory_bytes=4 * 4 * 4 * 4, rf=(3, 3), jump=(2, 2))
    assert [visit.layer for visit in ir.walk(network.graph)] == [ir.layer(network.graph, 0), conv]


def test_a_block_instance_keeps_its_call():
    network = cnndsl.parse("block pair(c, s=1) { conv3x3(c, s=s), relu }\nnetwork n { input 3x8x8\n pair(4, s=2) }")
    group = ir.network_info(network.graph).groups[("pair",)]
    assert group == ir.Group("block", "pair(4, s=2)", group.pos, ir.BlockCall("pair", {"c": 4, "s": 2}, {"s": 1}))
    assert (group.pos.line, group.pos.column) == (3, 2)
