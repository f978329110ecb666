"""What a layer kind holds and how it is shown, declared once on the kind (`OpKind.tensors`, `OpKind.example`).

The torch backend loads checkpoints into the tensors declared here, the ONNX emitter makes its initializers
from them, weights matching lists a network's tensors from them and the tests build each kind's example,
as timm's `default_cfgs` are read by its loaders and its tests alike.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ..core.records import FrozenRecord

Shape = tuple[int, ...]
PARAMETER, BUFFER = "parameter", "buffer"


class Uniform(NamedTuple):
    """U(-bound, bound): PyTorch's default for convolution and linear weights and biases, bound = 1/√fan_in."""

    bound: float


class Filled(NamedTuple):
    """Every value the same: PyTorch's default for norms (scale and variance 1, shift and mean 0)."""

    value: float


class Ramp(NamedTuple):
    """The values 0, 1, 2, … in order: the fixed bins of Ultralytics' DFL convolution, which it never trains."""


class Table(NamedTuple):
    """Fixed values, row by row (flattened): RealNVP's alternating coupling masks, an identity matrix."""

    values: tuple


ZEROS, ONES = Filled(0.0), Filled(1.0)


class TensorSpec(NamedTuple):
    """One tensor a layer holds, as its torch module's state_dict has it.

    `name` is the key within the layer (`weight`, `running_var`); "" where the layer is the tensor (layer scale,
    held under the layer's own name). `init` is what PyTorch starts it at. A parameter is learned, a buffer is
    kept but not learned (running statistics); `dtype` is `int64` for a step count.
    """

    name: str
    shape: Shape
    init: Uniform | Filled | Ramp | Table = ZEROS
    role: str = PARAMETER
    dtype: str = "float32"
    trainable: bool = True  # False for a parameter its module keeps from training (requires_grad=False)

    @property
    def floating(self) -> bool:
        return self.dtype.startswith("float")

    def key(self, layer: str) -> str:
        """The state_dict key of this tensor in the layer called `layer`."""
        return f"{layer}.{self.name}" if self.name else layer


class Example(FrozenRecord):
    """A call of the kind as a user writes it, on an input of `input`; `before` is written in front of it where
    the kind needs something there (a join adds the input, `@in`, to the layer before it)."""

    __slots__ = ("call", "input", "before")

    def __init__(self, call: str, input: Shape = (4, 5, 5), before: str = "") -> None:
        self._set(call, input, before)

    def network(self, name: str = "example", input: Shape | None = None, first: str = "") -> str:
        """The example as a whole network, on `input` if given (a vector of as many values, say), after the
        layers `first` if given."""
        shape = "x".join(map(str, input or self.input))
        layers = ", ".join(part for part in (first, self.before, self.call) if part)
        return f"network {name} {{\n  input {shape}\n  {layers}\n}}\n"


def count(specs: list[TensorSpec], role: str, trainable: bool | None = None) -> int:
    """How many values the tensors of `role` hold together (a scalar holds one); of those trainable or not, if given."""
    total = 0
    for spec in specs:
        if spec.role == role and trainable in (None, spec.trainable):
            total += math.prod(spec.shape)
    return total
