"""Where an ONNX export's weights come from: a checkpoint matched to the network (cnndsl.weights), or fresh numpy.

Parameters are keyed by the torch backend's names, `<IR node name>.<param>`. Fresh weights and `.safetensors`
files never import torch (its import alone costs seconds); only a `.pt` checkpoint or a torch object does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import onnx

from ..weights.checkpoint import arrays, layer_names, layer_of, read, resolve
from ..weights.match import Slot

Init = Callable[[np.random.Generator, tuple], np.ndarray]


def uniform(bound: float) -> Init:
    """U(-bound, bound), PyTorch's default for conv and linear weights and biases (bound = 1/sqrt(fan_in))."""

    def draw(rng: np.random.Generator, shape: tuple) -> np.ndarray:
        values = rng.random(shape, dtype=np.float32)
        values *= 2 * bound
        values -= bound
        return values

    return draw


def filled(value: float) -> Init:
    """A constant, PyTorch's default for BatchNorm: scale and variance 1, shift and mean 0."""
    return lambda rng, shape: np.full(shape, value, dtype=np.float32)


class Weights:
    """Hands out parameters by name as the emitter asks for them: given (already matched and shaped), else fresh."""

    def __init__(self, given: Mapping[str, np.ndarray] | None = None):
        self.given = given or {}
        self.rng = np.random.default_rng()

    def take(self, name: str, shape: tuple, init: Init) -> np.ndarray:
        """The parameter `name` as float32 of `shape`: given, or freshly drawn."""
        if name in self.given:
            return self.given[name]
        return init(self.rng, tuple(shape))

    def skip(self, name: str) -> None:
        """A stored value the export does not need (BatchNorm's `num_batches_tracked`)."""


def weights_for(network, source: Any, strict: bool = True) -> Weights:
    """Fresh weights for None; else the checkpoint's, matched by name or structure (strict: all or an error)."""
    if source is None:
        return Weights()
    slots = network_slots(network)
    checkpoint = read(source, network.name)
    return Weights(arrays(checkpoint, resolve(network.graph, slots, checkpoint, strict), slots))


class _Recorder(Weights):
    """Notes what the emitter asks for and hands out zero-cost placeholders."""

    def __init__(self):
        super().__init__()
        self.asked: list[tuple[str, tuple, bool]] = []

    def take(self, name: str, shape: tuple, init: Init) -> np.ndarray:
        self.asked.append((name, tuple(shape), True))
        return np.broadcast_to(np.float32(0), shape)

    def skip(self, name: str) -> None:
        self.asked.append((name, (), False))


def network_slots(network) -> list[Slot]:
    """Every tensor the network holds, found by emitting it once with placeholder weights: no torch needed."""
    from .onnx import Emitter, emit_nodes

    recorder = _Recorder()
    emit_nodes(network, Emitter(onnx.defs.onnx_opset_version(), recorder))
    nodes = layer_names(network.graph)
    return [Slot(name, shape, layer_of(name, nodes), floating) for name, shape, floating in recorder.asked]
