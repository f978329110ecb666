"""Costs per node, written onto the graph: params, MACs, activation memory, receptive field.

MACs count convolutions and fully connected layers (the torchvision convention); FLOPs are
reported as 2·MACs and labelled as such. Receptive field over a DAG takes the largest over
all paths into a node.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import networkx as nx

from .ir import input_shapes, inputs_of
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
    for node in sorted(graph.nodes):
        data = graph.nodes[node]
        kind = REGISTRY[data["op"]]
        shapes = input_shapes(graph, node)
        data["params"] = kind.params(data["attrs"], shapes) if shapes else 0
        data["macs"] = kind.macs(data["attrs"], shapes, data["shape"]) if shapes else 0
        data["memory_bytes"] = numel(data["shape"]) * BYTES_PER_VALUE
        data["rf"], data["jump"] = _receptive_field(graph, node, kind, shapes)
    return graph


def _receptive_field(graph, node, kind, shapes):
    sources = inputs_of(graph, node)
    if not sources:
        return (1, 1), (Fraction(1), Fraction(1))
    rf = tuple(max(graph.nodes[s]["rf"][axis] for s in sources) for axis in (0, 1))
    jump = tuple(max(graph.nodes[s]["jump"][axis] for s in sources) for axis in (0, 1))
    window = kind.window(graph.nodes[node]["attrs"], shapes)
    if window is None:
        return rf, jump
    new_rf, new_jump = [], []
    for axis in (0, 1):
        step = jump[axis] / window.upsample[axis]
        span = (window.kernel[axis] - 1) * window.dilation[axis]
        new_rf.append(rf[axis] + span * step)
        new_jump.append(step * window.stride[axis])
    return tuple(new_rf), tuple(new_jump)


def totals(graph: nx.DiGraph) -> Totals:
    params = sum(graph.nodes[n]["params"] for n in graph.nodes)
    macs = sum(graph.nodes[n]["macs"] for n in graph.nodes)
    memory = sum(graph.nodes[n]["memory_bytes"] for n in graph.nodes if graph.nodes[n]["op"] != "input")
    return Totals(params, macs, memory, params * BYTES_PER_VALUE)


def scalar(value) -> "int | float | list":
    """rf/jump for reports: one number when both axes agree, else [h, w]; whole numbers as int."""
    values = [int(v) if Fraction(v).denominator == 1 else float(v) for v in value]
    return values[0] if values[0] == values[1] else values
