"""The graph IR: one networkx.DiGraph per network, read by every pass and backend.

Node attributes (node ids are ints in creation order, which is a topological order):
    op      str          the layer kind's name in the registry (`conv`, `add`, `input`, ...)
    attrs   dict         resolved arguments (`k` as (h, w), `p` as numbers, `c` filled in)
    shape   tuple        inferred output shape without batch: (C, H, W) or (N,)
    pos     SourcePos    where the layer is written
    group   tuple[str]   group path (stage and block names), e.g. ("layer2", "bottleneck1")
    name    str          unique dotted name: group path + leaf, e.g. "layer2.bottleneck1.conv1"
    tap     str | None   the label the source gave this point (`enc1: ...`)
  written by cnndsl.analysis:
    params, macs, memory_bytes, rf (h, w), jump (h, w)

Edge attributes:
    kind    "sequence" | "skip" | "concat" | "branch"
    index   position of this input among the target's inputs (0 is the first)

Graph attributes:
    name     network name;  file  source file;  params  the network's parameter values
    input    the input node id;  outputs  [(output name, node id)]
    groups   {group path: {"kind": stage|block|dense|branch|scale|downsample, "label": str, "pos": SourcePos,
                           "call": for a block instance, {"block": its definition's name, "args": {param: value},
                                   "defaults": {param: value written as a number in the definition}}}}
    param_values  the network's parameter values as bound (`params` holds them as text)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import networkx as nx

from ..core.errors import LimitProblem, NameProblem, SourcePos
from ..front.evaluate import LARGEST
from ..ops import REGISTRY, OpKind, format_shape
from .module_names import why_not_a_module_name

EDGE_KINDS = ("sequence", "skip", "concat", "branch")


@dataclass
class GroupScope:
    """A stage or block instance while expanding; named once expansion is complete."""

    base: str
    kind: str
    label: str
    pos: SourcePos | None
    parent: GroupScope | None = None
    children: list[tuple[str, Any]] = field(default_factory=list)  # ("group", GroupScope) | ("node", id)
    name: str = ""
    call: dict | None = None  # a block instance's definition and arguments

    def open(self, base: str, kind: str, label: str, pos: SourcePos | None) -> GroupScope:
        child = GroupScope(base, kind, label, pos, self)
        self.children.append(("group", child))
        return child


class GraphBuilder:
    """Adds nodes with inferred shapes and typed edges; enforces the node limit."""

    def __init__(self, name: str, file: str, max_nodes: int):
        self.graph = nx.DiGraph(name=name, file=file, outputs=[], groups={}, input=None, params={})
        self.max_nodes = max_nodes
        self.root = GroupScope("", "network", name, None)

    def add(
        self, kind: OpKind, attrs: dict, shape: tuple, pos: SourcePos, group: GroupScope, inputs: list[tuple[int, str]]
    ) -> int:
        node = self.graph.number_of_nodes()
        if any(dim > LARGEST for dim in shape):
            raise LimitProblem(
                f"`{kind.name}` makes a {format_shape(shape)} tensor, larger than any size cnndsl accepts (2^53)",
                pos,
                "check the input size, strides and scale factors",
            )
        if node >= self.max_nodes:
            raise LimitProblem(
                f"the network expands to more than {self.max_nodes:,} nodes",
                pos,
                "check the repetition counts, or raise the limit with --max-nodes",
            )
        self.graph.add_node(node, op=kind.name, attrs=attrs, shape=shape, pos=pos, group=(), name="", tap=None)
        for index, (source, edge_kind) in enumerate(inputs):
            self.graph.add_edge(source, node, kind=edge_kind, index=index)
        group.children.append(("node", node))
        return node

    def finish(self) -> nx.DiGraph:
        """Name every group and node: unique names stay bare, repeated ones are numbered from 1, skipping any
        number that would repeat a sibling's name (`layer1` written beside two `layer` stages makes them `layer2`
        and `layer3`), so no two siblings ever share a module."""
        self._name_children(self.root, ())
        return self.graph

    def _name_children(self, scope: GroupScope, path: tuple[str, ...]) -> None:
        bases = [self._base(kind, item) for kind, item in scope.children]
        totals = Counter(bases)
        taken = {base for base, total in totals.items() if total == 1}
        numbers: Counter = Counter()
        for (kind, item), base in zip(scope.children, bases):
            name = base
            if totals[base] > 1:
                numbers[base] += 1
                while f"{base}{numbers[base]}" in taken:
                    numbers[base] += 1
                name = f"{base}{numbers[base]}"
                taken.add(name)
            if kind == "group":
                _require_module_name(name, item.pos)
                item.name = name
                child_path = path + (name,)
                info = {"kind": item.kind, "label": item.label, "pos": item.pos}
                self.graph.graph["groups"][child_path] = info if item.call is None else {**info, "call": item.call}
                self._name_children(item, child_path)
            else:
                self.graph.nodes[item]["group"] = path
                self.graph.nodes[item]["name"] = ".".join(path + (name,))

    def _base(self, kind: str, item: Any) -> str:
        if kind == "group":
            return item.base
        return self.graph.nodes[item]["op"]


def _require_module_name(name: str, pos: SourcePos | None) -> None:
    """A group's name is a PyTorch module attribute in every backend: refuse here, where `check` sees it."""
    why = why_not_a_module_name(name)
    if why is not None:
        raise NameProblem(
            f"`{name}` cannot name a PyTorch module: {why}",
            pos,
            hint=f"rename the stage or block, e.g. `{name.strip('_') or 'block'}_`",
        )


def inputs_of(graph: nx.DiGraph, node: int) -> list[int]:
    """The node's inputs in order (edge `index`)."""
    predecessors = graph.pred[node]
    if len(predecessors) < 2:
        return list(predecessors)
    return sorted(predecessors, key=lambda source: predecessors[source]["index"])


def input_shapes(graph: nx.DiGraph, node: int) -> list[tuple]:
    return [graph.nodes[source]["shape"] for source in inputs_of(graph, node)]


class Visit(NamedTuple):
    """One node as a pass reads it: its attributes, its layer kind, its inputs in order and their shapes."""

    node: int
    data: dict
    kind: OpKind
    sources: list[int]
    shapes: list[tuple]


def walk(graph: nx.DiGraph) -> Iterator[Visit]:
    """Every node in topological order (ids are creation order) with what each pass and backend asks first."""
    nodes = graph.nodes
    for node, data in nodes.items():
        sources = inputs_of(graph, node)
        yield Visit(node, data, REGISTRY[data["op"]], sources, [nodes[source]["shape"] for source in sources])
