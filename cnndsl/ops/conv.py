"""Convolutions: conv (and convKxK, dwconvKxK) and the transposed deconv."""

from __future__ import annotations

import math
import re

from ..core.errors import ValueProblem
from .base import OpKind, Window, alias, flag, pair, pattern, register, shrunk, sliding, spatial, stride_text, whole
from .tensors import Example, TensorSpec, Uniform


def _kernel_preset(prefix: str):
    regex = re.compile(rf"{prefix}(\d+)x(\d+)")

    def match(name: str):
        found = regex.fullmatch(name)
        if not found:
            return None
        kernel_h, kernel_w = int(found.group(1)), int(found.group(2))
        preset = {"k": kernel_h if kernel_h == kernel_w else (kernel_h, kernel_w)}
        return preset | ({"g": "depthwise"} if prefix == "dwconv" else {})

    return match


def _padding(value, kernel, dilation, name):
    """`same` keeps the size at stride 1 for odd kernels; `valid` is no padding."""
    if value == "valid":
        return 0, 0
    if value == "same":
        if kernel[0] % 2 == 0 or kernel[1] % 2 == 0:
            raise ValueProblem(
                f"`{name}` cannot pad an even {kernel[0]}×{kernel[1]} kernel to `same`",
                hint="give the padding explicitly, e.g. p=1",
            )
        return (kernel[0] - 1) // 2 * dilation[0], (kernel[1] - 1) // 2 * dilation[1]
    return pair(value, f"`{name}` padding", minimum=0)


def _weight_and_bias(shape, channels, per_group, attrs) -> list[TensorSpec]:
    """A convolution's weight of `shape` and its bias (if any), both drawn as PyTorch does from its fan-in."""
    init = Uniform(1 / math.sqrt(per_group * attrs["k"][0] * attrs["k"][1]))
    bias = [TensorSpec("bias", (channels,), init)] if attrs["bias"] else []
    return [TensorSpec("weight", shape, init), *bias]


def _kernel_text(kernel):
    return f"{kernel[0]}×{kernel[1]}"


@register
class Conv(OpKind):
    name = "conv"
    family = "conv"
    torch_overwritable = True
    signature = (("c", None), ("k", 3), ("s", 1), ("p", "same"), ("d", 1), ("g", 1), ("bias", True))
    doc = (
        "2-D convolution; c defaults to the input's channels; p=same is (k−1)/2·d for odd k, p=valid is 0; "
        "g=depthwise sets the groups to the input's channels (a c that is a multiple of them: a channel multiplier)"
    )
    example = Example("conv(6, k=(3, 5), s=2, g=2)", (4, 9, 9))

    def resolve(self, attrs, inputs):
        channels_in = spatial(self, inputs[0])[0]
        kernel = pair(attrs["k"], "kernel size k")
        dilation = pair(attrs["d"], "dilation d")
        groups = channels_in if attrs["g"] == "depthwise" else whole(attrs["g"], "groups g")
        channels = channels_in if attrs["c"] is None else whole(attrs["c"], "channels c")
        if attrs["g"] == "depthwise" and attrs["c"] is not None and channels % channels_in:
            raise ValueProblem(
                f"a depthwise conv's channels ({channels}) must be a multiple of its input's ({channels_in})"
            )
        if channels_in % groups or channels % groups:
            raise ValueProblem(
                f"groups g={groups} must divide both input channels ({channels_in}) and output channels ({channels})"
            )
        return {
            "c": channels,
            "k": kernel,
            "s": pair(attrs["s"], "stride s"),
            "p": _padding(attrs["p"], kernel, dilation, self.name),
            "d": dilation,
            "g": groups,
            "bias": flag(attrs["bias"], "bias"),
            "depthwise": attrs["g"] == "depthwise",
        }

    def shape(self, attrs, inputs):
        _, height, width = inputs[0]
        out_h = sliding(height, attrs["k"][0], attrs["s"][0], attrs["p"][0], attrs["d"][0])
        out_w = sliding(width, attrs["k"][1], attrs["s"][1], attrs["p"][1], attrs["d"][1])
        shrunk(self, inputs[0], out_h, out_w)
        return (attrs["c"], out_h, out_w)

    def tensors(self, attrs, inputs):
        per_group = inputs[0][0] // attrs["g"]
        return _weight_and_bias((attrs["c"], per_group, *attrs["k"]), attrs["c"], per_group, attrs)

    def macs(self, attrs, inputs, output):
        channels, out_h, out_w = output
        return channels * out_h * out_w * attrs["k"][0] * attrs["k"][1] * (inputs[0][0] // attrs["g"])

    def window(self, attrs, inputs):
        return Window(attrs["k"], attrs["s"], attrs["d"], padding=attrs["p"])

    def label(self, attrs):
        if attrs["depthwise"]:
            head = f"dwconv {_kernel_text(attrs['k'])}"
        else:
            head = f"conv {_kernel_text(attrs['k'])}, {attrs['c']}"
            if attrs["g"] > 1:
                head += f", g{attrs['g']}"
        if attrs["d"] != (1, 1):
            head += f", d{attrs['d'][0]}"
        return head + stride_text(attrs["s"])

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.Conv2d(
            inputs[0][0], attrs["c"], attrs["k"], attrs["s"], attrs["p"], attrs["d"], attrs["g"], attrs["bias"]
        )

    def onnx(self, attrs, inputs, args, emit):
        return emit.op(
            "Conv",
            [args[0], *emit.weights()],
            kernel_shape=attrs["k"],
            strides=attrs["s"],
            pads=attrs["p"] * 2,
            dilations=attrs["d"],
            group=attrs["g"],
        )


@register
class Deconv(OpKind):
    name = "deconv"
    family = "conv"
    torch_overwritable = True
    signature = (("c", None), ("k", 2), ("s", 2), ("p", 0), ("op", 0), ("g", 1), ("bias", True))
    doc = "transposed convolution (learned upsampling); op is the output padding"
    example = Example("deconv(6, k=3, s=2, p=1, op=1, g=2)")

    def resolve(self, attrs, inputs):
        channels_in = spatial(self, inputs[0])[0]
        channels = channels_in if attrs["c"] is None else whole(attrs["c"], "channels c")
        groups = whole(attrs["g"], "groups g")
        if channels_in % groups or channels % groups:
            raise ValueProblem(f"groups g={groups} must divide input ({channels_in}) and output ({channels}) channels")
        stride = pair(attrs["s"], "stride s")
        extra = pair(attrs["op"], "output padding op", minimum=0)
        if extra[0] >= stride[0] or extra[1] >= stride[1]:
            raise ValueProblem(f"output padding op={attrs['op']} must be smaller than the stride")
        return {
            "c": channels,
            "k": pair(attrs["k"], "kernel size k"),
            "s": stride,
            "p": pair(attrs["p"], "padding p", minimum=0),
            "op": extra,
            "g": groups,
            "bias": flag(attrs["bias"], "bias"),
        }

    def shape(self, attrs, inputs):
        _, height, width = inputs[0]
        out_h = (height - 1) * attrs["s"][0] - 2 * attrs["p"][0] + attrs["k"][0] + attrs["op"][0]
        out_w = (width - 1) * attrs["s"][1] - 2 * attrs["p"][1] + attrs["k"][1] + attrs["op"][1]
        shrunk(self, inputs[0], out_h, out_w)
        return (attrs["c"], out_h, out_w)

    def tensors(self, attrs, inputs):
        per_group = attrs["c"] // attrs["g"]  # PyTorch's fan-in of this weight layout
        return _weight_and_bias((inputs[0][0], per_group, *attrs["k"]), attrs["c"], per_group, attrs)

    def macs(self, attrs, inputs, output):
        """Every input pixel scatters a K×K×(C_out/g) patch."""
        channels_in, height, width = inputs[0]
        return channels_in * height * width * attrs["k"][0] * attrs["k"][1] * (attrs["c"] // attrs["g"])

    def window(self, attrs, inputs):
        return Window(attrs["k"], (1, 1), upsample=attrs["s"], padding=attrs["p"], mode="transposed")

    def label(self, attrs):
        stride = attrs["s"]
        return f"deconv {_kernel_text(attrs['k'])}, {attrs['c']}, ×" + (
            f"{stride[0]}" if stride[0] == stride[1] else f"{stride[0]}×{stride[1]}"
        )

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.ConvTranspose2d(
            inputs[0][0], attrs["c"], attrs["k"], attrs["s"], attrs["p"], attrs["op"], attrs["g"], attrs["bias"]
        )

    def onnx(self, attrs, inputs, args, emit):
        return emit.op(
            "ConvTranspose",
            [args[0], *emit.weights()],
            kernel_shape=attrs["k"],
            strides=attrs["s"],
            pads=attrs["p"] * 2,
            output_padding=attrs["op"],
            group=attrs["g"],
        )


pattern(_kernel_preset("conv"), "conv", "convKxK (conv3x3, conv1x7: k preset)")
pattern(_kernel_preset("dwconv"), "conv", "dwconvKxK (depthwise, k preset)")
alias("dwconv", "conv", g="depthwise")
alias("convtranspose", "deconv")
