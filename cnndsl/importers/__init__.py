"""Importers: other frameworks' model files (Darknet .cfg so far) become readable .cnn text."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import CnnDslError

FORMATS = {".cfg": "darknet"}


def import_file(path: str | Path, fmt: str | None = None) -> str:
    """The .cnn text for a model file; the format from `fmt` or the file's suffix."""
    path = Path(path)
    fmt = fmt or FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise CnnDslError(
            f"{path}: cannot tell the format from the suffix `{path.suffix}`",
            hint="name it .cfg (Darknet) or pass --from darknet",
        )
    if fmt != "darknet":
        raise CnnDslError(
            f"{path}: importing {fmt} files is not built yet", hint="only Darknet .cfg files import so far"
        )
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise CnnDslError(f"{path}: cannot read: {error.strerror}") from None
    from .darknet import convert

    return convert(text, str(path))
