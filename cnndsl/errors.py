"""Errors that point at the source: every failure a user can cause is a CnnDslError."""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable, Optional


@dataclass(frozen=True)
class SourcePos:
    """A place in a .cnn file; line and column are 1-based, as editors show them."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class CnnDslError(Exception):
    """A user-facing error: message, optional position and hint, never a traceback."""

    def __init__(self, message: str, pos: Optional[SourcePos] = None, hint: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.hint = hint

    def at(self, pos: Optional[SourcePos]) -> "CnnDslError":
        """Attach a position if the error has none yet (raised deep inside a rule)."""
        if self.pos is None:
            self.pos = pos
        return self

    def render(self, source_text: Optional[str] = None) -> str:
        """`file:line:col: error: message`, the source line, a caret and the hint."""
        where = f"{self.pos}: " if self.pos else ""
        lines = [f"{where}error: {self.message}"]
        if self.pos and source_text is not None:
            source_lines = source_text.splitlines()
            if 1 <= self.pos.line <= len(source_lines):
                text, column = _clip(source_lines[self.pos.line - 1].expandtabs(1), self.pos.column)
                lines.append(f"    {text}")
                lines.append("    " + " " * (column - 1) + "^")
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


SHOWN_WIDTH = 100  # characters of a long source line shown around the caret


def _clip(text: str, column: int) -> tuple[str, int]:
    """A long line cut to a window around the column, marked with `...`; the column within it."""
    if len(text) <= SHOWN_WIDTH:
        return text, column
    start = max(0, min(column - 1 - SHOWN_WIDTH // 2, len(text) - SHOWN_WIDTH))
    window = text[start:start + SHOWN_WIDTH]
    prefix = "..." if start > 0 else ""
    suffix = "..." if start + SHOWN_WIDTH < len(text) else ""
    return prefix + window + suffix, column - start + len(prefix)


class SyntaxProblem(CnnDslError):
    """The text does not follow the grammar."""


class NameProblem(CnnDslError):
    """An unknown or duplicate name: layer, block, network, parameter or tap."""


class ShapeProblem(CnnDslError):
    """A layer cannot take the shape that reaches it, or merged shapes disagree."""


class ValueProblem(CnnDslError):
    """An argument or expression has a value the layer or operator cannot take."""


class LimitProblem(CnnDslError):
    """The program would exceed a resource limit (nodes, nesting, repetitions, imports)."""


class FileProblem(CnnDslError):
    """A file cannot be read, or an output cannot be written."""


def nearest(name: str, candidates: Iterable[str]) -> Optional[str]:
    """The closest known name to a typo, for `did you mean` hints."""
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: Iterable[str]) -> Optional[str]:
    guess = nearest(name, candidates)
    return f"did you mean `{guess}`?" if guess else None
