"""The diagram's options, one record read by every surface that draws: the CLI (`compile`, `draw`), the API
(`Network.draw`), the docs blocks (Sphinx, Markdown, through embed.BlockOptions) and `cnndsl serve`.

A new diagram option is one field of `DiagramOptions` (core/options.py: its type, default, help and the
formats it changes); each surface derives its own from the declaration and tests/test_options.py holds
them to it. This module imports no backend, so that the CLI can declare its options without loading one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import ValueProblem
from ..core.options import Declared, declared, option

LAYOUT_TIMEOUT_S = 30.0  # a 14 KB text can keep `dot` busy for minutes; the library's largest takes 1 s
PAGE_PX = 1600  # the long side of a figure that fits a page or a screen, in CSS px: the default depth's bound
DIAGRAMS = ("svg", "png", "pdf", "dot")
LAID_OUT = ("svg", "png", "pdf")  # the formats Graphviz's `dot` lays out; .dot is the text before layout
RANKDIRS = ("TB", "LR")
LAYOUTS = ("flow", "u", "columns")  # diagram_layouts.py places each
STYLES = ("graph", "blocks")  # Graphviz's boxes and arrows, or blocks.py's 3-D blocks


@dataclass(frozen=True)
class DiagramOptions:
    """What a diagram shows and how long its layout may take; the same options give the same DOT."""

    depth: int | None = option(
        None,
        help="Hierarchy levels to show; deeper groups collapse (default: the deepest whose figure fits 1600 px; "
        "a .dot file: every level).",
        brief="hierarchy levels to show",
        formats=DIAGRAMS,
        minimum=0,
    )
    expand: bool = option(
        False,
        help="Draw every repeated block instead of folding them.",
        brief="draw every repeated block",
        formats=DIAGRAMS,
    )
    shapes: bool = option(False, help="Add output shapes to the labels.", brief="add output shapes", formats=DIAGRAMS)
    cost: bool = option(False, help="Add params and MACs to the labels.", brief="add params and MACs", formats=DIAGRAMS)
    rankdir: str = option(
        "TB",
        help="TB: the layers from top to bottom; LR: from left to right.",
        brief="TB or LR",
        formats=DIAGRAMS,
        choices=RANKDIRS,
    )
    layout: str | None = option(
        None,
        help="u: encoder down the left, decoder up the right, skips across; columns: backbone, neck and head "
        "side by side; flow: one column (default: chosen from the network's structure).",
        brief="u, columns or flow",
        formats=DIAGRAMS,
        choices=LAYOUTS,
    )
    style: str = option(
        "graph",
        help="graph: boxes and arrows; blocks: the 3-D block figure, each box's size following its feature map "
        "(SVG, PNG, PDF).",
        brief="graph or blocks",
        formats=LAID_OUT,
        choices=STYLES,
    )
    timeout: float | None = option(
        None,
        help="Stop Graphviz's layout after this long, CPU or wall clock (default: 2 s of CPU for all the layout "
        f"work within {LAYOUT_TIMEOUT_S:g} s).",
        formats=LAID_OUT,
        minimum=0,
        metavar="SECONDS",
        per_figure=False,
    )

    @classmethod
    def taken_from(cls, values: dict[str, Any]) -> DiagramOptions:
        """The diagram's options among `values` (a command's keyword arguments); the others are left there."""
        return cls(**{name: values.pop(name) for name in DIAGRAM_OPTION_NAMES if name in values})

    def figure(self) -> dict[str, Any]:
        """The options that decide the DOT text (graphviz.to_digraph's keyword arguments)."""
        return {item.name: getattr(self, item.name) for item in FIGURE_OPTIONS}

    @property
    def layout_timeout(self) -> float:
        return self.timeout or LAYOUT_TIMEOUT_S


DIAGRAM_OPTIONS: tuple[Declared, ...] = declared(DiagramOptions)
DIAGRAM_OPTION_NAMES = tuple(item.name for item in DIAGRAM_OPTIONS)
FIGURE_OPTIONS = tuple(item for item in DIAGRAM_OPTIONS if item.spec.per_figure)  # what a block or a page sets


def diagram_suffixes() -> str:
    """`.svg, .png, .pdf or .dot`."""
    shown = [f".{name}" for name in DIAGRAMS]
    return ", ".join(shown[:-1]) + " or " + shown[-1]


def target_format(target: Path) -> str:
    """The diagram format a file name asks for (`net.SVG` -> svg); a ValueProblem for any other name."""
    fmt = target.suffix.lstrip(".").lower()
    if fmt not in DIAGRAMS:
        raise ValueProblem(f"a diagram is written as {diagram_suffixes()}, not {target.name!r}")
    return fmt
