"""Errors that point at the source: every failure a user can cause is a CnnDslError."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .records import FrozenRecord


class SourcePos(FrozenRecord):
    """A place in a .cnn file; line and column are 1-based, as editors show them."""

    __slots__ = ("file", "line", "column")

    def __init__(self, file: str, line: int, column: int) -> None:
        object.__setattr__(self, "file", file)  # as a frozen dataclass sets them: every token has a position
        object.__setattr__(self, "line", line)
        object.__setattr__(self, "column", column)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class Note(FrozenRecord):
    """A second place that explains an error, as compilers show it: `defined here`."""

    __slots__ = ("pos", "message")

    def __init__(self, pos: SourcePos, message: str) -> None:
        self._set(pos, message)

    def render(self, source_text: str | None = None) -> str:
        return "\n".join([f"{self.pos}: note: {self.message}", *_quote(self.pos, source_text)])


class CnnDslError(Exception):
    """A user-facing error: message, optional position and hint, never a traceback."""

    severity = "error"

    def __init__(self, message: str, pos: SourcePos | None = None, hint: str | None = None, notes: Iterable[Note] = ()):
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.hint = hint
        self.notes = list(notes)

    def at(self, pos: SourcePos | None) -> CnnDslError:
        """Attach a position if the error has none yet (raised deep inside a rule)."""
        if self.pos is None:
            self.pos = pos
        return self

    def render(self, source_text: str | None = None, read: Callable[[str], str | None] | None = None) -> str:
        """`file:line:col: error: message`, the source line, a caret, the hint, then each note likewise.

        `read` gives the text of another file a note points into; without it only the error's own text is quoted."""
        where = f"{self.pos}: " if self.pos else ""
        lines = [f"{where}{self.severity}: {self.message}", *_quote(self.pos, source_text)]
        if self.hint:
            lines.append(f"hint: {self.hint}")
        for note in self.notes:
            same_file = self.pos is not None and note.pos.file == self.pos.file
            lines.append(note.render(source_text if same_file else read(note.pos.file) if read else None))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


def _quote(pos: SourcePos | None, source_text: str | None) -> list[str]:
    """The source line at `pos` and a caret under its column; nothing when the text is unknown."""
    if pos is None or source_text is None:
        return []
    source_lines = source_text.splitlines()
    if not 1 <= pos.line <= len(source_lines):
        return []
    text, column = _clip(source_lines[pos.line - 1].expandtabs(1), pos.column)
    return [f"    {text}", "    " + " " * (column - 1) + "^"]


class SourceWarning(CnnDslError):
    """Not an error: something that builds but is likely not what was meant (`check --strict` fails on it)."""

    severity = "warning"


SHOWN_WIDTH = 100  # characters of a long source line shown around the caret


def _clip(text: str, column: int) -> tuple[str, int]:
    """A long line cut to a window around the column, marked with `...`; the column within it."""
    if len(text) <= SHOWN_WIDTH:
        return text, column
    start = max(0, min(column - 1 - SHOWN_WIDTH // 2, len(text) - SHOWN_WIDTH))
    window = text[start : start + SHOWN_WIDTH]
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


def nearest(name: str, candidates: Iterable[str]) -> str | None:
    """The closest known name to a typo, for `did you mean` hints."""
    import difflib  # only when a name is unknown: not on every command's start-up

    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    guess = nearest(name, candidates)
    return f"did you mean `{guess}`?" if guess else None
