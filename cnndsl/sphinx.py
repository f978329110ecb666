"""Sphinx extension: `extensions = ["cnndsl.sphinx"]` gives the `cnndsl` directive, which renders a
network (a file, a library name, or the directive's own text) as inline SVG at build time.

    .. cnndsl:: nets/vgg.cnn
       :depth: 1
       :summary:

A broken network is a Sphinx warning at the document's line (so `-W` fails the build), and the
page shows the located error in its place. A file must be a .cnn file inside the source folder (see
embed.py); `cnndsl_layout_timeout` in conf.py bounds each diagram's layout (seconds, default 30).
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from .backends.diagram_options import LAYOUT_TIMEOUT_S
from .core.errors import CnnDslError, ValueProblem
from .core.options import Declared
from .core.version import __version__
from .embed import BLOCK_OPTIONS, BlockOptions, block_file, error_html, in_page, load_block, render
from .lexer import CnnLexer

logger = logging.getLogger(__name__)


def _converter(declared: Declared):
    """docutils' reading of a declared option: a bool is a flag; any other value is read as a Markdown block's
    is (core/options.py), its error a ValueError, which docutils reports at the option."""
    if declared.kind is bool:
        return directives.flag

    def read(text: str | None):
        if not text or not text.strip():
            raise ValueError(f"{declared.name} needs a value")
        try:
            return declared.from_text(text.strip())
        except ValueProblem as error:
            raise ValueError(error.message) from None

    return read


class CnnDslDirective(SphinxDirective):
    """`.. cnndsl:: [FILE or library name]` with the network's text as content when no argument."""

    optional_arguments = 1
    has_content = True
    option_spec = {item.name: _converter(item) for item in BLOCK_OPTIONS}

    def run(self) -> list[nodes.Node]:
        options = BlockOptions(
            **{
                item.name: item.name in self.options if item.kind is bool else self.options.get(item.name, item.default)
                for item in BLOCK_OPTIONS
            }
        )
        doc_file, _ = self.get_source_info()
        text = "\n".join(self.content) if self.content else None
        target = self.arguments[0] if self.arguments else None
        folder, root = Path(self.env.doc2path(self.env.docname)).parent, Path(self.env.srcdir)
        try:
            if target and not text and (path := block_file(target, folder, root)) is not None:
                self.env.note_dependency(str(path))  # Sphinx rebuilds the page when the file changes
            network = load_block(text, target, folder, options, doc_file, root)
            markup = render(network, options, self.env.config.cnndsl_layout_timeout)
        except CnnDslError as error:
            page = _read(doc_file)
            if in_page(error, doc_file, self.content_offset + 1, self._indent(page)):
                where, line = f" (column {error.pos.column})", error.pos.line
            else:
                where, line = f" ({error.pos})" if error.pos else "", self.lineno
            hint = f"; hint: {error.hint}" if error.hint else ""
            logger.warning(f"cnndsl: {error.message}{where}{hint}", location=(self.env.docname, line), type="cnndsl")
            return [nodes.raw("", error_html(error, page, doc_file), format="html")]
        return [nodes.raw("", markup, format="html")]

    def _indent(self, page: str) -> int:
        """How far the content is indented in the document: its first line there, less its own indent."""
        lines = page.splitlines()
        if not self.content or self.content_offset >= len(lines):
            return 0
        return max(0, len(lines[self.content_offset]) - len(self.content[0]))


def _read(doc_file: str) -> str:
    try:
        return Path(doc_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def setup(app):
    app.add_directive("cnndsl", CnnDslDirective)
    app.add_config_value("cnndsl_layout_timeout", LAYOUT_TIMEOUT_S, "html", types=(int, float))
    app.add_lexer("cnn", CnnLexer)
    return {"version": __version__, "parallel_read_safe": True, "parallel_write_safe": True}
