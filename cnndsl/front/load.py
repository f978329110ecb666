"""Source files -> modules: reading safely, imports, and the shipped library's index."""

from __future__ import annotations

import re
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..core.errors import CnnDslError, FileProblem, LimitProblem, NameProblem, SourcePos, did_you_mean
from ..core.records import Record
from ..core.regular_files import open_regular
from ..core.resources import library_dir
from . import syntax as ast
from .cache import parse_file_text, parse_text
from .evaluate import BlockRef, Env, Evaluator, NetworkRef, no_incoming

MAX_IMPORT_DEPTH = 16
MAX_FILE_BYTES = 4 * 1024 * 1024


class Module(Record):
    """A parsed file with everything it defines or imports bound in `env`."""

    __slots__ = ("program", "env", "networks")

    def __init__(self, program: ast.Program, env: Env, networks: list[str]) -> None:
        self.program, self.env, self.networks = program, env, networks  # networks: defined in this file, in order


def read_source(path: Path, regular_only: bool = False) -> str:
    """The text of a .cnn file, or a FileProblem that says what is wrong with it.

    `regular_only` (for imports, and for showing the line an error points at) refuses anything but a
    regular file, checked before it is opened and opened without blocking, so that a FIFO or a device
    can neither hang the load nor be read from.
    """
    where = str(path)

    def not_cnn(kind: str) -> FileProblem:
        return FileProblem(f"{where} is {kind}, not a .cnn file")

    try:
        with open_regular(path, not_cnn) if regular_only else path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)  # bounded: /dev/zero or a huge file must not fill memory
    except FileNotFoundError:
        raise FileProblem(
            f"{where}: no such file", hint="check the path, or give a library name like resnet50"
        ) from None
    except IsADirectoryError:
        raise FileProblem(f"{where} is a directory, not a .cnn file") from None
    except OSError as error:
        raise FileProblem(f"{where}: cannot read it ({error.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise FileProblem(f"{where} is larger than {MAX_FILE_BYTES:,} bytes, the most a .cnn file may have")
    if b"\0" in data:
        raise FileProblem(f"{where} is a binary file, not .cnn text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        before = data[: error.start]
        pos = SourcePos(where, before.count(b"\n") + 1, error.start - (before.rfind(b"\n") + 1) + 1)
        raise FileProblem(
            f"not UTF-8 text (byte 0x{data[error.start]:02x})", pos, hint="save the file as UTF-8"
        ) from None


class Loader:
    """Loads a file and its imports once each, refusing cycles and deep chains.

    With `sandbox`, an import may name only a file in the importing file's folder or below it, or
    one of the library, links followed: what a service compiles cannot read anything else.
    """

    def __init__(self, errors: list[CnnDslError] | None = None, sandbox: bool = False) -> None:
        self.modules: dict[Path, Module] = {}
        self.stack: list[Path] = []
        self.errors = errors  # a list: record each definition's error and bind the rest (check)
        self.sandbox = sandbox

    def load_path(self, path: Path, imported: bool = False) -> Module:
        path = resolved(path)
        if path in self.modules:
            return self.modules[path]
        return self.load_text(read_source(path, regular_only=imported), str(path), path)

    def load_text(self, text: str, file: str, path: Path | None = None) -> Module:
        program = parse_file_text(text, file) if path is not None else parse_text(text, file)
        if path is not None:
            self.stack.append(path)
        try:
            module = self.bind(program, path.parent if path else Path.cwd())
        finally:
            if path is not None:
                self.stack.pop()
        if path is not None:
            self.modules[path] = module
        return module

    def bind(self, program: ast.Program, folder: Path) -> Module:
        """The module of a parsed text whose imports resolve from `folder`: for a text that is not read from a
        file, such as the editor's in `cnndsl serve`, which keeps the parse of each text it has seen."""
        env = Env()
        for item in program.imports:
            with self._recording():
                env.values.update(self._import(item, folder).env.values)
        origins: dict[str, Any] = {}
        evaluate = Evaluator(no_incoming)
        networks = []
        for definition in program.definitions:
            with self._recording():
                name = definition.name
                if name in origins:
                    raise NameProblem(f"`{name}` is defined twice (first at {origins[name]})", definition.pos)
                origins[name] = definition.pos
                if isinstance(definition, ast.BlockDef):
                    env.values[name] = BlockRef(definition, env)
                elif isinstance(definition, ast.Let):
                    env.values[name] = evaluate(definition.value, env)
                else:
                    env.values[name] = NetworkRef(definition, env)
                    networks.append(name)
        return Module(program, env, networks)

    @contextmanager
    def _recording(self):
        """Raise a definition's error, or record it and go on to the next when collecting errors."""
        try:
            yield
        except CnnDslError as error:
            if self.errors is None or isinstance(error, LimitProblem):
                raise
            self.errors.append(error)

    def _import(self, item: ast.Import, folder: Path) -> Module:
        path = (folder / item.target) if item.is_path else library_file(item.target, item.pos)
        try:
            target = resolved(path)
            self._admit(target, folder)
            if target in self.stack:
                chain = " -> ".join(p.name for p in self.stack[self.stack.index(target) :] + [target])
                raise LimitProblem(f"import cycle: {chain}", item.pos, "move the shared blocks into a third file")
            if len(self.stack) > MAX_IMPORT_DEPTH:
                raise LimitProblem(f"imports nest more than {MAX_IMPORT_DEPTH} deep", item.pos)
            return self.load_path(target, imported=True)
        except FileProblem as error:
            if error.pos is not None:  # located in the imported file, or further down its imports
                raise
            raise FileProblem(f"cannot import {item.target!r}: {error.message}", item.pos, error.hint) from None

    def _admit(self, target: Path, folder: Path) -> None:
        """Only .cnn files are imported (so no error ever shows another file's text); a sandbox bounds where."""
        if target.suffix != ".cnn":
            raise FileProblem("only .cnn files can be imported", hint="name a .cnn file, or a library file like resnet")
        if self.sandbox and not any(target.is_relative_to(root) for root in (resolved(folder), library_dir())):
            raise FileProblem(
                "the sandbox admits only files in the importing file's folder (or below) and the library",
                hint="move the file beside the importing one, or import a library file by name",
            )


def resolved(path: Path) -> Path:
    """The absolute path with links followed; a link loop is a FileProblem, not a RuntimeError."""
    if "\0" in str(path):
        raise FileProblem(f"{str(path)!r} is not a file name: it holds a NUL character")
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        raise FileProblem(f"{path}: the symbolic links loop", hint="point the link at a real file") from None


def library_file(name: str, pos=None) -> Path:
    """`import resnet`: the library file of that name."""
    path = library_dir() / f"{name}.cnn"
    if not path.is_file():
        names = [p.stem for p in library_dir().glob("*.cnn")]
        raise FileProblem(f"no library file `{name}`", pos, did_you_mean(name, names))
    return path


_NETWORK = re.compile(r"^\s*network\s+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)


@lru_cache(maxsize=1)
def library_index() -> dict[str, Path]:
    """Network name -> library file, read without parsing (a regex over the files)."""
    index: dict[str, Path] = {}
    for path in sorted(library_dir().glob("*.cnn")):
        for name in _NETWORK.findall(path.read_text(encoding="utf-8")):
            index.setdefault(name, path)
    return index
