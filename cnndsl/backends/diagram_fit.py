"""The default depth of a figure: the deepest level whose layout fits a page.

A network drawn at every level can be a strip 11,000 px long; one box per stage says little. Without a
`--depth`, a laid-out diagram (SVG, PNG, PDF) is drawn at the deepest level whose figure fits `PAGE_PX` on
its long side, measured from Graphviz's own layout (`dot -Tplain`), shallow levels first: they are the
cheap ones, and the search stops at the first level that does not fit.
"""

from __future__ import annotations

import re
import subprocess
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..core.atomic import write_atomically
from ..core.errors import FileProblem
from ..graph import ir
from .blocks import blocks_depth, row_size
from .diagram_layouts import choose_layout
from .diagram_options import LAID_OUT, PAGE_PX, DiagramOptions
from .graphviz import dot_missing, layout_too_slow, render, to_digraph
from .layout_budget import STOPPED, LayoutBudget


@dataclass(frozen=True)
class Fit:
    """The level chosen, the size of its figure in px, and the deepest level the network has."""

    depth: int
    width: int
    height: int
    deepest: int
    svg: bytes | None = field(default=None, repr=False)  # the figure as laid out to measure it
    cut: bool = False  # the next level's layout ran out of the budget, so it was taken not to fit

    @property
    def fits(self) -> bool:
        return max(self.width, self.height) <= PAGE_PX

    def note(self) -> str:
        """What the CLI says on stderr about the level it chose."""
        level = f"--depth {self.depth}" + (" (every level)" if self.depth == self.deepest else "")
        size = f"{self.width}×{self.height} px"
        if self.cut:
            return (
                f"drawn at {level}, {size}: the deepest level that fits {PAGE_PX} px and was laid out in time; "
                "--depth N to choose"
            )
        if self.fits:
            return f"drawn at {level}, {size}: the deepest level that fits {PAGE_PX} px; --depth N to choose"
        return f"drawn at {level}, {size}: no level fits {PAGE_PX} px; --depth N to choose"


def levels(graph) -> int:
    """The depth that draws every level open: one more than the deepest group's nesting."""
    return max((len(path) for path in ir.network_info(graph).groups), default=0) + 1


def fitting_depth(network, budget: LayoutBudget, fmt: str = "svg", **figure) -> Fit:
    """The deepest level (from 1) whose figure fits PAGE_PX; level 1 when none does. All levels go to one
    `dot -Tsvg` process, shallow first, which is stopped at the first that does not fit: one start-up, and
    the SVG of the level chosen is kept (`Fit.svg`). Within `budget` (layout_budget.py): a level not laid out
    before it is spent counts as not fitting, so the search keeps the deepest level done (`Fit.cut`), and
    only a first level that does not finish is an error. `figure`: the other options that decide the DOT."""
    figure.pop("depth", None)
    figure["layout"] = figure.get("layout") or choose_layout(network.graph)  # the same at every level
    deepest = levels(network.graph)
    stop = threading.Event()
    first = to_digraph(network, depth=1, **figure).source  # a bad option is refused here, not in the thread
    try:
        process = subprocess.Popen(
            ["dot", "-Tsvg"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except FileNotFoundError:
        raise dot_missing(fmt) from None
    budget.bound(process)
    writer = threading.Thread(target=_feed, args=(process, network, first, deepest, figure, stop, budget), daemon=True)
    timer = threading.Timer(budget.wall_left(), process.kill)
    writer.start()
    timer.start()
    chosen: Fit | None = None
    try:
        for depth in range(1, deepest + 1):
            text = _next_svg(process)
            if text is None:  # `dot` was stopped (out of time) or failed before this level
                chosen = chosen and replace(chosen, cut=True)
                break
            width, height = svg_pixels(text)
            fit = Fit(depth, width, height, deepest, text)
            if chosen is not None and not fit.fits:
                break
            chosen = fit
            if not fit.fits:
                break
            if depth < deepest and budget.spent():
                chosen = replace(chosen, cut=True)
                break
    finally:
        stop.set()
        timer.cancel()
        process.kill()
        writer.join()  # the writer closes stdin; only then are the pipes read and closed here
        stderr = process.stderr.read()
        process.wait()
        process.stdout.close()
        process.stderr.close()
    if chosen is None:
        if process.returncode in STOPPED or budget.spent():
            raise layout_too_slow(network, budget)
        detail = stderr.decode("utf-8", "replace").strip()
        raise FileProblem(f"Graphviz could not draw the diagram: {detail or 'dot stopped'}")
    return chosen


def _feed(
    process, network, first: str, deepest: int, figure: dict, stop: threading.Event, budget: LayoutBudget
) -> None:
    """Each level's DOT into `dot`, built only while it is still wanted and the budget lasts."""
    try:
        for depth in range(1, deepest + 1):
            if stop.is_set() or (depth > 1 and budget.spent()):
                break
            source = first if depth == 1 else to_digraph(network, depth=depth, **figure).source
            process.stdin.write(source.encode("utf-8"))
            process.stdin.flush()
    except (BrokenPipeError, OSError, ValueError):  # dot was stopped: a level did not fit
        pass
    finally:
        try:
            process.stdin.close()
        except OSError:  # what was left unwritten has nowhere to go
            pass


def _next_svg(process) -> bytes | None:
    """One drawing of `dot -Tsvg`'s output: up to its closing tag; None when the output ends first."""
    lines = []
    for line in iter(process.stdout.readline, b""):
        lines.append(line)
        if line.rstrip() == b"</svg>":
            # the second and later drawings of one process name their graph `page0,N_graph0`: as if drawn alone
            return re.sub(rb'<g id="page0,\d+_graph0"', b'<g id="graph0"', b"".join(lines), count=1)
    return None


def svg_pixels(text: bytes) -> tuple[int, int]:
    """Width and height in CSS px of an SVG Graphviz wrote (in points: 72 pt = 96 px)."""
    head = text[: text.index(b">", text.index(b"<svg"))]
    width, height = (
        float(re.search(rb'%s="([\d.]+)pt"' % side, head).group(1)) * 96 / 72 for side in (b"width", b"height")
    )
    return round(width), round(height)


def draw(network, target: Path, fmt: str, drawn: DiagramOptions) -> Fit | None:
    """Write the diagram as `cnndsl draw` does: without a depth, at the one that fits, reusing the SVG laid
    out to measure it where it was the search's first (`dot` emits the clusters of a later graph in one
    process in an order that follows its memory, so that SVG is drawn again alone: the same bytes as
    `--depth N`); returns the Fit where a depth was chosen."""
    budget = LayoutBudget.of(drawn.timeout)
    chosen, fit = with_fitting_depth(network, fmt, drawn, budget)
    if fit is not None and fit.svg is not None and fit.depth == 1 and fmt == "svg":
        write_atomically(target, fit.svg)
    else:
        render(network, target, fmt, budget=budget, **chosen.figure())
    return fit


def with_fitting_depth(
    network, fmt: str, drawn: DiagramOptions, budget: LayoutBudget | None = None
) -> tuple[DiagramOptions, Fit | None]:
    """The options with the depth chosen where none was given and the format is laid out; the Fit, if any."""
    if drawn.depth is not None or fmt not in LAID_OUT:
        return drawn, None
    if drawn.style == "blocks":  # no Graphviz: the row's width is known without a layout
        depth = blocks_depth(network, levels(network.graph))
        width, height = (round(side) for side in row_size(network, depth))
        return replace(drawn, depth=depth), Fit(depth, width, height, levels(network.graph))
    fit = fitting_depth(network, budget or LayoutBudget.of(drawn.timeout), fmt, **drawn.figure())
    return replace(drawn, depth=fit.depth), fit
