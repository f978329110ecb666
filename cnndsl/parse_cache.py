"""Parsed files kept on disk, as Python keeps bytecode: an unchanged file is not parsed twice.

Importing Lark and building the lexer's scanners costs a fresh process more than the parse itself, so
`cnndsl summary resnet50` run a second time reads the file's syntax tree back instead. One entry per
file path, checked against a digest of the text and of the parser that made it; anything amiss (a
missing, stale or unreadable entry, a folder that cannot be written) falls back to parsing.
"""
from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Optional

from . import syntax as ast
from .atomic import write_atomically
from .errors import FileProblem
from .resources import grammar_path

FORMAT = b"cnndsl-ast-1"
_PARSER_SOURCES = ("parser.py", "syntax.py", "errors.py")  # the tree is made of their classes


def cache_dir() -> Optional[Path]:
    """`$CNNDSL_CACHE_DIR`, else the user's cache folder; None when `CNNDSL_NO_CACHE` is set."""
    if os.environ.get("CNNDSL_NO_CACHE"):
        return None
    if os.environ.get("CNNDSL_CACHE_DIR"):
        return Path(os.environ["CNNDSL_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "cnndsl"
    try:
        return Path.home() / ".cache" / "cnndsl"
    except RuntimeError:  # no home folder to be found: no cache
        return None


def parse_file_text(text: str, file: str) -> ast.Program:
    """The Program of a file's text: from the cache when this text was parsed before, else parsed now."""
    folder = cache_dir()
    if folder is None:
        return parse_text(text, file)
    entry = folder / (hashlib.sha256(file.encode("utf-8", "surrogatepass")).hexdigest()[:32] + ".ast")
    try:
        digest = _digest(text, file)
    except OSError:  # the parser's sources are not on disk (a bytecode-only install): nothing to key on
        return parse_text(text, file)
    program = _read(entry, digest)
    if program is None:
        program = parse_text(text, file)
        _write(folder, entry, digest, program)
    return program


def parse_text(text: str, file: str) -> ast.Program:
    """Parse now, uncached; Lark is imported only when something is parsed."""
    from .parser import parse

    return parse(text, file)


def _digest(text: str, file: str) -> bytes:
    """Text, file name (positions carry it), and the version and files of the parser: a change to any makes a new tree."""
    from . import __version__

    h = hashlib.sha256(FORMAT + __version__.encode())
    package = Path(__file__).parent
    for source in (grammar_path(), *(package / name for name in _PARSER_SOURCES)):
        stat = source.stat()
        h.update(f"{source}:{stat.st_mtime_ns}:{stat.st_size};".encode())
    h.update(file.encode("utf-8", "surrogatepass") + b"\0" + text.encode("utf-8", "surrogatepass"))
    return h.digest()


def _read(entry: Path, digest: bytes) -> Optional[ast.Program]:
    try:
        data = entry.read_bytes()
    except OSError:
        return None
    if data[: len(digest)] != digest:
        return None
    try:
        program = pickle.loads(data[len(digest):])
    except Exception:  # a torn or foreign file is a miss, never an error
        return None
    return program if isinstance(program, ast.Program) else None


def _write(folder: Path, entry: Path, digest: bytes, program: ast.Program) -> None:
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomically(entry, digest + pickle.dumps(program, protocol=pickle.HIGHEST_PROTOCOL))
    except (OSError, FileProblem, RecursionError, pickle.PicklingError):
        pass  # a cache that cannot be written only costs the next run a parse
