"""Where the shipped grammar and library live, for editable and regular installs alike.

A wheel carries them inside the package (`cnndsl/grammar`, `cnndsl/library`); a source
checkout keeps them at the repository's top level. One lookup serves both.
"""

from __future__ import annotations

import os
import resource
from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent

# Nodes a network may expand to unless --max-nodes / max_nodes= says otherwise: the most at which every
# analysis (check, summary, ONNX, DOT, serve) of the worst shapes measured answers within 5 s of CPU
# (docs/errors.md, "Every limit"; tests/test_bounds.py). Held here, below the CLI, so that its --help reads it
# without importing the expander.
DEFAULT_MAX_NODES = 10_000


@cache
def data_dir(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cnndsl's {name}/ folder is missing from this installation")


def grammar_path() -> Path:
    return data_dir("grammar") / "cnn.lark"


def library_dir() -> Path:
    return data_dir("library")


def memory_bytes() -> int:
    """This machine's physical memory, or the address space this process may use where that is less (a
    service's RLIMIT_AS); half of it is the most weights a backend may allocate."""
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    return physical if limit == resource.RLIM_INFINITY else min(physical, limit)
