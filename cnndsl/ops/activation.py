"""Activations: pointwise, stateless, shape-preserving."""

from __future__ import annotations

import math

from .base import OpKind, axis_index, flag, real, register
from .tensors import Example, Filled, TensorSpec


class _Activation(OpKind):
    family = "act"
    torch_class = ""
    onnx_rule = None  # (x, emit) -> output value

    def torch_module(self, attrs, inputs):
        from torch import nn

        return getattr(nn, self.torch_class)()

    def onnx(self, attrs, inputs, args, emit):
        if self.onnx_rule is None:
            return super().onnx(attrs, inputs, args, emit)
        return self.onnx_rule(args[0], emit)


def _activation(name: str, torch_class: str, doc: str, onnx=None, in_place: bool = False) -> None:
    register(
        type(
            name.capitalize(),
            (_Activation,),
            {
                "name": name,
                "torch_class": torch_class,
                "doc": doc,
                "onnx_rule": staticmethod(onnx) if onnx else None,
                "torch_in_place": in_place,
                "example": Example(name),
            },
        )
    )


def _single(op_type: str, **options):
    """An activation that is one ONNX operator."""
    return lambda x, emit: emit.op(op_type, [x], **options)


def _relu6(x, emit):
    if emit.opset < 11:  # Clip took its bounds as attributes until opset 11
        return emit.op("Clip", [x], min=0.0, max=6.0)
    return emit.op("Clip", [x, emit.floats("min", 0.0), emit.floats("max", 6.0)])


def _gelu(x, emit):
    """Gelu is an operator from opset 20; before, its exact form 0.5 · x · (1 + erf(x / √2))."""
    if emit.opset >= 20:
        return emit.op("Gelu", [x])
    emit.require(9, "`gelu`")  # Erf
    erf = emit.op("Erf", [emit.op("Mul", [x, emit.floats("inv_sqrt2", 1 / math.sqrt(2))])])
    one_plus = emit.op("Add", [erf, emit.floats("one", 1.0)])
    return emit.op("Mul", [emit.op("Mul", [x, emit.floats("half", 0.5)]), one_plus])


def _mish(x, emit):
    """Mish is an operator from opset 18; before, x · tanh(softplus(x))."""
    if emit.opset >= 18:
        return emit.op("Mish", [x])
    return emit.op("Mul", [x, emit.op("Tanh", [emit.op("Softplus", [x])])])


def _silu(x, emit):
    return emit.op("Mul", [x, emit.op("Sigmoid", [x])])


_HARD_SIGMOID = {"alpha": 1 / 6, "beta": 0.5}  # PyTorch's relu6(x + 3) / 6


def _hardswish(x, emit):
    if emit.opset >= 14:
        return emit.op("HardSwish", [x])
    return emit.op("Mul", [x, emit.op("HardSigmoid", [x], **_HARD_SIGMOID)])


_activation("relu", "ReLU", "max(0, x)", _single("Relu"), in_place=True)
_activation("relu6", "ReLU6", "min(max(0, x), 6), MobileNet's activation", _relu6, in_place=True)
_activation("sigmoid", "Sigmoid", "1 / (1 + e^-x)", _single("Sigmoid"))
_activation("tanh", "Tanh", "hyperbolic tangent", _single("Tanh"))
_activation("gelu", "GELU", "Gaussian error linear unit (exact erf form)", _gelu)
_activation("silu", "SiLU", "x · sigmoid(x), also called swish", _silu, in_place=True)
_activation("mish", "Mish", "x · tanh(softplus(x)) (Misra 2019)", _mish, in_place=True)
_activation("hardswish", "Hardswish", "MobileNet v3's piecewise swish", _hardswish, in_place=True)
_activation(
    "hardsigmoid",
    "Hardsigmoid",
    "MobileNet v3's piecewise sigmoid",
    _single("HardSigmoid", **_HARD_SIGMOID),
    in_place=True,
)


@register
class LeakyRelu(_Activation):
    name = "leakyrelu"
    torch_in_place = True
    signature = (("slope", 0.01),)
    doc = "max(0, x) + slope · min(0, x)"
    example = Example("leakyrelu(0.2)")

    def resolve(self, attrs, inputs):
        return {"slope": real(attrs["slope"], "slope")}

    def label(self, attrs):
        return f"leakyrelu {attrs['slope']:g}"

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.LeakyReLU(attrs["slope"])

    def onnx(self, attrs, inputs, args, emit):
        return emit.op("LeakyRelu", [args[0]], alpha=attrs["slope"])


@register
class Elu(_Activation):
    name = "elu"
    torch_in_place = True
    signature = (("alpha", 1.0),)
    doc = "x for x > 0, alpha · (e^x − 1) below (Clevert et al. 2016)"
    example = Example("elu(0.5)")

    def resolve(self, attrs, inputs):
        return {"alpha": real(attrs["alpha"], "alpha")}

    def label(self, attrs):
        return "elu" if attrs["alpha"] == 1 else f"elu {attrs['alpha']:g}"

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.ELU(attrs["alpha"])

    def onnx(self, attrs, inputs, args, emit):
        return emit.op("Elu", [args[0]], alpha=attrs["alpha"])


@register
class Prelu(_Activation):
    """nn.PReLU: a learned negative slope, one shared or one per channel (He et al. 2015)."""

    name = "prelu"
    signature = (("per_channel", False), ("init", 0.25))
    doc = "max(0, x) + a · min(0, x) with a learned slope a: one, or one per channel"
    example = Example("prelu(per_channel=true, 0.1)")

    def resolve(self, attrs, inputs):
        return {"per_channel": flag(attrs["per_channel"], "per_channel"), "init": real(attrs["init"], "init")}

    def tensors(self, attrs, inputs):
        return [TensorSpec("weight", (inputs[0][0] if attrs["per_channel"] else 1,), Filled(attrs["init"]))]

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.PReLU(inputs[0][0] if attrs["per_channel"] else 1, attrs["init"])

    def onnx(self, attrs, inputs, args, emit):
        shape = inputs[0]
        slopes = emit.weight("weight")
        if attrs["per_channel"] and len(shape) > 1:  # ONNX broadcasts from the right: C×1×1
            slopes = emit.op("Reshape", [slopes, emit.ints("per_channel", (shape[0], *[1] * (len(shape) - 1)))])
        return emit.op("PRelu", [args[0], slopes])


@register
class Softmax(_Activation):
    name = "softmax"
    signature = (("axis", 0),)
    doc = "softmax over the channels (the class scores after fc), or over `axis`"
    example = Example("softmax")

    def resolve(self, attrs, inputs):
        return {"axis": axis_index(attrs["axis"], inputs[0], "`softmax`'s axis")}

    def label(self, attrs):
        return "softmax" if attrs["axis"] == 0 else f"softmax axis {attrs['axis']}"

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.Softmax(dim=attrs["axis"] + 1)

    def onnx(self, attrs, inputs, args, emit):
        if attrs["axis"] < len(inputs[0]) - 1:  # before opset 13, Softmax flattened the axes from `axis` on
            what = "the channels of a C×H×W tensor" if attrs["axis"] == 0 else f"axis {attrs['axis']} of a tensor"
            emit.require(13, f"`softmax` over {what}")
        return emit.op("Softmax", [args[0]], axis=attrs["axis"] + 1)
