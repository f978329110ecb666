"""Which checkpoint tensor is which layer's: by name where the names agree, else by the network's structure.

A checkpoint's keys group into modules by prefix (`layer1.0.conv1.weight` is module `layer1.0.conv1`'s), and
modules into the tree their prefixes form. Each module is placed on a run of the network's layers, in graph
order, that holds the same shapes: a module's children are taken in the checkpoint's order where that fits,
else placed by their shapes alone (torchvision's RegNet registers a block's shortcut before its body).
Shapes agree up to dimensions of size 1 (a Linear's weight is a 1×1 convolution's). Whatever the shapes
cannot decide is reported, never guessed.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import networkx as nx

from ..core.errors import ValueProblem
from ..graph import ir
from ..ops import format_shape
from .align import alignment, chosen
from .arrange import Choices, owner_of_each
from .slots import Given, Slot
from .trees import COUNTER, Group, Leaf, checkpoint_tree, is_counter, leaves_of_network, signatures, squeezed

LOAD_HINT = "was it saved from this network, with the same options (-p, --input)?"
AMBIGUOUS_HINT = "save the checkpoint under the network's names, or load with strict=False to take what is certain"


@dataclass
class Match:
    """The outcome: network key -> checkpoint key, and every tensor that found no partner, with why."""

    origin: str
    pairs: dict[str, str] = field(default_factory=dict)
    by_name: set[str] = field(default_factory=set)
    missing: list[Slot] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    problems: list[ValueProblem] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.problems and not self.unused and not any(slot.floating for slot in self.missing)

    def refusal(self) -> ValueProblem:
        """The first problem, as the error a strict load raises; its hint counts the others."""
        first = self.problems[0]
        others = len(self.problems) - 1
        more = f" ({others} more: `cnndsl weights NETWORK CHECKPOINT` lists them all)" if others else ""
        return ValueProblem(first.message, first.pos, (first.hint or "") + more)


def match(graph: nx.DiGraph, slots: list[Slot], given: dict[str, Given], origin: str) -> Match:
    """Pair the network's tensors with the checkpoint's; problems are collected, not raised."""
    return _Matcher(graph, slots, given, origin).run()


class _Matcher:
    def __init__(self, graph: nx.DiGraph, slots: list[Slot], given: dict[str, Given], origin: str):
        self.graph, self.given = graph, given
        self.slots = {slot.key: slot for slot in slots}
        self.result = Match(origin)
        self.problem_at: list[tuple[tuple, ValueProblem]] = []  # ((rank, node id), problem), sorted at the end
        self._choices = Choices(graph)

    def run(self) -> Match:
        taken = self._by_name()
        rest = [slot for slot in self.slots.values() if slot.key not in taken and not is_counter(slot.key)]
        keys = [key for key in self.given if key not in taken and not is_counter(key)]
        network_leaves = leaves_of_network(self.graph, rest)
        keys = self._without_auxiliary_heads(network_leaves, keys)
        network_leaves, keys = self._without_unpartnered(network_leaves, keys)
        self._place(checkpoint_tree(keys, self.given), network_leaves)
        self._check_dtypes()
        self._pair_counters()
        return self._finish()

    # ---- by name ---------------------------------------------------------------------------------
    def _by_name(self) -> set[str]:
        """Keys the network and checkpoint share; a shared key of another shape is a problem, not a pair."""
        taken, refused = set(), set()
        for key, slot in self.slots.items():
            if key not in self.given or is_counter(key):
                continue
            taken.add(key)
            shape = self.given[key].shape
            if squeezed(shape) == squeezed(slot.shape):
                self.result.pairs[key] = key
                self.result.by_name.add(key)
            elif slot.node not in refused:  # one problem per layer: its weight's shape says enough
                refused.add(slot.node)
                self._problem(
                    slot.node,
                    f"{self.result.origin} gives `{key}` the shape {_shape(shape)}; "
                    f"the network needs {_shape(slot.shape)}",
                    "check the network's parameters (-p) and input shape against those it was trained with",
                )
        return taken

    # ---- what cannot match -------------------------------------------------------------------------
    def _without_auxiliary_heads(self, network_leaves: list[Leaf], keys: list[str]) -> list[str]:
        """Auxiliary classifiers the checkpoint was trained with (`aux1`, `AuxLogits`, `aux_classifier`) are left
        out where the network has none, as torchvision leaves them out when it builds these networks without."""
        if Counter(leaf.signature for leaf in network_leaves) == signatures(keys, self.given):
            return keys
        has_aux = any(name.lower().startswith("aux") for name, *_ in ir.network_info(self.graph).groups)
        if has_aux:
            return keys
        kept = []
        for key in keys:
            (self.result.dropped if key.lower().startswith("aux") else kept).append(key)
        return kept

    def _without_unpartnered(self, network_leaves: list[Leaf], keys: list[str]) -> tuple[list[Leaf], list[str]]:
        """Set aside the layers and modules whose shapes the other side lacks (or has fewer of), each reported
        beside what the checkpoint holds in its place when the two orders are lined up."""
        checkpoint_leaves = checkpoint_tree(keys, self.given).leaves
        ours, theirs = [leaf.signature for leaf in network_leaves], [leaf.signature for leaf in checkpoint_leaves]
        excess_ours, excess_theirs = Counter(ours) - Counter(theirs), Counter(theirs) - Counter(ours)
        if not excess_ours and not excess_theirs:
            return network_leaves, keys
        aligned = alignment(ours, theirs)
        unequal = [(i, j) for i, j in aligned if i is None or j is None or ours[i] != theirs[j]]
        drop_ours = chosen(excess_ours, [i for i, _ in unequal if i is not None], ours)
        drop_theirs = chosen(excess_theirs, [j for _, j in unequal if j is not None], theirs)
        self._report_unpartnered(aligned, network_leaves, checkpoint_leaves, drop_ours, drop_theirs)
        dropped_keys = {key for j in drop_theirs for key in checkpoint_leaves[j].keys}
        return (
            [leaf for i, leaf in enumerate(network_leaves) if i not in drop_ours],
            [key for key in keys if key not in dropped_keys],
        )

    def _report_unpartnered(self, aligned, network_leaves, checkpoint_leaves, drop_ours, drop_theirs) -> None:
        origin, following = self.result.origin, len(network_leaves) - 1
        for i, j in reversed(aligned):
            following = i if i is not None else following
            if i in drop_ours:
                leaf = network_leaves[i]
                needs = f"layer `{leaf.name}` needs `{leaf.keys[0]}` of shape {_shape(leaf.shapes[0])}"
                if j in drop_theirs:
                    other = checkpoint_leaves[j]
                    self._problem(
                        leaf.node,
                        f"{needs}; in its place {origin} has `{other.keys[0]}` of shape {_shape(other.shapes[0])}",
                        LOAD_HINT,
                    )
                else:
                    self._problem(leaf.node, f"{needs}; {origin} has no tensor of that shape for it", LOAD_HINT)
            elif j in drop_theirs:
                other = checkpoint_leaves[j]
                near = network_leaves[following] if network_leaves else None
                where = f" (it comes where the network has layer `{near.name}`)" if near else ""
                self._problem(
                    near.node if near else max(slot.node for slot in self.slots.values()),
                    f"{origin} has `{other.keys[0]}` of shape {_shape(other.shapes[0])}, which no layer of "
                    f"the network takes{where}",
                    LOAD_HINT,
                )

    # ---- by structure --------------------------------------------------------------------------
    def _place(self, module: Group | Leaf, run: list[Leaf]) -> None:
        """Place a checkpoint module on a run of network layers holding the same shapes."""
        if isinstance(module, Leaf):
            self._pair(run[0], module)
            return
        choice = self._choices.best(module, run)
        if choice.tied is not None:
            self._ambiguous_arrangement([choice.parts, choice.tied], run)
        if choice.parts is None or choice.tied is not None:
            self._by_shape_alone(module, run)
            return
        for child, part in choice.parts:
            self._place(child, part)

    def _by_shape_alone(self, module: Group, run: list[Leaf]) -> None:
        """Pair each layer with the one module of its shapes; shapes that several share are ambiguous."""
        theirs: dict[tuple, list[Leaf]] = {}
        for leaf in module.leaves:
            theirs.setdefault(leaf.signature, []).append(leaf)
        ours: dict[tuple, list[Leaf]] = {}
        for leaf in run:
            ours.setdefault(leaf.signature, []).append(leaf)
        for signature, layers in ours.items():
            candidates = theirs.get(signature, [])
            if len(layers) == 1 and len(candidates) == 1:
                self._pair(layers[0], candidates[0])
            elif layers and len(candidates) > 1:
                self._ambiguous(layers[0], candidates[0], candidates[1])

    def _ambiguous_arrangement(self, arrangements: list[list[tuple]], run: list[Leaf]) -> None:
        first, second = (owner_of_each(arrangement, len(run)) for arrangement in arrangements[:2])
        index = next((i for i in range(len(run)) if first[i] is not second[i]), 0)
        self._ambiguous(run[index], first[index], second[index])

    def _ambiguous(self, layer: Leaf, one: Group | Leaf, other: Group | Leaf) -> None:
        a, b = one.leaves[0], other.leaves[0]
        self._problem(
            layer.node,
            f"cannot tell whether `{a.keys[0]}` or `{b.keys[0]}` of {self.result.origin} "
            f"is layer `{layer.name}`'s `{layer.keys[0]}` (both {_shape(a.shapes[0])}): the "
            "shapes fit either way and the checkpoint's order does not say",
            AMBIGUOUS_HINT,
            rank=1,
        )

    def _pair(self, ours: Leaf, theirs: Leaf) -> None:
        roles = [key.rpartition(".")[2] for key in theirs.keys]
        by_role = sorted(roles) == sorted(key.rpartition(".")[2] for key in ours.keys)
        for position, key in enumerate(ours.keys):
            partner = theirs.keys[roles.index(key.rpartition(".")[2])] if by_role else theirs.keys[position]
            self.result.pairs[key] = partner

    # ---- after pairing -----------------------------------------------------------------------------
    def _check_dtypes(self) -> None:
        for key, partner in list(self.result.pairs.items()):
            slot, given = self.slots[key], self.given[partner]
            if slot.floating and not given.floating:
                del self.result.pairs[key]
                self._problem(
                    slot.node,
                    f"{self.result.origin} holds `{partner}` as {given.dtype}; layer "
                    f"`{_layer(self.graph, slot.node)}` needs floating-point values for `{key}`",
                    "integers and booleans are not weights: was it saved from a quantised or another network?",
                )

    def _pair_counters(self) -> None:
        """Each BatchNorm's step count comes from the module its statistics came from, where the checkpoint has it
        as one value (a count of another shape is left out, as a missing one is)."""
        for key in self.slots:
            if not is_counter(key):
                continue
            statistics = self.result.pairs.get(key.rpartition(".")[0] + ".running_mean")
            partner = statistics and statistics.rpartition(".")[0] + "." + COUNTER
            if partner in self.given and math.prod(self.given[partner].shape) == 1:
                self.result.pairs[key] = partner

    def _finish(self) -> Match:
        result = self.result
        taken = set(result.pairs.values())
        result.missing = [slot for key, slot in self.slots.items() if key not in result.pairs]
        dropped = set(result.dropped)
        result.unused = [key for key in self.given if key not in taken and key not in dropped and not is_counter(key)]
        result.problems = [problem for _, problem in sorted(self.problem_at, key=lambda item: item[0])]
        return result

    def _problem(self, node: int | None, message: str, hint: str, rank: int = 0) -> None:
        """Record a problem; those of rank 0 (a tensor without partner) come first, before the ambiguities
        that often follow from them."""
        pos = ir.layer(self.graph, node).pos if node is not None else None
        self.problem_at.append(((rank, node if node is not None else -1), ValueProblem(message, pos, hint)))


def _layer(graph: nx.DiGraph, node: int) -> str:
    return ir.layer(graph, node).name


def _shape(shape: tuple) -> str:
    return format_shape(shape) if shape else "a scalar"
