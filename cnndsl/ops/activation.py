"""Activations: pointwise, stateless, shape-preserving."""
from __future__ import annotations

from .base import OpKind, real, register


class _Activation(OpKind):
    family = "act"
    has_state = True
    torch_class = ""

    def torch_module(self, attrs, inputs):
        from torch import nn

        return getattr(nn, self.torch_class)()


def _activation(name: str, torch_class: str, doc: str) -> None:
    register(type(name.capitalize(), (_Activation,), {"name": name, "torch_class": torch_class, "doc": doc}))


_activation("relu", "ReLU", "max(0, x)")
_activation("relu6", "ReLU6", "min(max(0, x), 6), MobileNet's activation")
_activation("sigmoid", "Sigmoid", "1 / (1 + e^-x)")
_activation("tanh", "Tanh", "hyperbolic tangent")
_activation("gelu", "GELU", "Gaussian error linear unit (exact erf form)")
_activation("silu", "SiLU", "x · sigmoid(x), also called swish")
_activation("hardswish", "Hardswish", "MobileNet v3's piecewise swish")
_activation("hardsigmoid", "Hardsigmoid", "MobileNet v3's piecewise sigmoid")


@register
class LeakyRelu(_Activation):
    name = "leakyrelu"
    signature = (("slope", 0.01),)
    doc = "max(0, x) + slope · min(0, x)"

    def resolve(self, attrs, inputs):
        return {"slope": real(attrs["slope"], "slope")}

    def label(self, attrs):
        return f"leakyrelu {attrs['slope']:g}"

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.LeakyReLU(attrs["slope"])


@register
class Softmax(_Activation):
    name = "softmax"
    doc = "softmax over the channels (the class scores after fc)"

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.Softmax(dim=1)
