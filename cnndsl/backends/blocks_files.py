"""The block figure written to a file: SVG as blocks.py writes it, PNG and PDF drawn from the same polygons
and texts by matplotlib (where installed; no LaTeX), with its metadata fixed so the same network gives the
same bytes."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from ..core.atomic import write_atomically
from ..core.errors import FileProblem, ValueProblem
from .blocks import blocks_svg

SVG = "{http://www.w3.org/2000/svg}"
DPI = 96


def write_blocks(network, target: Path, fmt: str, depth: int | None) -> Path:
    if fmt == "dot":
        raise ValueProblem("the block figure has no DOT text", hint="draw it as .svg, .png or .pdf")
    text = blocks_svg(network, depth)
    content = text.encode("utf-8") if fmt == "svg" else _drawn(text, fmt)
    return write_atomically(target, content)


def _drawn(svg_text: str, fmt: str) -> bytes:
    """The SVG's polygons, paths and texts drawn again by matplotlib, at 96 dpi."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
        from matplotlib.patches import PathPatch, Polygon
        from matplotlib.path import Path as CurvePath
    except ImportError:
        raise FileProblem(
            f"drawing the block figure as {fmt.upper()} needs matplotlib, which is not installed",
            hint="pip install matplotlib, or draw it as .svg",
        ) from None
    root = ElementTree.fromstring(svg_text)
    width, height = (float(root.get(side).removesuffix("px")) for side in ("width", "height"))
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)
    axes.axis("off")
    for element in root.iter():
        tag = element.tag.removeprefix(SVG)
        if tag == "polygon":
            points = [tuple(map(float, pair.split(","))) for pair in element.get("points").split()]
            axes.add_patch(
                Polygon(
                    points, closed=True, facecolor=element.get("fill"), edgecolor=element.get("stroke"), linewidth=0.75
                )
            )
        elif tag == "path":
            numbers = [float(value) for value in re.findall(r"-?\d+(?:\.\d+)?", element.get("d"))]
            vertices = list(zip(numbers[::2], numbers[1::2]))
            codes = [CurvePath.MOVETO] + [CurvePath.CURVE4] * (len(vertices) - 1)
            axes.add_patch(
                PathPatch(
                    CurvePath(vertices, codes),
                    facecolor="none",
                    edgecolor=element.get("stroke"),
                    linestyle="--",
                    linewidth=1.05,
                )
            )
        elif tag == "text":
            anchor = {"start": "left", "middle": "center", "end": "right"}[element.get("text-anchor", "start")]
            axes.text(
                float(element.get("x")),
                float(element.get("y")),
                element.text or "",
                fontsize=float(element.get("font-size", "11")) * 72 / DPI,
                ha=anchor,
                va="baseline",
                color=element.get("fill", "#000000"),
                fontweight=element.get("font-weight", "normal"),
            )
    buffer = io.BytesIO()
    metadata = {"Software": None} if fmt == "png" else {"Creator": None, "Producer": None, "CreationDate": None}
    figure.savefig(buffer, format=fmt, dpi=DPI, metadata=metadata)
    return buffer.getvalue()
