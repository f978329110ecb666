"""Parsed files kept on disk, as Python keeps bytecode: an unchanged file is not parsed twice.

Importing Lark and building the lexer's scanners costs a fresh process more than the parse itself, so
`cnndsl summary resnet50` run a second time reads the file's syntax tree back instead. One entry per
file path, checked against a digest of the text and of the parser that made it; anything amiss (a
missing, stale, oversized or malformed entry, a folder that cannot be written) falls back to parsing. The
folder keeps the newest entries, up to MOST_ENTRIES and MOST_BYTES.

An entry is JSON data, decoded only into the node classes of `cnndsl.syntax` with every field checked
against its declared type, so no entry can run code or build any other object. A folder or entry that
another user owns or could write is not trusted at all: one warning on stderr, then no cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Union

from ..core.errors import SourcePos
from ..core.resources import grammar_path
from ..core.version import __version__
from . import syntax as ast

FORMAT = b"cnndsl-ast-2"
_PARSER_SOURCES = (
    "front/parser.py",
    "front/to_ast.py",
    "front/syntax.py",
    "core/errors.py",
)  # the tree is made of their classes
MAX_ENTRY_BYTES = 16 * 1024 * 1024  # an entry is written and read only up to this size
MOST_ENTRIES = 1_000  # entries kept (one per file path): past it, or past MOST_BYTES, the oldest written go
MOST_BYTES = 256 * 1024 * 1024
STALE_PART_S = 3_600  # a temporary file this old was left by a writer that was killed
_NODES = {
    name: cls
    for name, cls in vars(ast).items()
    if isinstance(cls, type) and issubclass(cls, ast.Node) and cls is not ast.Node and cls.__module__ == ast.__name__
}  # the only classes an entry makes
_OPERATORS = {"+", "-", "*", "/", "//", "%", "^", "==", "!=", "<", "<=", ">", ">=", "and", "or"}
_warned: set[str] = set()


class _Untrusted(Exception):
    """A cache folder or entry that someone else could have written."""


class _Malformed(ValueError):
    """An entry whose data does not decode into a syntax tree."""


def cache_dir() -> Path | None:
    """`$CNNDSL_CACHE_DIR`, else the user's cache folder; None when `CNNDSL_NO_CACHE` is set."""
    if os.environ.get("CNNDSL_NO_CACHE") or not hasattr(os, "geteuid"):  # ownership is checked on POSIX only
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
    entry = hashlib.sha256(file.encode("utf-8", "surrogatepass")).hexdigest()[:32] + ".ast"
    try:
        key = _digest(text, file).hex().encode() + b"\n"
    except OSError:  # the parser's sources are not on disk (a bytecode-only install): nothing to key on
        return parse_text(text, file)
    try:
        program = _read(folder, entry, key, text, file)
        if program is None:
            program = parse_text(text, file)
            _write(folder, entry, key, program)
    except _Untrusted as why:
        _warn_once(folder, str(why))
        return parse_text(text, file)
    return program


def parse_text(text: str, file: str) -> ast.Program:
    """Parse now, uncached; Lark is imported only when something is parsed."""
    from .parser import parse

    return parse(text, file)


def _digest(text: str, file: str) -> bytes:
    """Text, file name (positions carry it), and the version and files of the parser: a change to any makes a new tree."""

    h = hashlib.sha256(FORMAT + __version__.encode())
    package = Path(__file__).parent.parent
    for source in (grammar_path(), *(package / name for name in _PARSER_SOURCES)):
        info = source.stat()
        h.update(f"{source}:{info.st_mtime_ns}:{info.st_size};".encode())
    h.update(file.encode("utf-8", "surrogatepass") + b"\0" + text.encode("utf-8", "surrogatepass"))
    return h.digest()


# ---- trust --------------------------------------------------------------------------
def _open_folder(folder: Path, create: bool) -> int | None:
    """A descriptor of the cache folder once it is shown to be ours alone; None if it does not exist."""
    if create:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return None
    try:
        _require_private(os.fstat(fd), f"the folder {folder}")
    except _Untrusted:
        os.close(fd)
        raise
    return fd


def _require_private(info: os.stat_result, what: str) -> None:
    if info.st_uid != os.geteuid():
        raise _Untrusted(f"{what} belongs to another user (uid {info.st_uid})")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise _Untrusted(f"{what} can be written by other users (mode {stat.S_IMODE(info.st_mode):o})")


def _warn_once(folder: Path, why: str) -> None:
    if str(folder) in _warned:
        return
    _warned.add(str(folder))
    print(
        f"cnndsl: warning: not using the parse cache: {why}; make it yours with mode 700, or set "
        "CNNDSL_CACHE_DIR to a private folder (CNNDSL_NO_CACHE=1 turns the cache off)",
        file=sys.stderr,
    )


# ---- reading and writing ----------------------------------------------------------
def _read(folder: Path, entry: str, key: bytes, text: str, file: str) -> ast.Program | None:
    """The cached tree, or None for a miss; _Untrusted for a folder or entry another user could have written."""
    try:
        fd = _open_folder(folder, create=False)
    except OSError:
        return None
    if fd is None:
        return None
    try:
        data = _read_entry(fd, entry, folder)
    finally:
        os.close(fd)
    if data is None or not data.startswith(key):
        return None
    try:
        return decode(json.loads(data[len(key) :]), text, file)
    except (ValueError, TypeError, RecursionError):  # a torn or foreign entry is a miss, never an error
        return None


def _read_entry(folder_fd: int, entry: str, folder: Path) -> bytes | None:
    try:
        fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder_fd)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_ENTRY_BYTES:
            return None
        _require_private(info, f"the entry {folder / entry}")
        with open(fd, "rb", closefd=False) as stream:
            data = stream.read(MAX_ENTRY_BYTES + 1)
        return data if len(data) <= MAX_ENTRY_BYTES else None
    finally:
        os.close(fd)


def _write(folder: Path, entry: str, key: bytes, program: ast.Program) -> None:
    """Write the entry 0600 through a temporary name, then rename it into place; failures only cost a parse."""
    try:
        data = key + json.dumps(encode(program), separators=(",", ":")).encode()
    except (ValueError, RecursionError):
        return
    if len(data) > MAX_ENTRY_BYTES:
        return
    try:
        fd = _open_folder(folder, create=True)
    except OSError:
        return
    if fd is None:
        return
    import secrets  # only when an entry is written: not on a warm cache's start-up

    temp = f".{entry}.{secrets.token_hex(8)}.part"
    try:
        out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=fd)
        with open(out, "wb") as stream:
            stream.write(data)
        os.replace(temp, entry, src_dir_fd=fd, dst_dir_fd=fd)
        _prune(fd, entry, len(data))
    except OSError:
        _unlink(temp, fd)
    finally:
        os.close(fd)


def _prune(folder_fd: int, kept: str, kept_bytes: int) -> None:
    """Keep the folder within MOST_ENTRIES and MOST_BYTES: one entry per path ever parsed (temporary files,
    generated docs) would otherwise grow it for good. The entries written longest ago go first, costing a
    parse each if their file comes back; a killed writer's temporary file goes after STALE_PART_S. Nothing
    else in the folder is touched, and no link is followed."""
    import time  # only when an entry is written, as `secrets`

    others, oldest_part = [], time.time() - STALE_PART_S
    with os.scandir(folder_fd) as listing:
        for item in listing:
            try:
                info = item.stat(follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            if _is_entry(item.name) and item.name != kept:
                others.append((info.st_mtime_ns, item.name, info.st_size))
            elif item.name.startswith(".") and item.name.endswith(".part") and info.st_mtime < oldest_part:
                _unlink(item.name, folder_fd)
    count, size = 1, kept_bytes
    for _, name, entry_bytes in sorted(others, reverse=True):  # newest first
        count, size = count + 1, size + entry_bytes
        if count > MOST_ENTRIES or size > MOST_BYTES:
            _unlink(name, folder_fd)


def _is_entry(name: str) -> bool:
    stem, _, suffix = name.partition(".")
    return suffix == "ast" and len(stem) == 32 and all(char in "0123456789abcdef" for char in stem)


def _unlink(name: str, folder_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=folder_fd)
    except OSError:
        pass


# ---- the tree as JSON data ----------------------------------------------------------
def encode(node: Any) -> Any:
    """A syntax node as JSON data: `[class name, field, ...]`, positions as `[line, column]`."""
    if isinstance(node, SourcePos):
        return [node.line, node.column]
    if type(node).__name__ in _NODES and _NODES[type(node).__name__] is type(node):
        return [type(node).__name__, *(encode(getattr(node, name)) for name in node._fields)]
    if isinstance(node, (list, tuple)):
        return [encode(item) for item in node]
    if node is None or type(node) in (str, int, float, bool):
        return node
    raise ValueError(f"{type(node).__name__} is no part of a syntax tree")


def decode(data: Any, text: str, file: str) -> ast.Program:
    """The Program that `data` encodes, which must be of this text and file; _Malformed for anything else."""
    program = _decoder(ast.Program)(data, file)
    if program.text != text or program.file != file:
        raise _Malformed("an entry of another text")
    return program


Decoder = Callable[[Any, str], Any]
_decoders: dict[Any, Decoder] = {}


def _decoder(hint: Any) -> Decoder:
    """The checking decoder for a declared field type, made once per type."""
    if hint not in _decoders:
        _decoders[hint] = _make_decoder(hint)
    return _decoders[hint]


def _make_decoder(hint: Any) -> Decoder:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is SourcePos:
        return _position
    if hint in (str, bool):
        return lambda data, file: _checked(data, type(data) is hint, hint.__name__)
    if origin in (typing.Union, types.UnionType) and set(args) == {int, float}:
        return lambda data, file: _checked(data, type(data) in (int, float), "a number")
    if origin in (typing.Union, types.UnionType):
        inner = tuple(arg for arg in args if arg is not type(None))
        one = _decoder(inner[0]) if len(inner) == 1 else (lambda data, file: _node(data, file, inner))
        if len(inner) == len(args):
            return one
        return lambda data, file: None if data is None else one(data, file)
    if origin is list and _decoder(args[0]) is _decoder(Union[int, float]):  # noqa: UP007 - a runtime value  # a NumberList's million numbers
        return lambda data, file: _checked(
            data, type(data) is list and all(type(n) in (int, float) for n in data), "a list of numbers"
        )
    if origin is list:
        item = _decoder(args[0])
        return lambda data, file: [item(value, file) for value in _checked(data, type(data) is list, "a list")]
    if origin is tuple:
        items = [_decoder(arg) for arg in args]
        return lambda data, file: tuple(
            decode_item(value, file)
            for decode_item, value in zip(
                items, _checked(data, type(data) is list and len(data) == len(items), "a pair")
            )
        )
    if isinstance(hint, type) and _NODES.get(hint.__name__) is hint:
        return lambda data, file: _node(data, file, (hint,))
    raise TypeError(f"the syntax tree declares a field of type {hint!r}, which the cache cannot decode")


def _checked(data: Any, ok: bool, what: str) -> Any:
    if not ok:
        raise _Malformed(f"expected {what}, got {type(data).__name__}")
    return data


def _position(data: Any, file: str) -> SourcePos:
    ok = type(data) is list and len(data) == 2 and all(type(n) is int and n >= 1 for n in data)
    return SourcePos(file, *_checked(data, ok, "a position"))


def _node(data: Any, file: str, kinds: tuple) -> Any:
    """A node of one of the syntax classes `kinds` (or a subclass), its fields decoded by their declared types."""
    if type(data) is not list or not data or data[0] not in _NODES:
        raise _Malformed("expected a syntax node")
    cls = _NODES[data[0]]
    if not issubclass(cls, kinds):
        raise _Malformed(f"a {cls.__name__} where a {' or '.join(k.__name__ for k in kinds)} belongs")
    fields = _fields(cls)
    if len(data) != len(fields) + 1:
        raise _Malformed(f"a {cls.__name__} with {len(data) - 1} fields")
    node = cls(*(decode_field(value, file) for (_, decode_field), value in zip(fields, data[1:])))
    if isinstance(node, ast.Binary) and node.op not in _OPERATORS:
        raise _Malformed(f"unknown operator {node.op!r}")
    return node


_field_decoders: dict[type, list[tuple[str, Decoder]]] = {}


def _fields(cls: type) -> list[tuple[str, Decoder]]:
    if cls not in _field_decoders:
        hints = cls.__init__.__annotations__  # evaluated where the class is defined: types, not text
        _field_decoders[cls] = [(name, _decoder(hints[name])) for name in cls._fields]
    return _field_decoders[cls]
