"""The tensors on each side of a match: the network's (each layer's, as its kind declares them) and the
checkpoint's (whatever it holds, described by shape and dtype).
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from ..graph.ir import walk


@dataclass(frozen=True)
class Slot:
    """One tensor the network holds: its state_dict key, shape, IR node, and whether it holds floats."""

    key: str
    shape: tuple
    node: int
    floating: bool = True


@dataclass(frozen=True)
class Given:
    """One tensor of the checkpoint: its shape and dtype."""

    shape: tuple
    dtype: str
    floating: bool


def network_slots(graph: nx.DiGraph) -> list[Slot]:
    """Every tensor the network holds, in graph order, as each layer's kind declares it (`OpKind.tensors`): the
    torch module's state_dict and the ONNX file's initializers hold the same."""
    return [
        Slot(spec.key(layer.name), spec.shape, node, spec.floating)
        for node, layer, kind, _, shapes in walk(graph)
        if layer.shares is None  # `shared(@t)` holds the tensors of the layer at t
        for spec in kind.tensors(layer.attrs, shapes)
    ]
