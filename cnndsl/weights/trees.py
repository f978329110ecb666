"""Each side of a match as layers holding tensors (Leaf): the network's in graph order, the checkpoint's as the
tree of modules (Group) its key prefixes form.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import networkx as nx

from ..graph import ir
from .slots import Given, Slot

COUNTER = "num_batches_tracked"  # BatchNorm's step count: not matched by shape, it follows its layer
ROLES = ("weight", "bias", "running_mean", "running_var")  # the order torch gives a layer's tensors


@dataclass
class Leaf:
    """One layer's tensors on either side, in torch's order (weight, bias, running statistics)."""

    name: str
    keys: list[str]
    shapes: list[tuple]
    node: int | None = None

    @property
    def signature(self) -> tuple:
        return tuple(squeezed(shape) for shape in self.shapes)

    @property
    def leaves(self) -> list[Leaf]:
        return [self]


@dataclass
class Group:
    """A checkpoint module with submodules (`layer1.0`): its children in the checkpoint's order."""

    name: str
    children: list[Group | Leaf] = field(default_factory=list)

    @property
    def leaves(self) -> list[Leaf]:
        return [leaf for child in self.children for leaf in child.leaves]


def squeezed(shape: tuple) -> tuple:
    return tuple(dim for dim in shape if dim != 1)


def leaves_of_network(graph: nx.DiGraph, slots: list[Slot]) -> list[Leaf]:
    """The network's layers holding tensors, in graph order."""
    by_node: dict[int, list[Slot]] = {}
    for slot in slots:
        by_node.setdefault(slot.node, []).append(slot)
    leaves = []
    for node in sorted(by_node):
        ordered = sorted(by_node[node], key=lambda slot: role_rank(slot.key))
        leaves.append(
            Leaf(ir.layer(graph, node).name, [slot.key for slot in ordered], [slot.shape for slot in ordered], node)
        )
    return leaves


def checkpoint_tree(keys: list[str], given: dict[str, Given]) -> Group:
    """The checkpoint's modules as the tree their key prefixes form; a tensor held directly by a module
    with submodules (ConvNeXt's `layer_scale`) is a leaf of its own."""
    prefixes = {key.rpartition(".")[0] for key in keys}
    inner = {prefix[:i] for prefix in prefixes for i, char in enumerate(prefix) if char == "."} | {""}
    root = Group("")
    groups: dict[str, Group] = {"": root}
    leaves: dict[str, Leaf] = {}

    def group(path: str) -> Group:
        if path not in groups:
            parent = group(path.rpartition(".")[0])
            groups[path] = Group(path)
            parent.children.append(groups[path])
        return groups[path]

    for key in keys:
        prefix = key.rpartition(".")[0]
        if prefix in inner:
            group(prefix).children.append(Leaf(key, [key], [given[key].shape]))
            continue
        if prefix not in leaves:
            leaves[prefix] = Leaf(prefix, [], [])
            group(prefix.rpartition(".")[0]).children.append(leaves[prefix])
        leaves[prefix].keys.append(key)
    for leaf in leaves.values():
        leaf.keys.sort(key=role_rank)
        leaf.shapes = [given[key].shape for key in leaf.keys]
    return root


def shape_counts(leaves: list[Leaf]) -> frozenset:
    return frozenset(Counter(leaf.signature for leaf in leaves).items())


def signatures(keys: list[str], given: dict[str, Given]) -> Counter:
    return Counter(leaf.signature for leaf in checkpoint_tree(keys, given).leaves)


def role_rank(key: str) -> int:
    role = key.rpartition(".")[2]
    return ROLES.index(role) if role in ROLES else len(ROLES)


def natural(name: str) -> list:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def is_counter(key: str) -> bool:
    return key.rpartition(".")[2] == COUNTER
