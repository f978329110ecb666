"""YOLO's grid decoders: a head's raw maps become detections, 4 + classes rows × one column per box.

The shared layout of every decoder (Ultralytics' eval output): rows cx, cy, w, h in input pixels, then the
final class scores in [0, 1] (objectness already multiplied in, as darknet's `get_yolo_detections` and
`get_detection_detections` multiply it). Boxes are numbered as darknet numbers its detections: cell by cell
(row-major), the boxes of a cell one after the other. `@taps` of earlier decoded levels go first, so the last
level's decoder returns every level's boxes (YOLOv3's three scales in darknet's order).
"""

from __future__ import annotations

from ..core.errors import ShapeProblem, ValueProblem
from .base import REQUIRED, OpKind, flag, format_shape, numel, pair, real, register, spatial, whole
from .tensors import Example
from .torch_code import Arg, Call


def _numbers(value, what: str) -> list[float]:
    """A flat list of positive numbers, from a list of numbers or of (w, h) pairs."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueProblem(f"{what} must be a list of numbers, got {value!r}", hint="e.g. anchors=[10, 13, 16, 30]")
    flat = []
    for item in value:
        flat.extend(item if isinstance(item, (list, tuple)) else [item])
    return [real(item, what, positive=True) for item in flat]


def _detections_after_taps(kind: OpKind, rows: int, taps: list) -> int:
    """The boxes the @taps hold: each a decoded rows × boxes tensor with the same rows."""
    total = 0
    for shape in taps:
        if len(shape) != 2 or shape[0] != rows:
            raise ShapeProblem(
                f"`{kind.name}` puts earlier detections in front of its own, but @tap is {format_shape(shape)}, "
                f"not {rows}×boxes",
                hint="tap the output of another decoder with the same classes",
            )
        total += shape[1]
    return total


@register
class Yolo(OpKind):
    """YOLOv2/v3 anchor decoding (darknet's `[yolo]` layer, `get_yolo_box`): per anchor of the mask, 5 + classes
    channels tx, ty, tw, th, objectness, classes. Centre ((σ(t)·s − (s − 1)/2) + cell) × stride, size
    exp(t) × anchor (anchors in input pixels), score σ(objectness) × σ(class)."""

    name = "yolo"
    family = "reshape"
    takes_taps = True
    tap_edge = "concat"
    signature = (("anchors", REQUIRED), ("stride", REQUIRED), ("mask", None), ("classes", None), ("scale_xy", 1.0))
    doc = (
        "yolo(anchors=[w, h, ...], stride=s, mask=[...]): YOLOv2/v3 anchor boxes decoded to (4 + classes) × boxes, "
        "boxes in input pixels; @taps of earlier levels go first"
    )
    example = Example("yolo(anchors=[10, 13, 16, 30], stride=8, scale_xy=1.05)", (14, 3, 4))

    def resolve(self, attrs, inputs):
        channels = spatial(self, inputs[0])[0]
        numbers = _numbers(attrs["anchors"], "anchors")
        if len(numbers) % 2:
            raise ValueProblem(f"anchors come in (w, h) pairs, got {len(numbers)} numbers")
        anchors = [tuple(numbers[i : i + 2]) for i in range(0, len(numbers), 2)]
        mask = attrs["mask"] if attrs["mask"] is not None else list(range(len(anchors)))
        if not isinstance(mask, (list, tuple)) or not mask:
            raise ValueProblem(f"mask must be a list of anchor numbers, got {mask!r}", hint="e.g. mask=[0, 1, 2]")
        mask = [whole(index, "an anchor number in mask", minimum=0) for index in mask]
        if max(mask) >= len(anchors):
            raise ValueProblem(
                f"mask picks anchor {max(mask)}, but there are {len(anchors)} anchors",
                hint=f"anchor numbers count from 0 to {len(anchors) - 1}",
            )
        per_anchor = channels // len(mask)
        if channels % len(mask) or per_anchor < 6:
            raise ShapeProblem(
                f"`yolo` needs {len(mask)} × (5 + classes) channels for {len(mask)} anchors, got {channels}",
                hint="the conv before it has len(mask) * (5 + classes) filters",
            )
        if attrs["classes"] is not None and whole(attrs["classes"], "classes") != per_anchor - 5:
            raise ShapeProblem(
                f"`yolo` with {attrs['classes']} classes needs {len(mask) * (attrs['classes'] + 5)} channels, "
                f"got {channels}",
                hint="the conv before it has len(mask) * (5 + classes) filters",
            )
        scale = real(attrs["scale_xy"], "scale_xy", positive=True)
        _detections_after_taps(self, per_anchor - 1, inputs[1:])
        stride = attrs["stride"]
        strides = (
            (real(stride[0], "stride", True), real(stride[1], "stride", True))
            if isinstance(stride, (list, tuple)) and len(stride) == 2
            else (real(stride, "stride", True),) * 2
        )
        return {"anchors": tuple(anchors[i] for i in mask), "stride": strides, "classes": per_anchor - 5,
                "scale_xy": scale}  # fmt: skip

    def shape(self, attrs, inputs):
        _, height, width = inputs[0]
        return (attrs["classes"] + 4, sum(shape[1] for shape in inputs[1:]) + len(attrs["anchors"]) * height * width)

    def label(self, attrs):
        return f"yolo decode, {len(attrs['anchors'])} anchors"

    def torch_forward(self, attrs, inputs):
        options = (("anchors", attrs["anchors"]), ("stride", attrs["stride"]), ("scale_xy", attrs["scale_xy"]))
        return Call("", "yolo_decode", tuple(Arg(index) for index in range(len(inputs))), options)  # detect_torch.py

    def onnx(self, attrs, inputs, args, emit):
        import numpy as np

        emit.require(10, "`yolo`")  # Slice with its bounds as inputs
        _, height, width = inputs[0]
        anchors, rows = len(attrs["anchors"]), attrs["classes"] + 5
        boxes = anchors * height * width
        maps = emit.op("Reshape", [args[0], emit.ints("per_anchor", (0, anchors, rows, height * width))])
        maps = emit.op("Transpose", [maps], perm=(0, 2, 3, 1))
        maps = emit.op("Reshape", [maps, emit.ints("boxes", (0, rows, boxes))])
        centre = emit.op("Sigmoid", [_onnx_rows(emit, maps, 0, 2)])
        scale = attrs["scale_xy"]
        if scale != 1:
            centre = emit.op("Add", [emit.op("Mul", [centre, emit.floats("scale_xy", scale)]),
                                     emit.floats("shift", -(scale - 1) / 2)])  # fmt: skip
        cell = np.arange(boxes) // anchors
        grid = np.stack([cell % width, cell // width]).astype(np.float32)
        centre = emit.op("Add", [centre, emit.floats("grid", grid)])
        stride_y, stride_x = attrs["stride"]
        centre = emit.op("Mul", [centre, emit.floats("stride", [[stride_x], [stride_y]])])
        table = np.tile(np.asarray(tuple(zip(*attrs["anchors"])), dtype=np.float32), (1, height * width))
        size = emit.op("Mul", [emit.op("Exp", [_onnx_rows(emit, maps, 2, 4)]), emit.floats("anchors", table)])
        objectness = emit.op("Sigmoid", [_onnx_rows(emit, maps, 4, 5)])
        scores = emit.op("Mul", [emit.op("Sigmoid", [_onnx_rows(emit, maps, 5, rows)]), objectness])
        decoded = emit.op("Concat", [centre, size, scores], axis=1)
        return emit.op("Concat", [*args[1:], decoded], axis=2) if len(args) > 1 else decoded


def _onnx_rows(emit, value: str, start: int, stop: int) -> str:
    bounds = [emit.ints("start", (start,)), emit.ints("stop", (stop,)), emit.ints("axis", (1,))]
    return emit.op("Slice", [value, *bounds])


@register
class YoloGrid(OpKind):
    """YOLOv1's S×S grid (Redmon et al. 2016; darknet's `[detection]` layer, `get_detection_detections`): the
    flat output holds S·S·C class probabilities, S·S·B confidences, then S·S·B boxes of 4 (x, y in the cell,
    w, h of the image; with `sqrt` the square roots, squared here). Score: confidence × class probability."""

    name = "yologrid"
    family = "reshape"
    signature = (("grid", 7), ("boxes", 2), ("classes", 20), ("size", REQUIRED), ("sqrt", True))
    doc = (
        "yologrid(grid, boxes, classes, size=(h, w)): YOLOv1's grid decoded to (4 + classes) × boxes, boxes in "
        "input pixels"
    )
    example = Example("yologrid(grid=2, boxes=2, classes=3, size=64)", (13, 2, 2))

    def resolve(self, attrs, inputs):
        grid, boxes = whole(attrs["grid"], "grid"), whole(attrs["boxes"], "boxes")
        classes = whole(attrs["classes"], "classes")
        expected = grid * grid * (boxes * 5 + classes)
        if numel(inputs[0]) != expected:
            raise ShapeProblem(
                f"`yologrid` needs grid² × (5·boxes + classes) = {expected} values, got {format_shape(inputs[0])}",
                hint="the layer before it has grid * grid * (boxes * 5 + classes) outputs",
            )
        return {"grid": grid, "boxes": boxes, "classes": classes, "size": pair(attrs["size"], "size"),
                "sqrt": flag(attrs["sqrt"], "sqrt")}  # fmt: skip

    def shape(self, attrs, inputs):
        return (attrs["classes"] + 4, attrs["grid"] ** 2 * attrs["boxes"])

    def label(self, attrs):
        return f"yolo v1 decode {attrs['grid']}×{attrs['grid']}"

    def _parts(self, attrs) -> tuple[int, int, int, int]:
        cells, boxes = attrs["grid"] ** 2, attrs["grid"] ** 2 * attrs["boxes"]
        return cells, boxes, cells * attrs["classes"], cells * attrs["classes"] + boxes

    def torch_forward(self, attrs, inputs):
        options = tuple((key, attrs[key]) for key in ("grid", "boxes", "classes", "size", "sqrt"))
        return Call("", "grid_decode", (Arg(0),), options)  # cnndsl/ops/detect_torch.py

    def onnx(self, attrs, inputs, args, emit):
        import numpy as np

        emit.require(10, "`yologrid`")  # Slice with its bounds as inputs
        cells, boxes, confidences, coordinates = self._parts(attrs)
        grid, per_cell, classes = attrs["grid"], attrs["boxes"], attrs["classes"]
        flat = emit.op("Reshape", [args[0], emit.ints("flat", (0, numel(inputs[0])))])
        probabilities = emit.op("Reshape", [_onnx_rows(emit, flat, 0, confidences),
                                            emit.ints("cells", (0, cells, 1, classes))])  # fmt: skip
        confidence = emit.op("Reshape", [_onnx_rows(emit, flat, confidences, coordinates),
                                         emit.ints("per_cell", (0, cells, per_cell, 1))])  # fmt: skip
        scores = emit.op("Reshape", [emit.op("Mul", [confidence, probabilities]),
                                     emit.ints("scores", (0, boxes, classes))])  # fmt: skip
        coords = emit.op("Reshape", [_onnx_rows(emit, flat, coordinates, numel(inputs[0])),
                                     emit.ints("coords", (0, boxes, 4))])  # fmt: skip
        coords = emit.op("Transpose", [coords], perm=(0, 2, 1))
        cell = np.arange(boxes) // per_cell
        table = np.stack([cell % grid, cell // grid]).astype(np.float32)
        height, width = attrs["size"]
        centre = emit.op("Add", [_onnx_rows(emit, coords, 0, 2), emit.floats("grid", table)])
        centre = emit.op("Mul", [centre, emit.floats("cell_size", [[width / grid], [height / grid]])])
        size = _onnx_rows(emit, coords, 2, 4)
        if attrs["sqrt"]:
            size = emit.op("Mul", [size, size])
        size = emit.op("Mul", [size, emit.floats("image_size", [[width], [height]])])
        return emit.op("Concat", [centre, size, emit.op("Transpose", [scores], perm=(0, 2, 1))], axis=1)
