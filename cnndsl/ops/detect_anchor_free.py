"""The anchor-free detection head's end, as Ultralytics' YOLOv8 and YOLO11 `Detect` computes it in eval mode.

Each level's map holds, per cell, 4 × reg_max box bins (a distribution over the distance to each side, in
cells: Li et al. 2020, "Generalized Focal Loss") followed by one logit per class. `anchorcat` lays the levels'
cells side by side (C × anchors), `dfl` turns each side's bins into the expected distance, and `dist2bbox`
turns distances from each cell's centre into boxes (cx, cy, w, h) in input pixels and the logits into scores:
Ultralytics' eval output, B × (4 + classes) × anchors, the layout the `nms` kind reads.
"""

from __future__ import annotations

from ..core.errors import ShapeProblem
from .base import OpKind, format_shape, register, whole
from .tensors import Example, Ramp, TensorSpec
from .torch_code import Arg, Attribute, Call, Listed, Method, applied

BOX_SIDES = 4  # left, top, right, bottom


def _maps(kind: OpKind, inputs) -> None:
    for shape in inputs:
        if len(shape) != 3:
            raise ShapeProblem(
                f"`{kind.name}` takes C×H×W maps, got {format_shape(shape)}",
                hint="give it the detection head's maps, one per level",
            )


def _anchors(kind: OpKind, shape) -> tuple[int, int]:
    """(rows, anchors) of a decoded C × anchors tensor; anything else is a located error."""
    if len(shape) != 2:
        raise ShapeProblem(
            f"`{kind.name}` takes rows × anchors, got {format_shape(shape)}",
            hint="put `anchorcat` before it: it lays the levels' cells side by side",
        )
    return shape


@register
class AnchorConcat(OpKind):
    """The levels' cells side by side, as Ultralytics' `torch.cat([x.view(b, no, -1) for x in levels], 2)`."""

    name = "anchorcat"
    family = "reshape"
    takes_taps = True
    tap_edge = "concat"
    torch_overwritable = True
    doc = "anchorcat(@t, ...): the current C×H×W map, then the taps', flattened and joined along the cells: C×(ΣH·W), one column per anchor"
    example = Example("anchorcat(@in)", before="bn")

    def shape(self, attrs, inputs):
        _maps(self, inputs)
        for other in inputs[1:]:
            if other[0] != inputs[0][0]:
                raise ShapeProblem(
                    f"cannot lay {format_shape(other)} beside {format_shape(inputs[0])}: the channels differ",
                    hint="every level must hold the same box bins and classes",
                )
        return (inputs[0][0], sum(height * width for _, height, width in inputs))

    def label(self, attrs):
        return "cells ∥"

    def torch_forward(self, attrs, inputs):
        flat = tuple(Method(Arg(index), "flatten", (2,)) for index in range(len(inputs)))
        return flat[0] if len(flat) == 1 else Call("torch", "cat", (Listed(flat), 2))

    def onnx(self, attrs, inputs, args, emit):
        shape = emit.ints("cells", (0, inputs[0][0], -1))
        flat = [emit.op("Reshape", [arg, shape]) for arg in args]
        return flat[0] if len(flat) == 1 else emit.op("Concat", flat, axis=2)


@register
class DistributionFocal(OpKind):
    """Ultralytics' DFL: softmax over each side's reg_max bins, then their expectation Σ k·p_k, computed by a fixed
    1×1 convolution whose weights are 0 … reg_max − 1 (`dfl.conv`, counted as a parameter as Ultralytics does)."""

    name = "dfl"
    family = "reshape"
    torch_overwritable = True
    signature = (("reg_max", 16),)
    doc = "the first 4·reg_max rows (each box side's bins) become 4 expected distances, Σ k·softmax(bins)_k; the rows after them (class logits) pass on"
    example = Example("dfl(2)", (10, 2, 3), before="anchorcat, bn")

    def resolve(self, attrs, inputs):
        bins = whole(attrs["reg_max"], "reg_max", minimum=2)
        rows, _ = _anchors(self, inputs[0])
        if rows < BOX_SIDES * bins:
            raise ShapeProblem(
                f"`dfl` needs at least 4 × reg_max = {BOX_SIDES * bins} rows of box bins, got {rows}",
                hint="reg_max is the bins per box side (Ultralytics: 16)",
            )
        return {"reg_max": bins}

    def shape(self, attrs, inputs):
        rows, anchors = inputs[0]
        return (rows - BOX_SIDES * (attrs["reg_max"] - 1), anchors)

    def tensors(self, attrs, inputs):
        return [TensorSpec("weight", (1, attrs["reg_max"], 1, 1), Ramp(), trainable=False)]

    def macs(self, attrs, inputs, output):
        return BOX_SIDES * attrs["reg_max"] * inputs[0][1]  # the 1×1 convolution, as thop counts it

    def label(self, attrs):
        return f"DFL {attrs['reg_max']}"

    def torch_module(self, attrs, inputs):
        import torch
        from torch import nn

        conv = nn.Conv2d(attrs["reg_max"], 1, 1, bias=False).requires_grad_(False)
        with torch.no_grad():
            conv.weight.copy_(torch.arange(attrs["reg_max"], dtype=torch.float32).view(1, -1, 1, 1))
        return conv

    def torch_forward(self, attrs, inputs):
        # written as nested torch calls, no method chains: `--to python` lays them out as ruff format does
        rows, anchors = inputs[0]
        box = BOX_SIDES * attrs["reg_max"]
        bins = _narrowed(Arg(0), 0, box) if rows > box else Arg(0)
        spread = _call("transpose", _call("reshape", bins, (-1, BOX_SIDES, attrs["reg_max"], anchors)), 2, 1)
        sides = _call("flatten", applied(_call("softmax", spread, 1)), 1, 2)
        if rows == box:
            return sides
        return _call("cat", Listed((sides, _narrowed(Arg(0), box, rows - box))), 1)

    def onnx(self, attrs, inputs, args, emit):
        emit.require(13, "`dfl`")  # Softmax over one axis of a 4-D tensor
        rows, anchors = inputs[0]
        box = BOX_SIDES * attrs["reg_max"]
        bins = _rows(emit, args[0], 0, box) if rows > box else args[0]
        spread = emit.op("Reshape", [bins, emit.ints("bins", (0, BOX_SIDES, attrs["reg_max"], anchors))])
        spread = emit.op("Transpose", [spread], perm=(0, 2, 1, 3))
        expected = emit.op("Conv", [emit.op("Softmax", [spread], axis=1), emit.weight("weight")])
        sides = emit.op("Reshape", [expected, emit.ints("sides", (0, BOX_SIDES, anchors))])
        if rows == box:
            return sides
        return emit.op("Concat", [sides, _rows(emit, args[0], box, rows)], axis=1)


def _rows(emit, value: str, start: int, stop: int) -> str:
    return emit.op("Slice", [value, emit.ints("starts", (start,)), emit.ints("ends", (stop,)), emit.ints("axes", (1,))])


@register
class DistanceToBox(OpKind):
    """Ultralytics' `dist2bbox(xywh=True)` times the strides, and the sigmoid of the class logits.

    Rows 0–3 are the distances (left, top, right, bottom) in cells from each anchor, the centre of its cell; the
    taps give sizes only: the input image first, then each level's map, from which the anchors and each level's
    stride (input size / map size) are fixed, as Ultralytics' `make_anchors` computes them.
    """

    name = "dist2bbox"
    family = "reshape"
    takes_taps = True
    tap_values = False
    torch_overwritable = True
    signature = (("xyxy", False),)
    doc = "dist2bbox(@image, @level, ...): rows 0–3, distances in cells from each cell's centre, become cx, cy, w, h in input pixels (x1, y1, x2, y2 with xyxy=true, as an end-to-end head), the other rows (class logits) sigmoid scores; the taps' sizes fix the anchors and strides"
    example = Example("dist2bbox(@in, @cells)", (6, 4, 4), before="cells: maxpool, anchorcat, bn")

    def resolve(self, attrs, inputs):
        levels = anchor_levels(self, inputs)
        if inputs[0][0] < BOX_SIDES:
            raise ShapeProblem(f"`dist2bbox` needs 4 rows of distances, got {inputs[0][0]}")
        if not isinstance(attrs["xyxy"], bool):
            raise ShapeProblem(f"`dist2bbox`'s xyxy is true or false, not {attrs['xyxy']!r}")
        return {"levels": levels, "xyxy": attrs["xyxy"]}

    def shape(self, attrs, inputs):
        return inputs[0]

    def label(self, attrs):
        return "boxes, scores"

    def torch_forward(self, attrs, inputs):
        # nested torch calls, no operators or method chains: `--to python` lays them out as ruff format does
        device = (("device", Attribute(Arg(0), "device")),)
        grids, strides = [], []
        for height, width, stride in attrs["levels"]:
            across = _call("add", Call("torch", "arange", (width,), device), 0.5)
            down = _call("add", Call("torch", "arange", (height,), device), 0.5)
            mesh = Call("torch", "meshgrid", (across, down), (("indexing", "xy"),))
            grids.append(_call("flatten", _call("stack", mesh), 1))
            strides.append(Call("torch", "full", ((1, height * width), float(stride)), device))
        anchors, stride = _joined(grids), _joined(strides)
        rows = inputs[0][0]
        left_top, right_bottom = _narrowed(Arg(0), 0, 2), _narrowed(Arg(0), 2, 2)
        if attrs["xyxy"]:  # Ultralytics' dist2bbox(xywh=False): the corners
            corners = (_call("sub", anchors, left_top), _call("add", anchors, right_bottom))
            boxes = _call("mul", _call("cat", Listed(corners), 1), stride)
        else:
            centre = _call("add", anchors, _call("mul", _call("sub", right_bottom, left_top), 0.5))
            size = _call("add", left_top, right_bottom)
            boxes = _call("mul", _call("cat", Listed((centre, size)), 1), stride)
        scores = _call("sigmoid", _narrowed(Arg(0), BOX_SIDES, rows - BOX_SIDES))
        return _call("cat", Listed((boxes, scores)), 1)

    def onnx(self, attrs, inputs, args, emit):
        rows, anchors = inputs[0]
        levels = attrs["levels"]
        grid = emit.computed("anchors", (2, anchors), lambda: anchor_points(levels))
        stride = emit.computed("strides", (1, anchors), lambda: anchor_strides(levels))
        left_top, right_bottom = _rows(emit, args[0], 0, 2), _rows(emit, args[0], 2, BOX_SIDES)
        if attrs["xyxy"]:
            first, second = emit.op("Sub", [grid, left_top]), emit.op("Add", [grid, right_bottom])
        else:
            half = emit.op("Mul", [emit.op("Sub", [right_bottom, left_top]), emit.floats("half", 0.5)])
            first, second = emit.op("Add", [grid, half]), emit.op("Add", [left_top, right_bottom])
        boxes = emit.op("Mul", [emit.op("Concat", [first, second], axis=1), stride])
        scores = emit.op("Sigmoid", [_rows(emit, args[0], BOX_SIDES, rows)])
        return emit.op("Concat", [boxes, scores], axis=1)


def anchor_levels(kind: OpKind, inputs) -> tuple[tuple[int, int, int], ...]:
    """(height, width, stride) of each level tapped after the image (`kind(@image, @p3, ...)`), whose cells must be
    the input's anchors."""
    rows, anchors = _anchors(kind, inputs[0])
    if len(inputs) < 3:
        raise ShapeProblem(
            f"`{kind.name}` needs the input image and at least one level as taps: {kind.name}(@image, @p3, ...)",
            hint="label the input (`image: input 3x640x640`) and each level's map",
        )
    _maps(kind, inputs[1:])
    _, image_height, image_width = inputs[1]
    levels = []
    for _, height, width in inputs[2:]:
        stride = image_height // height
        if stride * height != image_height or stride * width != image_width:
            raise ShapeProblem(
                f"a {height}×{width} level has no whole stride over the {image_height}×{image_width} input",
                hint="the input's height and width must be the level's times one stride (YOLO: a multiple of 32)",
            )
        levels.append((height, width, stride))
    cells = sum(height * width for height, width, _ in levels)
    if cells != anchors:
        raise ShapeProblem(
            f"the levels have {cells} cells, the input {anchors} anchors",
            hint=f"give {kind.name} the same levels, in the same order, as anchorcat",
        )
    return tuple(levels)


def _joined(parts: list):
    return parts[0] if len(parts) == 1 else _call("cat", Listed(tuple(parts)), 1)


def _call(function: str, *args) -> Call:
    return Call("torch", function, args)


def _narrowed(value, start: int, length: int) -> Call:
    """Rows start … start + length of a B × rows × anchors tensor (a view)."""
    return _call("narrow", value, 1, start, length)


def anchor_points(levels):
    """2 × anchors: each cell's centre (x, y) in cells, level after level, row by row (`make_anchors`, offset 0.5)."""
    import numpy as np  # for the ONNX constants only: the registry loads without it

    columns = []
    for height, width, _ in levels:
        down, across = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
        columns.append(np.stack((across.ravel(), down.ravel())))
    return np.concatenate(columns, axis=1).astype(np.float32)


def anchor_strides(levels):
    """1 × anchors: the stride of each anchor's level, in input pixels."""
    import numpy as np

    return np.concatenate([np.full(height * width, stride) for height, width, stride in levels])[None].astype(
        np.float32
    )
