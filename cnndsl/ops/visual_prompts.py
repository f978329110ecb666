"""YOLOE's visual prompts (Wang et al. 2025, "YOLOE: Real-Time Seeing Anything"), as Ultralytics' SAVPE computes them.

SAVPE (spatial-aware visual prompt embedding) turns a prompt mask, a region of the image drawn at the first
level's resolution, into an embedding the head compares pixels with, as it compares them with a class's text.
Its convolutions are ordinary layers; what is its own is the pooling at its end, `promptpool`: each of g
groups of the embedding's channels is averaged over the pixels the mask covers, weighted by a softmax of that
group's score there (a mask of zeros leaves the pixel out: its score is float32's lowest, as Ultralytics writes
it). The result is laid out as the class text is (`text_guided.py`), dims × 1 × 1: one prompt, one "class".
"""

from __future__ import annotations

from ..core.errors import ShapeProblem, ValueProblem
from .base import OpKind, format_shape, register, spatial
from .tensors import Example
from .text_guided import _call, _onnx_normalized
from .torch_code import Arg, Call, Method, Operation

LOWEST = -3.4028234663852886e38  # torch.finfo(torch.float32).min: a pixel outside the mask


@register
class PromptPool(OpKind):
    """The end of Ultralytics' SAVPE: the embedding map (C×H×W, tap 1) pooled over one prompt's mask (1×H×W,
    tap 2), each group of C/g channels weighted by the softmax over the pixels of its score (the current
    tensor, g×H×W) times the mask, the pixels outside the mask left out; the pooled C values made unit length."""

    name = "promptpool"
    family = "pool"
    takes_taps = True
    tap_edge = "branch"
    ranks = (3,)
    doc = (
        "promptpool(@embedding, @mask): one visual prompt's embedding, C×1×1 (unit length), as YOLOE's SAVPE: "
        "the C×H×W embedding map averaged over the pixels of the 1×H×W mask, each of g groups of C/g channels "
        "weighted by a softmax of its score (the current g×H×W tensor) times the mask; pixels where the mask "
        "is 0 are left out"
    )
    example = Example("promptpool(@f, @m)", (4, 3, 3), before="f: conv1x1(8), @in, m: conv1x1(1), @in, conv1x1(4)")

    def resolve(self, attrs, inputs):
        if len(inputs) != 3:
            raise ValueProblem(
                f"`promptpool` takes the embedding map and the mask as two taps, got {len(inputs) - 1}",
                hint="promptpool(@embedding, @mask)",
            )
        groups, height, width = spatial(self, inputs[0])
        embedding, mask = inputs[1], inputs[2]
        if len(embedding) != 3 or tuple(embedding[1:]) != (height, width) or embedding[0] % groups:
            raise ShapeProblem(
                f"`promptpool`'s embedding must be C×{height}×{width} with C a multiple of the score's {groups} "
                f"groups, got {format_shape(embedding)}",
                hint="SAVPE's embedding is conv1x1(embed) of its levels, the score conv3x3(16) of the mask's",
            )
        if tuple(mask) != (1, height, width):
            raise ShapeProblem(
                f"`promptpool`'s mask must be 1×{height}×{width}, got {format_shape(mask)}",
                hint="one prompt's mask: chunk the prompts input to one channel each",
            )
        return {}

    def shape(self, attrs, inputs):
        return (inputs[1][0], 1, 1)

    def macs(self, attrs, inputs, output):
        channels, height, width = inputs[1]
        return channels * height * width + inputs[0][0] * height * width  # the weighted sums and the mask

    def label(self, attrs):
        return "prompt pool"

    def torch_forward(self, attrs, inputs):
        groups, height, width = inputs[0]
        channels = inputs[1][0]
        score, mask = _call("flatten", Arg(0), 2), _call("flatten", Arg(2), 2)
        outside = Operation("*", (_call("logical_not", mask), LOWEST))  # float32's lowest, as the network computes
        weights = Call("F", "softmax", (Operation("+", (Operation("*", (score, mask)), outside)),), (("dim", -1),))
        embedding = _call("reshape", Arg(1), (-1, groups, channels // groups, height * width))
        pooled = _call("matmul", embedding, Method(weights, "unsqueeze", (-1,)))
        unit = Call("F", "normalize", (_call("reshape", pooled, (-1, channels)),), (("dim", -1), ("p", 2)))
        return _call("reshape", unit, (-1, channels, 1, 1))

    def onnx(self, attrs, inputs, args, emit):
        groups, height, width = inputs[0]
        channels = inputs[1][0]
        score = emit.op("Reshape", [args[0], emit.ints("score", (0, groups, height * width))])
        mask = emit.op("Reshape", [args[2], emit.ints("mask", (0, 1, height * width))])
        inside = emit.op("Cast", [mask], to=9)  # bool: torch.logical_not's reading of the mask
        outside = emit.op("Cast", [emit.op("Not", [inside])], to=1)
        masked = emit.op(
            "Add", [emit.op("Mul", [score, mask]), emit.op("Mul", [outside, emit.floats("lowest", LOWEST)])]
        )
        weights = emit.op("Reshape", [emit.op("Softmax", [masked], axis=-1), emit.ints("column", (0, groups, -1, 1))])
        embedding = emit.op("Reshape", [args[1], emit.ints("groups", (0, groups, channels // groups, height * width))])
        pooled = emit.op("Reshape", [emit.op("MatMul", [embedding, weights]), emit.ints("flat", (0, channels))])
        unit = _onnx_normalized(emit, pooled, 1)
        return emit.op("Reshape", [unit, emit.ints("out", (0, channels, 1, 1))])
