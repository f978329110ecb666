"""Where an ONNX export's weights come from: a torch module, a state_dict, a checkpoint file, or fresh numpy.

Parameters are keyed by the torch backend's names, `<IR node name>.<param>`. The fresh and `.safetensors`
paths never import torch (its import alone costs seconds); only a `.pt` checkpoint or a torch object does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np

from ..errors import FileProblem, ValueProblem, did_you_mean
from ..ops.base import format_shape

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
    """Hands out parameters by name in the order the network asks for them, checking each one fits.

    `given` None means fresh initialisation; otherwise every parameter the network asks for must be
    there with the same shape, and every given parameter must be asked for (or declared unused).
    """

    def __init__(self, given: Optional[Mapping[str, Any]] = None, origin: str = "the weights"):
        self.given = given
        self.origin = origin
        self.rng = np.random.default_rng()
        self.asked: set[str] = set()

    def take(self, name: str, shape: tuple, init: Init) -> np.ndarray:
        """The parameter `name` as float32 of `shape`: given, or freshly drawn."""
        self.asked.add(name)
        if self.given is None:
            return init(self.rng, tuple(shape))
        if name not in self.given:
            raise ValueProblem(
                f"{self.origin} has no parameter `{name}`, which the network needs",
                hint=did_you_mean(name, self.given) or "was it saved from this network, with the same options?",
            )
        array = as_array(self.given[name])
        if tuple(array.shape) != tuple(shape):
            raise ValueProblem(
                f"{self.origin} gives `{name}` the shape {format_shape(array.shape)}; "
                f"the network needs {format_shape(shape)}",
                hint="check the network's parameters (-p) and input shape against those it was trained with",
            )
        return np.ascontiguousarray(array, dtype=np.float32)

    def skip(self, name: str) -> None:
        """A stored value the export does not need (BatchNorm's `num_batches_tracked`)."""
        self.asked.add(name)

    def check_all_used(self) -> None:
        """A given parameter the network never asked for means the checkpoint is another network's."""
        if self.given is None:
            return
        for name in self.given:
            if name not in self.asked:
                raise ValueProblem(
                    f"{self.origin} has a parameter `{name}` that the network does not have",
                    hint=did_you_mean(name, self.asked) or "was it saved from this network, with the same options?",
                )


def weights_from(source: Any) -> Weights:
    """Weights from None (fresh), an nn.Module, a state_dict, or a `.pt`/`.safetensors` path."""
    if source is None:
        return Weights()
    if isinstance(source, (str, Path)):
        path = Path(source)
        return Weights(load_checkpoint(path), str(path))
    if hasattr(source, "state_dict"):
        return Weights(source.state_dict(), "the module")
    if isinstance(source, Mapping):
        return Weights(source, "the state_dict")
    raise ValueProblem(f"cannot take weights from a {type(source).__name__}",
                       hint="give a module, a state_dict, or a .pt or .safetensors file")


def load_checkpoint(path: Path) -> Mapping[str, Any]:
    """A state_dict from `.safetensors` (numpy, no torch) or a torch file (`weights_only=True`)."""
    if not path.is_file():
        raise FileProblem(f"cannot read weights: {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.numpy import load_file

            return load_file(str(path))
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # the loaders raise many types for a damaged or foreign file
        raise FileProblem(f"cannot read weights from {path}: {error}",
                          hint="give a state_dict saved with torch.save or safetensors") from None
    if not isinstance(state, Mapping) or not all(hasattr(value, "shape") for value in state.values()):
        raise FileProblem(f"{path} holds no state_dict (a mapping of parameter names to tensors)",
                          hint="save `module.state_dict()`, not the module or a training checkpoint")
    return state


def as_array(value: Any) -> np.ndarray:
    """A numpy array from a numpy array or a torch tensor (floats of any width become float32)."""
    if hasattr(value, "detach"):
        tensor = value.detach().cpu()
        return (tensor.float() if tensor.is_floating_point() else tensor).numpy()
    return np.asarray(value)
