"""An error as the user sees it: the message with its source line and a caret, read the way imports read."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import CnnDslError, FileProblem, SourcePos
from .load import read_source


def render_error(error: CnnDslError) -> str:
    """The error with its source line and caret, read from the file it points at (and its notes' files)."""
    return error.render(_source_text(error.pos), read=file_text)


def _source_text(pos: SourcePos | None) -> str | None:
    return None if pos is None else file_text(pos.file)


def file_text(file: str) -> str | None:
    """The text of a file an error points at, read as an import is: a regular file, bounded, never blocking."""
    try:
        return read_source(Path(file), regular_only=True)
    except (FileProblem, ValueError):
        return None
