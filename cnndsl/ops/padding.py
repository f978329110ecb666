"""Padding a map with zeros on each side by its own amount, as nn.ZeroPad2d (Ultralytics' yolov3-tiny pads
one row and column after its P5 map before a stride-1 max pool)."""

from __future__ import annotations

from ..core.errors import ValueProblem
from .base import REQUIRED, OpKind, Window, register, spatial, whole
from .tensors import Example
from .torch_code import Arg, Call


@register
class ZeroPad(OpKind):
    """nn.ZeroPad2d(p): `p` is one size for every side or (left, right, top, bottom), F.pad's order."""

    name = "zeropad"
    family = "reshape"
    signature = (("p", REQUIRED),)
    doc = "zeropad(p) or zeropad([left, right, top, bottom]): zeros around the map, as nn.ZeroPad2d"
    example = Example("zeropad([0, 1, 0, 1])", (4, 5, 5))

    def resolve(self, attrs, inputs):
        spatial(self, inputs[0])
        sides = attrs["p"]
        if not isinstance(sides, (list, tuple)):
            sides = [sides] * 4
        if len(sides) != 4:
            raise ValueProblem(
                f"`zeropad` takes one size or four (left, right, top, bottom), got {len(sides)}",
                hint="zeropad([0, 1, 0, 1]) pads one column on the right and one row at the bottom",
            )
        return {"p": tuple(whole(side, "a padding", minimum=0) for side in sides)}

    def shape(self, attrs, inputs):
        channels, height, width = inputs[0]
        left, right, top, bottom = attrs["p"]
        return (channels, height + top + bottom, width + left + right)

    def window(self, attrs, inputs):
        left, _, top, _ = attrs["p"]
        return Window((1, 1), (1, 1), padding=(top, left))

    def label(self, attrs):
        return "zero pad " + " ".join(map(str, attrs["p"]))

    def torch_forward(self, attrs, inputs):
        return Call("F", "pad", (Arg(0), attrs["p"]))  # mode "constant", value 0

    def onnx(self, attrs, inputs, args, emit):
        left, right, top, bottom = attrs["p"]
        pads = (0, 0, top, left, 0, 0, bottom, right)  # begins of N, C, H, W, then their ends
        if emit.opset < 11:  # Pad took its pads as an attribute until opset 11
            return emit.op("Pad", [args[0]], pads=pads, mode="constant")
        return emit.op("Pad", [args[0], emit.ints("pads", pads)], mode="constant")
