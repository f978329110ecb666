"""The graph IR: one networkx.DiGraph per network, read by every pass and backend through typed records.

Each node (ids are ints in creation order, a topological order) holds one `Layer` under the attribute
`"layer"`; each edge one `Edge` under `"edge"`; the graph one `NetworkInfo` under `"network"`. Records are
checked when built, so a pass that writes a wrong type or an unknown edge kind fails where it writes it.
Analysis writes its results (`Figures`) into `Layer.figures`, apart from what defines the layer, as torch.fx
keeps pass results in `Node.meta`. Read them with `layer`, `edge`, `network_info` and `walk`; this module is
the only one that knows how they are stored (tests/test_ir.py holds every other module to that).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any, Literal, NamedTuple, get_args

import networkx as nx

from ..core.errors import LimitProblem, NameProblem, SourcePos, SourceWarning
from ..core.records import FrozenRecord, Record
from ..front.evaluate import LARGEST
from ..ops import REGISTRY, OpKind, format_shape
from .module_names import why_not_a_module_name

EdgeKind = Literal["sequence", "skip", "concat", "branch"]
EDGE_KINDS: frozenset[str] = frozenset(get_args(EdgeKind))
GroupKind = Literal["stage", "block", "dense", "branch", "scale", "downsample"]
GROUP_KINDS: frozenset[str] = frozenset(get_args(GroupKind))
Path = tuple[str, ...]


def _require(value: Any, kind: type | tuple[type, ...], what: str) -> None:
    if not isinstance(value, kind):
        raise TypeError(f"{what} must be {kind}, not {type(value).__name__} {value!r}")


_INT = {int}


def _whole_numbers(shape: tuple) -> bool:
    return set(map(type, shape)) <= _INT


class Figures(Record):
    """What analysis (cnndsl/figures/costs.py) works out for one layer; rf and jump per axis (h, w)."""

    __slots__ = ("params", "macs", "memory_bytes", "rf", "jump")

    def __init__(self, params: int, macs: int, memory_bytes: int, rf: tuple | None, jump: tuple | None) -> None:
        self.params, self.macs, self.memory_bytes = params, macs, memory_bytes
        self.rf, self.jump = rf, jump  # None: no receptive field (a tensor neither C×H×W nor a vector)


class Layer(Record):
    """One node: a layer as expansion made it.

    op: the layer kind's name in the registry (`conv`, `add`, `input`, ...); attrs: resolved arguments (`k` as
    (h, w), `c` filled in); shape: the output without batch, 1 to 6 axes ((C, H, W), (N,), ...); pos: where it is written;
    group: the path of stages and blocks around it, e.g. ("layer2", "bottleneck1"); name: unique and dotted,
    group path + leaf ("layer2.bottleneck1.conv1"), given when expansion ends; tap: the label the source
    gave this point (`enc1: ...`); figures: analysis's results, None until analysed; shares: for a layer written
    `shared(@t)`, the node of the layer at t, whose module and weights it uses (it holds none of its own)."""

    __slots__ = ("op", "attrs", "shape", "pos", "group", "name", "tap", "figures", "shares")

    def __init__(
        self,
        op: str,
        attrs: dict,
        shape: tuple,
        pos: SourcePos,
        group: Path = (),
        name: str = "",
        tap: str | None = None,
        figures: Figures | None = None,
        shares: int | None = None,
    ) -> None:
        self.op, self.attrs, self.shape, self.pos, self.group = op, attrs, shape, pos, group
        self.name, self.tap, self.figures, self.shares = name, tap, figures, shares
        # one cheap test on the way every layer is built; the detailed checks only say what is wrong
        if not (
            self.op in REGISTRY
            and type(self.attrs) is dict
            and type(self.shape) is tuple
            and type(self.pos) is SourcePos
            and type(self.group) is tuple
            and type(self.name) is str
            and (self.tap is None or type(self.tap) is str)
            and _whole_numbers(self.shape)
        ):
            self._refuse()

    def _refuse(self) -> None:
        if self.op not in REGISTRY:
            raise ValueError(f"op must name a registered layer kind, not {self.op!r}")
        _require(self.attrs, dict, "attrs")
        _require(self.shape, tuple, "shape")
        if not _whole_numbers(self.shape):
            raise TypeError(f"shape must hold whole numbers, not {self.shape!r}")
        _require(self.pos, SourcePos, "pos")
        _require(self.group, tuple, "group")
        _require(self.name, str, "name")
        _require(self.tap, (str, type(None)), "tap")

    @property
    def kind(self) -> OpKind:
        return REGISTRY[self.op]

    def __eq__(self, other: object) -> bool:  # what defines the layer, not what analysis found (`figures`)
        if other.__class__ is not self.__class__:
            return NotImplemented
        defined = [name for name in self._fields if name != "figures"]
        return tuple(getattr(self, name) for name in defined) == tuple(getattr(other, name) for name in defined)


class Edge(Record):
    """One input of a layer: how it joins (`kind`) and its place among the layer's inputs (`index`, 0 first)."""

    __slots__ = ("kind", "index")

    def __init__(self, kind: EdgeKind, index: int) -> None:
        self.kind, self.index = kind, index
        if self.kind not in EDGE_KINDS:
            raise ValueError(f"edge kind must be one of {sorted(EDGE_KINDS)}, not {self.kind!r}")
        if type(self.index) is not int:
            _require(self.index, int, "index")


class BlockCall(FrozenRecord):
    """A block instance's call: its definition's name, every argument as bound, and the defaults written as
    numbers in the definition."""

    __slots__ = ("block", "args", "defaults")

    def __init__(self, block: str, args: dict, defaults: dict) -> None:
        self._set(block, args, defaults)


class Group(FrozenRecord):
    """A stage, block instance or structure (dense, branch, scale, downsample) around layers; `call` for a block."""

    __slots__ = ("kind", "label", "pos", "call")

    def __init__(self, kind: GroupKind, label: str, pos: SourcePos | None, call: BlockCall | None = None) -> None:
        self._set(kind, label, pos, call)
        if self.kind not in GROUP_KINDS:
            raise ValueError(f"group kind must be one of {sorted(GROUP_KINDS)}, not {self.kind!r}")
        _require(self.label, str, "label")
        _require(self.call, (BlockCall, type(None)), "call")


class NetworkInfo(Record):
    """The network as a whole: name, source file, input node (the first), every input node in order (`inputs`:
    most networks have one), outputs [(name, node)], the outputs only training returns (`train_outputs`, same
    form), groups by path, its parameter values as bound (`param_values`) and as text (`params`), the
    warnings expansion gave, and the inputs only the training forward takes (`train_inputs`, among `inputs`)."""

    __slots__ = (
        "name",
        "file",
        "params",
        "param_values",
        "input",
        "outputs",
        "groups",
        "warnings",
        "train_outputs",
        "inputs",
        "train_inputs",
    )  # in the order __init__ takes them, as pickling and copying pass them back

    def __init__(
        self,
        name: str,
        file: str,
        params: dict[str, str] | None = None,
        param_values: dict[str, Any] | None = None,
        input: int | None = None,
        outputs: list[tuple[str, int]] | None = None,
        groups: dict[Path, Group] | None = None,
        warnings: list[SourceWarning] | None = None,
        train_outputs: list[tuple[str, int]] | None = None,
        inputs: list[int] | None = None,
        train_inputs: list[int] | None = None,
    ) -> None:  # None: a new empty dict or list
        self.name, self.file, self.input = name, file, input
        self.train_outputs = [] if train_outputs is None else train_outputs
        self.inputs = ([] if input is None else [input]) if inputs is None else inputs
        self.train_inputs = [] if train_inputs is None else train_inputs
        self.params, self.param_values = {} if params is None else params, {} if param_values is None else param_values
        self.outputs, self.groups = [] if outputs is None else outputs, {} if groups is None else groups
        self.warnings = [] if warnings is None else warnings
        _require(self.name, str, "name")
        _require(self.file, str, "file")


def layer(graph: nx.DiGraph, node: int) -> Layer:
    """The node's record."""
    return graph.nodes[node]["layer"]


def layers(graph: nx.DiGraph) -> Iterator[tuple[int, Layer]]:
    """(node, record) of every node in creation order (a topological order)."""
    for node, data in graph.nodes.items():
        yield node, data["layer"]


def edge(graph: nx.DiGraph, source: int, target: int) -> Edge:
    """The record of the edge from `source` into `target`."""
    return graph.edges[source, target]["edge"]


def network_info(graph: nx.DiGraph) -> NetworkInfo:
    """The graph's record."""
    return graph.graph["network"]


def training_only(graph: nx.DiGraph) -> set[int]:
    """The nodes only the training forward computes: those a `train output` is computed from that no output is
    computed from, and what reads them (a path that reaches no output at all from the eval forward runs as before)."""
    info = network_info(graph)
    if not info.train_outputs:
        return set()
    evaluated = computed_from({node for _, node in info.outputs}, graph)
    training = computed_from({node for _, node in info.train_outputs}, graph) - evaluated
    for node in sorted(graph.nodes):  # a topological order
        if node not in evaluated and any(source in training for source in graph.predecessors(node)):
            training.add(node)
    return training


def eval_inputs(graph: nx.DiGraph) -> list[int]:
    """The input nodes the eval forward takes, in order: every input but the `train input`s."""
    info = network_info(graph)
    return [node for node in info.inputs if node not in info.train_inputs]


def forward_inputs(graph: nx.DiGraph) -> list[int]:
    """The input nodes in the order the forward takes them: the eval forward's, then the `train input`s (which the
    training forward takes, each optional)."""
    return eval_inputs(graph) + network_info(graph).train_inputs


def computed_from(ends: set[int], graph: nx.DiGraph) -> set[int]:
    """`ends` and every node they are computed from."""
    found = set(ends)
    for node in sorted(graph.nodes, reverse=True):  # ids are a topological order, so inputs come later here
        if node in found:
            found.update(graph.predecessors(node))
    return found


class GroupScope(Record):
    """A stage or block instance while expanding; named once expansion is complete. `children`: ("group",
    GroupScope) or ("node", id) in order; `call`: a block instance's definition and arguments."""

    __slots__ = ("base", "kind", "label", "pos", "parent", "children", "name", "call")

    def __init__(
        self,
        base: str,
        kind: str,
        label: str,
        pos: SourcePos | None,
        parent: GroupScope | None = None,
        children: list[tuple[str, Any]] | None = None,
        name: str = "",
        call: BlockCall | None = None,
    ) -> None:
        self.base, self.kind, self.label, self.pos, self.parent = base, kind, label, pos, parent
        self.children, self.name, self.call = [] if children is None else children, name, call

    def open(self, base: str, kind: str, label: str, pos: SourcePos | None) -> GroupScope:
        child = GroupScope(base, kind, label, pos, self)
        self.children.append(("group", child))
        return child


class GraphBuilder:
    """Adds nodes with inferred shapes and typed edges; enforces the node limit."""

    def __init__(self, info: NetworkInfo, max_nodes: int):
        self.info = info
        self.graph = nx.DiGraph(network=info)
        self.layers: list[Layer] = []  # by node id, for expansion's many reads of shapes
        self.max_nodes = max_nodes
        self.root = GroupScope("", "network", info.name, None)

    def add(
        self, kind: OpKind, attrs: dict, shape: tuple, pos: SourcePos, group: GroupScope, inputs: list[tuple[int, str]]
    ) -> int:
        node = len(self.layers)
        if shape and max(shape) > LARGEST:
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
        record = Layer(kind.name, attrs, shape, pos)
        self.graph.add_node(node, layer=record)
        self.layers.append(record)
        for index, (source, edge_kind) in enumerate(inputs):
            self.graph.add_edge(source, node, edge=Edge(edge_kind, index))
        group.children.append(("node", node))
        return node

    def finish(self) -> nx.DiGraph:
        """Name every group and node: unique names stay bare, repeated ones are numbered from 1, skipping any
        number that would repeat a sibling's name (`layer1` written beside two `layer` stages makes them `layer2`
        and `layer3`), so no two siblings ever share a module."""
        self._name_children(self.root, ())
        return self.graph

    def _name_children(self, scope: GroupScope, path: Path) -> None:
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
                self.info.groups[child_path] = Group(item.kind, item.label, item.pos, item.call)
                self._name_children(item, child_path)
            else:
                record = self.layers[item]
                record.group = path
                record.name = ".".join(path + (name,))

    def _base(self, kind: str, item: Any) -> str:
        if kind == "group":
            return item.base
        return self.layers[item].op


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
    """The node's inputs in order (the edges' `index`)."""
    predecessors = graph.pred[node]
    if len(predecessors) < 2:
        return list(predecessors)
    return sorted(predecessors, key=lambda source: predecessors[source]["edge"].index)


def owner(graph: nx.DiGraph, node: int) -> int:
    """The node that holds this layer's module and weights: itself, or the layer it shares them with."""
    shares = layer(graph, node).shares
    return node if shares is None else shares


def label(graph: nx.DiGraph, node: int) -> str:
    """The layer as the summary and the diagram name it: its kind's label, and whose weights it uses if shared."""
    record = layer(graph, node)
    text = record.kind.label(record.attrs)
    return text if record.shares is None else f"{text}, shared with {layer(graph, record.shares).name}"


def input_shapes(graph: nx.DiGraph, node: int) -> list[tuple]:
    nodes = graph.nodes
    return [nodes[source]["layer"].shape for source in inputs_of(graph, node)]


class Visit(NamedTuple):
    """One node as a pass reads it: its record, its layer kind, its inputs in order and their shapes."""

    node: int
    layer: Layer
    kind: OpKind
    sources: list[int]
    shapes: list[tuple]


def walk(graph: nx.DiGraph) -> Iterator[Visit]:
    """Every node in topological order (ids are creation order) with what each pass and backend asks first."""
    layers = dict(graph.nodes(data="layer"))  # plain dict reads: a pass over a large network reads it often
    predecessors = graph.pred
    for node, record in layers.items():
        inputs = predecessors[node]
        sources = list(inputs) if len(inputs) < 2 else sorted(inputs, key=lambda source: inputs[source]["edge"].index)
        yield Visit(node, record, REGISTRY[record.op], sources, [layers[source].shape for source in sources])
