"""Folding BatchNorm into the convolution before it, for inference: one operator instead of two.

In eval mode BatchNorm is the affine map y = (x - mean) · γ / √(var + ε) + β per channel, so a
convolution feeding only it absorbs it: W' = W · s and b' = (b - mean) · s + β with s = γ / √(var + ε).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import helper

from .onnx_tensors import Pending, once


def fold_batchnorm(
    nodes: list[onnx.NodeProto], initializers: dict[str, Pending], keep: set[str]
) -> list[onnx.NodeProto]:
    """The nodes with every Conv → BatchNormalization pair folded; `initializers` is updated in place.

    A pair is folded only where the convolution's output goes nowhere else (`keep` holds graph outputs).
    """
    readers = Counter(name for node in nodes for name in node.input)
    producer = {node.output[0]: node for node in nodes}
    folded = []
    for node in nodes:
        conv = producer.get(node.input[0]) if node.op_type == "BatchNormalization" else None
        if conv is None or conv.op_type != "Conv" or readers[conv.output[0]] != 1 or conv.output[0] in keep:
            folded.append(node)
            continue
        _absorb(conv, node, initializers)
        conv.output[0] = conv.name = node.output[0]
    return folded


def _absorb(conv: onnx.NodeProto, norm: onnx.NodeProto, initializers: dict[str, Pending]) -> None:
    """Rewrite the convolution's weight and bias (created if absent) to include the norm; drop the norm's.
    The new tensors are recipes like the old, made only when the model is."""
    gamma, beta, mean, var = (initializers.pop(name) for name in norm.input[1:5])
    epsilon = next((helper.get_attribute_value(a) for a in norm.attribute if a.name == "epsilon"), 1e-5)
    scale = once(lambda: gamma.array().astype(np.float64) / np.sqrt(var.array().astype(np.float64) + epsilon))
    weight = initializers[conv.input[1]]
    initializers[conv.input[1]] = weight.derived(
        weight.shape, lambda: (weight.array() * scale().reshape(-1, 1, 1, 1)).astype(np.float32)
    )
    if len(conv.input) > 2:
        bias = initializers[conv.input[2]].array
    else:
        bias = lambda: np.zeros(gamma.shape)  # noqa: E731
        conv.input.append(conv.input[1].rsplit(".", 1)[0] + ".bias")
    initializers[conv.input[2]] = weight.derived(
        gamma.shape, lambda: ((bias().astype(np.float64) - mean.array()) * scale() + beta.array()).astype(np.float32)
    )
