"""The 3-D block figure papers draw for VGG or AlexNet (by hand, with PlotNeuralNet's LaTeX, NN-SVG or
visualkeras): each box of the diagram a cuboid, left to right, whose width follows its channels and whose
height and depth follow the feature map's height and width, all log-scaled (the figure says so under it);
shapes under each, repeats as `×n`, skips as arcs above.

Written as SVG by this module (no Graphviz, no LaTeX): the same network gives the same bytes. Layers that
keep their input's shape (bn, relu, dropout, the joins) are not boxes of their own; the figure is drawn at
the deepest level whose row fits PAGE_PX unless a depth is given.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ..graph import ir
from ..ops import format_shape
from .diagram_labels import EDGE_STYLES, FAMILIES, escaped, main_family, quantity
from .diagram_options import PAGE_PX
from .diagram_structure import Box, build_diagram
from .layout_budget import LAYOUT_CPU_S

PER_DOUBLING = {"width": 5.0, "height": 9.0, "depth": 5.0}  # px added each time channels, H or W double
BASE = {"width": 4.0, "height": 6.0, "depth": 4.0}  # px of a dimension of size 1
SLANT = 0.6  # the depth is drawn at 45° and foreshortened to this share of its length
GAP = 12.0  # px between two blocks
STACKED = 3.0  # px between blocks of one stack
MARGIN = 16.0
FONT_PX = 10.0
CHARACTER_PX = 0.55 * FONT_PX  # an estimate of one character's width, to keep labels apart
SAME_SHAPE = ("norm", "act", "reg", "merge")  # families whose layers are no box of their own
ARCS = ("skip", "concat")
SCALE_NOTE = "box width ∝ log₂ channels · height ∝ log₂ H · depth ∝ log₂ W"


@dataclass
class Block:
    """One cuboid: what it draws, its size in px and where its front face starts."""

    id: str
    title: str
    shape: tuple
    family: str
    width: float
    height: float
    depth: float
    x: float = 0.0
    stacked: int = 1  # blocks like it that follow it closely and share its labels (VGG's conv ×2)
    labelled: bool = True

    @property
    def caption(self) -> str:
        return self.title + (f" ×{self.stacked}" if self.stacked > 1 else "")

    def footprint(self, others: float = 0.0) -> float:
        """The room the block (with `others` px of stacked blocks after it) and its labels take along the row."""
        drawn = self.width + others + self.depth * SLANT
        return (
            max(drawn, CHARACTER_PX * max(len(self.caption), len(format_shape(self.shape)))) if self.labelled else 0.0
        )


def size(shape: tuple) -> tuple[float, float, float]:
    """Width, height and depth in px of a C×H×W (or C×L) feature map; a vector of C is a thin slab C high."""
    channels, height, width = (list(shape) + [1, 1])[:3] if len(shape) > 1 else (1, shape[0] if shape else 1, 1)
    return tuple(
        BASE[name] + PER_DOUBLING[name] * math.log2(max(count, 1))
        for name, count in (("width", channels), ("height", height), ("depth", width))
    )


def blocks_of(network, depth: int | None) -> tuple[list[Block], list[tuple[str, str, str]]]:
    """The blocks in order along the row, and the arcs (tail block, head block, edge kind) between them."""
    graph = network.graph
    diagram = build_diagram(graph, depth)
    order: list[str] = []
    blocks: dict[str, Block] = {}
    for box in diagram.boxes():
        order.append(box.id)
        block = _block(graph, box, FAMILIES)
        if block is not None:
            blocks[box.id] = block
    kept = [name for name in order if name in blocks]
    _place(blocks, kept)
    before, after = _kept_around(order, blocks)
    place = {name: index for index, name in enumerate(kept)}
    arcs = []
    for link in diagram.links:
        if link.kind not in ARCS:
            continue
        tail, head = before.get(link.tail), after.get(link.head)
        if tail and head and tail != head and place[head] - place[tail] > 1:
            arcs.append((tail, head, link.kind))
    return [blocks[name] for name in kept], sorted(set(arcs), key=lambda arc: (place[arc[0]], place[arc[1]]))


def _place(blocks: dict[str, Block], kept: list[str]) -> None:
    """Left to right: a block like the one before (same title and shape) stacks onto it, 3 px apart, and
    shares its labels; the others start GAP px after the room the previous stack and its labels take."""
    stacks: list[list[Block]] = []
    for name in kept:
        block = blocks[name]
        first = stacks[-1][0] if stacks else None
        if first is not None and (first.title, first.shape) == (block.title, block.shape):
            stacks[-1].append(block)
            first.stacked += 1
            block.labelled = False
        else:
            stacks.append([block])
    x = MARGIN
    for stack in stacks:
        first = stack[0]
        others = sum(block.width + STACKED for block in stack[1:])
        room = first.footprint(others)
        left = x + (room - first.width - others - first.depth * SLANT) / 2
        for block in stack:
            block.x = left
            left += block.width + STACKED
        x += room + GAP


def _block(graph, box: Box, families: dict) -> Block | None:
    if box.role in ("fork", "output"):
        return None
    if box.role == "group":
        run = box.run
        last = ir.layer(graph, run.instances[-1].nodes[-1])
        name = run.first.label if run.first.kind == "block" else run.first.path[-1]
        title = name + (f" ×{run.count}" if run.count > 1 else "")
        family = main_family(graph, run.nodes, families)
        shape = last.shape
    else:
        layer = ir.layer(graph, box.node)
        family = layer.kind.family if layer.kind.family in families else "other"
        if box.role == "layer" and family in SAME_SHAPE:
            return None
        title = layer.kind.label(layer.attrs) if box.role != "input" else _input_title(graph, layer)
        shape = layer.shape
    return Block(box.id, title, tuple(shape), family, *size(tuple(shape)))


def _input_title(graph, layer) -> str:
    """`input`, or each input's label where the network has several."""
    several = len(ir.network_info(graph).inputs) > 1
    return layer.tap if several and layer.tap else "input"


def _kept_around(order: list[str], blocks: dict) -> tuple[dict[str, str], dict[str, str]]:
    """For each box, the block itself or the last block before it (a relu passes its input's shape on), and the
    block itself or the first after it; one pass each way (a search per link took seconds at 10,000 boxes)."""
    before: dict[str, str] = {}
    after: dict[str, str] = {}
    last = None
    for name in order:
        last = name if name in blocks else last
        if last is not None:
            before[name] = last
    last = None
    for name in reversed(order):
        last = name if name in blocks else last
        if last is not None:
            after[name] = last
    return before, after


def row_size(network, depth: int | None) -> tuple[float, float]:
    """The figure's width and height in px at `depth`."""
    return _extent(*blocks_of(network, depth))[:2]


def _right_end(blocks: list[Block]) -> float:
    ends = [block.x + block.width + block.depth * SLANT for block in blocks]
    ends += [
        block.x + (block.width + block.depth * SLANT + block.footprint()) / 2 for block in blocks if block.labelled
    ]
    return max(ends, default=MARGIN)


def _extent(blocks: list[Block], arcs: list) -> tuple[float, float, float]:
    """The figure's width and height in px, and the y of the axis the blocks are centred on."""
    tallest = max((block.height / 2 + block.depth * SLANT for block in blocks), default=0)
    lowest = max((block.height / 2 for block in blocks), default=0)
    rise = 24.0 + 12.0 * len(arcs)  # room above the blocks for the arcs
    axis = MARGIN + 22 + rise + tallest
    width = max(_right_end(blocks) + MARGIN, 220.0)
    return width, axis + lowest + 2 * FONT_PX * 1.4 + 28 + MARGIN, axis


def blocks_depth(network, deepest: int, seconds: float = LAYOUT_CPU_S / 2) -> int:
    """The deepest level (from 1) whose row fits PAGE_PX; 1 when none does. The search stops after `seconds` of
    CPU, keeping the deepest level measured: each level lays out every node (0.2 s at 10,000), and 90 nested
    stages are 90 levels."""
    chosen, started = 1, time.process_time()
    for depth in range(1, deepest + 1):
        if row_size(network, depth)[0] > PAGE_PX:
            break
        chosen = depth
        if time.process_time() - started > seconds:
            break
    return chosen


def blocks_svg(network, depth: int | None = None) -> str:
    """The figure as SVG text: one `<g class="block FAMILY">` per block (front, top and side faces as
    polygons, labels as text) and one `<g class="arc KIND">` per skip."""
    blocks, arcs = blocks_of(network, depth)
    width, height, axis = _extent(blocks, arcs)
    tallest = axis - MARGIN - 22 - 24.0 - 12.0 * len(arcs)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}px" height="{height:.0f}px" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="Helvetica,Arial,sans-serif">',
        f'<text x="{MARGIN}" y="{MARGIN + 12}" font-size="13" font-weight="bold">{escaped(network.name)}</text>',
        f'<text x="{width - MARGIN:.0f}" y="{MARGIN + 12}" font-size="10" fill="#555555" text-anchor="end">'
        f"{quantity(network.params)} params · {quantity(network.macs)} MACs</text>",
    ]
    by_id = {block.id: block for block in blocks}
    spans = sorted(range(len(arcs)), key=lambda index: by_id[arcs[index][1]].x - by_id[arcs[index][0]].x)
    height_of = {arc: level for level, arc in enumerate(spans)}  # a wider arc rises higher, over the narrower
    for index, (tail, head, kind) in enumerate(arcs):
        start, end = by_id[tail], by_id[head]
        x1, x2 = start.x + start.width / 2, end.x + end.width / 2
        y1, y2 = axis - start.height / 2, axis - end.height / 2
        top = axis - tallest - 16 - 12 * height_of[index]
        parts.append(
            f'<g class="arc {kind}"><title>{escaped(tail)}-&gt;{escaped(head)}</title>'
            f'<path d="M{x1:.1f},{y1:.1f} C{x1:.1f},{top:.1f} {x2:.1f},{top:.1f} {x2:.1f},{y2:.1f}" fill="none" '
            f'stroke="{EDGE_STYLES[kind]["color"]}" stroke-width="1.4" stroke-dasharray="5,2"/></g>'
        )
    for block in blocks:
        fill, border, _ = FAMILIES[block.family]
        parts.append(_cuboid(block, axis, fill, border))
    parts.append(
        f'<text x="{MARGIN}" y="{height - MARGIN:.0f}" font-size="10" fill="#555555">{escaped(SCALE_NOTE)}</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _cuboid(block: Block, axis: float, fill: str, border: str) -> str:
    x, w, h = block.x, block.width, block.height
    dx = dy = block.depth * SLANT
    top, bottom = axis - h / 2, axis + h / 2
    faces = {
        "front": [(x, top), (x + w, top), (x + w, bottom), (x, bottom)],
        "top": [(x, top), (x + dx, top - dy), (x + w + dx, top - dy), (x + w, top)],
        "side": [(x + w, top), (x + w + dx, top - dy), (x + w + dx, bottom - dy), (x + w, bottom)],
    }
    shades = {"front": fill, "top": _lighter(fill), "side": _darker(fill)}
    polygons = "".join(
        f'<polygon class="{face}" points="{" ".join(f"{px:.1f},{py:.1f}" for px, py in points)}" '
        f'fill="{shades[face]}" stroke="{border}" stroke-width="1"/>'
        for face, points in faces.items()
    )
    if not block.labelled:
        return f'<g class="block {block.family}"><title>{escaped(block.id)}</title>{polygons}</g>'
    centre = x + (w * block.stacked + STACKED * (block.stacked - 1) + dx) / 2
    labels = (
        f'<text x="{centre:.1f}" y="{bottom + FONT_PX * 1.4:.1f}" font-size="{FONT_PX:g}" text-anchor="middle">'
        f"{escaped(block.caption)}</text>"
        f'<text x="{centre:.1f}" y="{bottom + FONT_PX * 2.7:.1f}" font-size="{FONT_PX - 1:g}" fill="#555555" '
        f'text-anchor="middle">{escaped(format_shape(block.shape))}</text>'
    )
    return f'<g class="block {block.family}"><title>{escaped(block.id)}</title>{polygons}{labels}</g>'


def _lighter(colour: str) -> str:
    return _mixed(colour, 255, 0.45)


def _darker(colour: str) -> str:
    return _mixed(colour, 0, 0.18)


def _mixed(colour: str, towards: int, share: float) -> str:
    channels = [int(colour[index : index + 2], 16) for index in (1, 3, 5)]
    return "#" + "".join(f"{round(value + (towards - value) * share):02x}" for value in channels)
