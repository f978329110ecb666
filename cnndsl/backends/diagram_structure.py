"""What a diagram shows, before any styling: the group tree, repeats folded, deep groups collapsed.

Pure data from the graph IR, so tests can check the structure without Graphviz. A diagram has
boxes (a layer, a collapsed group, the input, an output, the fork where a skip enters a block),
clusters (the groups drawn open) and links (the edges that remain once repeats and collapsed
groups stand for their insides).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from ..graph import ir
from ..graph.ir import inputs_of

EDGE_PRIORITY = ("sequence", "branch", "skip", "concat")  # which kind a merged edge keeps


@dataclass
class Group:
    """A stage or block instance: its path, kind and label, children in order, every node inside."""

    path: tuple[str, ...]
    kind: str
    label: str
    children: list[Group | int] = field(default_factory=list)
    nodes: list[int] = field(default_factory=list)

    @property
    def base(self) -> str:
        """The block or stage name without its arguments: `bottleneck(64, 1)` -> `bottleneck`."""
        return self.label.split("(")[0]


@dataclass
class Run:
    """Consecutive repeats of one group: the first is drawn, the others fold into its `×n`."""

    instances: list[Group]

    @property
    def first(self) -> Group:
        return self.instances[0]

    @property
    def count(self) -> int:
        return len(self.instances)

    @property
    def nodes(self) -> list[int]:
        return [node for group in self.instances for node in group.nodes]


@dataclass
class Box:
    """One drawn node: a layer, a collapsed run of groups, the input or an output."""

    id: str
    role: str  # "layer" | "group" | "input" | "output" | "fork"
    node: int | None = None  # the IR node for layer, input and output boxes
    run: Run | None = None  # the groups a collapsed box stands for
    name: str = ""  # an output's name
    training: bool = False  # a `train output`: drawn dashed, marked "training only"


@dataclass
class Cluster:
    """A group drawn open; `count` > 1 when it stands for a run of repeats."""

    id: str
    run: Run
    members: list[Box | Cluster] = field(default_factory=list)


@dataclass
class Link:
    """A drawn edge; `beside` when another path joins the same boxes (an identity skip, a dense
    or U-Net concat), so it must be routed beside that path to stay visible."""

    tail: str
    head: str
    kind: str
    beside: bool = False


@dataclass
class Diagram:
    title: str
    members: list[Box | Cluster]
    links: list[Link]

    def boxes(self) -> list[Box]:
        return list(_walk_boxes(self.members))

    def clusters(self) -> list[Cluster]:
        return list(_walk_clusters(self.members))


def _walk_boxes(members):
    for member in members:
        if isinstance(member, Box):
            yield member
        else:
            yield from _walk_boxes(member.members)


def _walk_clusters(members):
    for member in members:
        if isinstance(member, Cluster):
            yield member
            yield from _walk_clusters(member.members)


# ---- the group tree -------------------------------------------------------------------
def group_tree(graph: nx.DiGraph) -> Group:
    """The network as nested groups; the input nodes stay outside, each is drawn on its own."""
    info = ir.network_info(graph)
    root = Group((), "network", info.name)
    groups = {(): root}
    enclosing = {(): [root]}  # a path's groups from the root down, each built on its parent's: slicing every
    # node's path at every depth takes seconds for 10,000 nodes 100 groups deep
    for path in sorted(info.groups, key=len):
        groups[path] = Group(path, info.groups[path].kind, info.groups[path].label)
        enclosing[path] = [*enclosing[path[:-1]], groups[path]]
    for node, layer in ir.layers(graph):
        if node in info.inputs:
            continue
        path = layer.group
        for group in enclosing[path]:
            group.nodes.append(node)
        groups[path].children.append(node)
    for path, group in groups.items():
        if path and group.nodes:
            groups[path[:-1]].children.append(group)
    for group in groups.values():
        group.nodes.sort()
        group.children.sort(key=_first_node)
    return root


def _first_node(child: Group | int) -> int:
    return child.nodes[0] if isinstance(child, Group) else child


# ---- repeats --------------------------------------------------------------------------
def runs_of(graph: nx.DiGraph, children: list, outputs: set[int], sources: dict[int, list[int]]) -> list[Run | int]:
    """Children with consecutive repeats gathered into runs (a lone group is a run of one); `sources`: each
    node's `inputs_of`, looked up rather than sorted again for every comparison."""
    result: list = []
    for child in children:
        previous = result[-1] if result else None
        if (
            isinstance(child, Group)
            and isinstance(previous, Run)
            and _repeats(graph, previous.instances[-1], child, outputs, sources)
        ):
            previous.instances.append(child)
        else:
            result.append(Run([child]) if isinstance(child, Group) else child)
    return result


def _repeats(graph: nx.DiGraph, before: Group, after: Group, outputs: set[int], sources: dict[int, list[int]]) -> bool:
    """`after` repeats `before`: same layers, arguments and wiring, the same change of shape,
    and joined to it only through `before`'s last node (so nothing is lost by drawing one)."""
    if len(before.nodes) != len(after.nodes) or before.kind != after.kind:
        return False
    last = before.nodes[-1]
    inside, following = set(before.nodes), set(after.nodes)
    if outputs & inside - {last}:
        return False
    for node in before.nodes:
        for target in graph.succ[node]:
            if target not in inside and (node != last or target not in following):
                return False
    if any(source != last for source in _outside_sources(sources, after)):
        return False
    if _signature(graph, before, sources) != _signature(graph, after, sources):
        return False
    return _same_shape_change(graph, before, after, sources)


def _outside_sources(sources: dict[int, list[int]], group: Group) -> list[int]:
    inside = set(group.nodes)
    return [source for node in group.nodes for source in sources[node] if source not in inside]


def _signature(graph: nx.DiGraph, group: Group, sources: dict[int, list[int]]) -> list[tuple]:
    """Each node's kind, arguments, place in the group and inputs, in terms local to the group."""
    local = {node: index for index, node in enumerate(group.nodes)}
    signature = []
    for node in group.nodes:
        layer = ir.layer(graph, node)
        wiring = tuple((ir.edge(graph, source, node).kind, local.get(source, "outside")) for source in sources[node])
        signature.append((layer.op, layer.attrs, layer.group[len(group.path) :], wiring))
    return signature


def _same_shape_change(graph: nx.DiGraph, before: Group, after: Group, sources: dict[int, list[int]]) -> bool:
    """Every node has the same shape in both, or differs from its group's input by the same amount
    (a dense layer adds 32 channels to whatever it is given)."""
    input_before = ir.layer(graph, _outside_sources(sources, before)[0]).shape
    input_after = ir.layer(graph, _outside_sources(sources, after)[0]).shape
    for node_before, node_after in zip(before.nodes, after.nodes):
        shape_before, shape_after = ir.layer(graph, node_before).shape, ir.layer(graph, node_after).shape
        if shape_before != shape_after and _offset(shape_before, input_before) != _offset(shape_after, input_after):
            return False
    return True


def _offset(shape: tuple, origin: tuple) -> tuple | None:
    return tuple(a - b for a, b in zip(shape, origin)) if len(shape) == len(origin) else None


# ---- the diagram --------------------------------------------------------------------
def build_diagram(graph: nx.DiGraph, depth: int | None = None, expand: bool = False) -> Diagram:
    """Groups shallower than `depth` drawn open, those at `depth` collapsed to one box each;
    consecutive repeats drawn once with their count unless `expand`."""
    return _Builder(graph, depth, expand).build()


class _Builder:
    def __init__(self, graph: nx.DiGraph, depth: int | None, expand: bool):
        self.graph = graph
        self.depth = depth
        self.expand = expand
        info = ir.network_info(graph)
        self.outputs = {node for _, node in info.outputs + info.train_outputs}
        self.sources = {node: inputs_of(graph, node) for node in graph.nodes}
        self.stands_for: dict[int, int] = {}  # node in a later repeat -> node in the one before
        self.instance: dict[int, list[tuple[int, int]]] = {}  # node -> [(run id, instance index)]
        self.box_of: dict[int, str] = {}
        self.run_ids = 0

    def build(self) -> Diagram:
        members: list = []
        for index, input_node in enumerate(ir.network_info(self.graph).inputs):
            self.box_of[input_node] = f"input{index or ''}"  # the first is `input`, as a network's only one
            members.append(Box(self.box_of[input_node], "input", node=input_node))
        root = group_tree(self.graph)
        if self.depth == 0 and root.nodes:  # a network of only its input has nothing to fold into a box
            members.append(self._collapsed(Run([root])))
        else:
            members.extend(self._members(root, level=0))
        for index, (name, node) in enumerate(ir.network_info(self.graph).outputs):
            members.append(Box(f"output{index}", "output", node=node, name=name))
        for index, (name, node) in enumerate(ir.network_info(self.graph).train_outputs):
            members.append(Box(f"train_output{index}", "output", node=node, name=name, training=True))
        return Diagram(
            ir.network_info(self.graph).name,
            members,
            _fan_out_through_forks(members, _enter_through_forks(members, self._links())),
        )

    def _members(self, group: Group, level: int) -> list:
        children = (
            runs_of(self.graph, group.children, self.outputs, self.sources)
            if not self.expand
            else [Run([child]) if isinstance(child, Group) else child for child in group.children]
        )
        members = []
        for child in children:
            if isinstance(child, int):
                box = Box(f"n{child}", "layer", node=child)
                self.box_of[child] = box.id
                members.append(box)
                continue
            self._fold(child)
            if self.depth is not None and level + 1 >= self.depth:
                members.append(self._collapsed(child))
            else:
                members.append(Cluster(f"cluster_{_dotted(child.first)}", child, self._members(child.first, level + 1)))
        return members

    def _fold(self, run: Run) -> None:
        """Later repeats stand for the first; every node remembers which repeat it is in."""
        run_id = self.run_ids
        self.run_ids += 1
        for index, group in enumerate(run.instances):
            for position, node in enumerate(group.nodes):
                self.instance.setdefault(node, []).append((run_id, index))
                if index:
                    self.stands_for[node] = run.first.nodes[position]

    def _collapsed(self, run: Run) -> Box:
        box = Box(f"g_{_dotted(run.first)}", "group", run=run)
        for node in run.first.nodes:
            self.box_of[node] = box.id
        return box

    def _links(self) -> list[Link]:
        kinds: dict[tuple[str, str], str] = {}
        for head in sorted(self.graph.nodes):
            for source in self.sources[head]:
                drawn = self._drawn_edge(source, head)
                if drawn is None or drawn[0] == drawn[1]:
                    continue
                kind = ir.edge(self.graph, source, head).kind
                known = kinds.get(drawn)
                if known is None or EDGE_PRIORITY.index(kind) < EDGE_PRIORITY.index(known):
                    kinds[drawn] = kind
        drawn = nx.DiGraph(list(kinds))
        order = {box: index for index, box in enumerate(nx.topological_sort(drawn))}
        links = [Link(tail, head, kind, _other_path(drawn, order, tail, head)) for (tail, head), kind in kinds.items()]
        for index, (_, node) in enumerate(ir.network_info(self.graph).outputs):
            links.append(Link(self._drawn_edge(node, node)[0], f"output{index}", "sequence"))
        for index, (_, node) in enumerate(ir.network_info(self.graph).train_outputs):
            links.append(Link(self._drawn_edge(node, node)[0], f"train_output{index}", "sequence"))
        return links

    def _drawn_edge(self, source: int, head: int) -> tuple[str, str] | None:
        """The boxes an edge joins once repeats stand for each other; None between two repeats."""
        while True:
            if self._between_repeats(source, head):
                return None
            if source in self.box_of and head in self.box_of:
                return self.box_of[source], self.box_of[head]
            source = source if source in self.box_of else self.stands_for[source]
            head = head if head in self.box_of else self.stands_for[head]

    def _between_repeats(self, source: int, head: int) -> bool:
        """An edge from one repeat into the next is what `×n` says; it is not drawn."""
        runs_of_source = dict(self.instance.get(source, []))
        return any(runs_of_source.get(run_id, index) != index for run_id, index in self.instance.get(head, []))


def _enter_through_forks(members: list, links: list[Link]) -> list[Link]:
    """A skip from outside the block that holds its join would be laid along the block's border;
    instead the block is entered at a fork point inside it, where the paper's `x` splits in two."""
    chains = dict(_cluster_chains(members, ()))
    forks: dict[tuple[str, str], Box] = {}
    for link in links:
        head_chain = chains.get(link.head, ())
        if not link.beside or not head_chain or head_chain[-1].id in _ids(chains.get(link.tail, ())):
            continue
        cluster = head_chain[-1]
        if (cluster.id, link.tail) not in forks:
            name = cluster.id.removeprefix("cluster_")
            taken = sum(key[0] == cluster.id for key in forks)
            fork = Box(f"fork_{name}" + (f"_{taken + 1}" if taken else ""), "fork")
            cluster.members.insert(0, fork)
            forks[cluster.id, link.tail] = fork
    candidates: dict[tuple[str, str], list[Link]] = {}  # gathered in one pass: a search per fork is quadratic
    for link in links:
        for cluster in chains.get(link.head, ()):
            if (cluster.id, link.tail) in forks:
                candidates.setdefault((cluster.id, link.tail), []).append(link)
    moved: set[int] = set()  # links an earlier fork took over
    before: dict[int, list[Link]] = {}
    for (cluster_id, tail), fork in forks.items():
        entering = [link for link in candidates[cluster_id, tail] if id(link) not in moved]
        kind = min((link.kind for link in entering), key=EDGE_PRIORITY.index)
        for link in entering:
            link.tail = fork.id
            moved.add(id(link))
        before.setdefault(id(entering[0]), []).append(Link(tail, fork.id, kind))
    return _with_links_before(links, before)


def _with_links_before(links: list[Link], before: dict[int, list[Link]]) -> list[Link]:
    """`links` with `before[id(link)]` put just ahead of each link, in one pass (list.index per insertion
    compares dataclasses field by field: 1,666 forks among 15,000 links took 40 s)."""
    return [new for link in links for new in (*before.get(id(link), ()), link)]


def _fan_out_through_forks(members: list, links: list[Link]) -> list[Link]:
    """Branch paths fed from outside their block start at one fork inside it (an Inception module's input
    splitting in four), so that the split and the paths are laid out together: `dot` keeps the paths in
    concat order only when the node they leave from is inside the same cluster."""
    chains = dict(_cluster_chains(members, ()))
    fanned: dict[tuple[str, str], list[Link]] = {}
    for link in links:
        if link.kind != "branch":
            continue
        outside = _ids(chains.get(link.tail, ()))
        entered = next((cluster for cluster in chains.get(link.head, ()) if cluster.id not in outside), None)
        if entered is not None:
            fanned.setdefault((entered.id, link.tail), []).append(link)
    clusters = {cluster.id: cluster for chain in chains.values() for cluster in chain}
    before: dict[int, list[Link]] = {}
    for (cluster_id, tail), entering in fanned.items():
        if len(entering) < 2:
            continue
        cluster = _deepest_common(clusters[cluster_id], [chains[link.head] for link in entering])
        name = cluster.id.removeprefix("cluster_")
        taken = sum(member.id.startswith(f"split_{name}") for member in cluster.members if isinstance(member, Box))
        fork = Box(f"split_{name}" + (f"_{taken + 1}" if taken else ""), "fork")
        cluster.members.insert(0, fork)
        for link in entering:
            link.tail = fork.id
        before.setdefault(id(entering[0]), []).append(Link(tail, fork.id, "sequence"))
    return _with_links_before(links, before)


def _deepest_common(outermost: Cluster, chains: list[tuple]) -> Cluster:
    """The innermost cluster around every one of `chains` (clusters outermost first), from `outermost` down."""
    start = next(depth for depth, cluster in enumerate(chains[0]) if cluster is outermost)
    common = outermost
    for depth in range(start, min(len(chain) for chain in chains)):
        if any(chain[depth] is not chains[0][depth] for chain in chains):
            break
        common = chains[0][depth]
    return common


def _ids(clusters: tuple) -> set[str]:
    return {cluster.id for cluster in clusters}


def _cluster_chains(members: list, chain: tuple):
    """Each box id with the clusters around it, outermost first."""
    for member in members:
        if isinstance(member, Box):
            yield member.id, chain
        else:
            yield from _cluster_chains(member.members, chain + (member,))


def _dotted(group: Group) -> str:
    """A group's path as its DOT id: unique, and readable in the DOT (`layer3.bottleneck2`)."""
    return ".".join(group.path) or "network"


def _other_path(drawn: nx.DiGraph, order: dict[str, int], tail: str, head: str) -> bool:
    """Whether `head` is reachable from `tail` other than by their direct edge; the search stays
    among boxes before `head` in topological order, so it is local to the skip."""
    limit = order[head]
    stack = [box for box in drawn.succ[tail] if box != head and order[box] < limit]
    seen = set(stack)
    while stack:
        box = stack.pop()
        for target in drawn.succ[box]:
            if target == head:
                return True
            if target not in seen and order[target] < limit:
                seen.add(target)
                stack.append(target)
    return False
