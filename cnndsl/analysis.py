"""Costs per node, written onto the graph: params, MACs, activation memory, receptive field.

MACs count convolutions and fully connected layers (the torchvision convention); FLOPs are
reported as 2·MACs and labelled as such. Receptive field over a DAG takes the largest over
all paths into a node.
"""
from __future__ import annotations

from dataclasses import dataclass
import networkx as nx

from .ir import inputs_of
from .receptive_field import IDENTITY, axis_after
from .ops import REGISTRY, numel

BYTES_PER_VALUE = 4  # float32


@dataclass(frozen=True)
class Totals:
    params: int
    macs: int
    memory_bytes: int
    param_bytes: int

    @property
    def flops(self) -> int:
        return 2 * self.macs


def annotate(graph: nx.DiGraph) -> nx.DiGraph:
    """Write params, macs, memory_bytes, rf and jump onto every node, in topological order."""
    nodes = dict(graph.nodes(data=True))  # plain dict lookups; the attribute dicts are the graph's own
    axes: dict = {}  # node -> its receptive_field.Axis per spatial axis, while annotating
    for node in sorted(nodes):
        data = nodes[node]
        kind = REGISTRY[data["op"]]
        sources = [nodes[source] for source in inputs_of(graph, node)]
        shapes = [source["shape"] for source in sources]
        data["params"] = kind.params(data["attrs"], shapes) if shapes else 0
        data["macs"] = kind.macs(data["attrs"], shapes, data["shape"]) if shapes else 0
        data["memory_bytes"] = numel(data["shape"]) * BYTES_PER_VALUE
        read = sources if kind.tap_values else sources[:1]
        window = kind.window(data["attrs"], shapes) if shapes else None
        axes[node] = _axes(graph, node, data, len(read), window, kind.offsets(data["attrs"], shapes), axes)
        data["rf"], data["jump"] = tuple(a.field for a in axes[node]), tuple(a.jump for a in axes[node])
    return graph


def _axes(graph, node, data, count, window, offsets, axes):
    """The node's index maps per axis (cnndsl/receptive_field.py) from those of the inputs it reads values of."""
    if not count:
        return (IDENTITY, IDENTITY)
    sources = inputs_of(graph, node)[:count]

    def size(shape, axis):
        return shape[axis + 1] if len(shape) == 3 else 1  # a vector is one position

    return tuple(axis_after([(axes[source][axis], size(graph.nodes[source]["shape"], axis), offsets[index][axis])
                             for index, source in enumerate(sources)], window, size(data["shape"], axis), axis)
                 for axis in (0, 1))


DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
OPTIMIZER_STATES = {"sgd": 0, "sgd-momentum": 1, "adam": 2}  # values kept per parameter beside its gradient


def saved_activations(graph: nx.DiGraph) -> int:
    """Values backward keeps per image (an estimate): every layer's output, except activations and residual adds
    that the torch backend runs in place, plus the int64 indices of max pooling (two float32 values each)."""
    outputs = {output for _, output in graph.graph["outputs"]}
    total = 0
    for node, data in graph.nodes(data=True):
        sources = inputs_of(graph, node)
        in_place = bool(sources) and (REGISTRY[data["op"]].family == "act" or data["op"] == "add") \
            and REGISTRY[graph.nodes[sources[0]]["op"]].torch_overwritable \
            and graph.out_degree(sources[0]) == 1 and sources[0] not in outputs
        if not in_place:
            total += numel(data["shape"]) * (3 if data["op"] == "maxpool" else 1)
    return total


def training_bytes(graph: nx.DiGraph, params: int, batch: int, dtype: str, optimizer: str) -> int:
    """Estimated memory of one training step: activations kept for backward, weights, gradients, optimizer state."""
    return DTYPE_BYTES[dtype] * (batch * saved_activations(graph) + params * (2 + OPTIMIZER_STATES[optimizer]))


def totals(graph: nx.DiGraph) -> Totals:
    params = sum(graph.nodes[n]["params"] for n in graph.nodes)
    macs = sum(graph.nodes[n]["macs"] for n in graph.nodes)
    memory = sum(graph.nodes[n]["memory_bytes"] for n in graph.nodes if graph.nodes[n]["op"] != "input")
    return Totals(params, macs, memory, params * BYTES_PER_VALUE)


def scalar(value) -> "int | float | list":
    """rf/jump for reports: one number when both axes agree, else [h, w]; whole numbers as int."""
    values = [int(v) if float(v).is_integer() else float(v) for v in value]
    return values[0] if values[0] == values[1] else values
