"""An ONNX model's tensors are made only once the model is known to fit: each initializer is first a shape and
a recipe, so that the exact size of the model is known before any weight is drawn, loaded or computed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import onnx

from ..core.errors import CnnDslError, LimitProblem, SourcePos
from ..figures.report import format_bytes
from ..ops import format_shape


@dataclass
class Pending:
    """One initializer still to be made: `make()` returns the array of `shape` and `dtype`; `pos` is the
    layer that asks for it, where errors in making it (a checkpoint that does not fit) point."""

    shape: tuple[int, ...]
    dtype: np.dtype
    make: Callable[[], np.ndarray]
    pos: SourcePos | None = None

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    def array(self) -> np.ndarray:
        try:
            return self.make()
        except CnnDslError as error:
            raise error.at(self.pos)

    def derived(self, shape: tuple[int, ...], compute: Callable[[], np.ndarray]) -> Pending:
        """Another float32 initializer computed from others, made as lazily, pointing at the same layer."""
        return Pending(tuple(shape), np.dtype(np.float32), compute, self.pos)


@contextmanager
def memory_for(name: str, tensor: Pending) -> Iterator[None]:
    """Making `tensor` (and its bytes) ran out of memory: a located error naming it and its size, not a traceback."""
    try:
        yield
    except MemoryError:
        raise LimitProblem(
            f"not enough memory to make the ONNX tensor `{name}` ({format_shape(tensor.shape)} "
            f"{tensor.dtype}, {format_bytes(tensor.nbytes)})",
            tensor.pos,
            "the tensor is made for this layer: check its size, or give cnndsl more memory",
        ) from None


def ready(array: np.ndarray, pos: SourcePos | None = None) -> Pending:
    """A small constant the rule has already made."""
    return Pending(array.shape, array.dtype, lambda: array, pos)


def once(make: Callable[[], np.ndarray]) -> Callable[[], np.ndarray]:
    """A recipe read by two others (BatchNorm's scale, read by the folded weight and bias) is made once."""
    return functools.cache(make)


def serialized_size(model: onnx.ModelProto, pending: dict[str, Pending]) -> int:
    """The exact byte size of `model` serialized once each initializer, now without data, holds the bytes
    `pending` describes as raw_data: protobuf's length-prefixed fields computed, not built."""
    graph = model.graph
    grown = sum(
        _field(tensor.ByteSize() + _field(pending[tensor.name].nbytes)) - _field(tensor.ByteSize())
        for tensor in graph.initializer
    )
    return model.ByteSize() - _field(graph.ByteSize()) + _field(graph.ByteSize() + grown)


def _field(length: int) -> int:
    """A length-delimited field of `length` bytes with a one-byte tag (raw_data, initializer and graph are
    fields 9, 5 and 7): tag, varint length, payload."""
    return 1 + max(1, math.ceil(length.bit_length() / 7)) + length
