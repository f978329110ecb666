"""Element-wise arithmetic on tensors: subtract and divide (add and mul are joins, merge.py), exp, clamp, and
the calibration a · x + b of YOLO26's depth head.

Shapes broadcast as in numpy and torch, aligned from their last axis (the batch not counted); none counts a
MAC, as add and mul do not (MACs count convolutions and fully connected layers, the torchvision convention).
"""

from __future__ import annotations

from ..core.errors import ShapeProblem, ValueProblem
from .base import OpKind, broadcast, format_shape, real, register
from .merge import aligned_args, broadcasted, onnx_aligned
from .tensors import BUFFER, ONES, ZEROS, Example, TensorSpec
from .torch_code import OWN, Arg, Attribute, Call, Operation


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


@register
class Clamp(OpKind):
    """torch.clamp: every value kept within [low, high], either bound left open by leaving it out, as YOLO26's
    depth head bounds its log-depth to [-4, 5]."""

    name = "clamp"
    family = "act"
    torch_overwritable = True
    signature = (("low", None), ("high", None))
    doc = "clamp(low, high): every value kept within [low, high] (either may be left out), as torch.clamp; no MACs"
    example = Example("clamp(-0.5, 0.5)")

    def resolve(self, attrs, inputs):
        if attrs["low"] is None and attrs["high"] is None:
            raise ValueProblem("`clamp` needs a bound", hint="clamp(-4, 5), clamp(low=0) or clamp(high=1)")
        low, high = (None if attrs[end] is None else real(attrs[end], f"`clamp`'s {end}") for end in ("low", "high"))
        if low is not None and high is not None and low > high:
            raise ValueProblem(f"`clamp`'s low {low:g} is above its high {high:g}", hint="give the lower bound first")
        return {"low": low, "high": high}

    def label(self, attrs):
        ends = [
            "−∞" if attrs["low"] is None else f"{attrs['low']:g}",
            "∞" if attrs["high"] is None else f"{attrs['high']:g}",
        ]
        return f"clamp [{ends[0]}, {ends[1]}]"

    def torch_forward(self, attrs, inputs):
        bounds = tuple((name, attrs[end]) for name, end in (("min", "low"), ("max", "high")) if attrs[end] is not None)
        return Call("torch", "clamp", (Arg(0),), bounds)

    def onnx(self, attrs, inputs, args, emit):
        low, high = attrs["low"], attrs["high"]
        if emit.opset < 11:  # Clip took its bounds as attributes until opset 11
            bounds = {name: value for name, value in (("min", low), ("max", high)) if value is not None}
            return emit.op("Clip", [args[0]], **bounds)
        low_value = "" if low is None else emit.floats("low", low)
        return emit.op("Clip", [args[0], low_value, *([emit.floats("high", high)] if high is not None else [])])


@register
class Calibrate(OpKind):
    """a · x + b with a and b one value each, buffers the checkpoint supplies (1 and 0 until it does): the
    log-affine calibration that Ultralytics' Depth head fits after training and keeps as `cal_a` and `cal_b`."""

    name = "calibrate"
    buffers_hold = "depth calibration"
    family = "act"
    doc = (
        "a · x + b, a and b one value each held as buffers (cal_a, cal_b) a checkpoint supplies, 1 and 0 by "
        "default: the calibration of Ultralytics' depth head; no MACs"
    )
    example = Example("calibrate")

    def tensors(self, attrs, inputs):
        return [TensorSpec("cal_a", (1,), ONES, role=BUFFER), TensorSpec("cal_b", (1,), ZEROS, role=BUFFER)]

    def torch_module(self, attrs, inputs):
        import torch
        from torch import nn

        holder = nn.Module()  # the buffers under Ultralytics' names: `<layer>.cal_a`, `<layer>.cal_b`
        holder.register_buffer("cal_a", torch.ones(1))
        holder.register_buffer("cal_b", torch.zeros(1))
        return holder

    def torch_forward(self, attrs, inputs):
        scaled = Operation("*", (Attribute(OWN, "cal_a"), Arg(0)))
        return Operation("+", (scaled, Attribute(OWN, "cal_b")))

    def onnx(self, attrs, inputs, args, emit):
        return emit.op("Add", [emit.op("Mul", [emit.weight("cal_a"), args[0]]), emit.weight("cal_b")])
