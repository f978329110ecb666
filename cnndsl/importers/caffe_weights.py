"""Caffe .caffemodel -> tensors under cnndsl's names, every blob the prototxt's layers need checked for size.

A caffemodel is a binary NetParameter whose layers carry their blobs by layer name: a convolution its
weights (out, in/group, kh, kw) and bias, an InnerProduct (out, in) and bias, a BatchNorm the running
mean, variance and the moving-average factor those two are scaled by (Caffe divides them by it, and
takes 0 where it is 0), its Scale γ and β. Layers of the caffemodel the prototxt lacks are passed over,
as Caffe's CopyTrainedLayersFrom does."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import CnnDslError, SourcePos
from ..graph import ir
from .caffe_proto import read_caffemodel

HOLDING = ("conv", "deconv", "fc", "bn", "prelu")  # the cnndsl kinds that take a Caffe layer's blobs

if TYPE_CHECKING:
    import numpy as np

    from .caffe_layers import Holder


def _blobs(model) -> dict[str, list]:
    return {layer.name: list(layer.blobs) for layer in [*model.layer, *model.layers]}


def _values(blob):
    import numpy as np

    return np.asarray(blob.double_data if len(blob.double_data) else blob.data, dtype=np.float32)


def read_weights(path: str | Path, holders: list[Holder], prototxt: str) -> list[tuple[Holder, dict]]:
    """Each weight-holding layer with its blobs as arrays; a missing layer or a blob of the wrong size is an
    error at the prototxt line of the layer that needs it."""
    path = Path(path)
    blobs = _blobs(read_caffemodel(path))
    loaded = []
    for holder in holders:
        arrays = _checked(path, blobs, holder.layer, holder.shapes, holder, prototxt)
        if holder.op == "bn":
            arrays += _checked(path, blobs, holder.scale, [holder.shapes[0]] * 2, holder, prototxt)
        loaded.append((holder, arrays))
    return loaded


def _checked(path: Path, blobs, name: str, shapes, holder: Holder, prototxt: str) -> list:
    where = SourcePos(prototxt, holder.line, 1)
    if name not in blobs:
        raise CnnDslError(f"{path.name} holds no layer `{name}`: its weights are missing", where)
    found = blobs[name]
    if len(found) != len(shapes):
        raise CnnDslError(
            f"{path.name}: layer `{name}` holds {len(found)} blobs, the prototxt's layer takes {len(shapes)}", where
        )
    arrays = []
    for number, (blob, shape) in enumerate(zip(found, shapes, strict=True)):
        values = _values(blob)
        if values.size != math.prod(shape):
            raise CnnDslError(
                f"{path.name}: blob {number} of layer `{name}` holds {values.size} values, the prototxt's layer "
                f"needs {math.prod(shape)} ({'x'.join(map(str, shape))})",
                where,
            )
        arrays.append(values.reshape(shape))
    return arrays


def state_dict(network, loaded: list[tuple[Holder, list]]) -> dict[str, np.ndarray]:
    """The tensors under cnndsl's module names: the network's conv, deconv, fc, bn and prelu layers in order take the
    prototxt's weight-holding layers in the order the import wrote them."""
    import numpy as np

    graph = network.graph
    layers = [(node, layer) for node, layer in ir.layers(graph) if layer.op in HOLDING]
    if [layer.op for _, layer in layers] != [holder.op for holder, _ in loaded]:
        raise CnnDslError("the imported network's layers with weights do not follow the prototxt's order")
    state = {}
    for (_, layer), (holder, arrays) in zip(layers, loaded, strict=True):
        if holder.op != "bn":
            state[f"{layer.name}.weight"] = arrays[0]
            if len(arrays) > 1:
                state[f"{layer.name}.bias"] = arrays[1]
            continue
        mean, variance, factor, gamma, beta = arrays
        scale = np.float32(0 if factor[0] == 0 else 1 / factor[0])
        state[f"{layer.name}.weight"], state[f"{layer.name}.bias"] = gamma, beta
        state[f"{layer.name}.running_mean"] = (mean * scale).astype(np.float32)
        state[f"{layer.name}.running_var"] = (variance * scale).astype(np.float32)
    return state
