"""Layers that rearrange channels without weights: a part of the channels, a channel shuffle, the identity."""

from __future__ import annotations

from ..core.errors import ShapeProblem, ValueProblem
from .base import REQUIRED, OpKind, axis_index, format_shape, register, spatial, whole
from .layout import onnx_slice, part_along, sliced
from .tensors import Example
from .torch_code import Arg, Method


@register
class Chunk(OpKind):
    """Part i of n equal parts of an axis (the channels by default), as `x.chunk(n, dim=1)[i]` (ShuffleNetV2,
    CSP blocks)."""

    name = "chunk"
    family = "reshape"
    signature = (("n", REQUIRED), ("i", REQUIRED), ("axis", 0))
    doc = "part i (from 0) of an axis (the channels by default) cut into n equal parts"
    example = Example("chunk(2, 1)")

    def resolve(self, attrs, inputs):
        axis = axis_index(attrs["axis"], inputs[0], "`chunk`'s axis")
        parts, length = whole(attrs["n"], "parts n"), inputs[0][axis]
        index = whole(attrs["i"], "part i", minimum=0)
        if length % parts:
            what = f"{length} channels" if axis == 0 else f"axis {attrs['axis']} of {format_shape(inputs[0])}"
            raise ShapeProblem(
                f"`chunk` cannot cut {what} into {parts} equal parts",
                hint=f"n must divide the {'channels' if axis == 0 else 'size of the axis'} ({length})",
            )
        if index >= parts:
            raise ValueProblem(
                f"part i={index} does not exist among {parts} parts", hint=f"i counts from 0 to {parts - 1}"
            )
        size = length // parts
        return {"n": parts, "i": index, "axis": axis, "start": index * size, "stop": (index + 1) * size}

    def shape(self, attrs, inputs):
        return part_along(attrs, inputs[0])

    def keeps_positions(self, attrs, inputs):
        return attrs["axis"] == 0 or len(inputs[0]) != 3

    def label(self, attrs):
        return f"chunk {attrs['i'] + 1}/{attrs['n']}" + ("" if attrs["axis"] == 0 else f", axis {attrs['axis']}")

    def torch_forward(self, attrs, inputs):
        if attrs["i"] == attrs["n"] - 1:  # the last part as `x[:, -c:]`: no offset that grows
            # with the turn of a `dense` that reads the newest channels (C2f), so its turns share one class
            last = {**attrs, "start": attrs["start"] - attrs["stop"], "stop": None}
            return sliced(last)  # a view: never overwritten
        return sliced(attrs)  # a view: never overwritten

    def onnx(self, attrs, inputs, args, emit):
        return onnx_slice(attrs, args, emit)


@register
class ChannelShuffle(OpKind):
    """ShuffleNet's channel shuffle (Zhang et al. 2018): g groups of C/g channels, interleaved, as
    torchvision's `channel_shuffle` (view N×g×C/g×H×W, transpose 1 and 2, view back)."""

    name = "channelshuffle"
    family = "reshape"
    signature = (("g", REQUIRED),)
    doc = "interleaves g groups of channels (ShuffleNet)"
    example = Example("channelshuffle(2)")

    def resolve(self, attrs, inputs):
        channels, groups = spatial(self, inputs[0])[0], whole(attrs["g"], "groups g")
        if channels % groups:
            raise ShapeProblem(
                f"`channelshuffle` cannot cut {channels} channels into {groups} groups",
                hint=f"g must divide the channels ({channels})",
            )
        return {"g": groups}

    def label(self, attrs):
        return f"channel shuffle {attrs['g']}"

    def torch_forward(self, attrs, inputs):
        channels, height, width = inputs[0]
        groups = attrs["g"]
        grouped = Method(Arg(0), "reshape", (-1, groups, channels // groups, height, width))
        return Method(Method(grouped, "transpose", (1, 2)), "reshape", (-1, channels, height, width))

    def onnx(self, attrs, inputs, args, emit):
        channels, height, width = inputs[0]
        groups = attrs["g"]
        grouped = emit.op("Reshape", [args[0], emit.ints("grouped", (0, groups, channels // groups, height, width))])
        swapped = emit.op("Transpose", [grouped], perm=(0, 2, 1, 3, 4))
        return emit.op("Reshape", [swapped, emit.ints("shape", (0, channels, height, width))])


@register
class Identity(OpKind):
    name = "identity"
    family = "reshape"
    doc = "passes its input on: a path of its own in `branch`, a named point"
    example = Example("identity")

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.Identity()

    def onnx(self, attrs, inputs, args, emit):
        return args[0]
