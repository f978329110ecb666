"""Layers that reach no output: built, counted and run, yet nothing they compute is returned.

A branch left behind by a jump (`@a` after it) or a head never named in `output` still holds
parameters, so `check` says where such a path begins and what it costs."""

from __future__ import annotations

import networkx as nx

from ..core.errors import SourceWarning
from .ir import NetworkInfo, computed_from, input_shapes, layer


def dead_path_warnings(graph: nx.DiGraph, info: NetworkInfo) -> list[SourceWarning]:
    """One warning per first layer of a path that reaches no output, with the layers and parameters behind it."""
    alive = computed_from({node for _, node in info.outputs + info.train_outputs}, graph)
    dead = [node for node in sorted(graph.nodes) if node not in alive and node not in info.inputs]
    claimed: set[int] = set()
    warnings = []
    for start in dead:
        if start in claimed or any(source not in alive for source in graph.predecessors(start)):
            continue
        path = {start} | {node for node in nx.descendants(graph, start) if node not in claimed}
        claimed |= path
        warnings.append(_warning(graph, start, path))
    return warnings


def _warning(graph: nx.DiGraph, start: int, path: set[int]) -> SourceWarning:
    first = layer(graph, start)
    params = sum(
        layer(graph, node).kind.params(layer(graph, node).attrs, input_shapes(graph, node))
        for node in path
        if layer(graph, node).shares is None
    )
    count = f"{len(path)} layer{'' if len(path) == 1 else 's'}"
    return SourceWarning(
        f"`{first.name}` ({first.op}) begins a path that reaches no output: its {count} and {params:,} "
        "parameters are still counted and computed",
        first.pos,
        "join it to the rest (add, concat), name it in `output @a, @b`, or remove it",
    )
