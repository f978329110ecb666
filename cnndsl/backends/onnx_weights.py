"""Where an ONNX export's tensors come from: a checkpoint matched to the network (cnndsl.weights), or drawn fresh
with numpy as each layer's kind declares them (`OpKind.tensors`: U(-bound, bound) or a constant, as PyTorch).

Tensors are keyed by the torch backend's names, `<IR node name>.<param>`. Fresh weights and `.safetensors`
files never import torch (its import alone costs seconds); only a `.pt` checkpoint or a torch object does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..ops.tensors import Ramp, Table, TensorSpec, Uniform
from ..weights.checkpoint import arrays, read, resolve
from ..weights.slots import network_slots


class Weights:
    """The matched checkpoint's arrays by the network's names (none for fresh weights), and the generator
    that draws every tensor the checkpoint does not give."""

    def __init__(self, given: Mapping[str, np.ndarray] | None = None, seed: int | None = None):
        self.given = given or {}
        self.rng = np.random.default_rng(seed)

    def fresh(self, spec: TensorSpec) -> np.ndarray:
        """A float32 tensor drawn as the kind declares it starts: U(-bound, bound), 0, 1, 2, … in order, a fixed
        table, or every value the same."""
        if isinstance(spec.init, Uniform):
            values = self.rng.random(spec.shape, dtype=np.float32)
            values *= 2 * spec.init.bound
            values -= spec.init.bound
            return values
        if isinstance(spec.init, Ramp):
            return np.arange(np.prod(spec.shape), dtype=np.float32).reshape(spec.shape)
        if isinstance(spec.init, Table):
            return np.array(spec.init.values, dtype=np.float32).reshape(spec.shape)
        return np.full(spec.shape, spec.init.value, dtype=np.float32)


def weights_for(network, source: Any, strict: bool = True, seed: int | None = None) -> Weights:
    """Fresh weights for None (drawn from `seed`, or from fresh entropy); else the checkpoint's, matched by name
    or structure (strict: all or an error)."""
    if source is None:
        return Weights(seed=seed)
    slots = network_slots(network.graph)
    checkpoint = read(source, network.name, slots)
    return Weights(arrays(checkpoint, resolve(network.graph, slots, checkpoint, strict), slots))
