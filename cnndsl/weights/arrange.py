"""Where a checkpoint module's children go on a run of the network's layers: in the checkpoint's order where
that fits, else the arrangement the shapes allow that keeps names, order and data flow best.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import networkx as nx

from .trees import Group, Leaf, natural, shape_counts

MAX_STEPS = 20_000  # placements tried within one module before it counts as ambiguous
MAX_ARRANGEMENTS = 16  # arrangements of one module's children compared; as many counts as ambiguous
MAX_CHILDREN = 400  # a module with more children than this is placed by shapes alone


def _sequential_order(children: list) -> list:
    """Numbered children (an nn.Sequential's, a ModuleList's) by number: that is their order of execution,
    whichever order a file lists them in (safetensors sorts keys as text, `10` before `2`)."""

    def number(child) -> str:
        return child.name.rpartition(".")[2]

    if all(number(child).isdigit() for child in children):
        return sorted(children, key=lambda child: int(number(child)))
    return children


@dataclass
class Choice:
    """The best arrangement of a module's children on a run, its cost, and a different one as good (if any)."""

    parts: list[tuple] | None
    cost: tuple = (0, 0)
    tied: list[tuple] | None = None


class Choices:
    """Chooses, for a module and a run, where its children go. The checkpoint's order, where it fits all the
    way down. Else, of the arrangements the shapes allow: the most children on layers of their own name (a
    checkpoint's `downsample` on the network's `downsample.conv`); then the fewest children out of the
    checkpoint's order, counted through every level below; then the fewest breaks in data flow inside a
    module (torchvision's RegNet lists a block's projection `proj` before its body `f`, and where the body's
    convolutions have the projection's shape only the right arrangement keeps `f` one chain of layers).
    Remembered per module and run."""

    def __init__(self, graph: nx.DiGraph):
        self.graph = graph
        self.known: dict[tuple, Choice] = {}
        self.linked: dict[tuple[int, int], bool] = {}

    def best(self, module: Group | Leaf, run: list[Leaf]) -> Choice:
        if isinstance(module, Leaf):
            return Choice([])
        key = (id(module), id(run[0]) if run else 0, len(run))
        if key not in self.known:
            self.known[key] = self._choose(module, run)
        return self.known[key]

    def _choose(self, module: Group, run: list[Leaf]) -> Choice:
        children = _sequential_order(module.children)
        in_order = _in_order(children, run)
        if in_order is not None:
            below = [self.best(child, part) for child, part in in_order]
            if all(choice.parts is not None and choice.tied is None and choice.cost[0] == 0 for choice in below):
                return Choice(in_order, (0, sum(choice.cost[1] for choice in below) + self._breaks(in_order)))
        if len(children) > MAX_CHILDREN:
            return Choice(None)
        arrangements = _arrangements(children, run)
        rank = {id(child): index for index, child in enumerate(children)}
        scored = []
        for arrangement in arrangements:
            below = [self.best(child, part) for child, part in arrangement]
            if any(choice.parts is None for choice in below):
                continue
            cost = (
                _inversions([rank[id(child)] for child, _ in arrangement]) + sum(c.cost[0] for c in below),
                self._breaks(arrangement) + sum(c.cost[1] for c in below),
            )
            scored.append(((-_named_alike(arrangement), *cost), arrangement))
        if not scored:
            return Choice(None)
        scored.sort(key=lambda item: item[0])
        (score, best), rest = scored[0], scored[1:]
        if rest and (rest[0][0] == score or len(arrangements) == MAX_ARRANGEMENTS):
            return Choice(best, score[1:], rest[0][1])
        return Choice(best, score[1:])

    def _breaks(self, arrangement: list[tuple]) -> int:
        """Layers of one checkpoint module, next to each other in graph order, that no data flows between."""
        return sum(
            not self._flows(first.node, second.node)
            for child, part in arrangement
            if isinstance(child, Group)
            for first, second in zip(part, part[1:])
        )

    def _flows(self, source: int, target: int) -> bool:
        """Whether a path leads from source to target; node ids are a topological order, so the search
        never looks past the target."""
        if (source, target) not in self.linked:
            seen, frontier = {source}, [source]
            while frontier and target not in seen:
                frontier = [
                    after
                    for node in frontier
                    for after in self.graph.succ[node]
                    if after <= target and after not in seen
                ]
                seen.update(frontier)
            self.linked[source, target] = target in seen
        return self.linked[source, target]


def _in_order(children: list, run: list[Leaf]) -> list[tuple] | None:
    """Consecutive parts of the run for the children in their order, if each part holds its child's shapes."""
    parts, start = [], 0
    for child in children:
        size = len(child.leaves)
        part = run[start : start + size]
        if shape_counts(part) != shape_counts(child.leaves):
            return None
        parts.append((child, part))
        start += size
    return parts


def _named_alike(arrangement: list[tuple]) -> int:
    """How many children lie on layers whose names contain the child's own (`downsample` in
    `layer1.bottleneck1.downsample.conv`)."""
    return sum(
        all(child.name.rpartition(".")[2] in leaf.name.split(".") for leaf in part) for child, part in arrangement
    )


def _inversions(order: list[int]) -> int:
    return sum(1 for i, first in enumerate(order) for second in order[i + 1 :] if first > second)


def _arrangements(children: list, run: list[Leaf]) -> list[list[tuple]]:
    """The ways (up to MAX_ARRANGEMENTS) to lay the children on consecutive parts of the run; children of the
    same shapes and the same name but its number keep their order by number (`layer2` before `layer10`).
    None where the search gives up."""
    classes: dict[tuple, list] = {}
    for child in sorted(children, key=lambda child: natural(child.name)):
        stem = re.sub(r"\d+", "", child.name.rpartition(".")[2])  # `denselayer` of denselayer1, denselayer2...
        classes.setdefault((shape_counts(child.leaves), stem), []).append(child)
    sizes = {key: len(members[0].leaves) for key, members in classes.items()}
    used = dict.fromkeys(classes, 0)
    found: list[list[tuple]] = []
    chosen: list[tuple] = []
    steps = 0

    def extend(start: int) -> bool:
        nonlocal steps
        if start == len(run):
            found.append(list(chosen))
            return len(found) == MAX_ARRANGEMENTS
        for key, members in classes.items():
            size = sizes[key]
            if used[key] == len(members) or shape_counts(run[start : start + size]) != key[0]:
                continue
            steps += 1
            if steps > MAX_STEPS:
                raise _TooMany
            chosen.append((members[used[key]], run[start : start + size]))
            used[key] += 1
            if extend(start + size):
                return True
            used[key] -= 1
            chosen.pop()
        return False

    try:
        extend(0)
    except _TooMany:
        return []
    return found


class _TooMany(Exception):
    """The search for arrangements gave up: the module is placed by shapes alone."""


def owner_of_each(arrangement: list[tuple], length: int) -> list:
    """For each position of the run, the checkpoint leaf the arrangement puts there."""
    owners = []
    for child, part in arrangement:
        owners.extend(child.leaves[: len(part)])
    return owners[:length]
