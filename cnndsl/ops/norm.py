"""Normalisation and regularisation: batch, layer and group norm, local response norm, dropout, stochastic depth."""

from __future__ import annotations

from ..core.errors import ValueProblem
from .base import REQUIRED, OpKind, alias, channels_last, fraction, real, register, spatial, whole
from .tensors import BUFFER, ONES, ZEROS, Example, Filled, TensorSpec
from .torch_code import OWN, Arg, Attribute, Index, Method, Operation, applied


@register
class BatchNorm(OpKind):
    name = "bn"
    buffers_hold = "batch-norm running statistics"
    family = "norm"
    torch_overwritable = True
    signature = (("eps", 1e-5), ("momentum", 0.1))
    ranks = (1, 2, 3, 4)  # torch's BatchNorm1d, 2d and 3d
    doc = "batch normalisation over channels (2-D for C×H×W, 1-D for vectors and C×L, 3-D for C×D×H×W)"
    example = Example("bn(eps=0.001)")

    def resolve(self, attrs, inputs):
        return {"eps": real(attrs["eps"], "eps", positive=True), "momentum": fraction(attrs["momentum"], "momentum")}

    def tensors(self, attrs, inputs):
        channels = (inputs[0][0],)
        return [
            *_scale_and_shift(channels),
            TensorSpec("running_mean", channels, ZEROS, BUFFER),
            TensorSpec("running_var", channels, ONES, BUFFER),
            TensorSpec("num_batches_tracked", (), ZEROS, BUFFER, "int64"),
        ]

    def label(self, attrs):
        return "bn"

    def torch_module(self, attrs, inputs):
        from torch import nn

        norm = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d, 4: nn.BatchNorm3d}[len(inputs[0])]
        return norm(inputs[0][0], eps=attrs["eps"], momentum=attrs["momentum"])

    def onnx(self, attrs, inputs, args, emit):
        return emit.op("BatchNormalization", [args[0], *emit.weights()], epsilon=attrs["eps"])


@register
class LayerNorm(OpKind):
    """nn.LayerNorm over the channels; on C×H×W it normalises each pixel's channel vector, as ConvNeXt's
    LayerNorm2d (and CNBlock's permute, LayerNorm, permute back) do, so its weight and bias are C long."""

    name = "layernorm"
    family = "norm"
    torch_overwritable = True
    signature = (("eps", 1e-5),)
    doc = "layer normalisation over the channels (of each pixel of a C×H×W tensor, or of a vector)"
    ranks = (1, 3)
    example = Example("layernorm")

    def resolve(self, attrs, inputs):
        return {"eps": real(attrs["eps"], "eps", positive=True)}

    def tensors(self, attrs, inputs):
        return _scale_and_shift(inputs[0][:1])

    def label(self, attrs):
        return "layernorm"

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.LayerNorm(inputs[0][0], eps=attrs["eps"])

    def torch_forward(self, attrs, inputs):
        return channels_last(Arg(0), inputs[0])

    def onnx(self, attrs, inputs, args, emit):
        operands = emit.weights()
        if len(inputs[0]) == 1:
            return _normalize_last_axis(emit, args[0], operands, attrs["eps"])
        pixels = emit.op("Transpose", [args[0]], perm=(0, 2, 3, 1))
        normed = _normalize_last_axis(emit, pixels, operands, attrs["eps"])
        return emit.op("Transpose", [normed], perm=(0, 3, 1, 2))


def _normalize_last_axis(emit, x: str, operands: list[str], eps: float) -> str:
    """LayerNormalization over the last axis (opset 17); before it, the same from its definition:
    (x - mean) / sqrt(var + eps) · weight + bias, the variance biased as PyTorch's."""
    if emit.opset >= 17:
        return emit.op("LayerNormalization", [x, *operands], axis=-1, epsilon=eps)
    centred = emit.op("Sub", [x, emit.op("ReduceMean", [x], axes=(-1,))])
    variance = emit.op("ReduceMean", [emit.op("Mul", [centred, centred])], axes=(-1,))
    deviation = emit.op("Sqrt", [emit.op("Add", [variance, emit.floats("eps", eps)])])
    return emit.op("Add", [emit.op("Mul", [emit.op("Div", [centred, deviation]), operands[0]]), operands[1]])


@register
class GroupNorm(OpKind):
    name = "groupnorm"
    family = "norm"
    torch_overwritable = True
    signature = (("g", REQUIRED), ("eps", 1e-5))
    doc = "group normalisation (Wu & He 2018): channels in g groups, each normalised over its channels and pixels"
    example = Example("groupnorm(2)")

    def resolve(self, attrs, inputs):
        groups, channels = whole(attrs["g"], "groups g"), inputs[0][0]
        if channels % groups:
            raise ValueProblem(f"groups g={groups} must divide the channels ({channels})")
        return {"g": groups, "eps": real(attrs["eps"], "eps", positive=True)}

    def tensors(self, attrs, inputs):
        return _scale_and_shift(inputs[0][:1])

    def label(self, attrs):
        return f"groupnorm {attrs['g']}"

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.GroupNorm(attrs["g"], inputs[0][0], eps=attrs["eps"])

    def onnx(self, attrs, inputs, args, emit):
        """Instance norm over (N, g, rest), then the per-channel affine (ONNX's GroupNormalization before opset
        21 had one scale per group)."""
        shape, groups = inputs[0], attrs["g"]
        grouped = emit.op("Reshape", [args[0], emit.ints("grouped", (0, groups, -1))])
        normed = emit.op(
            "InstanceNormalization",
            [grouped, emit.floats("ones", [1.0] * groups), emit.floats("zeros", [0.0] * groups)],
            epsilon=attrs["eps"],
        )
        restored = emit.op("Reshape", [normed, emit.ints("shape", (0, *shape))])
        per_channel = _per_channel(shape)
        weight = emit.op("Reshape", [emit.weight("weight"), emit.ints("per_channel", per_channel)])
        bias = emit.op("Reshape", [emit.weight("bias"), emit.ints("per_channel", per_channel)])
        return emit.op("Add", [emit.op("Mul", [restored, weight]), bias])


@register
class LayerScale(OpKind):
    """A learned per-channel scale, one tensor of shape C×1×1 initialised to `init`, as torchvision's ConvNeXt
    holds it (`layer_scale`; Touvron et al. 2021, CaiT)."""

    name = "layerscale"
    family = "norm"
    torch_overwritable = True
    signature = (("init", 1e-6),)
    doc = "multiplies each channel by a learned factor, initialised to init (ConvNeXt's layer scale)"
    example = Example("layerscale(0.5)")

    def resolve(self, attrs, inputs):
        return {"init": real(attrs["init"], "init")}

    def tensors(self, attrs, inputs):
        return [TensorSpec("", _per_channel(inputs[0]), Filled(attrs["init"]))]

    def label(self, attrs):
        return f"layerscale {attrs['init']:g}"

    def torch_module(self, attrs, inputs):
        import torch
        from torch import nn

        return nn.Parameter(torch.full(_per_channel(inputs[0]), attrs["init"]))

    def torch_forward(self, attrs, inputs):
        return Operation("*", (Arg(0), OWN))

    def onnx(self, attrs, inputs, args, emit):
        return emit.op("Mul", [args[0], emit.weight("")])


def _scale_and_shift(channels):
    """A norm's learned per-channel scale (`weight`, from 1) and shift (`bias`, from 0)."""
    return [TensorSpec("weight", channels, ONES), TensorSpec("bias", channels)]


def _per_channel(shape):
    """C×1×1 for C×H×W, C for a vector: a tensor that broadcasts over the pixels."""
    return (shape[0], *[1] * (len(shape) - 1))


PAPERS_LRN_SIZE = 5  # AlexNet's and GoogLeNet's


@register
class LocalResponseNorm(OpKind):
    name = "lrn"
    family = "norm"
    signature = (("size", 5), ("alpha", 1e-4), ("beta", 0.75), ("k", 2.0))
    doc = "local response normalisation across an odd number of channels (AlexNet, GoogLeNet papers)"
    example = Example("lrn(3, alpha=0.01, beta=0.7, k=1.5)")

    def resolve(self, attrs, inputs):
        """An even size is refused here, where `check` sees it: ONNX has no form for it; so is a size past what
        the channels need, for which PyTorch and onnxruntime pad the input by the size (2^53 would be 2^61 bytes)."""
        spatial(self, inputs[0])
        size = whole(attrs["size"], "size")
        if size % 2 == 0:
            raise ValueProblem(
                f"`lrn` of an even size ({size}) has no ONNX form: ONNX centres an even window one "
                "channel later than PyTorch",
                hint="use an odd size, as the papers do",
            )
        widest = max(2 * inputs[0][0] - 1, PAPERS_LRN_SIZE)
        if size > widest:
            raise ValueProblem(
                f"`lrn` of size {size:,} is wider than its {inputs[0][0]:,} channels need: from size {widest:,} "
                "the window reaches every channel from every channel",
                hint=f"use an odd size of at most {widest:,} (the papers use 5); a wider window only divides alpha",
            )
        return {
            "size": size,
            "alpha": real(attrs["alpha"], "alpha"),
            "beta": real(attrs["beta"], "beta"),
            "k": real(attrs["k"], "k"),
        }

    def label(self, attrs):
        return f"lrn {attrs['size']}"

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.LocalResponseNorm(attrs["size"], attrs["alpha"], attrs["beta"], attrs["k"])

    def onnx(self, attrs, inputs, args, emit):
        return emit.op("LRN", [args[0]], size=attrs["size"], alpha=attrs["alpha"], beta=attrs["beta"], bias=attrs["k"])


@register
class Dropout(OpKind):
    name = "dropout"
    family = "reg"
    torch_in_place = True
    signature = (("p", 0.5),)
    doc = "zeroes a fraction p of activations while training"
    example = Example("dropout(0.3)")

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
    torch_overwritable = True
    signature = (("p", REQUIRED),)
    doc = (
        'torchvision\'s StochasticDepth(p, "row"): while training, drops whole samples with probability p and scales '
        "the rest by 1/(1 − p); the identity in eval mode. At the end of a residual body it drops the body"
    )
    example = Example("stochasticdepth(0.2)")

    def resolve(self, attrs, inputs):
        return {"p": fraction(attrs["p"], "stochastic depth probability p")}

    def label(self, attrs):
        return f"stochastic depth {attrs['p']:g}"

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.Dropout(attrs["p"])

    def torch_forward(self, attrs, inputs):
        batch = Index(Attribute(Arg(0), "shape"), 0)
        return Operation("*", (Arg(0), applied(Method(Arg(0), "new_ones", (batch, *[1] * len(inputs[0]))))))

    def onnx(self, attrs, inputs, args, emit):
        return args[0]  # the export is for inference, where every sample survives unscaled


alias("droppath", "stochasticdepth")
