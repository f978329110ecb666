"""The shipped library as a catalogue: every named network with its input, params and MACs.

A family (`network resnet(depths, unit) {...}`) that other library networks instantiate is not
an entry itself: its default parameters only repeat one of them. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from .api import load
from .core.resources import library_dir
from .front import syntax as ast
from .front.load import Loader


@dataclass(frozen=True)
class Entry:
    name: str
    file: Path
    input_shape: tuple[int, ...]
    params: int
    macs: int


def network_names() -> list[tuple[str, Path]]:
    """(name, file) of every library network that is not a family, in file order."""
    loader = Loader()
    defined, families = [], set()
    for path in sorted(library_dir().glob("*.cnn")):
        for definition in loader.load_path(path).program.definitions:
            if isinstance(definition, ast.NetworkAlias):
                families.add(definition.target)
            if isinstance(definition, (ast.NetworkDef, ast.NetworkAlias)):
                defined.append((definition.name, path))
    return [(name, path) for name, path in defined if name not in families]


def catalogue(pattern: str | None = None) -> list[Entry]:
    """Every library network whose name matches `pattern` (a glob, or else a part of the name; None: every one),
    expanded and counted. Names are matched first, so `cnndsl list vgg` expands the VGGs alone."""
    if pattern and not any(character in pattern for character in "*?["):
        pattern = f"*{pattern}*"
    entries = []
    for name, path in network_names():
        if pattern and not fnmatchcase(name, pattern):
            continue
        network = load(path, network=name)
        entries.append(Entry(name, path, network.input_shape, network.params, network.macs))
    return entries
