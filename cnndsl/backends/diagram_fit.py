"""The default depth of a figure: the deepest level whose layout fits a page.

A network drawn at every level can be a strip 11,000 px long; one box per stage says little. Without a
`--depth`, a laid-out diagram (SVG, PNG, PDF) is drawn at the deepest level whose figure fits `PAGE_PX` on
its long side, measured from Graphviz's own layout (`dot -Tplain`), shallow levels first: they are the
cheap ones, and the search stops at the first level that does not fit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from ..graph import ir
from .blocks import blocks_depth, row_height, row_width
from .diagram_options import LAID_OUT, PAGE_PX, DiagramOptions
from .graphviz import lay_out, to_digraph

PX_PER_INCH = 96  # Graphviz lays out in inches; PNG is rasterised at 96 dpi and SVG's points are 4/3 px
PAD_INCHES = 2 * 4 / 72  # the 4 pt Graphviz pads each side of a drawing with, which -Tplain leaves out


@dataclass(frozen=True)
class Fit:
    """The level chosen, the size of its figure in px, and the deepest level the network has."""

    depth: int
    width: int
    height: int
    deepest: int

    @property
    def fits(self) -> bool:
        return max(self.width, self.height) <= PAGE_PX

    def note(self) -> str:
        """What the CLI says on stderr about the level it chose."""
        level = f"--depth {self.depth}" + (" (every level)" if self.depth == self.deepest else "")
        size = f"{self.width}×{self.height} px"
        if self.fits:
            return f"drawn at {level}, {size}: the deepest level that fits {PAGE_PX} px; --depth N to choose"
        return f"drawn at {level}, {size}: no level fits {PAGE_PX} px; --depth N to choose"


def levels(graph) -> int:
    """The depth that draws every level open: one more than the deepest group's nesting."""
    return max((len(path) for path in ir.network_info(graph).groups), default=0) + 1


def laid_out_size(network, fmt: str, timeout: float, left: float, **figure) -> tuple[int, int]:
    """The width and height in px of the figure drawn as `fmt`, from Graphviz's layout of its DOT (`-Tplain`)."""
    head = lay_out(network, to_digraph(network, **figure), "plain", timeout, fmt, left).split(b"\n", 1)[0].split()
    width, height = (round((float(inches) + PAD_INCHES) * PX_PER_INCH) for inches in head[2:4])
    return width, height


def fitting_depth(network, timeout: float, fmt: str = "svg", **figure) -> Fit:
    """The deepest level (from 1) whose figure fits PAGE_PX; level 1 when none does. All layouts together
    take at most `timeout` seconds; `figure`: the other options that decide the DOT."""
    figure.pop("depth", None)
    deepest = levels(network.graph)
    deadline = time.monotonic() + timeout
    chosen: Fit | None = None
    for depth in range(1, deepest + 1):
        left = max(deadline - time.monotonic(), 1e-9)
        fit = Fit(depth, *laid_out_size(network, fmt, timeout, left, depth=depth, **figure), deepest)
        if chosen is not None and not fit.fits:
            break
        chosen = fit
        if not fit.fits:
            break
    assert chosen is not None  # the range holds at least one level
    return chosen


def with_fitting_depth(network, fmt: str, drawn: DiagramOptions) -> tuple[DiagramOptions, Fit | None]:
    """The options with the depth chosen where none was given and the format is laid out; the Fit, if any."""
    if drawn.depth is not None or fmt not in LAID_OUT:
        return drawn, None
    if drawn.style == "blocks":  # no Graphviz: the row's width is known without a layout
        depth = blocks_depth(network, levels(network.graph))
        width, height = round(row_width(network, depth)), round(row_height(network, depth))
        return replace(drawn, depth=depth), Fit(depth, width, height, levels(network.graph))
    fit = fitting_depth(network, drawn.layout_timeout, fmt, **drawn.figure())
    return replace(drawn, depth=fit.depth), fit
