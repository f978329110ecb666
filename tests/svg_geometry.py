"""Geometry read back from an SVG that Graphviz drew: node boxes, text boxes and edge curves, so that tests
check a figure's layout (what is left of what, which edge runs through which box) from the picture itself.

Coordinates are those of the SVG's graph group (y grows downward, as on the page). A text's box is estimated
from its font size: Helvetica's characters average about half an em wide.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field

SVG = "{http://www.w3.org/2000/svg}"
EM_WIDTH = 0.5  # the average width of a character, in em: a slight underestimate for Helvetica's capitals
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


@dataclass(frozen=True)
class Rect:
    left: float
    top: float
    right: float
    bottom: float

    @property
    def centre(self) -> tuple[float, float]:
        return (self.left + self.right) / 2, (self.top + self.bottom) / 2

    def holds(self, x: float, y: float, margin: float) -> bool:
        """Whether (x, y) is inside the box shrunk by `margin` on every side."""
        return self.left + margin < x < self.right - margin and self.top + margin < y < self.bottom - margin

    @staticmethod
    def around(points: list[tuple[float, float]]) -> Rect:
        xs, ys = [x for x, _ in points], [y for _, y in points]
        return Rect(min(xs), min(ys), max(xs), max(ys))


@dataclass
class Node:
    name: str
    classes: list[str]
    shape: Rect | None  # None for a node drawn as text only (shape=plain)
    texts: list[Rect] = field(default_factory=list)
    words: list[str] = field(default_factory=list)  # its texts, in the order drawn

    @property
    def box(self) -> Rect:
        """The node's outline, or for a text-only node the box around its texts."""
        return self.shape or Rect.around([corner for text in self.texts for corner in _corners(text)])


@dataclass
class Edge:
    tail: str
    head: str
    classes: list[str]
    points: list[tuple[float, float]]  # sampled along the drawn curve


@dataclass
class Figure:
    width_pt: float
    height_pt: float
    nodes: dict[str, Node]
    edges: list[Edge]
    labels: list[Rect]  # texts that belong to no node: cluster titles and the graph's title
    clusters: dict[str, Rect] = field(default_factory=dict)  # each cluster's outline, by its DOT name

    @property
    def pixels(self) -> tuple[float, float]:
        """The figure's size in CSS px (Graphviz writes points: 72 pt = 96 px)."""
        return self.width_pt * 96 / 72, self.height_pt * 96 / 72


def read(svg_text: str) -> Figure:
    root = ElementTree.fromstring(svg_text)
    nodes: dict[str, Node] = {}
    edges: list[Edge] = []
    labels: list[Rect] = []
    clusters: dict[str, Rect] = {}
    graph = root.find(f"{SVG}g")
    for group in graph.findall(f"{SVG}g"):
        classes = group.get("class", "").split()
        title = html.unescape(group.findtext(f"{SVG}title") or "")
        if classes[:1] == ["node"]:
            texts = [_text_box(text) for text in group.iter(f"{SVG}text")]
            words = [text.text or "" for text in group.iter(f"{SVG}text")]
            nodes[title] = Node(title, classes[1:], _shape_box(group), texts, words)
        elif classes[:1] == ["edge"]:
            tail, _, head = title.partition("->")
            path = group.find(f"{SVG}path")
            edges.append(Edge(tail, head, classes[1:], _curve(path.get("d")) if path is not None else []))
        elif classes[:1] == ["cluster"]:
            labels.extend(_text_box(text) for text in group.iter(f"{SVG}text"))
            clusters[title] = _shape_box(group)
    labels.extend(_text_box(text) for text in graph.findall(f"{SVG}text"))
    width, height = (float(root.get(side).removesuffix("pt")) for side in ("width", "height"))
    return Figure(width, height, nodes, edges, labels, clusters)


def _text_box(element) -> Rect:
    size = float(element.get("font-size", "14"))
    width = EM_WIDTH * size * len((element.text or "").strip())
    x, y = float(element.get("x")), float(element.get("y"))
    left = {"start": x, "middle": x - width / 2, "end": x - width}[element.get("text-anchor", "start")]
    return Rect(left, y - 0.75 * size, left + width, y + 0.2 * size)


def _shape_box(group) -> Rect | None:
    points: list[tuple[float, float]] = []
    for element in group.iter():
        tag = element.tag.removeprefix(SVG)
        if tag == "polygon":
            points += _pairs(element.get("points"))
        elif tag == "path":
            points += _pairs(element.get("d"))
        elif tag == "ellipse":
            cx, cy, rx, ry = (float(element.get(name)) for name in ("cx", "cy", "rx", "ry"))
            points += [(cx - rx, cy - ry), (cx + rx, cy + ry)]
    return Rect.around(points) if points else None


def _pairs(text: str) -> list[tuple[float, float]]:
    numbers = [float(value) for value in NUMBER.findall(text)]
    return list(zip(numbers[::2], numbers[1::2]))


def _curve(d: str, samples: int = 24) -> list[tuple[float, float]]:
    """Points along Graphviz's edge path: `M p0 C p1 p2 p3 p4 p5 p6 ...`, a chain of cubic Béziers."""
    points = _pairs(d)
    sampled = [points[0]]
    for start in range(0, len(points) - 3, 3):
        p0, p1, p2, p3 = points[start : start + 4]
        for step in range(1, samples + 1):
            t = step / samples
            a, b, c, e = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3
            sampled.append(
                (a * p0[0] + b * p1[0] + c * p2[0] + e * p3[0], a * p0[1] + b * p1[1] + c * p2[1] + e * p3[1])
            )
    return sampled


def _corners(rect: Rect) -> list[tuple[float, float]]:
    return [(rect.left, rect.top), (rect.right, rect.bottom)]


def crossings(figure: Figure, margin: float = 1.5) -> list[str]:
    """Every edge that runs through a box it does not join: another node's outline, a text of another node
    (an xlabel beside a join), a cluster's title. Each as `tail->head through WHAT`."""
    found = []
    for edge in figure.edges:
        obstacles = [(name, node.box) for name, node in figure.nodes.items() if name not in (edge.tail, edge.head)]
        obstacles += [
            (f"the label beside {name}", text)  # an xlabel: a text of a node outside its outline
            for name, node in figure.nodes.items()
            if node.shape is not None
            for text in node.texts
            if not node.shape.holds(*text.centre, 0)
        ]
        obstacles += [("a cluster's title", label) for label in figure.labels]
        for what, box in obstacles:
            if any(box.holds(x, y, margin) for x, y in edge.points):
                found.append(f"{edge.tail}->{edge.head} through {what}")
    return found
