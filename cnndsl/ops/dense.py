"""The dense head: fully connected layers (flatten and reshape are in layout.py)."""

from __future__ import annotations

import math

from ..core.errors import ShapeProblem
from .base import OpKind, Window, alias, channels_last, flag, format_shape, numel, register, whole
from .tensors import Example, TensorSpec, Uniform
from .torch_code import Arg, Call, applied


@register
class FullyConnected(OpKind):
    name = "fc"
    family = "fc"
    torch_overwritable = True
    signature = (("n", None), ("bias", True), ("pixelwise", False))
    doc = "fully connected layer; flattens a C×H×W input by itself, or with pixelwise=true maps the channels of every pixel"
    example = Example("fc(5)", (4, 3, 3))

    def resolve(self, attrs, inputs):
        if attrs["n"] is None:
            raise ShapeProblem("`fc` needs its number of outputs, e.g. fc(1000)")
        pixelwise = flag(attrs["pixelwise"], "pixelwise")
        if pixelwise and len(inputs[0]) != 3:
            raise ShapeProblem(
                f"`fc(pixelwise=true)` needs a C×H×W input, got {format_shape(inputs[0])}",
                hint="a vector has no pixels: leave pixelwise out",
            )
        return {"n": whole(attrs["n"], "outputs n"), "bias": flag(attrs["bias"], "bias"), "pixelwise": pixelwise}

    def shape(self, attrs, inputs):
        return (attrs["n"], *inputs[0][1:]) if attrs["pixelwise"] else (attrs["n"],)

    def tensors(self, attrs, inputs):
        features = self._features(attrs, inputs)
        init = Uniform(1 / math.sqrt(features))
        bias = [TensorSpec("bias", (attrs["n"],), init)] if attrs["bias"] else []
        return [TensorSpec("weight", (attrs["n"], features), init), *bias]

    def macs(self, attrs, inputs, output):
        """in·out, at every pixel where it is applied per pixel (as the reference counts ConvNeXt's Linear)."""
        return numel(inputs[0]) * attrs["n"]

    def window(self, attrs, inputs):
        if attrs["pixelwise"]:
            return None
        height, width = (inputs[0][1], inputs[0][2]) if len(inputs[0]) == 3 else (1, 1)
        return Window((height, width), (height, width))

    def label(self, attrs):
        return f"fc {attrs['n']}" + (" per pixel" if attrs["pixelwise"] else "")

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.Linear(self._features(attrs, inputs), attrs["n"], attrs["bias"])

    def torch_forward(self, attrs, inputs):
        if attrs["pixelwise"]:
            return channels_last(Arg(0), inputs[0])
        return applied(Arg(0) if len(inputs[0]) == 1 else Call("torch", "flatten", (Arg(0), 1)))

    def onnx(self, attrs, inputs, args, emit):
        weight, *bias = emit.weights()
        if attrs["pixelwise"]:  # the same map at every pixel: a 1×1 convolution with the (out, in) weight
            kernel = emit.op("Reshape", [weight, emit.ints("kernel", (attrs["n"], inputs[0][0], 1, 1))])
            return emit.op("Conv", [args[0], kernel, *bias], kernel_shape=(1, 1))
        flat = args[0] if len(inputs[0]) == 1 else emit.op("Flatten", [args[0]], axis=1)
        if not bias:
            emit.require(11, "`fc(bias=false)`")  # Gemm's bias became optional in opset 11
        return emit.op("Gemm", [flat, weight, *bias], transB=1)

    def _features(self, attrs, inputs) -> int:
        return inputs[0][0] if attrs["pixelwise"] else numel(inputs[0])


alias("linear", "fc")
