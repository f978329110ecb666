"""The groups of a network as the compact source sees them: what each holds, which are callable as one
module (one value in, one out), the order to write them in, and a scope's steps."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ..graph import ir
from ..graph.ir import inputs_of


@dataclass
class Item:
    """One step of a forward: a node, or the call of a group written as one module."""

    kind: str  # "node" | "group"
    key: Any  # node id | group path
    name: str  # dotted, relative to the scope
    inputs: list
    output: int


class Groups:
    """The network's group tree: children in order, members, and each group's (input, output) where it has one of each."""

    def __init__(self, graph):
        self.graph = graph
        self.info = ir.network_info(graph).groups
        self.children: dict[tuple, list] = defaultdict(list)
        self.members: dict[tuple, set] = defaultdict(set)
        for node, layer in ir.layers(graph):
            path = layer.group
            for depth in range(len(path)):
                if ("group", path[: depth + 1]) not in self.children[path[:depth]]:
                    self.children[path[:depth]].append(("group", path[: depth + 1]))
                self.members[path[: depth + 1]].add(node)
            self.children[path].append(("node", node))
        self.ends = {path: self._ends(path) for path in self.info}

    def _ends(self, path) -> tuple[int, int] | None:
        """(the one node feeding the group, its one output node), or None if it has more of either."""
        inside = self.members[path]
        sources = {source for node in inside for source in self.graph.pred[node] if source not in inside}
        outputs = {node for node in inside if any(target not in inside for target in self.graph.succ[node])}
        info = ir.network_info(self.graph)
        outputs |= {node for _, node in info.outputs if node in inside}
        if len(sources) != 1 or len(outputs) != 1 or info.input in inside:
            return None
        return next(iter(sources)), next(iter(outputs))

    def base(self, path: tuple) -> str:
        """What instances of one class share: the block's name, a stage's label, or the group's kind."""
        group = self.info[path]
        if group.call is not None:
            return group.call.block
        return {"stage": group.label, "downsample": "downsample"}.get(group.kind, group.kind)

    def by_height(self) -> list[list[tuple]]:
        """The callable groups in the order to write them: after every group inside them, and every
        instance of a block at the same height, so that a block's templates are all known when its classes
        are named."""
        groups = [path for path in self.ends if self.ends[path]]
        instances = defaultdict(list)  # a block's instances share one height
        for path in groups:
            if self.info[path].call is not None:
                instances[self.base(path)].append(path)
        below = {path: [child for _, child in self._callable_below(path)] for path in groups}
        same = {path: instances[self.base(path)] if self.info[path].call is not None else [] for path in groups}
        heights = dict.fromkeys(groups, 0)
        changed = True
        while changed:
            changed = False
            for path in groups:
                height = max((heights[child] + 1 for child in below[path]), default=0)
                height = max([height, *(heights[other] for other in same[path])])
                if height != heights[path]:
                    heights[path], changed = height, True
        layers = defaultdict(list)
        for path in groups:
            layers[heights[path]].append(path)
        return [layers[height] for height in sorted(layers)]

    def _callable_below(self, path):
        for kind, child in self.children[path]:
            if kind == "group":
                if self.ends.get(child):
                    yield kind, child
                else:
                    yield from self._callable_below(child)

    def items(self, scope: tuple, prefix: tuple = ()) -> list[Item]:
        """The scope's steps in order: its nodes, and its callable groups as one step each."""
        result = []
        for kind, child in self.children[scope]:
            if kind == "node":
                if child == ir.network_info(self.graph).input:
                    continue
                leaf = ir.layer(self.graph, child).name.rsplit(".", 1)[-1]
                result.append(Item("node", child, ".".join(prefix + (leaf,)), inputs_of(self.graph, child), child))
            elif self.ends.get(child):
                source, output = self.ends[child]
                result.append(Item("group", child, ".".join(prefix + (child[-1],)), [source], output))
            else:
                result += self.items(child, prefix + (child[-1],))
        return result
