"""Which checkpoint tensor is which layer's: by name where the names agree, else by the network's structure.

A checkpoint's keys group into modules by prefix (`layer1.0.conv1.weight` is module `layer1.0.conv1`'s), and
modules into the tree their prefixes form. Each module is placed on a run of the network's layers, in graph
order, that holds the same shapes: a module's children are taken in the checkpoint's order where that fits,
else placed by their shapes alone (torchvision's RegNet registers a block's shortcut before its body).
Shapes agree up to dimensions of size 1 (a Linear's weight is a 1×1 convolution's). Whatever the shapes
cannot decide is reported, never guessed.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import networkx as nx

from ..core.errors import ValueProblem
from ..graph import ir
from ..ops import format_shape

COUNTER = "num_batches_tracked"  # BatchNorm's step count: not matched by shape, it follows its layer
ROLES = ("weight", "bias", "running_mean", "running_var")  # the order torch gives a layer's tensors
MAX_STEPS = 20_000  # placements tried within one module before it counts as ambiguous
MAX_ARRANGEMENTS = 16  # arrangements of one module's children compared; as many counts as ambiguous
MAX_CHILDREN = 400
MAX_ALIGNMENT_CELLS = 300_000  # beyond this the two orders are lined up place by place, not by edit distance  # a module with more children than this is placed by shapes alone
LOAD_HINT = "was it saved from this network, with the same options (-p, --input)?"
AMBIGUOUS_HINT = "save the checkpoint under the network's names, or load with strict=False to take what is certain"


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


def squeezed(shape: tuple) -> tuple:
    return tuple(dim for dim in shape if dim != 1)


def match(graph: nx.DiGraph, slots: list[Slot], given: dict[str, Given], origin: str) -> Match:
    """Pair the network's tensors with the checkpoint's; problems are collected, not raised."""
    return _Matcher(graph, slots, given, origin).run()


class _Matcher:
    def __init__(self, graph: nx.DiGraph, slots: list[Slot], given: dict[str, Given], origin: str):
        self.graph, self.given = graph, given
        self.slots = {slot.key: slot for slot in slots}
        self.result = Match(origin)
        self.problem_at: list[tuple[tuple, ValueProblem]] = []  # ((rank, node id), problem), sorted at the end
        self._choices = _Choices(graph)

    def run(self) -> Match:
        taken = self._by_name()
        rest = [slot for slot in self.slots.values() if slot.key not in taken and not _is_counter(slot.key)]
        keys = [key for key in self.given if key not in taken and not _is_counter(key)]
        network_leaves = _network_leaves(self.graph, rest)
        keys = self._without_auxiliary_heads(network_leaves, keys)
        network_leaves, keys = self._without_unpartnered(network_leaves, keys)
        self._place(_checkpoint_tree(keys, self.given), network_leaves)
        self._check_dtypes()
        self._pair_counters()
        return self._finish()

    # ---- by name ---------------------------------------------------------------------------------
    def _by_name(self) -> set[str]:
        """Keys the network and checkpoint share; a shared key of another shape is a problem, not a pair."""
        taken, refused = set(), set()
        for key, slot in self.slots.items():
            if key not in self.given or _is_counter(key):
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
        if Counter(leaf.signature for leaf in network_leaves) == _signatures(keys, self.given):
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
        checkpoint_leaves = _checkpoint_tree(keys, self.given).leaves
        ours, theirs = [leaf.signature for leaf in network_leaves], [leaf.signature for leaf in checkpoint_leaves]
        excess_ours, excess_theirs = Counter(ours) - Counter(theirs), Counter(theirs) - Counter(ours)
        if not excess_ours and not excess_theirs:
            return network_leaves, keys
        aligned = _alignment(ours, theirs)
        unequal = [(i, j) for i, j in aligned if i is None or j is None or ours[i] != theirs[j]]
        drop_ours = _chosen(excess_ours, [i for i, _ in unequal if i is not None], ours)
        drop_theirs = _chosen(excess_theirs, [j for _, j in unequal if j is not None], theirs)
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
        first, second = (_owner_of_each(arrangement, len(run)) for arrangement in arrangements[:2])
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
        """Each BatchNorm's step count comes from the module its statistics came from, where the checkpoint has it."""
        for key in self.slots:
            if not _is_counter(key):
                continue
            statistics = self.result.pairs.get(key.rpartition(".")[0] + ".running_mean")
            partner = statistics and statistics.rpartition(".")[0] + "." + COUNTER
            if partner in self.given:
                self.result.pairs[key] = partner

    def _finish(self) -> Match:
        result = self.result
        taken = set(result.pairs.values())
        result.missing = [slot for key, slot in self.slots.items() if key not in result.pairs]
        dropped = set(result.dropped)
        result.unused = [key for key in self.given if key not in taken and key not in dropped and not _is_counter(key)]
        result.problems = [problem for _, problem in sorted(self.problem_at, key=lambda item: item[0])]
        return result

    def _problem(self, node: int | None, message: str, hint: str, rank: int = 0) -> None:
        """Record a problem; those of rank 0 (a tensor without partner) come first, before the ambiguities
        that often follow from them."""
        pos = ir.layer(self.graph, node).pos if node is not None else None
        self.problem_at.append(((rank, node if node is not None else -1), ValueProblem(message, pos, hint)))


# ---- the two trees -----------------------------------------------------------------------------------
def _network_leaves(graph: nx.DiGraph, slots: list[Slot]) -> list[Leaf]:
    """The network's layers holding tensors, in graph order."""
    by_node: dict[int, list[Slot]] = {}
    for slot in slots:
        by_node.setdefault(slot.node, []).append(slot)
    leaves = []
    for node in sorted(by_node):
        ordered = sorted(by_node[node], key=lambda slot: _role_rank(slot.key))
        leaves.append(
            Leaf(ir.layer(graph, node).name, [slot.key for slot in ordered], [slot.shape for slot in ordered], node)
        )
    return leaves


def _checkpoint_tree(keys: list[str], given: dict[str, Given]) -> Group:
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
        leaf.keys.sort(key=_role_rank)
        leaf.shapes = [given[key].shape for key in leaf.keys]
    return root


# ---- placing children -----------------------------------------------------------------------------------
def _sequential_order(children: list) -> list:
    """Numbered children (an nn.Sequential's, a ModuleList's) by number: that is their order of execution,
    whichever order a file lists them in (safetensors sorts keys as text, `10` before `2`)."""

    def number(child) -> str:
        return child.name.rpartition(".")[2]

    if all(number(child).isdigit() for child in children):
        return sorted(children, key=lambda child: int(number(child)))
    return children


@dataclass
class _Choice:
    """The best arrangement of a module's children on a run, its cost, and a different one as good (if any)."""

    parts: list[tuple] | None
    cost: tuple = (0, 0)
    tied: list[tuple] | None = None


class _Choices:
    """Chooses, for a module and a run, where its children go. The checkpoint's order, where it fits all the
    way down. Else, of the arrangements the shapes allow: the most children on layers of their own name (a
    checkpoint's `downsample` on the network's `downsample.conv`); then the fewest children out of the
    checkpoint's order, counted through every level below; then the fewest breaks in data flow inside a
    module (torchvision's RegNet lists a block's projection `proj` before its body `f`, and where the body's
    convolutions have the projection's shape only the right arrangement keeps `f` one chain of layers).
    Remembered per module and run."""

    def __init__(self, graph: nx.DiGraph):
        self.graph = graph
        self.known: dict[tuple, _Choice] = {}
        self.linked: dict[tuple[int, int], bool] = {}

    def best(self, module: Group | Leaf, run: list[Leaf]) -> _Choice:
        if isinstance(module, Leaf):
            return _Choice([])
        key = (id(module), id(run[0]) if run else 0, len(run))
        if key not in self.known:
            self.known[key] = self._choose(module, run)
        return self.known[key]

    def _choose(self, module: Group, run: list[Leaf]) -> _Choice:
        children = _sequential_order(module.children)
        in_order = _in_order(children, run)
        if in_order is not None:
            below = [self.best(child, part) for child, part in in_order]
            if all(choice.parts is not None and choice.tied is None and choice.cost[0] == 0 for choice in below):
                return _Choice(in_order, (0, sum(choice.cost[1] for choice in below) + self._breaks(in_order)))
        if len(children) > MAX_CHILDREN:
            return _Choice(None)
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
            return _Choice(None)
        scored.sort(key=lambda item: item[0])
        (score, best), rest = scored[0], scored[1:]
        if rest and (rest[0][0] == score or len(arrangements) == MAX_ARRANGEMENTS):
            return _Choice(best, score[1:], rest[0][1])
        return _Choice(best, score[1:])

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
        if _shapes(part) != _shapes(child.leaves):
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
    for child in sorted(children, key=lambda child: _natural(child.name)):
        stem = re.sub(r"\d+", "", child.name.rpartition(".")[2])  # `denselayer` of denselayer1, denselayer2...
        classes.setdefault((_shapes(child.leaves), stem), []).append(child)
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
            if used[key] == len(members) or _shapes(run[start : start + size]) != key[0]:
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


def _owner_of_each(arrangement: list[tuple], length: int) -> list:
    """For each position of the run, the checkpoint leaf the arrangement puts there."""
    owners = []
    for child, part in arrangement:
        owners.extend(child.leaves[: len(part)])
    return owners[:length]


def _alignment(ours: list, theirs: list) -> list[tuple[int | None, int | None]]:
    """The two orders lined up with fewest edits (Levenshtein): pairs (i, j), with None where one side has
    nothing in that place. Only a load that fails lines them up, to say what the checkpoint has instead."""
    start = 0
    while start < min(len(ours), len(theirs)) and ours[start] == theirs[start]:
        start += 1
    end = 0
    while end < min(len(ours), len(theirs)) - start and ours[-1 - end] == theirs[-1 - end]:
        end += 1
    a, b = ours[start : len(ours) - end], theirs[start : len(theirs) - end]
    if len(a) * len(b) > MAX_ALIGNMENT_CELLS:  # a checkpoint of thousands of foreign tensors: place by place
        middle = [
            (start + k if k < len(a) else None, start + k if k < len(b) else None) for k in range(max(len(a), len(b)))
        ]
        return (
            [(k, k) for k in range(start)] + middle + [(len(ours) - end + k, len(theirs) - end + k) for k in range(end)]
        )
    cost = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i]
        for j in range(1, len(b) + 1):
            row.append(min(cost[i - 1][j - 1] + (a[i - 1] != b[j - 1]), cost[i - 1][j] + 1, row[j - 1] + 1))
        cost.append(row)
    middle, i, j = [], len(a), len(b)
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (a[i - 1] != b[j - 1]):
            i, j = i - 1, j - 1
            middle.append((start + i, start + j))
        elif i and cost[i][j] == cost[i - 1][j] + 1:
            i -= 1
            middle.append((start + i, None))
        else:
            j -= 1
            middle.append((None, start + j))
    head = [(k, k) for k in range(start)]
    tail = [(len(ours) - end + k, len(theirs) - end + k) for k in range(end)]
    return head + middle[::-1] + tail


def _chosen(excess: Counter, outside: list[int], signatures: list[tuple]) -> set[int]:
    """Which leaves to set aside for each shape one side has too many of: first those outside the matching
    stretches of the two orders, then the last ones."""
    chosen, outside_set = set(), set(outside)
    for signature, count in excess.items():
        candidates = [i for i in outside if signatures[i] == signature]
        candidates += [
            i for i in reversed(range(len(signatures))) if signatures[i] == signature and i not in outside_set
        ]
        chosen.update(candidates[:count])
    return chosen


# ---- small helpers ---------------------------------------------------------------------------------------
def _shapes(leaves: list[Leaf]) -> frozenset:
    return frozenset(Counter(leaf.signature for leaf in leaves).items())


def _signatures(keys: list[str], given: dict[str, Given]) -> Counter:
    return Counter(leaf.signature for leaf in _checkpoint_tree(keys, given).leaves)


def _role_rank(key: str) -> int:
    role = key.rpartition(".")[2]
    return ROLES.index(role) if role in ROLES else len(ROLES)


def _natural(name: str) -> list:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def _is_counter(key: str) -> bool:
    return key.rpartition(".")[2] == COUNTER


def _layer(graph: nx.DiGraph, node: int) -> str:
    return ir.layer(graph, node).name


def _shape(shape: tuple) -> str:
    return format_shape(shape) if shape else "a scalar"
