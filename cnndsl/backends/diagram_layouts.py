"""Where a figure's parts go, as papers place them: `u` for an encoder–decoder with skips (U-Net: encoder
down the left, decoder up the right, each skip straight across), `columns` for a backbone, neck and head
side by side (detectors), `flow` (one column, in order) otherwise.

The layout is chosen from the graph's structure, at full depth, so it does not change with `--depth`; it
is drawn on the boxes of the depth asked for. Graphviz's `dot` still places everything: a layout only
says which edges run against the rank direction (the decoder climbs: `dir=back`), which boxes share a
rank (the two ends of a skip) and which edges do not constrain ranks (between columns).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from ..graph import ir
from ..graph.ir import inputs_of
from .diagram_options import LAYOUTS
from .diagram_structure import Box, Cluster, Diagram

__all__ = ["LAYOUTS", "Arrangement", "arrange", "choose_layout"]
JOINING = ("skip", "concat")  # the edge kinds of a skip that a `u` draws straight across
SIDE_STEPS = 3  # boxes a skip may pass through off the main path (FCN's score layer) and still be drawn across


@dataclass
class Arrangement:
    """What a layout changes in the DOT: the rest is `flow`'s."""

    layout: str
    climbing: set[tuple[str, str]] = field(default_factory=set)  # links drawn against the rank direction
    level: set[tuple[str, str]] = field(default_factory=set)  # links that constrain ranks although beside
    free: set[tuple[str, str]] = field(default_factory=set)  # links that constrain no rank
    same_rank: list[list[str]] = field(default_factory=list)  # boxes drawn side by side, left to right
    unseen: list[tuple[str, str]] = field(default_factory=list)  # invisible edges that order boxes of a rank
    hung: list[str] = field(default_factory=list)  # boxes hung, left to right, from invisible points at the top


# ---- the choice, from the graph ---------------------------------------------------------------
def choose_layout(graph: nx.DiGraph) -> str:
    """`columns` where a top-level stage takes several features of an earlier one (a neck taking a
    backbone's P3, P4, P5, or a Detect head the neck's); `u` where a main path narrows to a bottom and widens again with skips across
    it; `flow` otherwise."""
    if _is_multiscale(graph):
        return "columns"
    if u_bottom(graph) is not None:
        return "u"
    return "flow"


def _is_multiscale(graph: nx.DiGraph) -> bool:
    stages = [path for path, group in ir.network_info(graph).groups.items() if len(path) == 1 and group.kind == "stage"]
    if len(stages) < 2:
        return False
    stage_of = {node: layer.group[:1] for node, layer in ir.layers(graph) if layer.group[:1] in stages}
    fed: dict[tuple, set[int]] = {}
    for node, stage in stage_of.items():
        for source in inputs_of(graph, node):
            if stage_of.get(source) not in (None, stage):
                fed.setdefault((stage_of[source], stage), set()).add(source)
    return any(len(sources) >= 2 for sources in fed.values())


def _spatial(shape: tuple) -> int | None:
    """The number of positions of a C×H×W (or C×L, C×D×H×W) shape; None for a flat vector."""
    if len(shape) < 2:
        return None
    count = 1
    for size in shape[1:]:
        count *= size
    return count


def u_bottom(graph: nx.DiGraph) -> int | None:
    """The narrowest layer that skips jump over, where the network is an encoder–decoder; else None.

    A skip here is a concat or add from a layer (not the input) into a layer outside every group that holds
    it (U-Net's `concat(@enc4)`, FCN's `add(@pool4_scores)`; not an SE gate or an ASPP inside its block),
    with something narrower than both of its ends on the join's other paths. Of the widest such skip, the narrowest layer
    between its ends (the last, where several are as narrow) is the bottom of the U."""
    info = ir.network_info(graph)
    widest: tuple[int, int] | None = None
    for join, layer in ir.layers(graph):
        for source in inputs_of(graph, join):
            kind, origin = ir.edge(graph, source, join).kind, ir.layer(graph, source)
            if layer.kind.family != "merge" or kind not in JOINING or source in info.inputs:
                continue  # a resize to another tensor's size joins nothing
            if _shared_group(origin.group, layer.group):
                continue
            if widest is None or source < widest[0]:
                widest = (source, join)
    if widest is None:
        return None
    source, join = widest
    between = nx.ancestors(graph, join) - nx.ancestors(graph, source) - {source}  # the other paths into the join
    sizes = {node: _spatial(ir.layer(graph, node).shape) for node in between}
    known = {node: size for node, size in sizes.items() if size is not None}
    ends = [_spatial(ir.layer(graph, node).shape) for node in (source, join)]
    if not known or None in ends or min(known.values()) >= min(ends):
        return None
    smallest = min(known.values())
    return max(node for node, size in known.items() if size == smallest)


def _shared_group(one: tuple, other: tuple) -> bool:
    return bool(one) and bool(other) and one[0] == other[0]


# ---- the arrangement, on the drawn boxes -----------------------------------------------------
def arrange(graph: nx.DiGraph, diagram: Diagram, layout: str) -> Arrangement:
    if layout == "u":
        return _u(graph, diagram)
    if layout == "columns":
        return _columns(diagram)
    return Arrangement("flow")


def _nodes(box: Box) -> set[int]:
    """The layers a box draws or stands for (every repeat of a folded run)."""
    if box.node is not None:
        return {box.node}
    return set(box.run.nodes) if box.run is not None else set()


def _u(graph: nx.DiGraph, diagram: Diagram) -> Arrangement:
    """The main path's boxes before its narrowest go down, those after climb; a skip's two ends (and the
    boxes off the path between them) share a rank, the encoder's end first."""
    arrangement = Arrangement("u")
    drawn = nx.DiGraph([(link.tail, link.head) for link in diagram.links])
    drawn.add_nodes_from(box.id for box in diagram.boxes())
    if not drawn.number_of_edges():
        return arrangement
    main = nx.dag_longest_path(drawn)
    node = u_bottom(graph)
    holder = next((box.id for box in diagram.boxes() if node is not None and node in _nodes(box)), None)
    if holder not in main:
        return arrangement
    bottom = main.index(holder)
    encoder, decoder = main[1:bottom], set(main[bottom + 1 :])
    climbing = decoder | {main[bottom]}
    arrangement.climbing = {(link.tail, link.head) for link in diagram.links if {link.tail, link.head} <= climbing}
    paired: set[str] = set()
    for link in diagram.links:
        if link.head not in decoder or link.kind not in JOINING or link.head in paired:
            continue
        chain = _side_chain(drawn, link.tail, set(encoder), set(main))
        if chain is None or chain[0] in paired:
            continue
        paired.update((chain[0], link.head))
        arrangement.same_rank.append([*chain, link.head])
        steps = [*chain, link.head]
        arrangement.level.update(zip(steps, steps[1:]))
    arrangement.free = {  # any other edge into the climbing decoder would pull it down
        (link.tail, link.head)
        for link in diagram.links
        if link.head in decoder and link.tail not in climbing and (link.tail, link.head) not in arrangement.level
    }
    return arrangement


def _side_chain(drawn: nx.DiGraph, tail: str, encoder: set[str], main: set[str]) -> list[str] | None:
    """The encoder box a skip leaves from and the boxes off the main path it passes on the way, in order."""
    chain = [tail]
    while chain[0] not in encoder:
        sources = list(drawn.predecessors(chain[0]))
        if chain[0] in main or len(sources) != 1 or len(chain) > SIDE_STEPS:
            return None
        chain.insert(0, sources[0])
    return chain


def _columns(diagram: Diagram) -> Arrangement:
    """Each top-level stage a column of its own: edges between columns, and from the input into any but the
    first, constrain no rank, so every column starts at the top. The columns' first boxes hang from points
    in a row at the top, in the order of the stages: dot keeps no order of flat edges between clusters, and
    would set a head that the input also feeds (YOLOv8's boxes, sized by the image) between backbone and neck."""
    arrangement = Arrangement("columns")
    column: dict[str, str] = {}
    tops: list[str] = []
    for member in diagram.members:
        if isinstance(member, Cluster):
            boxes = [box.id for box in _boxes(member)]
            column.update((box, member.id) for box in boxes)
            tops += boxes[:1]
        elif member.role == "group" and member.run is not None and len(member.run.first.path) == 1:
            column[member.id] = member.id
            tops.append(member.id)
    if len(tops) > 1:  # the columns' first boxes side by side, in the order of the stages
        arrangement.same_rank.append(tops)
        arrangement.unseen = list(zip(tops, tops[1:]))
        arrangement.hung = tops
    first = column.get(tops[0]) if tops else None
    arrangement.free = {
        (link.tail, link.head)
        for link in diagram.links
        if link.head in column and column.get(link.tail, first) != column[link.head]
    }
    return arrangement


def _boxes(cluster: Cluster):
    for member in cluster.members:
        if isinstance(member, Box):
            yield member
        else:
            yield from _boxes(member)
