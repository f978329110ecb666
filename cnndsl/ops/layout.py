"""Layers that lay a tensor's values out anew, without weights: flatten, reshape, permute, transpose, split.

Axes are numbered as the `input` statement writes a shape, the batch not counted: 0 is the channels of a
C×H×W tensor, -1 the last axis. Each is a view or a copy in torch and one ONNX operator; none holds a
tensor or counts a MAC.
"""

from __future__ import annotations

from ..core.errors import ShapeProblem, ValueProblem
from .base import MAX_RANK, REQUIRED, OpKind, axis_index, format_shape, numel, register, whole
from .tensors import Example
from .torch_code import Arg, Call, Index, Method


def _dim(axis: int) -> int:
    """The torch (and ONNX) dimension of an axis counted without the batch."""
    return axis + 1


def _positions_kept(before: tuple, after: tuple) -> bool:
    """A vector's one position, or the same H×W: the receptive field carries over a reshape between them."""
    return (
        len(before) in (1, 3) and len(after) in (1, 3) and (1 in (len(before), len(after)) or before[1:] == after[1:])
    )


@register
class Flatten(OpKind):
    """torch.flatten over the axes start to end (the batch not counted): all of them by default."""

    name = "flatten"
    family = "reshape"
    signature = (("start", 0), ("end", -1))
    doc = "the axes start to end (all by default) as one, as torch.flatten(x, start + 1, end + 1)"
    example = Example("flatten", (4, 3, 3))

    def resolve(self, attrs, inputs):
        start = axis_index(attrs["start"], inputs[0], "`flatten`'s start axis")
        end = axis_index(attrs["end"], inputs[0], "`flatten`'s end axis")
        if end < start:
            raise ValueProblem(
                f"`flatten` ends at axis {attrs['end']} before it starts at axis {attrs['start']}",
                hint="give start <= end, e.g. flatten(1, 2)",
            )
        return {"start": start, "end": end}

    def shape(self, attrs, inputs):
        shape, start, end = inputs[0], attrs["start"], attrs["end"]
        return (*shape[:start], numel(shape[start : end + 1]), *shape[end + 1 :])

    def keeps_positions(self, attrs, inputs):
        return _positions_kept(inputs[0], self.shape(attrs, inputs))

    def label(self, attrs):
        return "flatten" if attrs["start"] == 0 else f"flatten {attrs['start']}..{attrs['end']}"

    def _whole(self, attrs, inputs) -> bool:
        return attrs["start"] == 0 and attrs["end"] == len(inputs[0]) - 1

    def torch_forward(self, attrs, inputs):
        if attrs["end"] == len(inputs[0]) - 1:
            return Call("torch", "flatten", (Arg(0), _dim(attrs["start"])))
        return Call("torch", "flatten", (Arg(0), _dim(attrs["start"]), _dim(attrs["end"])))

    def onnx(self, attrs, inputs, args, emit):
        if self._whole(attrs, inputs):
            return emit.op("Flatten", [args[0]], axis=1)  # ONNX's Flatten makes two axes: the batch and the rest
        return emit.op("Reshape", [args[0], emit.ints("shape", (0, *self.shape(attrs, inputs)))])


@register
class Reshape(OpKind):
    name = "reshape"
    family = "reshape"
    signature = (("dims", None),)
    doc = (
        "view the tensor with other dimensions of the same size (1 to 6 of them, the batch not counted); "
        "one may be -1, worked out from the others, e.g. reshape((3, 85, -1))"
    )
    example = Example("reshape((2, -1, 3, 2))", (4, 3, 3))

    def resolve(self, attrs, inputs):
        dims = attrs["dims"]
        if isinstance(dims, int) and not isinstance(dims, bool):
            dims = (dims,)
        if not isinstance(dims, (tuple, list)) or not dims:
            raise ShapeProblem("`reshape` needs its dimensions as a tuple, e.g. reshape((30, 7, 7))")
        if len(dims) > MAX_RANK:
            raise ShapeProblem(
                f"`reshape` makes a tensor of 1 to {MAX_RANK} axes (the batch not counted), not {len(dims)}",
                hint="give fewer dimensions, e.g. reshape((30, 7, 7))",
            )
        inferred = [index for index, dim in enumerate(dims) if dim == -1 and not isinstance(dim, bool)]
        if len(inferred) > 1:
            raise ShapeProblem(
                f"`reshape` can work out one dimension (-1), not {len(inferred)}",
                hint="give every other dimension",
            )
        known = tuple(dim if index in inferred else whole(dim, "a dimension") for index, dim in enumerate(dims))
        values, given = numel(inputs[0]), numel(tuple(dim for dim in known if dim != -1))
        if inferred and values % given:
            raise ShapeProblem(
                f"`reshape` cannot view {format_shape(inputs[0])} ({values} values) as {format_shape(known)}: "
                f"{values} is not a multiple of {given}"
            )
        if inferred:
            known = tuple(values // given if dim == -1 else dim for dim in known)
        if numel(known) != values:
            raise ShapeProblem(
                f"`reshape` cannot view {format_shape(inputs[0])} ({values} values) "
                f"as {format_shape(known)} ({numel(known)} values)"
            )
        return {"dims": known}

    def shape(self, attrs, inputs):
        return attrs["dims"]

    def keeps_positions(self, attrs, inputs):
        return _positions_kept(inputs[0], attrs["dims"])

    def label(self, attrs):
        return f"reshape {format_shape(attrs['dims'])}"

    def torch_forward(self, attrs, inputs):
        return Method(Arg(0), "reshape", (-1, *attrs["dims"]))

    def onnx(self, attrs, inputs, args, emit):
        return emit.op("Reshape", [args[0], emit.ints("shape", (0, *attrs["dims"]))])  # 0 keeps the batch


@register
class Permute(OpKind):
    """x.permute with the batch kept first: permute((1, 2, 0)) makes C×H×W into H×W×C."""

    name = "permute"
    family = "reshape"
    signature = (("dims", REQUIRED),)
    doc = "the axes in a new order (the batch stays first), e.g. permute((1, 2, 0)) makes C×H×W into H×W×C"
    example = Example("permute((1, 2, 0))", (4, 3, 2))

    def resolve(self, attrs, inputs):
        dims, shape = attrs["dims"], inputs[0]
        if not isinstance(dims, (tuple, list)):
            raise ValueProblem("`permute` needs its axes as a tuple, e.g. permute((1, 2, 0))")
        order = tuple(axis_index(dim, shape, "`permute`'s axis") for dim in dims)
        if sorted(order) != list(range(len(shape))):
            raise ValueProblem(
                f"`permute` needs each axis of a {format_shape(shape)} tensor once, got {tuple(dims)}",
                hint=f"give an order of 0 to {len(shape) - 1}, e.g. {tuple(range(len(shape)))[::-1]}",
            )
        return {"dims": order}

    def shape(self, attrs, inputs):
        return tuple(inputs[0][axis] for axis in attrs["dims"])

    def keeps_positions(self, attrs, inputs):
        return attrs["dims"] == tuple(range(len(inputs[0])))

    def label(self, attrs):
        return f"permute {', '.join(map(str, attrs['dims']))}"

    def torch_forward(self, attrs, inputs):
        return Method(Arg(0), "permute", (0, *map(_dim, attrs["dims"])))

    def onnx(self, attrs, inputs, args, emit):
        return emit.op("Transpose", [args[0]], perm=(0, *map(_dim, attrs["dims"])))


@register
class Transpose(OpKind):
    """x.transpose of two axes, the batch not counted."""

    name = "transpose"
    family = "reshape"
    signature = (("a", REQUIRED), ("b", REQUIRED))
    doc = "swaps the axes a and b, e.g. transpose(0, -1)"
    example = Example("transpose(0, 2)", (4, 3, 2))

    def resolve(self, attrs, inputs):
        return {
            "a": axis_index(attrs["a"], inputs[0], "`transpose`'s axis"),
            "b": axis_index(attrs["b"], inputs[0], "`transpose`'s axis"),
        }

    def _order(self, attrs, rank: int) -> tuple[int, ...]:
        order = list(range(rank))
        order[attrs["a"]], order[attrs["b"]] = attrs["b"], attrs["a"]
        return tuple(order)

    def shape(self, attrs, inputs):
        return tuple(inputs[0][axis] for axis in self._order(attrs, len(inputs[0])))

    def keeps_positions(self, attrs, inputs):
        return attrs["a"] == attrs["b"]

    def label(self, attrs):
        return f"transpose {attrs['a']}, {attrs['b']}"

    def torch_forward(self, attrs, inputs):
        return Method(Arg(0), "transpose", (_dim(attrs["a"]), _dim(attrs["b"])))

    def onnx(self, attrs, inputs, args, emit):
        return emit.op("Transpose", [args[0]], perm=(0, *map(_dim, self._order(attrs, len(inputs[0])))))


def part_along(attrs: dict, shape: tuple) -> tuple:
    """The shape of the part `start` to `stop` of `axis`."""
    axis = attrs["axis"]
    return (*shape[:axis], attrs["stop"] - attrs["start"], *shape[axis + 1 :])


def sliced(attrs: dict) -> Index:
    """`x[:, ..., start:stop]`, the part along the axis: a view, as torch.split and torch.chunk return."""
    return Index(Arg(0), (slice(None),) * _dim(attrs["axis"]) + (slice(attrs["start"], attrs["stop"]),))


def onnx_slice(attrs: dict, args: list[str], emit) -> str:
    starts, ends, axes = (attrs["start"],), (attrs["stop"],), (_dim(attrs["axis"]),)
    if emit.opset < 10:  # Slice took its bounds as attributes until opset 10
        return emit.op("Slice", [args[0]], starts=starts, ends=ends, axes=axes)
    return emit.op("Slice", [args[0], emit.ints("starts", starts), emit.ints("ends", ends), emit.ints("axes", axes)])


@register
class Split(OpKind):
    """Part i of torch.split(x, sizes, dim): `sizes` is one size (parts of it, the last one smaller if need be)
    or the list of the parts' sizes, which add up to the axis."""

    name = "split"
    family = "reshape"
    signature = (("sizes", REQUIRED), ("i", REQUIRED), ("axis", 0))
    doc = "part i (from 0) of torch.split(x, sizes, axis): parts of one size, or of the sizes listed"
    example = Example("split([1, 3], 1)")

    def resolve(self, attrs, inputs):
        axis = axis_index(attrs["axis"], inputs[0], "`split`'s axis")
        length, sizes = inputs[0][axis], attrs["sizes"]
        if isinstance(sizes, (tuple, list)):
            sizes = [whole(size, "a part's size") for size in sizes]
            if sum(sizes) != length:
                raise ShapeProblem(
                    f"`split` cannot cut axis {attrs['axis']} of {format_shape(inputs[0])} ({length}) into "
                    f"parts of {', '.join(map(str, sizes))} (together {sum(sizes)})",
                    hint=f"the sizes must add up to {length}",
                )
        else:
            size = whole(sizes, "the size of a part")
            sizes = [min(size, length - start) for start in range(0, length, size)]
        index = whole(attrs["i"], "part i", minimum=0)
        if index >= len(sizes):
            raise ValueProblem(
                f"part i={index} does not exist among {len(sizes)} parts", hint=f"i counts from 0 to {len(sizes) - 1}"
            )
        start = sum(sizes[:index])
        return {"sizes": tuple(sizes), "i": index, "axis": axis, "start": start, "stop": start + sizes[index]}

    def shape(self, attrs, inputs):
        return part_along(attrs, inputs[0])

    def keeps_positions(self, attrs, inputs):
        return attrs["axis"] == 0 or len(inputs[0]) != 3

    def label(self, attrs):
        where = "" if attrs["axis"] == 0 else f", axis {attrs['axis']}"
        return f"split {attrs['i'] + 1}/{len(attrs['sizes'])}{where}"

    def torch_forward(self, attrs, inputs):
        return sliced(attrs)

    def onnx(self, attrs, inputs, args, emit):
        return onnx_slice(attrs, args, emit)
