"""A network as an HTML fragment for a page: the diagram as inline SVG, the summary as a table, the
highlighted source. Shared by the Sphinx directive, the Markdown extension and `cnndsl serve`.

A docs build reads only what its author pointed it at: a block names a library network, or a `.cnn`
file inside the docs source folder (links followed, then checked), read only when it is a regular file
and opened without blocking (a FIFO would hang the build); imports from a block are sandboxed to the
importing file's folder and the library. Otherwise a page could publish any file of the build machine
through the line an error quotes.
"""

from __future__ import annotations

import html
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from . import api
from .backends.diagram_options import DIAGRAM_OPTION_NAMES, FIGURE_OPTIONS, DiagramOptions
from .core.errors import CnnDslError, FileProblem, NameProblem, SourcePos, ValueProblem, did_you_mean
from .core.options import declared, option
from .figures.report import Summary, format_axes, format_bytes, marked_label
from .front.cache import parse_text
from .front.diagnostics import render_error
from .front.load import Loader, library_index, read_source, resolved
from .graph.expand import DEFAULT_MAX_NODES
from .ops import format_shape

_ids = itertools.count(1)
_ID = re.compile(r'\bid="')
TABLE_STYLE = (
    ".cnndsl-summary td:nth-child(n+2), .cnndsl-summary th:nth-child(n+2) { text-align: right }"
    " .cnndsl-summary tfoot td { font-weight: bold }"
)


@dataclass(frozen=True)
class BlockOptions(DiagramOptions):
    """What a block shows, as `:depth: 1` (Sphinx) or `{depth=1 summary=true}` (Markdown) set it: the diagram's
    options (backends/diagram_options.py) and the block's own; the layout's time is the docs build's to set."""

    network: str | None = option(None, help="Which network of the file to draw.")
    summary: bool = option(False, help="Add the summary table below the diagram.")
    source: bool = option(False, help="Show the highlighted source beside the diagram.")

    @classmethod
    def from_strings(cls, values: dict[str, str]) -> BlockOptions:
        """Options from their written form; an unknown name or a bad value is a ValueProblem."""
        known = {item.name: item for item in BLOCK_OPTIONS}
        result = {}
        for name, text in values.items():
            if name not in known:
                raise ValueProblem(f"unknown option `{name}`", hint=f"the options are {', '.join(known)}")
            result[name] = known[name].from_text(text)
        return cls(**result)


_OWN = tuple(item for item in declared(BlockOptions) if item.name not in DIAGRAM_OPTION_NAMES)
BLOCK_OPTIONS = _OWN[:1] + FIGURE_OPTIONS + _OWN[1:]  # what a block may set, in the order the docs list them


def load_block(text: str | None, target: str | None, folder: Path, options: BlockOptions, file: str, root: Path):
    """The network of a block: from `target` (a library network, or a .cnn file inside `root`, the docs source
    folder: relative to `folder`, the page's, or with a leading `/` to `root`), else from the inline `text`,
    which errors then locate in `file`."""
    if target and text and text.strip():
        raise ValueProblem(
            f"the block names {target} and holds a network's text too",
            hint="keep one: the file (or library name) or the text",
        )
    if target:
        path = block_file(target, folder, root)
        if path is None:
            return api.load(library_index()[target], network=options.network or target)
        text = read_source(path, regular_only=True)
        module = Loader(sandbox=True).load_text(text, str(path), path)
        return api.instantiate(module, options.network, str(path), text, None, DEFAULT_MAX_NODES, {})
    if not text or not text.strip():
        raise ValueProblem("the block is empty", hint="give a .cnn file or a library name, or write the network inside")
    module = Loader(sandbox=True).bind(parse_text(text, file), folder)  # imports from the page's folder
    return api.instantiate(module, options.network, file, text, None, DEFAULT_MAX_NODES, {})


def block_file(target: str, folder: Path, root: Path) -> Path | None:
    """The .cnn file a block names, inside the docs source folder once links are followed; None for a library
    network's name. Anything else is refused before it is opened."""
    if "/" not in target and "\\" not in target and not target.endswith(".cnn"):
        if target in library_index():
            return None
        raise NameProblem(
            f"`{target}` is neither a .cnn file nor a library network",
            hint=did_you_mean(target, library_index()) or "name a .cnn file in the docs, or run `cnndsl list`",
        )
    if not target.endswith(".cnn"):
        raise FileProblem(f"{target}: a block draws only .cnn files", hint="name a .cnn file in the docs source folder")
    path = resolved(root / target.lstrip("/") if target.startswith("/") else folder / target)
    if not path.is_relative_to(resolved(root)):
        raise FileProblem(
            f"{target} is outside the docs source folder",
            hint="a block draws only .cnn files inside the docs source folder (links followed), or library networks",
        )
    return path


def render(network, options: BlockOptions, timeout: float | None = None) -> str:
    """The block's HTML: the diagram (laid out within `timeout` seconds), then the summary table and the
    source as asked."""
    svg = diagram_svg(network, options, timeout)
    if options.source:  # the text scrolls; the figure keeps its size beside it
        figure = (
            f'<div class="cnndsl-with-source" style="display:flex;gap:1em;align-items:flex-start">'
            f'<div class="cnndsl-source" style="flex:1 1 0;min-width:0;overflow-x:auto">'
            f"{highlighted(network.source)}</div>"
            f'<div class="cnndsl-diagram" style="flex:0 0 auto">{svg}</div></div>'
        )
    else:
        figure = f'<div class="cnndsl-diagram" style="overflow-x:auto">{svg}</div>'
    table = summary_table(network.summary()) if options.summary else ""
    return f'<div class="cnndsl">{figure}{table}</div>'


def diagram_svg(network, options: BlockOptions, timeout: float | None = None) -> str:
    """The diagram as an <svg> element for inline use; ids are prefixed so that several fit one page."""
    from .backends.graphviz import svg

    text = svg(network, timeout=timeout or options.layout_timeout, **options.figure())
    return _ID.sub(f'id="cnndsl{next(_ids)}_', text[text.index("<svg") :])


def summary_table(summary: Summary) -> str:
    """The per-layer table with group rows and the totals in its footer."""

    rows, shown = [], set()
    for layer, label in zip(summary.layers, summary.labels):
        parts = layer["group"].split(".") if layer["group"] else []
        for depth in range(len(parts)):
            path = ".".join(parts[: depth + 1])
            if path not in shown:
                shown.add(path)
                rows.append(
                    f'<tr class="cnndsl-group"><td colspan="6" style="padding-left:{depth}em">'
                    f"<b>{_e(parts[depth])}</b></td></tr>"
                )
        leaf = layer["name"].rsplit(".", 1)[-1]
        rows.append(
            f'<tr data-layer="{_e(layer["name"])}"><td style="padding-left:{len(parts)}em">{_e(leaf)}: '
            f"{_e(marked_label(layer, label))}</td><td>{_e(format_shape(layer['shape']))}</td><td>{layer['params']:,}</td>"
            f"<td>{layer['macs']:,}</td><td>{format_bytes(layer['memory_bytes'])}</td><td>{format_axes(layer['rf'])}</td></tr>"
        )
    t = summary.totals
    foot = (
        f'<tr><td colspan="2">Total</td><td class="cnndsl-params">{t["params"]:,}</td>'
        f'<td class="cnndsl-macs">{t["macs"]:,}</td><td>{format_bytes(t["memory_bytes"])}</td><td></td></tr>'
    )
    head = "<tr><th>Layer</th><th>Output</th><th>Params</th><th>MACs</th><th>Memory</th><th>RF</th></tr>"
    return (
        f"<style>{TABLE_STYLE}</style>"
        f'<table class="cnndsl-summary"><caption>{_e(summary.network)} ('
        f"{_e(summary.inputs_text())})</caption><thead>{head}</thead><tbody>{''.join(rows)}</tbody>"
        f"<tfoot>{foot}</tfoot></table>"
    )


def highlighted(text: str) -> str:
    """.cnn text as highlighted HTML, styles inline so that it needs no theme's stylesheet."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter

    from .lexer import CnnLexer

    return highlight(text, CnnLexer(), HtmlFormatter(noclasses=True, nobackground=False))


def in_page(error: CnnDslError, block_file: str, first_line: int, indent: int = 0) -> bool:
    """Move a position in the block's text to the page's (its first line there, its indentation);
    True when the error was in the block, False when it is in a file the block loads."""
    if error.pos is None or error.pos.file != block_file:
        return False
    error.pos = SourcePos(block_file, error.pos.line + first_line - 1, error.pos.column + indent)
    return True


def error_html(error: CnnDslError, page_text: str | None, page_file: str) -> str:
    """A failed block on the page: the located message with its source line, as `cnndsl check` prints
    it; the line comes from the page when the error is in it, else from the file it names."""

    if error.pos is not None and error.pos.file == page_file:
        return _error_pre(error.render(page_text))
    return _error_pre(render_error(error))


def _error_pre(text: str) -> str:
    return f'<pre class="cnndsl-error" style="color:#b00">{_e(text)}</pre>'


def _e(text) -> str:
    return html.escape(str(text), quote=True)
