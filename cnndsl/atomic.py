"""Outputs are written whole or not at all: a temp file beside the target, then a rename."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Union

from .errors import FileProblem


def write_atomically(target: "str | Path", content: Union[bytes, str, Callable[[Path], None]]) -> Path:
    """Write bytes, text, or whatever `content(temp_path)` writes, then move it into place."""
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise FileProblem(f"cannot write {target}: folder {folder} does not exist")
    try:
        handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    except OSError as error:
        raise FileProblem(f"cannot write {target}: {error.strerror or error}") from None
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as stream:
            if isinstance(content, str):
                stream.write(content.encode("utf-8"))
            elif isinstance(content, bytes):
                stream.write(content)
        if callable(content):
            content(temp)
        os.chmod(temp, 0o666 & ~_umask())  # mkstemp makes it private; an output has the usual mode
        os.replace(temp, target)
    except OSError as error:
        raise FileProblem(f"cannot write {target}: {error.strerror or error}") from None
    finally:
        if temp.exists():
            temp.unlink()
    return target


def _umask() -> int:
    """The process umask; reading it means setting it, so set it straight back."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
