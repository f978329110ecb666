"""Pooling: max and average windows, global average pooling, adaptive average and max pooling."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..core.errors import ValueProblem
from .base import OpKind, Window, alias, flag, pair, pattern, register, shrunk, sliding, spatial, stride_text
from .tensors import Example
from .torch_code import Arg, Call, applied

if TYPE_CHECKING:
    import numpy as np


class _Pool(OpKind):
    family = "pool"
    torch_overwritable = True
    signature = (("k", 2), ("s", None), ("p", 0), ("ceil", False))
    torch_class = ""

    def resolve(self, attrs, inputs):
        spatial(self, inputs[0])
        kernel = pair(attrs["k"], "kernel size k")
        padding = pair(attrs["p"], "padding p", minimum=0)
        if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
            raise ValueProblem(f"`{self.name}` padding {padding[0]} must be at most half the kernel ({kernel[0]})")
        stride = kernel if attrs["s"] is None else pair(attrs["s"], "stride s")
        return {"k": kernel, "s": stride, "p": padding, "ceil": flag(attrs["ceil"], "ceil")}

    def shape(self, attrs, inputs):
        channels, height, width = inputs[0]
        out_h = sliding(height, attrs["k"][0], attrs["s"][0], attrs["p"][0], ceil=attrs["ceil"])
        out_w = sliding(width, attrs["k"][1], attrs["s"][1], attrs["p"][1], ceil=attrs["ceil"])
        shrunk(self, inputs[0], out_h, out_w)
        return (channels, out_h, out_w)

    def window(self, attrs, inputs):
        return Window(attrs["k"], attrs["s"], padding=attrs["p"])

    def label(self, attrs):
        kernel = attrs["k"]
        return f"{self.name} {kernel[0]}×{kernel[1]}" + stride_text(attrs["s"])

    def torch_module(self, attrs, inputs):
        from torch import nn

        return getattr(nn, self.torch_class)(attrs["k"], attrs["s"], attrs["p"], ceil_mode=attrs["ceil"])

    def onnx(self, attrs, inputs, args, emit):
        options = dict(kernel_shape=attrs["k"], strides=attrs["s"], pads=attrs["p"] * 2, **self.onnx_options)
        if attrs["ceil"]:
            emit.require(10, f"`{self.name}(ceil=true)`")
            options["ceil_mode"] = 1
        return emit.op(self.onnx_op, [args[0]], **options)


@register
class MaxPool(_Pool):
    name = "maxpool"
    torch_class = "MaxPool2d"
    backward_keeps = 3
    onnx_op, onnx_options = "MaxPool", {}
    signature = (*_Pool.signature, ("p_end", 0))
    doc = "max pooling; s defaults to k; p_end pads the bottom and right edges further (Darknet's uneven padding)"
    example = Example("maxpool(k=3, s=2, p=1, ceil=true)", (4, 8, 8))

    def resolve(self, attrs, inputs):
        resolved = super().resolve(attrs, inputs)
        resolved["p_end"] = pair(attrs["p_end"], "padding p_end", minimum=0)
        if any(resolved["p_end"]) and resolved["ceil"]:
            raise ValueProblem("`maxpool` takes p_end or ceil=true, not both")
        (pad_h, pad_w), (extra_h, extra_w), (kernel_h, kernel_w) = resolved["p"], resolved["p_end"], resolved["k"]
        if pad_h + extra_h >= kernel_h or pad_w + extra_w >= kernel_w:
            raise ValueProblem(f"`maxpool` p + p_end ({pad_h + extra_h}) must be less than the kernel ({kernel_h})")
        return resolved

    def shape(self, attrs, inputs):
        channels, height, width = inputs[0]
        extra_h, extra_w = attrs["p_end"]
        return super().shape(attrs, [(channels, height + extra_h, width + extra_w)])

    def torch_forward(self, attrs, inputs):
        """The extra edge repeats the last row and column: a window that reaches it also holds that pixel
        (p + p_end < k), so its maximum is the one padding with -inf gives."""
        extra_h, extra_w = attrs["p_end"]
        if not extra_h and not extra_w:
            return super().torch_forward(attrs, inputs)
        return applied(Call("F", "pad", (Arg(0), (0, extra_w, 0, extra_h)), (("mode", "replicate"),)))

    def onnx(self, attrs, inputs, args, emit):
        (pad_h, pad_w), (extra_h, extra_w) = attrs["p"], attrs["p_end"]
        if not extra_h and not extra_w:
            return super().onnx(attrs, inputs, args, emit)
        pads = [pad_h, pad_w, pad_h + extra_h, pad_w + extra_w]
        return emit.op("MaxPool", [args[0]], kernel_shape=attrs["k"], strides=attrs["s"], pads=pads)


@register
class AvgPool(_Pool):
    name = "avgpool"
    torch_class = "AvgPool2d"
    onnx_op, onnx_options = "AveragePool", {"count_include_pad": 1}
    doc = "average pooling (padding counted, as PyTorch does); s defaults to k"
    example = Example("avgpool(3, s=2, p=1)", (4, 8, 8))


@register
class GlobalAvgPool(OpKind):
    name = "gap"
    family = "pool"
    torch_overwritable = True
    doc = "global average pooling to C×1×1"
    example = Example("gap")

    def shape(self, attrs, inputs):
        channels = spatial(self, inputs[0])[0]
        return (channels, 1, 1)

    def window(self, attrs, inputs):
        _, height, width = inputs[0]
        return Window((height, width), (height, width))

    def label(self, attrs):
        return "global avgpool"

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.AdaptiveAvgPool2d(1)

    def onnx(self, attrs, inputs, args, emit):
        return emit.op("GlobalAveragePool", [args[0]])


@register
class AdaptiveAvgPool(OpKind):
    name = "adaptiveavgpool"
    family = "pool"
    torch_overwritable = True
    signature = (("size", 1),)
    doc = "average pooling to a fixed H×W, as torchvision's AlexNet and VGG heads"
    example = Example("adaptiveavgpool((2, 3))", (4, 7, 7))

    def resolve(self, attrs, inputs):
        spatial(self, inputs[0])
        return {"size": pair(attrs["size"], "output size")}

    def shape(self, attrs, inputs):
        return (inputs[0][0], *attrs["size"])

    def window(self, attrs, inputs):
        """PyTorch's bins: bin i reads ⌊i·in/out⌋ to ⌈(i+1)·in/out⌉ − 1 (the receptive field reads them so);
        kernel and stride are the widest bin and the shortest step, for the textbook rule beside it."""
        _, height, width = inputs[0]
        out_h, out_w = attrs["size"]
        kernel = (-(-height // out_h) + (height % out_h != 0), -(-width // out_w) + (width % out_w != 0))
        return Window(kernel, (max(1, height // out_h), max(1, width // out_w)), mode="adaptive")

    def label(self, attrs):
        return f"adaptive avgpool {attrs['size'][0]}×{attrs['size'][1]}"

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.AdaptiveAvgPool2d(attrs["size"])

    def onnx(self, attrs, inputs, args, emit):
        """A plain average pool where the bins tile the input; else PyTorch's overlapping bins as two
        averaging matrices, rows then columns: out = A_h · x · A_wᵀ."""
        _, height, width = inputs[0]
        out_h, out_w = attrs["size"]
        if (height, width) == (out_h, out_w):
            return args[0]
        if height % out_h == 0 and width % out_w == 0:
            kernel = (height // out_h, width // out_w)
            return emit.op("AveragePool", [args[0]], kernel_shape=kernel, strides=kernel)
        columns = emit.computed("columns", (width, out_w), lambda: _averaging(width, out_w).T)
        rows = emit.computed("rows", (out_h, height), lambda: _averaging(height, out_h))
        return emit.op("MatMul", [rows, emit.op("MatMul", [args[0], columns])])


@register
class AdaptiveMaxPool(AdaptiveAvgPool):
    """PyTorch's adaptive bins, each its maximum (YOLO-World's ImagePoolingAttn pools every level to 3×3)."""

    name = "adaptivemaxpool"
    backward_keeps = 3  # as max pooling: the output and the argmax
    doc = "max pooling to a fixed H×W, each of PyTorch's adaptive bins its maximum (YOLO-World's image pooling)"
    example = Example("adaptivemaxpool(3)", (4, 5, 4))

    def label(self, attrs):
        return f"adaptive maxpool {attrs['size'][0]}×{attrs['size'][1]}"

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.AdaptiveMaxPool2d(attrs["size"])

    def onnx(self, attrs, inputs, args, emit):
        """A plain max pool where the bins tile the input; else, as a bin is rows × columns, the maximum of
        each bin's rows, then of its columns: one Slice and ReduceMax per output row and column."""
        _, height, width = inputs[0]
        out_h, out_w = attrs["size"]
        if height % out_h == 0 and width % out_w == 0:
            kernel = (height // out_h, width // out_w)
            return emit.op("MaxPool", [args[0]], kernel_shape=kernel, strides=kernel)
        rows = _bin_maxima(emit, args[0], height, out_h, 2)
        return _bin_maxima(emit, rows, width, out_w, 3)


def _bin_maxima(emit, value: str, size: int, bins: int, axis: int) -> str:
    """The maximum over each of PyTorch's adaptive bins of one axis, [floor(i·size/bins), ceil((i+1)·size/bins))."""
    maxima = []
    for index in range(bins):
        start, end = index * size // bins, -(-(index + 1) * size // bins)
        bounds = [emit.ints("start", (start,)), emit.ints("end", (end,)), emit.ints("axis", (axis,))]
        maxima.append(onnx_reduce(emit, "ReduceMax", emit.op("Slice", [value, *bounds]), axis))
    return maxima[0] if bins == 1 else emit.op("Concat", maxima, axis=axis)


def onnx_reduce(emit, op: str, value: str, axis: int) -> str:
    """ReduceMax, ReduceL2, ... over one axis, kept: the axes an attribute before opset 18, an input since."""
    if emit.opset >= 18:
        return emit.op(op, [value, emit.ints("axes", (axis,))], keepdims=1)
    return emit.op(op, [value], axes=(axis,), keepdims=1)


def _averaging(size: int, bins: int) -> np.ndarray:
    """bins × size float32 matrix averaging PyTorch's adaptive bins: [floor(i·size/bins), ceil((i+1)·size/bins)).
    Built by numpy, not as lists: a 20000-wide input makes a matrix of 400 million entries."""
    import numpy as np  # here, not at the top: `cnndsl summary` and `check` never need it

    index = np.arange(bins)
    starts, ends = index * size // bins, -(-(index + 1) * size // bins)
    columns = np.arange(size)
    inside = (columns >= starts[:, None]) & (columns < ends[:, None])
    return np.where(inside, (1 / (ends - starts)).astype(np.float32)[:, None], np.float32(0))


def _pool_preset(prefix):
    regex = re.compile(rf"{prefix}(\d+)x(\d+)")

    def match(name):
        found = regex.fullmatch(name)
        if not found:
            return None
        kernel_h, kernel_w = int(found.group(1)), int(found.group(2))
        return {"k": kernel_h if kernel_h == kernel_w else (kernel_h, kernel_w)}

    return match


pattern(_pool_preset("maxpool"), "maxpool", "maxpoolKxK (maxpool3x3: k preset)")
pattern(_pool_preset("avgpool"), "avgpool", "avgpoolKxK")
alias("pool", "maxpool", k=2)
alias("globalavgpool", "gap")
