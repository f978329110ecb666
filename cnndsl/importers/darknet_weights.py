"""Darknet .weights -> tensors under cnndsl's names, every float of the file accounted for.

The file is a header (major, minor, revision as int32, then `seen`: 64-bit where major*10+minor >= 2,
else 32-bit) and float32s layer by layer in cfg order: a convolution's biases, then with batch norm its
scales, rolling mean and rolling variance, then its weights; a connected layer's biases, weights, then
its norm. Darknet's norm divides by sqrt(var) + 1e-6: the variance is written as (sqrt(var) + 1e-6)^2
- 1e-12, which bn(eps=1e-12) turns back into the same divisor."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import CnnDslError, SourcePos
from ..graph import ir

if TYPE_CHECKING:
    import numpy as np

    from .darknet import Layer

BN_EPS = 1e-12


def header_size(prefix: bytes, file: str) -> int:
    """Bytes before the first float: 12 for the three version numbers plus 4 or 8 for `seen`."""
    import numpy as np

    if len(prefix) < 12:
        raise CnnDslError(f"{file}: too short for a Darknet weights header ({len(prefix)} bytes)")
    major, minor, _ = np.frombuffer(prefix[:12], dtype="<i4")
    if major >= 1000 or minor >= 1000:
        raise CnnDslError(f"{file}: version {major}.{minor} stores transposed weights, which are not imported")
    return 12 + (8 if major * 10 + minor >= 2 else 4)


def read_weights(path: str | Path, layers: list[Layer], cfg: str) -> list[tuple[Layer, dict[str, np.ndarray]]]:
    """Each layer that holds tensors with them in torch's layout; a file with too few or too many floats
    is an error naming both counts, at the cfg line of the layer where the file ran out."""
    import numpy as np

    path = Path(path)
    try:
        with path.open("rb") as stream:
            skip = header_size(stream.read(20), str(path))
            size = path.stat().st_size
    except OSError as error:
        raise CnnDslError(f"{path}: cannot read: {error.strerror}") from None
    holding = [layer for layer in layers if layer.tensors]
    needed = [_count(layer.tensors) for layer in holding]
    floats, spare = divmod(size - skip, 4)
    total = sum(needed)
    if floats < total or spare:
        taken, at = 0, holding[-1] if holding else None
        for layer, count in zip(holding, needed, strict=True):
            if taken + count > floats:
                at = layer
                break
            taken += count
        line = at.section.line if at else 1
        raise CnnDslError(
            f"{path.name} holds {floats} floats after its {skip}-byte header{f' and {spare} stray bytes' * bool(spare)};"
            f" the cfg's layers need {total}, and it ends inside this layer",
            SourcePos(cfg, line, 1),
        )
    if floats > total:
        raise CnnDslError(
            f"{path.name} holds {floats} floats after its {skip}-byte header, {floats - total} more than the"
            f" cfg's layers take ({total}): the file belongs to another cfg",
            SourcePos(cfg, 1, 1),
        )
    data = np.fromfile(path, dtype="<f4", offset=skip)
    result, at = [], 0
    for layer in holding:
        outputs, inputs, size, normed = layer.tensors
        tensors, at = _layer_tensors(data, at, outputs, inputs, size, normed)
        result.append((layer, tensors))
    return result


def _count(tensors: tuple[int, int, int, bool]) -> int:
    outputs, inputs, size, normed = tensors
    return outputs * inputs * max(size, 1) ** 2 + outputs * (3 if normed else 0) + outputs


def _layer_tensors(data, at: int, outputs: int, inputs: int, size: int, normed: bool):
    import numpy as np

    def take(count: int, shape: tuple) -> np.ndarray:
        nonlocal at
        part = data[at : at + count].reshape(shape).astype(np.float32)
        at += count
        return part

    weight_shape = (outputs, inputs, size, size) if size else (outputs, inputs)
    count = outputs * inputs * max(size, 1) ** 2
    tensors = {"bias": take(outputs, (outputs,))}
    if size:  # a convolution: biases, [scales, mean, variance], weights
        if normed:
            tensors |= _norm(take(outputs, (outputs,)), take(outputs, (outputs,)), take(outputs, (outputs,)))
        tensors["weight"] = take(count, weight_shape)
    else:  # a connected layer: biases, weights, [scales, mean, variance]
        tensors["weight"] = take(count, weight_shape)
        if normed:
            tensors |= _norm(take(outputs, (outputs,)), take(outputs, (outputs,)), take(outputs, (outputs,)))
    return tensors, at


def _norm(scales, mean, variance) -> dict:
    import numpy as np

    divisor = np.sqrt(variance.astype(np.float64)) + 1e-6
    return {"scales": scales, "mean": mean, "variance": (divisor**2 - BN_EPS).astype(np.float32)}


def state_dict(network, loaded: list[tuple[Layer, dict]]) -> dict[str, np.ndarray]:
    """The tensors under cnndsl's module names: the i-th conv/fc node of the network takes the i-th
    darknet layer that holds weights, the norm after it that layer's statistics."""
    graph = network.graph
    holders = [node for node, layer in ir.layers(graph) if layer.op in ("conv", "fc")]  # the layers darknet loads
    if len(holders) != len(loaded):
        raise CnnDslError(f"the network has {len(holders)} conv/fc layers, the cfg {len(loaded)}")
    state = {}
    for node, (_, tensors) in zip(holders, loaded, strict=True):
        name = ir.layer(graph, node).name
        state[f"{name}.weight"] = tensors["weight"]
        if "scales" not in tensors:
            state[f"{name}.bias"] = tensors["bias"]
            continue
        norm_name = ir.layer(graph, next(iter(graph.successors(node)))).name
        state[f"{norm_name}.weight"] = tensors["scales"]
        state[f"{norm_name}.bias"] = tensors["bias"]
        state[f"{norm_name}.running_mean"] = tensors["mean"]
        state[f"{norm_name}.running_var"] = tensors["variance"]
    return state
