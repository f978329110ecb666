"""Resizing without weights: upsampling by a factor."""
from __future__ import annotations

from .base import OpKind, Window, choice, register, spatial, whole


@register
class Upsample(OpKind):
    name = "upsample"
    family = "pool"
    torch_overwritable = True
    signature = (("scale", 2), ("mode", "nearest"))
    doc = "nearest or bilinear upsampling by a whole factor"

    def resolve(self, attrs, inputs):
        spatial(self, inputs[0])
        return {"scale": whole(attrs["scale"], "scale factor"), "mode": choice(attrs["mode"], "mode", ("nearest", "bilinear"))}

    def shape(self, attrs, inputs):
        channels, height, width = inputs[0]
        return (channels, height * attrs["scale"], width * attrs["scale"])

    def window(self, attrs, inputs):
        return Window((1, 1), (1, 1), upsample=(attrs["scale"], attrs["scale"]))

    def label(self, attrs):
        return f"upsample ×{attrs['scale']}"

    def torch_call(self, attrs, inputs, args, module):
        corners = ", align_corners=False" if attrs["mode"] == "bilinear" else ""
        return f"F.interpolate({args[0]}, scale_factor={attrs['scale']}, mode='{attrs['mode']}'{corners})"

    def onnx(self, attrs, inputs, args, emit):
        emit.require(11, "`upsample`")  # Resize with coordinate modes that match PyTorch
        no_roi = "" if emit.opset >= 13 else emit.floats("roi", ())
        scales = emit.floats("scales", (1, 1, attrs["scale"], attrs["scale"]))
        if attrs["mode"] == "nearest":  # PyTorch's nearest: floor(out_index / scale)
            options = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        else:
            options = dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel")
        return emit.op("Resize", [args[0], no_roi, scales], **options)


@register
class Input(OpKind):
    """The network's input; built by `input 3x224x224`, never called by name."""

    name = "input"
    family = "io"
    doc = "the network input"

    def label(self, attrs):
        return "input"
