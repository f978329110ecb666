"""Class-aware non-maximum suppression: decoded detections become a fixed number of boxes, scores and labels.

`nms` takes the decoders' layout, B × (4 + classes) × boxes (cx, cy, w, h in input pixels, then class scores),
and returns B × max_det × 6: rows (x1, y1, x2, y2, score, label) by falling score, then rows of padding
(score 0, label -1) — Ultralytics' end-to-end layout, one static shape an ONNX user can run. It selects as
ONNX's NonMaxSuppression does (center_point_box=1): per class, every box whose score is above `score`, in
falling score order (ties: the lower box number first), is kept unless it overlaps a kept box of its class by
an IoU above `iou`; then the best `max_det` over all classes (ties: the lower class, then the lower box).
How many rows are boxes depends on the image: the analysis bounds it by max_det (`data_dependent`).

The torch functions are pure torch, in detect_torch.py (torchvision's C ops do not load on every build); this
module names them lazily, so that `cnndsl summary` never imports torch.
"""

from __future__ import annotations

from ..core.errors import ShapeProblem
from .base import OpKind, format_shape, fraction, register, whole
from .tensors import Example
from .torch_code import Arg, Call

CORNERS = ("x1", "y1", "x2", "y2", "score", "label")


def __getattr__(name: str):
    """`batched_nms` and `detections_nms` from detect_torch.py, imported when first asked for (they need torch)."""
    if name in ("batched_nms", "detections_nms"):
        from . import detect_torch

        return getattr(detect_torch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@register
class Nms(OpKind):
    """Non-maximum suppression per class with a score threshold and a top-k (`max_det`)."""

    name = "nms"
    family = "reshape"
    signature = (("iou", 0.45), ("score", 0.25), ("max_det", 300))
    doc = (
        "class-aware non-maximum suppression of (4 + classes) × boxes detections: max_det × 6 rows "
        "(x1, y1, x2, y2, score, label), padded with score 0, label -1"
    )
    example = Example(
        "nms(iou=0.5, score=0.1, max_det=5)", (14, 2, 3), before="yolo(anchors=[10, 13, 16, 30], stride=8), identity"
    )

    def resolve(self, attrs, inputs):
        if len(inputs[0]) != 2 or inputs[0][0] < 5:
            raise ShapeProblem(
                f"`nms` takes decoded detections, (4 + classes) × boxes, got {format_shape(inputs[0])}",
                hint="decode the head first: yolo(...), yologrid(...)",
            )
        return {
            "iou": fraction(attrs["iou"], "iou"),
            "score": fraction(attrs["score"], "score"),
            "max_det": whole(attrs["max_det"], "max_det"),
        }

    def shape(self, attrs, inputs):
        return (attrs["max_det"], len(CORNERS))

    def label(self, attrs):
        return f"nms iou {attrs['iou']:g}, ≤{attrs['max_det']} boxes"

    def data_dependent(self, attrs) -> str | None:
        return (
            f"at most {attrs['max_det']} boxes kept; how many depends on the image (the other rows: score 0, label -1)"
        )

    def traced_steps(self, attrs, inputs):
        """A trace runs all of detections_nms, where a meta run returns at once: 30 operators to rank the boxes,
        then 44 a round (as torch.export records them), a round per row kept."""
        rows, count = inputs[0]
        return 30 + 44 * min(attrs["max_det"], (rows - 4) * count)

    def torch_forward(self, attrs, inputs):
        options = tuple((key, attrs[key]) for key in ("iou", "score", "max_det"))
        return Call("", "detections_nms", (Arg(0),), options)  # a function the backends define (detect_torch.py)

    def onnx(self, attrs, inputs, args, emit):
        emit.require(11, "`nms`")  # NonMaxSuppression with ScatterND and GatherElements
        rows, count = inputs[0]
        classes, keep = rows - 4, min(attrs["max_det"], (rows - 4) * count)
        boxes = emit.op("Transpose", [_slice(emit, args[0], 0, 4, 1)], perm=(0, 2, 1))  # B × boxes × (cx, cy, w, h)
        scores = _slice(emit, args[0], 4, rows, 1)  # B × classes × boxes
        limits = [emit.ints("max_det", (attrs["max_det"],)), emit.floats("iou", (attrs["iou"],)),
                  emit.floats("score", (attrs["score"],))]  # fmt: skip
        selected = emit.op("NonMaxSuppression", [boxes, scores, *limits], center_point_box=1)
        marked = emit.op(
            "ScatterND",
            [
                emit.op("ConstantOfShape", [emit.op("Shape", [scores])], value=_float_tensor(-1.0)),
                selected,
                emit.op("GatherND", [scores, selected]),
            ],
        )
        flat = emit.op("Reshape", [marked, emit.ints("flat", (0, classes * count))])
        best = emit.op("TopK", [flat, emit.ints("k", (keep,))], axis=1)
        indices = best + "_indices"
        emit.nodes[-1].output.append(indices)
        label, number = (
            emit.op("Div", [indices, emit.ints("boxes", count)]),
            emit.op("Mod", [indices, emit.ints("m", count)]),
        )
        found = emit.op("Greater", [best, emit.floats("none", -0.5)])
        spread = emit.op("Expand", [_unsqueeze(emit, number, 2), emit.ints("four", (1, 1, 4))])
        picked = emit.op("GatherElements", [boxes, spread], axis=1)
        half = emit.op("Div", [_slice(emit, picked, 2, 4, 2), emit.floats("two", 2.0)])
        centre = _slice(emit, picked, 0, 2, 2)
        corners = emit.op("Concat", [emit.op("Sub", [centre, half]), emit.op("Add", [centre, half])], axis=2)
        zero = emit.floats("zero", 0.0)
        columns = [
            emit.op("Where", [_unsqueeze(emit, found, 2), corners, zero]),
            _unsqueeze(emit, emit.op("Where", [found, best, zero]), 2),
            _unsqueeze(emit, emit.op("Where", [found, emit.op("Cast", [label], to=1), emit.floats("no", -1.0)]), 2),
        ]
        return padded_rows(emit, emit.op("Concat", columns, axis=2), args[0], keep, attrs["max_det"])


def padded_rows(emit, result: str, batched: str, keep: int, max_det: int) -> str:
    """N × keep × 6 rows, followed by max_det - keep rows of padding (score 0, label -1); N is `batched`'s batch."""
    if keep == max_det:
        return result
    batch = _slice(emit, emit.op("Shape", [batched]), 0, 1, 0)
    size = emit.op("Concat", [batch, emit.ints("rows", (max_det - keep, 6))], axis=0)
    filler = emit.op("Expand", [emit.floats("padding", [[[0, 0, 0, 0, 0, -1]]]), size])  # one row, broadcast
    return emit.op("Concat", [result, filler], axis=1)


def _slice(emit, value: str, start: int, stop: int, axis: int) -> str:
    bounds = [emit.ints("start", (start,)), emit.ints("stop", (stop,)), emit.ints("axis", (axis,))]
    return emit.op("Slice", [value, *bounds])


def _unsqueeze(emit, value: str, axis: int) -> str:
    if emit.opset < 13:  # Unsqueeze took its axes as an attribute until opset 13
        return emit.op("Unsqueeze", [value], axes=(axis,))
    return emit.op("Unsqueeze", [value, emit.ints("axes", (axis,))])


def _float_tensor(value: float):
    from onnx import TensorProto, helper

    return helper.make_tensor("value", TensorProto.FLOAT, [1], [value])
