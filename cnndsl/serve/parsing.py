"""The editor's text parsed a top-level definition at a time: a keystroke changes one definition, and the
trees of the others are kept from the text before, so only the edited one is parsed again.

A text is cut before each line that starts with `import`, `block`, `network` or `let` at its first column.
Where such a line is not the start of a definition (inside a body), a piece is left unclosed and fails to
parse, and the whole text is parsed instead; so every text gets the tree, or the error, of `parse_text`.
"""

from __future__ import annotations

import re

from ..core.errors import CnnDslError
from ..front import syntax as ast
from ..front.cache import parse_text

_STARTS = re.compile(r"^(?=(?:import|block|network|let)\b)", re.MULTILINE)
MOST_BLANK_LINES = 1_000_000  # put in front of the pieces of one text, at most (a millisecond of lexing)


class PieceParser:
    """`parse(text)`: the Program of `parse_text(text, file)`, parsing only the pieces not parsed last time."""

    def __init__(self, file: str):
        self.file = file
        self.kept: dict[tuple[int, str], ast.Program] = {}  # (first line, piece) -> its parse, from the last text

    def parse(self, text: str) -> ast.Program:
        starts = sorted({0, *(match.start() for match in _STARTS.finditer(text))})
        # a piece is parsed after blank lines that put its tokens on their lines in the whole text: bounded, as
        # 100,000 one-line definitions would take 10^10 of them; and a byte-order mark (dropped) would shift them
        if len(starts) * text.count("\n") > MOST_BLANK_LINES or text.startswith("\ufeff"):
            return parse_text(text, self.file)
        parsed: dict[tuple[int, str], ast.Program] = {}
        line = 1
        try:
            for start, end in zip(starts, [*starts[1:], len(text)]):
                piece = text[start:end]
                kept = self.kept.get((line, piece))
                parsed[line, piece] = kept if kept is not None else parse_text("\n" * (line - 1) + piece, self.file)
                line += piece.count("\n")
        except CnnDslError:
            return parse_text(text, self.file)  # the whole text's error, where it is and as it reads
        self.kept = parsed
        program = ast.Program(self.file, text)
        for piece in parsed.values():
            program.imports.extend(piece.imports)
            program.definitions.extend(piece.definitions)
        return program
