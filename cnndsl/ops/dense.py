"""The dense head: fully connected layers, flatten and reshape."""
from __future__ import annotations

import math

from ..errors import ShapeProblem
from .base import OpKind, Window, alias, flag, format_shape, numel, register, whole


@register
class FullyConnected(OpKind):
    name = "fc"
    family = "fc"
    has_state = True
    torch_overwritable = True
    signature = (("n", None), ("bias", True))
    doc = "fully connected layer; flattens a C×H×W input by itself"

    def resolve(self, attrs, inputs):
        if attrs["n"] is None:
            raise ShapeProblem("`fc` needs its number of outputs, e.g. fc(1000)")
        return {"n": whole(attrs["n"], "outputs n"), "bias": flag(attrs["bias"], "bias")}

    def shape(self, attrs, inputs):
        return (attrs["n"],)

    def params(self, attrs, inputs):
        return numel(inputs[0]) * attrs["n"] + (attrs["n"] if attrs["bias"] else 0)

    def macs(self, attrs, inputs, output):
        return numel(inputs[0]) * attrs["n"]

    def window(self, attrs, inputs):
        height, width = (inputs[0][1], inputs[0][2]) if len(inputs[0]) == 3 else (1, 1)
        return Window((height, width), (height, width))

    def label(self, attrs):
        return f"fc {attrs['n']}"

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.Linear(numel(inputs[0]), attrs["n"], attrs["bias"])

    def torch_call(self, attrs, inputs, args, module):
        flat = args[0] if len(inputs[0]) == 1 else f"torch.flatten({args[0]}, 1)"
        return f"{module}({flat})"

    def onnx(self, attrs, inputs, args, emit):
        flat = args[0] if len(inputs[0]) == 1 else emit.op("Flatten", [args[0]], axis=1)
        bound = 1 / math.sqrt(numel(inputs[0]))
        operands = [flat, emit.weight("weight", (attrs["n"], numel(inputs[0])), bound=bound)]
        if attrs["bias"]:
            operands.append(emit.weight("bias", (attrs["n"],), bound=bound))
        else:
            emit.require(11, "`fc(bias=false)`")  # Gemm's bias became optional in opset 11
        return emit.op("Gemm", operands, transB=1)


@register
class Flatten(OpKind):
    name = "flatten"
    family = "reshape"
    doc = "C×H×W to one vector"

    def shape(self, attrs, inputs):
        return (numel(inputs[0]),)

    def torch_call(self, attrs, inputs, args, module):
        return f"torch.flatten({args[0]}, 1)"

    def onnx(self, attrs, inputs, args, emit):
        return emit.op("Flatten", [args[0]], axis=1)


@register
class Reshape(OpKind):
    name = "reshape"
    family = "reshape"
    signature = (("dims", None),)
    doc = "view the tensor with other dimensions of the same size, e.g. reshape((30, 7, 7))"

    def resolve(self, attrs, inputs):
        dims = attrs["dims"]
        if not isinstance(dims, (tuple, list)) or not dims:
            raise ShapeProblem("`reshape` needs its dimensions as a tuple, e.g. reshape((30, 7, 7))")
        dims = tuple(whole(dim, "a dimension") for dim in dims)
        if len(dims) not in (1, 3):  # every kind, and its torch and ONNX forms, takes C×H×W or a vector
            raise ShapeProblem(f"`reshape` makes a C×H×W tensor or a vector, not {format_shape(dims)}",
                               hint="give three dimensions, e.g. reshape((30, 7, 7)), or use flatten")
        if numel(dims) != numel(inputs[0]):
            raise ShapeProblem(
                f"`reshape` cannot view {format_shape(inputs[0])} ({numel(inputs[0])} values) "
                f"as {format_shape(dims)} ({numel(dims)} values)"
            )
        return {"dims": dims}

    def shape(self, attrs, inputs):
        return attrs["dims"]

    def label(self, attrs):
        return f"reshape {format_shape(attrs['dims'])}"

    def torch_call(self, attrs, inputs, args, module):
        return f"{args[0]}.reshape(-1, {', '.join(map(str, attrs['dims']))})"

    def onnx(self, attrs, inputs, args, emit):
        return emit.op("Reshape", [args[0], emit.ints("shape", (0, *attrs["dims"]))])  # 0 keeps the batch


alias("linear", "fc")
