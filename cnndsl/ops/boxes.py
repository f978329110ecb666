"""Boxes of a Region Proposal Network (Ren et al. 2015), as torchvision's RPN handles them: regression deltas
decoded against anchors (`boxdecode`), boxes clipped to the image (`clipboxes`), the best k by a score (`topk`).

Boxes are K×4 (x1, y1, x2, y2) for each image. An RPN head's maps are A·4×H×W deltas and A×H×W scores; these
kinds read them in torchvision's order (`permute_and_flatten`: pixel by pixel, the A anchors of a pixel inside),
the order `anchors` makes its boxes in. Every count here is static: `topk` keeps k, torchvision's
`pre_nms_top_n`, which bounds what its later, data-dependent steps (small boxes, NMS) keep.
"""

from __future__ import annotations

import math

from ..core.errors import ShapeProblem, ValueProblem
from ..front.evaluate import shown
from .base import OpKind, format_shape, real, register, whole
from .tensors import Example
from .torch_code import Arg, Call

CLAMP = math.log(1000.0 / 16)  # torchvision's bbox_xform_clip: no box grows more than 1000/16 times
EXAMPLE = "boxes: anchors(@in, sizes=[4], ratios=[0.5, 2]), @features"


def _flat_count(kind: OpKind, shape, per_box: int, what: str) -> int:
    """How many boxes a K×per_box list or an A·per_box×H×W map holds."""
    if len(shape) == 3 and shape[0] % per_box == 0:
        return shape[0] // per_box * shape[1] * shape[2]
    if (per_box == 1 and len(shape) == 1) or (len(shape) == 2 and shape[1] == per_box):
        return shape[0]
    raise ShapeProblem(
        f"`{kind.name}` takes {what} as K×{per_box} or a map of A·{per_box}×H×W, got {format_shape(shape)}"
        if per_box > 1
        else f"`{kind.name}` takes {what} as K or a map of A×H×W, got {format_shape(shape)}"
    )


def _same_count(kind: OpKind, count: int, boxes: int, what: str) -> None:
    if count != boxes:
        raise ShapeProblem(
            f"`{kind.name}` has {count} {what} for {boxes} boxes",
            hint="make both from the same feature map, with as many anchors a pixel",
        )


def _boxes(kind: OpKind, shape, what: str = "boxes") -> int:
    if len(shape) != 2 or shape[1] != 4:
        raise ShapeProblem(f"`{kind.name}` takes {what} as K×4 (x1, y1, x2, y2), got {format_shape(shape)}")
    return shape[0]


@register
class BoxDecode(OpKind):
    name = "boxdecode"
    family = "reshape"
    takes_taps = True
    signature = (("weights", (1.0, 1.0, 1.0, 1.0)), ("clamp", CLAMP))
    doc = (
        "boxdecode(@anchors, weights=[1, 1, 1, 1], clamp=log(1000/16)): regression deltas (K×4, or an A·4×H×W map) "
        "applied to K×4 boxes, as torchvision's BoxCoder.decode: centres move by d·size/weight, sizes grow by "
        "exp(min(d/weight, clamp))"
    )
    example = Example("boxdecode(@boxes, weights=[1, 1, 2, 2])", (4, 6, 6), before=f"features: bn, {EXAMPLE}, conv(8)")

    def resolve(self, attrs, inputs):
        if len(inputs) != 2:
            raise ValueProblem(
                f"`boxdecode` takes one tap, the boxes the deltas move; got {len(inputs) - 1}",
                hint="boxdecode(@anchors)",
            )
        weights = attrs["weights"]
        if not isinstance(weights, (list, tuple)) or len(weights) != 4:
            raise ValueProblem(f"the box weights are four numbers (x, y, w, h), got {shown(weights)}")
        _same_count(self, _flat_count(self, inputs[0], 4, "deltas"), _boxes(self, inputs[1]), "deltas")
        return {
            "weights": tuple(real(weight, "a box weight", positive=True) for weight in weights),
            "clamp": real(attrs["clamp"], "the clamp"),
        }

    def shape(self, attrs, inputs):
        return inputs[1]

    def label(self, attrs):
        return "decode boxes"

    def torch_forward(self, attrs, inputs):
        return Call("", "decode_boxes", (Arg(0), Arg(1), attrs["weights"], attrs["clamp"]))

    def onnx(self, attrs, inputs, args, emit):
        emit.require(13, "`boxdecode` (ONNX Slice with its bounds as inputs)")
        deltas = _onnx_flat(emit, args[0], inputs[0], 4)
        return onnx_decode(emit, deltas, args[1], attrs["weights"], attrs["clamp"], axis=2)


def onnx_decode(emit, deltas: str, boxes: str, weights, clamp: float, axis: int) -> str:
    """BoxCoder.decode in ONNX: deltas and boxes with (x1, y1, x2, y2) along `axis`, broadcast against each other."""
    x1, y1, x2, y2 = (_column(emit, boxes, index, axis) for index in range(4))
    dx, dy, dw, dh = (
        emit.op("Div", [_column(emit, deltas, index, axis), emit.floats("weight", weight)])
        for index, weight in enumerate(weights)
    )
    corners = []
    for low, high, shift, scale in ((x1, x2, dx, dw), (y1, y2, dy, dh)):
        size = emit.op("Sub", [high, low])
        centre = emit.op("Add", [low, emit.op("Mul", [emit.floats("half", 0.5), size])])
        centre = emit.op("Add", [emit.op("Mul", [shift, size]), centre])
        grown = emit.op("Exp", [emit.op("Min", [scale, emit.floats("clamp", clamp)])])
        half = emit.op("Mul", [emit.floats("half", 0.5), emit.op("Mul", [grown, size])])
        corners.append((emit.op("Sub", [centre, half]), emit.op("Add", [centre, half])))
    (left, right), (top, bottom) = corners
    return emit.op("Concat", [left, top, right, bottom], axis=axis)


@register
class ClipBoxes(OpKind):
    name = "clipboxes"
    family = "reshape"
    takes_taps = True
    tap_values = False  # the image tap gives only its size
    doc = "clipboxes(@image): K×4 boxes clipped to the image's size, as torchvision's clip_boxes_to_image"
    example = Example(
        "clipboxes(@in)", (4, 6, 6), before="conv(4, s=2), anchors(@in, sizes=[8], ratios=[0.5, 2]), relu"
    )

    def resolve(self, attrs, inputs):
        _boxes(self, inputs[0])
        if len(inputs) != 2 or len(inputs[1]) != 3:
            raise ValueProblem("`clipboxes` takes one tap, the C×H×W image to clip to", hint="clipboxes(@image)")
        return {"size": inputs[1][1:]}

    def label(self, attrs):
        return f"clip to {attrs['size'][0]}×{attrs['size'][1]}"

    def torch_forward(self, attrs, inputs):
        return Call("", "clip_boxes", (Arg(0), attrs["size"]))

    def onnx(self, attrs, inputs, args, emit):
        height, width = attrs["size"]
        low = emit.op("Max", [args[0], emit.floats("zero", 0.0)])
        return emit.op("Min", [low, emit.floats("size", [width, height, width, height])])


@register
class TopK(OpKind):
    name = "topk"
    family = "reshape"
    takes_taps = True
    signature = (("k", 1000),)
    doc = (
        "topk(k, @scores): the k boxes (K×4) or scores with the highest scores (K, or an A×H×W map), best first; "
        "k is at most K (torchvision's pre_nms_top_n per level)"
    )
    example = Example(
        "topk(5, @scores)", (4, 6, 6), before="scores: conv(2), anchors(@in, sizes=[4], ratios=[0.5, 2]), relu"
    )

    def resolve(self, attrs, inputs):
        if len(inputs) > 2:
            raise ValueProblem(f"`topk` takes at most one tap, the scores; got {len(inputs) - 1}")
        if len(inputs) == 1 and len(inputs[0]) == 2:
            raise ShapeProblem("`topk` of K×4 boxes needs their scores as a tap", hint="topk(k, @scores)")
        scores = _flat_count(self, inputs[-1], 1, "scores")
        if len(inputs) == 2:
            _same_count(self, scores, _boxes(self, inputs[0]), "scores")
        return {"k": min(whole(attrs["k"], "k"), scores)}

    def shape(self, attrs, inputs):
        return (attrs["k"], 4) if len(inputs) == 2 else (attrs["k"],)

    def label(self, attrs):
        return f"top {attrs['k']}"

    def torch_forward(self, attrs, inputs):
        scores = Arg(1) if len(inputs) == 2 else Arg(0)
        return Call("", "top_k", (Arg(0), scores, attrs["k"]))

    def onnx(self, attrs, inputs, args, emit):
        emit.require(11, "`topk` (ONNX TopK with k as an input)")
        scores = _onnx_flat(emit, args[-1], inputs[-1], 1)
        best = emit.op("TopK", [scores, emit.ints("k", [attrs["k"]])], axis=1)
        index = f"{best}_indices"  # TopK's second output, which ONNX requires: where each of the best is
        emit.nodes[-1].output.append(index)
        if len(inputs) == 1:
            return best
        spread = emit.op("Expand", [emit.op("Unsqueeze", [index, emit.ints("axes", [2])]), emit.ints("to", [1, 1, 4])])
        return emit.op("GatherElements", [args[0], spread], axis=1)


def _column(emit, value: str, index: int, axis: int = 2) -> str:
    """Column `index` of N × K × 4 (of the 4 along `axis`), as N × K × 1."""
    bounds = [emit.ints("start", [index]), emit.ints("end", [index + 1]), emit.ints("axis", [axis])]
    return emit.op("Slice", [value, *bounds])


def _onnx_flat(emit, value: str, shape, per_box: int) -> str:
    """N × K × per_box from a map of A·per_box × H × W, pixel by pixel (torchvision's permute_and_flatten)."""
    if len(shape) != 3:
        return value if per_box == 4 else emit.op("Reshape", [value, emit.ints("flat", [0, -1])])
    _, height, width = shape
    split = emit.op("Reshape", [value, emit.ints("split", [0, -1, per_box, height, width])])
    pixels = emit.op("Transpose", [split], perm=[0, 3, 4, 1, 2])
    return emit.op("Reshape", [pixels, emit.ints("flat", [0, -1] if per_box == 1 else [0, -1, per_box])])
