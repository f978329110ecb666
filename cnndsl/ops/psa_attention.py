"""Multi-head self-attention over the pixels of a map, as Ultralytics' `Attention` (YOLO11's C2PSA) computes it.

Its 1×1 `qkv` convolution gives, per head, key_dim query channels, key_dim key channels and head_dim value
channels; the weights live in ordinary layers around these two kinds: `attend` is the softmax attention of
every pixel over every pixel, `attendvalues` the value channels alone (Ultralytics adds a depthwise
convolution of them, `pe`, to the attention's output).
"""

from __future__ import annotations

from ..core.errors import ShapeProblem
from .base import REQUIRED, OpKind, register, spatial, whole
from .tensors import Example
from .torch_code import Arg, Call


def _heads(kind: OpKind, attrs, inputs) -> dict:
    """heads, key_dim and the value width a head gets from the qkv channels, checked."""
    channels = spatial(kind, inputs[0])[0]
    heads, key_dim = whole(attrs["heads"], "heads"), whole(attrs["key_dim"], "key_dim")
    per_head = channels // heads
    if channels % heads or per_head <= 2 * key_dim:
        raise ShapeProblem(
            f"`{kind.name}` cannot cut {channels} channels into {heads} heads of 2 × {key_dim} query and key channels "
            "and some value channels",
            hint="the qkv convolution gives heads × (2 × key_dim + head_dim) channels",
        )
    return {"heads": heads, "key_dim": key_dim, "head_dim": per_head - 2 * key_dim}


def _per_head(attrs, inputs, start: int, stop: int) -> Call:
    """Channels start:stop of each head, as B × heads × channels × pixels (B × heads × area × channels × pixels
    of the area with `area`): nested torch calls, which `--to python` lays out as ruff format does."""
    channels, height, width = inputs[0]
    area = attrs.get("area", 1)
    if area == 1:
        grouped = _call("reshape", Arg(0), (-1, attrs["heads"], channels // attrs["heads"], height * width))
        return _call("narrow", grouped, 2, start, stop - start)
    shape = (-1, attrs["heads"], channels // attrs["heads"], area, height * width // area)
    grouped = _call("transpose", _call("reshape", Arg(0), shape), 2, 3)
    return _call("narrow", grouped, 3, start, stop - start)


def _call(function: str, *args) -> Call:
    return Call("torch", function, args)


def _onnx_per_head(emit, args, attrs, inputs) -> tuple[str, str, str]:
    channels, height, width = inputs[0]
    key_dim, area = attrs["key_dim"], attrs.get("area", 1)
    if area == 1:
        grouped = emit.op(
            "Reshape", [args[0], emit.ints("heads", (0, attrs["heads"], channels // attrs["heads"], height * width))]
        )
    else:  # B × heads × area × channels × pixels of the area
        shape = (0, attrs["heads"], channels // attrs["heads"], area, height * width // area)
        grouped = emit.op("Transpose", [emit.op("Reshape", [args[0], emit.ints("areas", shape)])], perm=(0, 1, 3, 2, 4))
    axis = 2 if area == 1 else 3
    bounds = ((0, key_dim), (key_dim, 2 * key_dim), (2 * key_dim, channels // attrs["heads"]))
    return tuple(
        emit.op(
            "Slice", [grouped, emit.ints("starts", (start,)), emit.ints("ends", (stop,)), emit.ints("axes", (axis,))]
        )
        for start, stop in bounds
    )


def _as_map(emit, value: str, attrs, inputs) -> str:
    _, height, width = inputs[0]
    return emit.op("Reshape", [value, emit.ints("map", (0, attrs["heads"] * attrs["head_dim"], height, width))])


class _HeadKind(OpKind):
    torch_overwritable = True
    signature = (("heads", REQUIRED), ("key_dim", REQUIRED))

    def resolve(self, attrs, inputs):
        return _heads(self, attrs, inputs)

    def shape(self, attrs, inputs):
        return (attrs["heads"] * attrs["head_dim"], *inputs[0][1:])


@register
class Attend(_HeadKind):
    """softmax((q · key_dim^-½)ᵀ k) over the pixels, then v times it: `(v @ attn.transpose(-2, -1)).view(B, C, H, W)`."""

    name = "attend"
    signature = (*_HeadKind.signature, ("area", 1))
    doc = "attend(heads, key_dim, area=1): multi-head self-attention over the pixels of a qkv map (per head key_dim query, key_dim key, then value channels), as Ultralytics' Attention; with area, within each of that many runs of pixels in row order (YOLO12's area attention); out: the values' channels"
    example = Example("attend(2, 1)", (8, 3, 3))

    def resolve(self, attrs, inputs):
        resolved = _heads(self, attrs, inputs)
        area, pixels = whole(attrs["area"], "area"), inputs[0][1] * inputs[0][2]
        if pixels % area:
            raise ShapeProblem(
                f"`attend` cannot cut {inputs[0][1]}×{inputs[0][2]} pixels into {area} areas of equal size",
                hint="area must divide the map's pixels (height × width)",
            )
        return {**resolved, "area": area}

    def macs(self, attrs, inputs, output):
        pixels = inputs[0][1] * inputs[0][2] // attrs["area"]
        per_area = pixels * pixels * (attrs["key_dim"] + attrs["head_dim"])  # qᵀk, then v·attnᵀ
        return attrs["heads"] * attrs["area"] * per_area

    def label(self, attrs):
        return f"attention ×{attrs['heads']}" + (f", {attrs['area']} areas" if attrs["area"] > 1 else "")

    def torch_forward(self, attrs, inputs):
        key_dim, per_head = attrs["key_dim"], 2 * attrs["key_dim"] + attrs["head_dim"]
        query = _call("mul", _per_head(attrs, inputs, 0, key_dim), key_dim**-0.5)
        key = _per_head(attrs, inputs, key_dim, 2 * key_dim)
        weights = _call("softmax", _call("matmul", _call("transpose", query, -2, -1), key), -1)
        value = _per_head(attrs, inputs, 2 * key_dim, per_head)
        attended = _call("matmul", value, _call("transpose", weights, -2, -1))
        if attrs["area"] > 1:  # B × heads × area × values × pixels -> the values' channels, pixels in order
            attended = _call("transpose", attended, 2, 3)
        return _call("reshape", attended, (-1, *self.shape(attrs, inputs)))

    def onnx(self, attrs, inputs, args, emit):
        emit.require(13, "`attend`")  # Softmax over the last axis alone
        query, key, value = _onnx_per_head(emit, args, attrs, inputs)
        query = emit.op("Mul", [query, emit.floats("scale", attrs["key_dim"] ** -0.5)])
        last_two = (0, 1, 3, 2) if attrs["area"] == 1 else (0, 1, 2, 4, 3)
        scores = emit.op("MatMul", [emit.op("Transpose", [query], perm=last_two), key])
        weights = emit.op("Softmax", [scores], axis=-1)
        attended = emit.op("MatMul", [value, emit.op("Transpose", [weights], perm=last_two)])
        if attrs["area"] > 1:
            attended = emit.op("Transpose", [attended], perm=(0, 1, 3, 2, 4))
        return _as_map(emit, attended, attrs, inputs)


@register
class AttendValues(_HeadKind):
    """The value channels of each head, in head order: `v.reshape(B, C, H, W)` of Ultralytics' Attention."""

    name = "attendvalues"
    family = "reshape"
    doc = "attendvalues(heads, key_dim): the value channels of each head of a qkv map, head after head"
    example = Example("attendvalues(2, 1)", (8, 3, 3))

    def label(self, attrs):
        return f"values ×{attrs['heads']}"

    def torch_forward(self, attrs, inputs):
        value = _per_head(attrs, inputs, 2 * attrs["key_dim"], 2 * attrs["key_dim"] + attrs["head_dim"])
        return _call("reshape", value, (-1, *self.shape(attrs, inputs)))

    def onnx(self, attrs, inputs, args, emit):
        return _as_map(emit, _onnx_per_head(emit, args, attrs, inputs)[2], attrs, inputs)
