"""Deformable convolution, v1 (Dai et al. 2017) and v2 with a modulation mask (Zhu et al. 2019), in pure torch.

torchvision's `deform_conv2d` is a compiled op that the CPU build of torch cannot load, so the forward calls
cnndsl's own (cnndsl/ops/torch_functions.py), which `--to python` writes into its file. The layer holds the
tensors of torchvision's `DeformConv2d` (`weight`, `bias`), in an `nn.Conv2d` whose own forward is never called.

Offsets and the mask come from taps, laid out as torchvision and ONNX lay them out: offsets
2·og·kh·kw × Ho × Wo, (dy, dx) for each offset group and kernel position; the mask og·kh·kw × Ho × Wo.
"""

from __future__ import annotations

from ..core.errors import ShapeProblem, ValueProblem
from .base import OpKind, Window, flag, format_shape, pair, register, shrunk, sliding, spatial, whole
from .conv import Conv, _kernel_text, _padding
from .tensors import Example
from .torch_code import OWN, Arg, Attribute, Call

SAMPLE_MACS = 4  # a bilinear sample weighs four neighbours


@register
class DeformConv(OpKind):
    name = "deformconv"
    family = "conv"
    takes_taps = True
    tap_edge = "branch"
    torch_overwritable = True
    signature = (("c", None), ("k", 3), ("s", 1), ("p", "same"), ("d", 1), ("g", 1), ("og", 1), ("bias", True))
    doc = (
        "deformconv(c, @offsets) or deformconv(c, @offsets, @mask): deformable convolution v1, or v2 with a mask; "
        "offsets 2·og·k·k×Ho×Wo and mask og·k·k×Ho×Wo from taps, laid out as torchvision's deform_conv2d; "
        "og offset groups; the tensors of torchvision's DeformConv2d"
    )
    example = Example("deformconv(6, g=2, og=2, @offsets)", (4, 7, 7), before="x: bn, offsets: conv3x3(36), @x")

    def resolve(self, attrs, inputs):
        channels_in = spatial(self, inputs[0])[0]
        if len(inputs) not in (2, 3):
            raise ValueProblem(
                f"`deformconv` takes its offsets and optionally a mask as taps, got {len(inputs) - 1} tap(s)",
                hint="deformconv(64, @offsets) for v1, deformconv(64, @offsets, @mask) for v2",
            )
        kernel = pair(attrs["k"], "kernel size k")
        dilation = pair(attrs["d"], "dilation d")
        groups = whole(attrs["g"], "groups g")
        offset_groups = whole(attrs["og"], "offset groups og")
        channels = channels_in if attrs["c"] is None else whole(attrs["c"], "channels c")
        if channels_in % groups or channels % groups:
            raise ValueProblem(
                f"groups g={groups} must divide both input channels ({channels_in}) and output channels ({channels})"
            )
        if channels_in % offset_groups:
            raise ValueProblem(f"offset groups og={offset_groups} must divide the input channels ({channels_in})")
        return {
            "c": channels,
            "k": kernel,
            "s": pair(attrs["s"], "stride s"),
            "p": _padding(attrs["p"], kernel, dilation, self.name),
            "d": dilation,
            "g": groups,
            "og": offset_groups,
            "bias": flag(attrs["bias"], "bias"),
        }

    def shape(self, attrs, inputs):
        _, height, width = inputs[0]
        out_h = sliding(height, attrs["k"][0], attrs["s"][0], attrs["p"][0], attrs["d"][0])
        out_w = sliding(width, attrs["k"][1], attrs["s"][1], attrs["p"][1], attrs["d"][1])
        shrunk(self, inputs[0], out_h, out_w)
        taps = attrs["og"] * attrs["k"][0] * attrs["k"][1]
        for what, shape, channels in (("offsets", inputs[1], 2 * taps), ("mask", (inputs[2:] or [None])[0], taps)):
            if shape is not None and shape != (channels, out_h, out_w):
                per = "2·og·kh·kw" if what == "offsets" else "og·kh·kw"
                raise ShapeProblem(
                    f"`deformconv`'s {what} must be {channels}×{out_h}×{out_w} ({per} × the output's size), "
                    f"got {format_shape(shape)}",
                    hint=f"make the {what} tap with conv{attrs['k'][0]}x{attrs['k'][1]}({channels}) on the same input",
                )
        return (attrs["c"], out_h, out_w)

    tensors = Conv.tensors  # torchvision's DeformConv2d holds a convolution's weight and bias

    def macs(self, attrs, inputs, output):
        """The convolution's, plus four per bilinear sample and one per sample for v2's mask."""
        channels, out_h, out_w = output
        kernel = attrs["k"][0] * attrs["k"][1]
        samples = inputs[0][0] * kernel * out_h * out_w
        convolution = channels * out_h * out_w * kernel * (inputs[0][0] // attrs["g"])
        return convolution + samples * (SAMPLE_MACS + (len(inputs) == 3))

    def window(self, attrs, inputs):
        """The field at zero offsets; learned offsets move each sample by any amount the data decides."""
        return Window(attrs["k"], attrs["s"], attrs["d"], padding=attrs["p"])

    def label(self, attrs):
        return f"deform conv {_kernel_text(attrs['k'])}, {attrs['c']}"

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.Conv2d(
            inputs[0][0], attrs["c"], attrs["k"], attrs["s"], attrs["p"], attrs["d"], attrs["g"], attrs["bias"]
        )

    def torch_forward(self, attrs, inputs):
        mask = Arg(2) if len(inputs) == 3 else None
        bias = Attribute(OWN, "bias") if attrs["bias"] else None
        geometry = (("stride", attrs["s"]), ("padding", attrs["p"]), ("dilation", attrs["d"]))
        groups = (("groups", attrs["g"]), ("og", attrs["og"]))
        return Call("", "deform_conv2d", (Arg(0), Arg(1), mask, Attribute(OWN, "weight"), bias), geometry + groups)

    def onnx(self, attrs, inputs, args, emit):
        emit.require(19, "`deformconv` (ONNX DeformConv)")
        weight, *bias = emit.weights()
        operands = [args[0], weight, args[1], bias[0] if bias else ""]
        if len(args) == 3:
            operands.append(args[2])
        return emit.op(
            "DeformConv",
            operands,
            kernel_shape=attrs["k"],
            strides=attrs["s"],
            pads=attrs["p"] * 2,
            dilations=attrs["d"],
            group=attrs["g"],
            offset_group=attrs["og"],
        )
