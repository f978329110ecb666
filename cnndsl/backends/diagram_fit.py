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
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..core.atomic import write_atomically
from ..core.errors import FileProblem
from ..graph import ir
from .blocks import blocks_depth, row_height, row_width
from .diagram_options import LAID_OUT, PAGE_PX, DiagramOptions
from .graphviz import dot_missing, layout_too_slow, render, to_digraph


@dataclass(frozen=True)
class Fit:
    """The level chosen, the size of its figure in px, and the deepest level the network has."""

    depth: int
    width: int
    height: int
    deepest: int
    svg: bytes | None = field(default=None, repr=False)  # the figure as laid out to measure it

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


def fitting_depth(network, timeout: float, fmt: str = "svg", **figure) -> Fit:
    """The deepest level (from 1) whose figure fits PAGE_PX; level 1 when none does. All levels go to one
    `dot -Tsvg` process, shallow first, which is stopped at the first that does not fit: one start-up, and
    the SVG of the level chosen is kept (`Fit.svg`). At most `timeout` seconds in all; `figure`: the other
    options that decide the DOT."""
    figure.pop("depth", None)
    deepest = levels(network.graph)
    stop = threading.Event()
    try:
        process = subprocess.Popen(
            ["dot", "-Tsvg"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except FileNotFoundError:
        raise dot_missing(fmt) from None
    first = to_digraph(network, depth=1, **figure).source  # a bad option is refused here, not in the thread
    writer = threading.Thread(target=_feed, args=(process, network, first, deepest, figure, stop), daemon=True)
    timer = threading.Timer(timeout, process.kill)
    writer.start()
    timer.start()
    chosen: Fit | None = None
    deadline = time.monotonic() + timeout
    try:
        for depth in range(1, deepest + 1):
            text = _next_svg(process)
            if time.monotonic() > deadline:  # the timer kills a dot that hangs; this catches one that was late
                raise layout_too_slow(network, timeout)
            if text is None:
                break
            width, height = svg_pixels(text)
            fit = Fit(depth, width, height, deepest, text)
            if chosen is not None and not fit.fits:
                break
            chosen = fit
            if not fit.fits:
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
        if process.returncode in (-9, 137):
            raise layout_too_slow(network, timeout)
        detail = stderr.decode("utf-8", "replace").strip()
        raise FileProblem(f"Graphviz could not draw the diagram: {detail or 'dot stopped'}")
    return chosen


def _feed(process, network, first: str, deepest: int, figure: dict, stop: threading.Event) -> None:
    """Each level's DOT into `dot`, built only while it is still wanted."""
    try:
        for depth in range(1, deepest + 1):
            if stop.is_set():
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
    out to measure it; returns the Fit where a depth was chosen."""
    chosen, fit = with_fitting_depth(network, fmt, drawn)
    if fit is not None and fit.svg is not None and fmt == "svg":
        write_atomically(target, fit.svg)
    else:
        render(network, target, fmt, timeout=chosen.layout_timeout, **chosen.figure())
    return fit


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
