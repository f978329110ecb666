"""Running out of memory while a network runs on images (`train`, `predict`) becomes a located error at the
layer with the largest output, which no forward can do without; torch's allocator reports it as a RuntimeError
("can't allocate memory"), Python's as a MemoryError."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..core.errors import LimitProblem
from ..figures.report import format_bytes
from ..graph import ir
from ..ops.base import format_shape


@contextmanager
def located_out_of_memory(network, doing: str) -> Iterator[None]:
    """`doing` says what ran out (`run `t` on an image`)."""
    try:
        yield
    except (MemoryError, RuntimeError) as error:
        if not isinstance(error, MemoryError) and "allocate memory" not in str(error):
            raise
        largest = max((layer for _, layer in ir.layers(network.graph)), key=lambda layer: layer.figures.memory_bytes)
        raise LimitProblem(
            f"not enough memory to {doing}: layer `{largest.name}` alone outputs {format_shape(largest.shape)} "
            f"({format_bytes(largest.figures.memory_bytes)} as float32 an image), every layer "
            f"{format_bytes(network.totals.memory_bytes)}",
            largest.pos,
            "use a smaller --input, or give cnndsl more memory",
        ) from None
