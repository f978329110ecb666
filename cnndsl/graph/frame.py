"""What expansion carries into each body: the frame of a block instance or the network body, and the limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.errors import SourcePos
from ..core.resources import DEFAULT_MAX_NODES
from ..front.evaluate import Env
from .ir import GroupScope

__all__ = ["DEFAULT_MAX_NODES", "MAX_CALL_DEPTH", "MAX_DEPTH", "STEPS_PER_NODE", "Frame"]

MAX_CALL_DEPTH = 64
MAX_DEPTH = 100  # bodies inside bodies, across block calls: keeps the recursive expansion off Python's limit
STEPS_PER_NODE = 4  # statements and loop turns allowed per node of the limit: loops that add nothing still end


@dataclass
class Frame:
    """What a block instance (or the network body) expands within."""

    env: Env
    group: GroupScope
    taps: dict[str, tuple[int, SourcePos]]
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    depth: int = 0
    entry: int | None = None  # the block instance's input (`@in`); None in the network body: its input
    turns: dict[str, list[int]] = field(default_factory=dict)  # each tap's node of every loop turn, for `@t[i]`
    blocks: dict[str, Frame] = field(default_factory=dict)  # the frame of each labelled block call, for `@b.t`

    def but(self, **changes: Any) -> Frame:
        """This frame with some fields changed: `dataclasses.replace` without its per-field checks, as
        expansion makes one for every body it enters."""
        return Frame(**{**self.__dict__, **changes})
