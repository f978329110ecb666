"""Normalisation and regularisation: batch, layer and group norm, local response norm, dropout, stochastic depth."""
from __future__ import annotations

from ..errors import ValueProblem
from .base import REQUIRED, OpKind, alias, fraction, real, register, spatial, whole


@register
class BatchNorm(OpKind):
    name = "bn"
    family = "norm"
    has_state = True
    torch_overwritable = True
    signature = (("eps", 1e-5), ("momentum", 0.1))
    doc = "batch normalisation over channels (2-D for C×H×W, 1-D for vectors)"

    def resolve(self, attrs, inputs):
        return {"eps": real(attrs["eps"], "eps", positive=True), "momentum": fraction(attrs["momentum"], "momentum")}

    def params(self, attrs, inputs):
        return 2 * inputs[0][0]

    def label(self, attrs):
        return "bn"

    def torch_module(self, attrs, inputs):
        from torch import nn

        norm = nn.BatchNorm2d if len(inputs[0]) == 3 else nn.BatchNorm1d
        return norm(inputs[0][0], eps=attrs["eps"], momentum=attrs["momentum"])

    def onnx(self, attrs, inputs, args, emit):
        channels = (inputs[0][0],)
        operands = [args[0], emit.weight("weight", channels, fill=1.0), emit.weight("bias", channels, fill=0.0),
                    emit.weight("running_mean", channels, fill=0.0), emit.weight("running_var", channels, fill=1.0)]
        emit.skip("num_batches_tracked")
        return emit.op("BatchNormalization", operands, epsilon=attrs["eps"])


@register
class LocalResponseNorm(OpKind):
    name = "lrn"
    family = "norm"
    has_state = True
    signature = (("size", 5), ("alpha", 1e-4), ("beta", 0.75), ("k", 2.0))
    doc = "local response normalisation across channels (AlexNet, GoogLeNet papers)"

    def resolve(self, attrs, inputs):
        spatial(self, inputs[0])
        return {
            "size": whole(attrs["size"], "size"), "alpha": real(attrs["alpha"], "alpha"),
            "beta": real(attrs["beta"], "beta"), "k": real(attrs["k"], "k"),
        }

    def label(self, attrs):
        return f"lrn {attrs['size']}"

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.LocalResponseNorm(attrs["size"], attrs["alpha"], attrs["beta"], attrs["k"])

    def onnx(self, attrs, inputs, args, emit):
        if attrs["size"] % 2 == 0:
            raise ValueProblem(f"`lrn` of an even size ({attrs['size']}) has no ONNX form: ONNX centres an even "
                               "window one channel later than PyTorch", hint="use an odd size, as the papers do")
        return emit.op("LRN", [args[0]], size=attrs["size"], alpha=attrs["alpha"], beta=attrs["beta"], bias=attrs["k"])


@register
class Dropout(OpKind):
    name = "dropout"
    family = "reg"
    has_state = True
    signature = (("p", 0.5),)
    doc = "zeroes a fraction p of activations while training"

    def resolve(self, attrs, inputs):
        return {"p": fraction(attrs["p"], "dropout probability p")}

    def label(self, attrs):
        return f"dropout {attrs['p']:g}"

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.Dropout(attrs["p"])

    def onnx(self, attrs, inputs, args, emit):
        return args[0]  # the export is for inference, where dropout passes its input on


@register
class StochasticDepth(OpKind):
    """torchvision.ops.StochasticDepth(p, "row"): Huang et al. 2016, as ConvNeXt and EfficientNet apply it at
    the end of a residual body. The mask is nn.Dropout of a ones tensor of shape N×1×1×1: Bernoulli(1 − p)
    scaled by 1/(1 − p) per sample while training, exactly ones in eval mode."""

    name = "stochasticdepth"
    family = "reg"
    has_state = True
    torch_overwritable = True
    signature = (("p", REQUIRED),)
    doc = "drops whole samples with probability p while training, scaling the rest by 1/(1 − p)"

    def resolve(self, attrs, inputs):
        return {"p": fraction(attrs["p"], "stochastic depth probability p")}

    def label(self, attrs):
        return f"stochastic depth {attrs['p']:g}"

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.Dropout(attrs["p"])

    def torch_call(self, attrs, inputs, args, module):
        ones = ", ".join(["1"] * len(inputs[0]))
        return f"{args[0]} * {module}({args[0]}.new_ones({args[0]}.shape[0], {ones}))"

    def onnx(self, attrs, inputs, args, emit):
        return args[0]  # the export is for inference, where every sample survives unscaled


alias("droppath", "stochasticdepth")
