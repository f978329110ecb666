"""`aifi`: RT-DETR's attention-based intra-scale feature interaction (Zhao et al., 2023), one transformer encoder
layer over the pixels of the smallest map, with 2-D sine-cosine positions added to its queries and keys.

One kind, because its multi-head attention (queries and keys from the positioned pixels, values from the
pixels, torch's nn.MultiheadAttention with its packed in-projection) has no cnndsl form; its torch module is
rtdetr_torch.EncoderLayer, whose state_dict is Ultralytics' AIFI's."""

from __future__ import annotations

import math

from ..core.errors import ShapeProblem
from .base import OpKind, Window, register, spatial, whole
from .rtdetr_onnx import encoder_layer
from .tensors import ONES, ZEROS, Example, TensorSpec, Uniform


def sincos_table(height: int, width: int, channels: int, temperature: float = 10000.0):
    """rtdetr_torch.sincos_positions in NumPy (float32), (H·W) × C: the ONNX graph holds it as a constant."""
    import numpy as np  # kept out of `cnndsl summary`

    quarter = channels // 4
    frequency = (1.0 / (np.float32(temperature) ** (np.arange(quarter, dtype=np.float32) / quarter))).astype(np.float32)
    rows = np.repeat(np.arange(height, dtype=np.float32), width)[:, None] * frequency[None]
    columns = np.tile(np.arange(width, dtype=np.float32), height)[:, None] * frequency[None]
    return np.concatenate([np.sin(rows), np.cos(rows), np.sin(columns), np.cos(columns)], 1).astype(np.float32)


@register
class EncoderLayer(OpKind):
    """Post-norm: x = norm1(x + attention(x + pos, x + pos, x)); x = norm2(x + fc2(gelu(fc1(x)))), per pixel."""

    name = "aifi"
    signature = (("hidden", 2048), ("heads", 8))
    doc = "a transformer encoder layer over the pixels with 2-D sine-cosine positions (RT-DETR's AIFI)"
    ranks = (3,)
    example = Example("aifi(8, 2)", (8, 3, 4))

    def resolve(self, attrs, inputs):
        channels = spatial(self, inputs[0])[0]
        hidden, heads = whole(attrs["hidden"], "hidden"), whole(attrs["heads"], "heads")
        if channels % 4 or channels % heads:
            raise ShapeProblem(
                f"`aifi` needs channels divisible by 4 (the sine-cosine positions) and by its {heads} heads, "
                f"not {channels}",
                hint="give it a map of a multiple of 4 × heads channels",
            )
        return {"hidden": hidden, "heads": heads}

    def tensors(self, attrs, inputs):
        channels, hidden = inputs[0][0], attrs["hidden"]
        return [
            *attention_tensors("ma", channels),
            *linear_tensors("fc1", channels, hidden),
            *linear_tensors("fc2", hidden, channels),
            *norm_tensors("norm1", channels),
            *norm_tensors("norm2", channels),
        ]

    def macs(self, attrs, inputs, output):
        """Per pixel the q, k, v and output projections (4·C²), the feed-forward (2·C·hidden) and its positions'
        row and column angles (2·C/4); per pair of pixels q·k and the weighted value (2·C)."""
        channels, pixels = inputs[0][0], inputs[0][1] * inputs[0][2]
        per_pixel = 4 * channels * channels + 2 * channels * attrs["hidden"] + channels // 2
        return pixels * per_pixel + 2 * pixels * pixels * channels

    def window(self, attrs, inputs):
        """Every output pixel attends to every input pixel."""
        height, width = inputs[0][1:]
        return Window((2 * height - 1, 2 * width - 1), (1, 1), padding=(height - 1, width - 1))

    def label(self, attrs):
        return f"encoder layer ×{attrs['heads']}"

    def torch_module(self, attrs, inputs):
        from .rtdetr_torch import EncoderLayer as Module

        return Module(inputs[0][0], attrs["hidden"], attrs["heads"])

    def onnx(self, attrs, inputs, args, emit):
        return encoder_layer(attrs, inputs, args, emit, sincos_table(*inputs[0][1:], inputs[0][0]))


def linear_tensors(prefix: str, features: int, outputs: int) -> list[TensorSpec]:
    """nn.Linear's weight and bias, both drawn from U(±1/√features)."""
    init = Uniform(1 / math.sqrt(features))
    return [TensorSpec(f"{prefix}.weight", (outputs, features), init), TensorSpec(f"{prefix}.bias", (outputs,), init)]


def norm_tensors(prefix: str, channels: int) -> list[TensorSpec]:
    """A norm's scale (ones) and shift (zeros)."""
    return [TensorSpec(f"{prefix}.weight", (channels,), ONES), TensorSpec(f"{prefix}.bias", (channels,), ZEROS)]


def attention_tensors(prefix: str, channels: int) -> list[TensorSpec]:
    """nn.MultiheadAttention's packed q, k, v projection (Xavier-uniform, zero bias) and output projection (its
    bias zeroed)."""
    return [
        TensorSpec(f"{prefix}.in_proj_weight", (3 * channels, channels), Uniform(math.sqrt(6 / (4 * channels)))),
        TensorSpec(f"{prefix}.in_proj_bias", (3 * channels,), ZEROS),
        TensorSpec(f"{prefix}.out_proj.weight", (channels, channels), Uniform(1 / math.sqrt(channels))),
        TensorSpec(f"{prefix}.out_proj.bias", (channels,), ZEROS),
    ]
