"""Ultralytics' Pose head's keypoint decoding (`Pose.kpts_decode`): each anchor's keypoints, per keypoint x and y
as offsets in cells and, with 3 dims, a visibility logit, become pixels and a visibility score."""

from __future__ import annotations

from ..core.errors import ShapeProblem
from .base import OpKind, flag, register, whole
from .detect_anchor_free import anchor_levels, anchor_points, anchor_strides
from .tensors import Example
from .torch_code import Arg, Attribute, Call, Listed


@register
class KeypointDecode(OpKind):
    """Rows k·dims + (0, 1, 2) of a keypoints × anchors tensor: x and y become (2·offset + centre − 0.5)·stride
    (the centre of the anchor's cell, in cells), or with `centred` (YOLO26's Pose26) (offset + centre)·stride;
    the visibility (dims 3) its sigmoid; the taps, as for `dist2bbox`, give the input image and each level's
    map, from which the anchors and strides are fixed."""

    name = "kptdecode"
    family = "reshape"
    takes_taps = True
    tap_values = False
    torch_overwritable = True
    signature = (("dims", 3), ("centred", False))
    doc = "kptdecode(@image, @level, ..., dims=3, centred=false): keypoint rows (x, y[, visibility] per keypoint) × anchors to pixels and a sigmoid visibility, as Ultralytics' Pose decodes them (centred: Pose26's offsets from the anchor's centre)"
    example = Example("kptdecode(@in, @cells)", (6, 4, 4), before="cells: maxpool, anchorcat, bn")

    def resolve(self, attrs, inputs):
        dims = whole(attrs["dims"], "dims", minimum=2)
        if dims not in (2, 3):
            raise ShapeProblem(f"`kptdecode` takes dims 2 (x, y) or 3 (x, y, visibility), not {dims}")
        levels = anchor_levels(self, inputs)
        if inputs[0][0] % dims:
            raise ShapeProblem(f"`kptdecode` cannot cut {inputs[0][0]} rows into keypoints of {dims} values")
        return {"dims": dims, "levels": levels, "centred": flag(attrs["centred"], "centred")}

    def shape(self, attrs, inputs):
        return inputs[0]

    def label(self, attrs):
        return "keypoints"

    def torch_forward(self, attrs, inputs):
        rows, anchors = inputs[0]
        dims = attrs["dims"]
        device = (("device", Attribute(Arg(0), "device")),)
        centres, strides = [], []
        for height, width, stride in attrs["levels"]:
            across = Call("torch", "arange", (width,), device)
            down = Call("torch", "arange", (height,), device)
            mesh = Call("torch", "meshgrid", (across, down), (("indexing", "xy"),))
            centres.append(_call("flatten", _call("stack", mesh), 1))
            strides.append(Call("torch", "full", ((1, height * width), float(stride)), device))
        centre, stride = _joined(centres), _joined(strides)  # 2 × anchors: x, y of each cell (its centre − 0.5)
        points = _call("reshape", Arg(0), (-1, rows // dims, dims, anchors))
        offsets = _call("narrow", points, 2, 0, 2)
        if attrs["centred"]:  # Pose26: (offset + (cell + 0.5))·stride
            xy = _call("mul", _call("add", offsets, _call("add", centre, 0.5)), stride)
        else:  # Pose: (2·offset + cell)·stride
            xy = _call("mul", _call("add", _call("mul", offsets, 2.0), centre), stride)
        parts = (xy, _call("sigmoid", _call("narrow", points, 2, 2, 1))) if dims == 3 else (xy,)
        joined = _call("cat", Listed(parts), 2) if dims == 3 else xy
        return _call("reshape", joined, (-1, rows, anchors))

    def onnx(self, attrs, inputs, args, emit):
        rows, anchors = inputs[0]
        dims, levels = attrs["dims"], attrs["levels"]
        stride = emit.computed("strides", (1, anchors), lambda: anchor_strides(levels))
        points = emit.op("Reshape", [args[0], emit.ints("points", (0, rows // dims, dims, anchors))])
        xy = _slice(emit, points, 0, 2)
        if attrs["centred"]:
            centre = emit.computed("centres", (2, anchors), lambda: anchor_points(levels))
            xy = emit.op("Mul", [emit.op("Add", [xy, centre]), stride])
        else:
            corner = emit.computed("cells", (2, anchors), lambda: anchor_points(levels) - 0.5)
            xy = emit.op("Mul", [emit.op("Add", [emit.op("Mul", [xy, emit.floats("two", 2.0)]), corner]), stride])
        if dims == 3:
            xy = emit.op("Concat", [xy, emit.op("Sigmoid", [_slice(emit, points, 2, 3)])], axis=2)
        return emit.op("Reshape", [xy, emit.ints("rows", (0, rows, anchors))])


def _slice(emit, value: str, start: int, stop: int) -> str:
    starts, ends, axes = emit.ints("starts", (start,)), emit.ints("ends", (stop,)), emit.ints("axes", (2,))
    return emit.op("Slice", [value, starts, ends, axes])


def _joined(parts: list):
    return parts[0] if len(parts) == 1 else _call("cat", Listed(tuple(parts)), 1)


def _call(function: str, *args) -> Call:
    return Call("torch", function, args)
