"""Constants computed from static shapes: a grid of cell coordinates (YOLO's offsets), a tensor of given values
(anchor sizes).

A constant reads only the batch size (and device and dtype) of its input and repeats itself along the batch,
so that it joins any tensor of the network by broadcasting. It holds no parameter: torch computes it in
the forward from the shapes alone (no state_dict entry, nothing for a checkpoint to hold), ONNX stores it as
an initializer expanded to the batch. No MACs.
"""

from __future__ import annotations

from ..core.errors import ShapeProblem, ValueProblem
from .base import MAX_RANK, OpKind, format_shape, numel, real, register, whole
from .tensors import Example
from .torch_code import Arg, Attribute, Call, Index, Listed, Method, Operation

LARGEST_WRITTEN = 4096  # the most values `constant` writes into the forward's source


def _expanded(value, shape: tuple):
    """The constant `value` (of `shape`) repeated along the input's batch: `value.expand(x.shape[0], -1, ...)`."""
    return Method(value, "expand", (Index(Attribute(Arg(0), "shape"), 0), *[-1] * len(shape)))


def _like_input() -> tuple:
    return (("device", Attribute(Arg(0), "device")), ("dtype", Attribute(Arg(0), "dtype")))


def _onnx_expanded(emit, value: str, args: list[str], shape: tuple) -> str:
    """The initializer `value` (1×shape) expanded to the batch of the input: Expand to (batch, *shape)."""
    emit.require(8, "a constant")  # Expand
    whole_shape = emit.op("Shape", [args[0]])
    if emit.opset < 10:  # Slice took its bounds as attributes until opset 10
        batch = emit.op("Slice", [whole_shape], starts=(0,), ends=(1,), axes=(0,))
    else:
        batch = emit.op("Slice", [whole_shape, emit.ints("starts", (0,)), emit.ints("ends", (1,))])
    target = emit.op("Concat", [batch, emit.ints("shape", shape)], axis=0)
    return emit.op("Expand", [value, target])


class _Constant(OpKind):
    family = "io"
    tap_values = False  # its values depend on no input value: no receptive field passes through it

    def keeps_positions(self, attrs, inputs):
        return False


@register
class Grid(_Constant):
    """A 2×h×w tensor of cell coordinates: [0] the column (x), [1] the row (y), each plus `offset` (0.5 for
    the cells' centres), as YOLO adds to its box centres."""

    name = "grid"
    signature = (("h", None), ("w", None), ("offset", 0.0))
    doc = (
        "a constant 2×h×w grid of cell coordinates, x (the column) then y (the row), plus offset; h and w default "
        "to the input's last two axes"
    )
    example = Example("grid(offset=0.5)", (4, 3, 2))

    def resolve(self, attrs, inputs):
        shape = inputs[0]
        if (attrs["h"] is None or attrs["w"] is None) and len(shape) < 2:
            raise ShapeProblem(
                f"`grid` takes its size from the last two axes of its input, and {format_shape(shape)} has one",
                hint="give the size: grid(h, w)",
            )
        height = whole(shape[-2] if attrs["h"] is None else attrs["h"], "the grid's height h")
        width = whole(shape[-1] if attrs["w"] is None else attrs["w"], "the grid's width w")
        return {"h": height, "w": width, "offset": real(attrs["offset"], "offset")}

    def shape(self, attrs, inputs):
        return (2, attrs["h"], attrs["w"])

    def label(self, attrs):
        return f"grid {attrs['h']}×{attrs['w']}" + (f" + {attrs['offset']:g}" if attrs["offset"] else "")

    def torch_forward(self, attrs, inputs):
        height, width = attrs["h"], attrs["w"]
        cells = Call("torch", "arange", (height * width,), _like_input())
        columns_rows = Call(
            "torch", "stack", (Listed((Operation("%", (cells, width)), Operation("//", (cells, width)))),)
        )
        grid = Method(columns_rows, "reshape", (2, height, width))
        if attrs["offset"]:
            grid = Operation("+", (grid, attrs["offset"]))
        return _expanded(grid, (2, height, width))

    def onnx(self, attrs, inputs, args, emit):
        import numpy as np

        height, width, offset = attrs["h"], attrs["w"], attrs["offset"]

        def make():
            rows, columns = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
            return (np.stack([columns, rows])[None] + offset).astype(np.float32)

        value = emit.computed("grid", (1, 2, height, width), make)
        return _onnx_expanded(emit, value, args, (2, height, width))


@register
class Constant(_Constant):
    """A tensor of the values given, nested lists giving its shape (or a flat list with `shape`)."""

    name = "constant"
    signature = (("values", None), ("shape", None))
    doc = (
        f"a constant tensor of the values given (at most {LARGEST_WRITTEN:,}), shaped as the lists nest or by shape, "
        "e.g. YOLO's anchors constant([[10, 13], [16, 30], [33, 23]])"
    )
    example = Example("constant([[1, 2.5], [-3, 4]])")

    def resolve(self, attrs, inputs):
        values = attrs["values"]
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueProblem("`constant` needs its values as a list, e.g. constant([[10, 13], [16, 30]])")
        flat, nested = _flattened(values, 1)
        if len(flat) > LARGEST_WRITTEN:
            raise ValueProblem(
                f"`constant` holds at most {LARGEST_WRITTEN:,} values, not {len(flat):,}",
                hint="build a larger constant from grid and arithmetic",
            )
        shape = nested
        if attrs["shape"] is not None:
            given = attrs["shape"] if isinstance(attrs["shape"], (list, tuple)) else (attrs["shape"],)
            shape = tuple(whole(dim, "a dimension of `shape`") for dim in given)
            if numel(shape) != len(flat):
                raise ShapeProblem(
                    f"`constant` has {len(flat)} values, not the {numel(shape)} of {format_shape(shape)}",
                    hint="give as many values as the shape holds",
                )
        return {"values": tuple(flat), "shape": shape}

    def shape(self, attrs, inputs):
        return attrs["shape"]

    def label(self, attrs):
        values = attrs["values"]
        shown = ", ".join(f"{value:g}" for value in values[:4]) + (", …" if len(values) > 4 else "")
        return f"constant {format_shape(attrs['shape'])} ({shown})"

    def torch_forward(self, attrs, inputs):
        tensor = Call("torch", "tensor", (attrs["values"],), _like_input())
        return _expanded(Method(tensor, "reshape", attrs["shape"]), attrs["shape"])

    def onnx(self, attrs, inputs, args, emit):
        import numpy as np

        value = emit.floats("values", np.asarray(attrs["values"], dtype=np.float32).reshape(1, *attrs["shape"]))
        return _onnx_expanded(emit, value, args, attrs["shape"])


def _flattened(values, depth: int) -> tuple[list[float], tuple[int, ...]]:
    """The numbers of nested lists, in order, and the shape they nest to; ragged or empty lists are refused."""
    if depth > MAX_RANK:
        raise ShapeProblem(f"`constant`'s lists nest more than {MAX_RANK} deep; a tensor has at most {MAX_RANK} axes")
    if not values:
        raise ValueProblem("`constant` has an empty list", hint="every list holds at least one value")
    if all(isinstance(item, (list, tuple)) for item in values):
        parts = [_flattened(item, depth + 1) for item in values]
        if len({shape for _, shape in parts}) != 1:
            raise ValueProblem("`constant`'s lists have different lengths", hint="every row must be as long")
        return [number for flat, _ in parts for number in flat], (len(values), *parts[0][1])
    return [real(item, "a value of `constant`") for item in values], (len(values),)
