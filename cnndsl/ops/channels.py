"""Layers that rearrange channels without weights: a part of the channels, a channel shuffle, the identity."""

from __future__ import annotations

from ..core.errors import ShapeProblem, ValueProblem
from .base import REQUIRED, OpKind, register, spatial, whole
from .tensors import Example
from .torch_code import Arg, Index, Method


@register
class Chunk(OpKind):
    """Part i of n equal parts of the channels, as `x.chunk(n, dim=1)[i]` (ShuffleNetV2, CSP blocks)."""

    name = "chunk"
    family = "reshape"
    signature = (("n", REQUIRED), ("i", REQUIRED))
    doc = "part i (from 0) of the channels cut into n equal parts"
    example = Example("chunk(2, 1)")

    def resolve(self, attrs, inputs):
        parts, channels = whole(attrs["n"], "parts n"), inputs[0][0]
        index = whole(attrs["i"], "part i", minimum=0)
        if channels % parts:
            raise ShapeProblem(
                f"`chunk` cannot cut {channels} channels into {parts} equal parts",
                hint=f"n must divide the channels ({channels})",
            )
        if index >= parts:
            raise ValueProblem(
                f"part i={index} does not exist among {parts} parts", hint=f"i counts from 0 to {parts - 1}"
            )
        size = channels // parts
        return {"n": parts, "i": index, "start": index * size, "stop": (index + 1) * size}

    def shape(self, attrs, inputs):
        return (attrs["stop"] - attrs["start"], *inputs[0][1:])

    def label(self, attrs):
        return f"chunk {attrs['i'] + 1}/{attrs['n']}"

    def torch_forward(self, attrs, inputs):
        return Index(Arg(0), (slice(None), slice(attrs["start"], attrs["stop"])))  # a view: never overwritten

    def onnx(self, attrs, inputs, args, emit):
        starts, ends = (attrs["start"],), (attrs["stop"],)
        if emit.opset < 10:  # Slice took its bounds as attributes until opset 10
            return emit.op("Slice", [args[0]], starts=starts, ends=ends, axes=(1,))
        return emit.op(
            "Slice", [args[0], emit.ints("starts", starts), emit.ints("ends", ends), emit.ints("axes", (1,))]
        )


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
