"""Python-Markdown extension: fenced ```cnn blocks render as the network's diagram (inline SVG).

    ```cnn {depth=1 summary=true}
    network tiny { input 3x32x32, conv3x3(16), relu }
    ```

Options as in the Sphinx directive (embed.BLOCK_OPTIONS: network, the diagram's, summary, source), plus `file=`
for a .cnn file inside the docs folder (relative to the page in MkDocs, else to `base_path`; see
embed.py) or a library name; the extension's `layout_timeout` bounds each layout (seconds). In MkDocs
(`markdown_extensions: [cnndsl.markdown]`) a broken block is a warning naming the page and line,
which `mkdocs build --strict` turns into a failure; elsewhere it is logged to `cnndsl.markdown`.
"""

from __future__ import annotations

import logging
import re
import shlex
from pathlib import Path

from markdown import Extension, Markdown
from markdown.preprocessors import Preprocessor

from .backends.diagram_options import LAYOUT_TIMEOUT_S
from .core.errors import CnnDslError, ValueProblem
from .embed import BlockOptions, error_html, in_page, load_block, render

FENCE = re.compile(
    r"^(?P<fence>`{3,}|~{3,})[ \t]*cnn[ \t]*(?:\{(?P<options>[^}\n]*)\})?[ \t]*\n(?P<body>.*?)^(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


class CnnFencePreprocessor(Preprocessor):
    """Replaces each ```cnn fence by its rendered HTML before the fenced-code extension sees it."""

    def __init__(self, md: Markdown, base_path: str, layout_timeout: float):
        super().__init__(md)
        self.base_path = base_path
        self.layout_timeout = layout_timeout

    def run(self, lines: list[str]) -> list[str]:
        text = "\n".join(lines)
        return FENCE.sub(lambda match: self._block(match, text), text).split("\n")

    def _block(self, match: re.Match, text: str) -> str:
        fence_line = text.count("\n", 0, match.start()) + 1
        page, folder, root = self._page()
        body = match.group("body")
        try:
            written = _written_options(match.group("options") or "")
            target = written.pop("file", None)
            options = BlockOptions.from_strings(written)
            markup = render(load_block(body, target, folder, options, page, root), options, self.layout_timeout)
        except CnnDslError as error:
            if in_page(error, page, fence_line + 1):
                where, line = f" (column {error.pos.column})", error.pos.line
            else:
                where, line = f" ({error.pos})" if error.pos else "", fence_line
            hint = f"; hint: {error.hint}" if error.hint else ""
            _logger(page).warning(f"{page}:{line}: cnndsl: {error.message}{where}{hint}")
            markup = error_html(error, text, page)
        return "\n\n" + self.md.htmlStash.store(markup) + "\n\n"

    def _page(self) -> tuple[str, Path, Path]:
        """The page being built, its folder and the docs folder: MkDocs' own link-rewriting step knows them."""
        processors = self.md.treeprocessors  # a Registry: `in` and `[name]`, but no `.get` (Markdown 3.11)
        relpath = processors["relpath"] if "relpath" in processors else None  # noqa: SIM401 (no .get)
        file = getattr(relpath, "file", None)
        if file is not None and getattr(file, "abs_src_path", None) and getattr(file, "src_dir", None):
            return file.src_path, Path(file.abs_src_path).parent, Path(file.src_dir)
        return "<markdown>", Path(self.base_path), Path(self.base_path)


def _logger(page: str) -> logging.Logger:
    """MkDocs counts (and --strict fails on) warnings of the `mkdocs` loggers only."""
    return logging.getLogger("cnndsl.markdown" if page == "<markdown>" else "mkdocs.extensions.cnndsl")


def _written_options(text: str) -> dict[str, str]:
    """`depth=1 summary=true file="my net.cnn"`; a bare name means true."""
    try:
        words = shlex.split(text)
    except ValueError as error:
        raise ValueProblem(f"cannot read the block's options {{{text}}}: {error}") from None
    return {name: value for name, _, value in (word.partition("=") for word in words)}


class CnnDslExtension(Extension):
    def __init__(self, **kwargs):
        self.config = {
            "base_path": [".", "the docs folder outside MkDocs: `file=` paths are inside it, relative to it"],
            "layout_timeout": [LAYOUT_TIMEOUT_S, "seconds Graphviz may take to lay out one diagram"],
        }
        super().__init__(**kwargs)

    def extendMarkdown(self, md: Markdown) -> None:
        # after whitespace normalisation (30), before fenced code blocks (25)
        md.preprocessors.register(
            CnnFencePreprocessor(md, self.getConfig("base_path"), float(self.getConfig("layout_timeout"))), "cnndsl", 28
        )


def makeExtension(**kwargs) -> CnnDslExtension:
    return CnnDslExtension(**kwargs)
