"""Resizing without weights: upsampling by a factor, resizing to a size or to another tap's size."""

from __future__ import annotations

from ..core.errors import ShapeProblem, ValueProblem
from .base import OpKind, Window, choice, flag, format_shape, pair, register, spatial, whole
from .tensors import Example
from .torch_code import Arg, Call


def interpolation_window(mode: str) -> Window:
    """Each output pixel reads 2×2 input pixels (bilinear) or one (nearest), where the sizes put it."""
    return Window((1, 1), (1, 1), mode="linear" if mode == "bilinear" else "nearest")


def _interpolate_call(target: tuple[str, object], mode: str, align_corners: bool = False) -> Call:
    """The torch call of `upsample` and `resize`; `target` is ("scale_factor", 2) or ("size", (h, w))."""
    corners = (("align_corners", align_corners),) if mode == "bilinear" else ()
    return Call("F", "interpolate", (Arg(0),), (target, ("mode", mode), *corners))


def _onnx_resize(emit, arg: str, mode: str, scales: str = "", sizes: str = "", align_corners: bool = False) -> str:
    """ONNX Resize computing what `_interpolate_call` does, by the `scales` or to the `sizes` value given."""
    if emit.opset < 13:  # roi, and scales beside sizes, may be left out from opset 13; before, they are empty tensors
        roi, scales = emit.floats("roi", ()), scales or emit.floats("scales", ())
    else:
        roi = ""
    if mode == "nearest":  # PyTorch's nearest: floor(out_index · in / out)
        options = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    elif align_corners:  # the corner pixels of input and output coincide: x_in = x_out · (in - 1) / (out - 1)
        options = dict(mode="linear", coordinate_transformation_mode="align_corners")
    else:  # half_pixel, not pytorch_half_pixel: PyTorch no longer reads pixel 0 for an output of length 1
        options = dict(mode="linear", coordinate_transformation_mode="half_pixel")
    return emit.op("Resize", [arg, roi, scales, *([sizes] if sizes else [])], **options)


@register
class Upsample(OpKind):
    name = "upsample"
    family = "pool"
    torch_overwritable = True
    signature = (("scale", 2), ("mode", "nearest"), ("align_corners", False))
    doc = (
        "nearest or bilinear upsampling by a whole factor; bilinear with align_corners=true as F.interpolate "
        "(corner pixels kept, YOLO26's depth head)"
    )
    example = Example("upsample(2, mode=bilinear, align_corners=true)", (4, 3, 3))

    def resolve(self, attrs, inputs):
        spatial(self, inputs[0])
        mode = choice(attrs["mode"], "mode", ("nearest", "bilinear"))
        corners = flag(attrs["align_corners"], "align_corners")
        if corners and mode != "bilinear":
            raise ValueProblem(
                "`upsample` aligns corners only in bilinear mode", hint="upsample(2, mode=bilinear, align_corners=true)"
            )
        return {"scale": whole(attrs["scale"], "scale factor"), "mode": mode, "align_corners": corners}

    def shape(self, attrs, inputs):
        channels, height, width = inputs[0]
        return (channels, height * attrs["scale"], width * attrs["scale"])

    def window(self, attrs, inputs):
        return interpolation_window(attrs["mode"])

    def label(self, attrs):
        return f"upsample ×{attrs['scale']}" + " (corners)" * attrs.get("align_corners", False)

    def torch_forward(self, attrs, inputs):
        return _interpolate_call(("scale_factor", attrs["scale"]), attrs["mode"], attrs.get("align_corners", False))

    def onnx(self, attrs, inputs, args, emit):
        emit.require(11, "`upsample`")  # Resize with coordinate modes that match PyTorch
        scales = emit.floats("scales", (1, 1, attrs["scale"], attrs["scale"]))
        corners = attrs.get("align_corners", False)
        return _onnx_resize(emit, args[0], attrs["mode"], scales=scales, align_corners=corners)


@register
class Resize(OpKind):
    """`F.interpolate(x, size=...)` to a fixed size or to the size of a tap, as torchvision's segmentation
    heads return to the input's size (bilinear, align_corners=False)."""

    name = "resize"
    family = "pool"
    takes_taps = True
    tap_values = False
    torch_overwritable = True
    signature = (("size", None), ("mode", "bilinear"))
    doc = "resize((h, w)) or resize(@t) to the size of tap t, as F.interpolate with align_corners=false; bilinear or nearest"
    example = Example("resize((3, 7))")

    def resolve(self, attrs, inputs):
        spatial(self, inputs[0])
        mode = choice(attrs["mode"], "mode", ("bilinear", "nearest"))
        if len(inputs) > 2 or (len(inputs) == 2) == (attrs["size"] is not None):
            raise ValueProblem(
                "`resize` takes either one @tap to match or a size", hint="resize(@image) or resize((64, 64))"
            )
        if len(inputs) == 2:
            if len(inputs[1]) != 3:
                raise ShapeProblem(
                    f"`resize` cannot take the size of a {format_shape(inputs[1])} tensor", hint="resize to a C×H×W tap"
                )
            return {"size": inputs[1][1:], "mode": mode}
        return {"size": pair(attrs["size"], "size"), "mode": mode}

    def shape(self, attrs, inputs):
        return (inputs[0][0], *attrs["size"])

    def window(self, attrs, inputs):
        return interpolation_window(attrs["mode"])

    def label(self, attrs):
        return f"resize {attrs['size'][0]}×{attrs['size'][1]}"

    def torch_forward(self, attrs, inputs):
        return _interpolate_call(("size", attrs["size"]), attrs["mode"])

    def onnx(self, attrs, inputs, args, emit):
        emit.require(11, "`resize`")  # Resize with sizes and PyTorch's coordinate modes
        batch_channels = emit.op(
            "Slice",
            [emit.op("Shape", [args[0]]), emit.ints("zero", (0,)), emit.ints("two", (2,)), emit.ints("axis", (0,))],
        )
        sizes = emit.op("Concat", [batch_channels, emit.ints("size", attrs["size"])], axis=0)
        return _onnx_resize(emit, args[0], attrs["mode"], sizes=sizes)


@register
class PixelShuffle(OpKind):
    """nn.PixelShuffle (Shi et al. 2016, sub-pixel convolution): r² channels become an r×r block of pixels."""

    name = "pixelshuffle"
    family = "reshape"
    signature = (("r", 2),)
    doc = "C×H×W to C/r²×rH×rW: each r² channels become an r×r block of pixels"
    example = Example("pixelshuffle(2)", (8, 3, 3))

    def resolve(self, attrs, inputs):
        channels, factor = spatial(self, inputs[0])[0], whole(attrs["r"], "factor r")
        if channels % (factor * factor):
            raise ShapeProblem(f"`pixelshuffle` needs channels divisible by r² = {factor * factor}, got {channels}")
        return {"r": factor}

    def shape(self, attrs, inputs):
        channels, height, width = inputs[0]
        factor = attrs["r"]
        return (channels // (factor * factor), height * factor, width * factor)

    def window(self, attrs, inputs):
        return Window((1, 1), (1, 1), mode="nearest")

    def label(self, attrs):
        return f"pixel shuffle ×{attrs['r']}"

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.PixelShuffle(attrs["r"])

    def onnx(self, attrs, inputs, args, emit):
        emit.require(11, "`pixelshuffle`")  # DepthToSpace in PyTorch's channel order (CRD)
        return emit.op("DepthToSpace", [args[0]], blocksize=attrs["r"], mode="CRD")


@register
class Input(OpKind):
    """The network's input; built by `input 3x224x224`, never called by name."""

    name = "input"
    family = "io"
    called_by_name = False
    doc = "the network input"

    def label(self, attrs):
        return "input"
