"""Joins of several tensors: add (residual), concat (dense, inception, U-Net), mul (gating), maximum (maxout).

The first input is the tensor arriving in sequence, the rest come from `@tap` arguments
or from the structure (residual shortcut, dense input, branch paths, scale gate).
"""

from __future__ import annotations

from ..core.errors import ShapeProblem, ValueProblem
from .base import OpKind, axis_index, broadcast, flag, format_shape, real, register
from .tensors import Example
from .torch_code import Arg, Call, Index, Listed, Method, Operation


def _projection_hint(source, target) -> str:
    """The shortcut a user would add to make `source` addable to `target`."""
    if len(source) == 3 and len(target) == 3 and source[1] % target[1] == 0:
        stride = source[1] // target[1]
        stride_text = f", s={stride}" if stride > 1 else ""
        return f"project the shortcut: conv1x1({target[0]}{stride_text}), bn"
    if len(source) in (1, 3) and len(target) in (1, 3):
        return "make both operands the same shape"
    return "make both operands the same shape, or shapes that broadcast (from the last axis, equal sizes or 1)"


@register
class Add(OpKind):
    name = "add"
    family = "merge"
    takes_taps = True
    torch_overwritable = True
    torch_in_place = True
    residual_join = True
    drawn_as_join = True
    doc = "add(@t): element-wise sum with the taps (residual connections); shapes broadcast as in torch, no MACs"
    example = Example("add(@in)", before="bn")

    def shape(self, attrs, inputs):
        for other in inputs[1:]:
            if broadcast([inputs[0], other]) is None:
                raise ShapeProblem(
                    f"cannot add {format_shape(other)} to {format_shape(inputs[0])}",
                    hint=_projection_hint(other, inputs[0]),
                )
        return broadcasted("add", inputs)

    def label(self, attrs):
        return "⊕"

    def torch_forward(self, attrs, inputs):
        return Operation("+", aligned_args(inputs))

    def torch_forward_in_place(self, attrs, inputs):
        if self.shape(attrs, inputs) != inputs[0]:
            return None  # the sum is larger than the first input (broadcast): it cannot hold it
        total = Arg(0)
        for term in aligned_args(inputs)[1:]:
            total = Method(total, "add_", (term,))
        return total

    def onnx(self, attrs, inputs, args, emit):
        total, *others = onnx_aligned(emit, args, inputs)
        for other in others:
            total = emit.op("Add", [total, other])
        return total


@register
class Concat(OpKind):
    name = "concat"
    family = "merge"
    takes_taps = True
    torch_overwritable = True
    drawn_as_join = True
    tap_edge = "concat"
    signature = (("crop", False), ("axis", 0))
    doc = (
        "concat(@t, ...): the current tensor, then the taps in order, along the channels or `axis`; "
        "crop=true centre-crops larger inputs (U-Net)"
    )
    example = Example("concat(@in)", before="bn")

    def resolve(self, attrs, inputs):
        crop, axis = flag(attrs["crop"], "crop"), axis_index(attrs["axis"], inputs[0], "`concat`'s axis")
        if crop and (axis != 0 or len(inputs[0]) != 3):
            raise ValueProblem(
                "`concat(crop=true)` joins C×H×W tensors along their channels",
                hint="leave crop out, or join along the channels (axis 0) of C×H×W tensors",
            )
        return {"crop": crop, "axis": axis}

    def shape(self, attrs, inputs):
        first, axis = inputs[0], attrs["axis"]
        for other in inputs[1:]:
            if len(other) != len(first):
                raise ShapeProblem(f"cannot concatenate {format_shape(other)} with {format_shape(first)}")
            rest, first_rest = other[:axis] + other[axis + 1 :], first[:axis] + first[axis + 1 :]
            if rest != first_rest and not (attrs["crop"] and other[1] >= first[1] and other[2] >= first[2]):
                raise ShapeProblem(
                    f"cannot concatenate {format_shape(other)} with {format_shape(first)}: sizes differ",
                    hint="crop the larger one with concat(..., crop=true), or resize one side"
                    if axis == 0 and len(first) == 3
                    else f"every size but that of axis {axis} must agree",
                )
        return (*first[:axis], sum(shape[axis] for shape in inputs), *first[axis + 1 :])

    def keeps_positions(self, attrs, inputs):
        return attrs["axis"] == 0 or len(inputs[0]) != 3

    def label(self, attrs):
        return "∥"

    def offsets(self, attrs, inputs):
        if len(inputs[0]) != 3:
            return [(0, 0)] * len(inputs)
        return [((shape[1] - inputs[0][1]) // 2, (shape[2] - inputs[0][2]) // 2) for shape in inputs]

    def torch_forward(self, attrs, inputs):
        height, width = inputs[0][1:] if len(inputs[0]) == 3 else (None, None)
        parts = [
            Arg(index)
            if not attrs["crop"] or shape[1:] == inputs[0][1:]
            else _centre_crop(Arg(index), shape, height, width)
            for index, shape in enumerate(inputs)
        ]
        return Call("torch", "cat", (Listed(tuple(parts)), attrs["axis"] + 1))

    def onnx(self, attrs, inputs, args, emit):
        parts = [
            arg if not attrs["crop"] or shape[1:] == inputs[0][1:] else _onnx_centre_crop(emit, arg, shape, inputs[0])
            for arg, shape in zip(args, inputs)
        ]
        return emit.op("Concat", parts, axis=attrs["axis"] + 1)


def _centre_crop(value: Arg, shape, height, width) -> Index:
    top, left = (shape[1] - height) // 2, (shape[2] - width) // 2
    return Index(value, (slice(None), slice(None), slice(top, top + height), slice(left, left + width)))


def _onnx_centre_crop(emit, arg, shape, target) -> str:
    top, left = (shape[1] - target[1]) // 2, (shape[2] - target[2]) // 2
    starts, ends = (top, left), (top + target[1], left + target[2])
    if emit.opset < 10:  # Slice took its bounds as attributes until opset 10
        return emit.op("Slice", [arg], starts=starts, ends=ends, axes=(2, 3))
    return emit.op("Slice", [arg, emit.ints("starts", starts), emit.ints("ends", ends), emit.ints("axes", (2, 3))])


@register
class Maximum(OpKind):
    name = "maximum"
    family = "merge"
    takes_taps = True
    drawn_as_join = True
    doc = "maximum(@t): element-wise maximum with the taps, of equal shapes (Caffe's Eltwise MAX, maxout)"
    example = Example("maximum(@in)", before="bn")

    def shape(self, attrs, inputs):
        for other in inputs[1:]:
            if other != inputs[0]:
                raise ShapeProblem(
                    f"cannot take the maximum of {format_shape(inputs[0])} and {format_shape(other)}",
                    hint="make both operands the same shape",
                )
        return inputs[0]

    def label(self, attrs):
        return "max"

    def torch_forward(self, attrs, inputs):
        result = Arg(0)
        for index in range(1, len(inputs)):
            result = Call("torch", "maximum", (result, Arg(index)))
        return result

    def onnx(self, attrs, inputs, args, emit):
        return emit.op("Max", list(args))


@register
class Multiply(OpKind):
    name = "mul"
    family = "merge"
    takes_taps = True
    torch_overwritable = True
    drawn_as_join = True
    signature = (("factor", None),)
    doc = (
        "mul(@t): gating, x times a per-channel weight (C, C×1×1) or a map whose shape broadcasts as in torch; "
        "mul(0.5) scales by a constant, mul(@t, 0.5) both; no MACs"
    )
    example = Example("mul(@in, 0.5)", before="bn")

    def resolve(self, attrs, inputs):
        if attrs["factor"] is None:
            if len(inputs) == 1:
                raise ValueProblem("`mul` needs something to multiply by", hint="mul(@gate) or a constant, mul(0.5)")
            return attrs
        return {"factor": real(attrs["factor"], "the factor of `mul`")}

    def shape(self, attrs, inputs):
        target = inputs[0]
        for gate in inputs[1:]:
            if not _per_channel_gate(gate, target) and broadcast([target, gate]) is None:
                raise ShapeProblem(
                    f"cannot gate {format_shape(target)} with {format_shape(gate)}",
                    hint=f"the gate must be {target[0]}, {target[0]}×1×1 or {format_shape(target)}"
                    if len(target) == 3
                    else "the shapes must broadcast (from the last axis, equal sizes or 1)",
                )
        return broadcasted("mul", [target, *(gate for gate in inputs[1:] if not _per_channel_gate(gate, target))])

    def label(self, attrs):
        return "⊗" if attrs["factor"] is None else f"× {attrs['factor']:g}"

    def torch_forward(self, attrs, inputs):
        rank = max(len(shape) for shape in inputs if not _per_channel_gate(shape, inputs[0]))
        gated = [
            Method(Arg(index), "view", (-1, shape[0], 1, 1))
            if _per_channel_gate(shape, inputs[0])
            else aligned(Arg(index), shape, rank)
            for index, shape in enumerate(inputs)
        ]
        return Operation("*", tuple(gated + ([] if attrs["factor"] is None else [attrs["factor"]])))

    def onnx(self, attrs, inputs, args, emit):
        rank = max(len(shape) for shape in inputs if not _per_channel_gate(shape, inputs[0]))
        product = onnx_aligned(emit, args[:1], inputs[:1], rank)[0]
        for arg, shape in zip(args[1:], inputs[1:]):
            if _per_channel_gate(shape, inputs[0]):
                arg = emit.op("Reshape", [arg, emit.ints("gate_shape", (0, shape[0], 1, 1))])
            else:
                arg = onnx_aligned(emit, [arg], [shape], rank)[0]
            product = emit.op("Mul", [product, arg])
        if attrs["factor"] is not None:
            product = emit.op("Mul", [product, emit.floats("factor", attrs["factor"])])
        return product


def _per_channel_gate(gate, target) -> bool:
    """A vector of C gating a C×H×W tensor per channel (squeeze-and-excitation): viewed as C×1×1."""
    return len(gate) == 1 and len(target) == 3 and gate[0] == target[0]


def broadcasted(name: str, inputs) -> tuple:
    """The shape of an element-wise operation's result: its inputs broadcast as numpy and torch do."""
    shape = broadcast(inputs)
    if shape is None:
        raise ShapeProblem(
            f"`{name}` cannot broadcast {' with '.join(format_shape(each) for each in inputs)}",
            hint="from the last axis, the sizes must be equal or 1",
        )
    return shape


def aligned(value, shape: tuple, rank: int):
    """An operand of `rank` axes as torch must see it beside the batch: a tensor of fewer axes gets axes of 1
    after the batch (`x[:, None]`), since cnndsl broadcasts the axes without the batch, from the last."""
    return value if len(shape) == rank else Index(value, (slice(None), *[None] * (rank - len(shape))))


def aligned_args(inputs) -> tuple:
    """Every input as `aligned` to the broadcast result's rank."""
    rank = max(len(shape) for shape in inputs)
    return tuple(aligned(Arg(index), shape, rank) for index, shape in enumerate(inputs))


def onnx_aligned(emit, args: list[str], inputs, rank: int | None = None) -> list[str]:
    """The ONNX values `aligned` to the result's rank: a Reshape to (batch, 1, ..., its shape) where it has fewer."""
    rank = rank or max(len(shape) for shape in inputs)
    return [
        arg
        if len(shape) == rank
        else emit.op("Reshape", [arg, emit.ints("aligned", (0, *[1] * (rank - len(shape)), *shape))])
        for arg, shape in zip(args, inputs)
    ]
