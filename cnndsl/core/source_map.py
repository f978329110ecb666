"""Where each layer of a compiled output came from, named without the compiling machine's paths.

The root `.cnn` file is named by its file name, a file it imports by its path relative to the root file's
folder, a library file as `library:NAME.cnn`. Outputs carry these names, so that they are the same bytes
wherever they are compiled and say nothing of the folders they were compiled in.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from .errors import SourcePos
from .resources import library_dir

LIBRARY = "library:"


@lru_cache(maxsize=256)
def source_name(file: str, root: str) -> str:
    """`file` (a layer's position's file) named for an output compiled from the root file `root`."""
    path, root_path = Path(file).absolute(), Path(root).absolute()
    if path.is_relative_to(library_dir().resolve()):
        return LIBRARY + path.relative_to(library_dir().resolve()).as_posix()
    if file == root or path.resolve() == root_path.resolve():
        return root_path.name
    return Path(os.path.relpath(path.resolve(), root_path.resolve().parent)).as_posix()


def origin(pos: SourcePos, group: tuple[str, ...], root: str) -> str:
    """`FILE:LINE:COLUMN in GROUP.PATH` for a layer written at `pos` inside the stages and blocks `group`, in an
    output compiled from the root file `root`."""
    where = f"{source_name(pos.file, root)}:{pos.line}:{pos.column}"
    return f"{where} in {'.'.join(group)}" if group else where
