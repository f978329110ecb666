"""The one file `cnndsl serve` edits: read with the same checks as any .cnn file, saved atomically,
and versioned by its modification time and size so that the page notices changes made on disk.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..core.atomic import write_atomically
from ..core.errors import FileProblem
from ..front.load import MAX_FILE_BYTES, read_source

STARTER = """\
# A new network: edit it and the diagram follows. Ctrl-S saves.
network net(classes=10) {
    input 3x32x32
    stage features { conv3x3(32), bn, relu, maxpool, conv3x3(64), bn, relu, maxpool }
    gap, fc(classes)
}
"""


class Document:
    """The served file; `version` is "" while it does not exist yet (it is created on the first save)."""

    def __init__(self, path: Path):
        self.path = path

    def version(self) -> str:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return ""
        except OSError as error:
            raise FileProblem(f"{self.path}: cannot read it ({error.strerror})") from None
        return f"{stat.st_mtime_ns}-{stat.st_size}"

    def read(self) -> tuple[str, str]:
        """The text and its version; a file that does not exist yet reads as a starter network."""
        version = self.version()
        if not version:
            return STARTER, ""
        return read_source(self.path), version

    def save(self, text: str) -> str:
        """Write the whole text or nothing; returns the new version."""
        data = text.encode("utf-8")
        if len(data) > MAX_FILE_BYTES:
            raise FileProblem(f"the text is larger than {MAX_FILE_BYTES:,} bytes, the most a .cnn file may have")
        write_atomically(self.path, data)
        return self.version()


def starter_path(path: str | None) -> Path:
    """FILE as given (errors name it so), or `network.cnn` in the current folder when none is given."""
    return Path(path or "network.cnn")
