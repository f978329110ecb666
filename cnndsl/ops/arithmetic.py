"""Element-wise arithmetic on tensors: subtract and divide (add and mul are joins, merge.py), and exp.

Shapes broadcast as in numpy and torch, aligned from their last axis (the batch not counted); none counts a
MAC, as add and mul do not (MACs count convolutions and fully connected layers, the torchvision convention).
"""

from __future__ import annotations

from ..core.errors import ShapeProblem, ValueProblem
from .base import OpKind, broadcast, format_shape, real, register
from .merge import aligned_args, broadcasted, onnx_aligned
from .tensors import Example
from .torch_code import Arg, Call, Operation


class _Arithmetic(OpKind):
    """x (sign) each tap in turn, then (sign) a constant where one is given."""

    family = "merge"
    takes_taps = True
    torch_overwritable = True
    drawn_as_join = True
    signature = (("value", None),)
    sign = ""
    verb = ""
    onnx_type = ""

    def resolve(self, attrs, inputs):
        if attrs["value"] is None:
            if len(inputs) == 1:
                raise ValueProblem(
                    f"`{self.name}` needs something to {self.verb}",
                    hint=f"{self.name}(@t) or a constant, {self.name}(2)",
                )
            return attrs
        value = real(attrs["value"], f"the value of `{self.name}`")
        if self.sign == "/" and value == 0:
            raise ValueProblem(f"`{self.name}` by 0 makes every value infinite", hint="divide by a number other than 0")
        return {"value": value}

    def shape(self, attrs, inputs):
        for other in inputs[1:]:
            if broadcast([inputs[0], other]) is None:
                raise ShapeProblem(
                    f"cannot {self.verb} {format_shape(other)} {self.preposition} {format_shape(inputs[0])}: "
                    "the shapes do not broadcast",
                    hint="from the last axis, the sizes must be equal or 1",
                )
        return broadcasted(self.name, inputs)

    def label(self, attrs):
        return self.sign if attrs["value"] is None else f"{self.sign} {attrs['value']:g}"

    def torch_forward(self, attrs, inputs):
        constant = [] if attrs["value"] is None else [attrs["value"]]
        return Operation(self.sign, (*aligned_args(inputs), *constant))

    def onnx(self, attrs, inputs, args, emit):
        result, *others = onnx_aligned(emit, args, inputs)
        for other in others:
            result = emit.op(self.onnx_type, [result, other])
        if attrs["value"] is not None:
            result = emit.op(self.onnx_type, [result, emit.floats("value", attrs["value"])])
        return result


@register
class Subtract(_Arithmetic):
    name = "sub"
    sign, verb, preposition, onnx_type = "-", "subtract", "from", "Sub"
    doc = "sub(@t): x minus each tap, shapes broadcast as in torch; sub(1.5) a constant; no MACs"
    example = Example("sub(@in)", before="bn")


@register
class Divide(_Arithmetic):
    name = "div"
    sign, verb, preposition, onnx_type = "/", "divide", "into", "Div"
    doc = "div(@t): x divided by each tap, shapes broadcast as in torch; div(2) by a constant; no MACs"
    example = Example("div(@in, 2)", before="sigmoid")


@register
class Exp(OpKind):
    name = "exp"
    family = "act"
    torch_overwritable = True
    doc = "e^x, element-wise (YOLO's box sizes); no MACs"
    example = Example("exp")

    def torch_forward(self, attrs, inputs):
        return Call("torch", "exp", (Arg(0),))

    def onnx(self, attrs, inputs, args, emit):
        return emit.op("Exp", [args[0]])
