"""Anchor boxes of a Region Proposal Network (Ren et al. 2015), as torchvision's AnchorGenerator makes them.

They depend only on shapes, so cnndsl computes them while it expands the network: for a feature map of H×W
read off an image of the tap's size, the stride is image // map on each axis (integer division, as torchvision's
`grid_anchors`), and every map pixel holds one box per aspect ratio and size, centred on the pixel's corner
shifted by the stride: ratio-major, sizes inner, rounded to whole pixels (torchvision's `generate_anchors`).
The output is H·W·A × 4 boxes (x1, y1, x2, y2) in image pixels, the same for every image of a batch.
"""

from __future__ import annotations

import math
import struct

from ..core.errors import LimitProblem, ShapeProblem, ValueProblem
from ..front.evaluate import shown
from .base import OpKind, format_shape, real, register, spatial
from .tensors import Example
from .torch_code import Arg, Call

MOST_PER_PIXEL = 1024  # anchors a pixel (torchvision's models use 3 to 15): their table is written into the code


def _positive_list(value, what: str) -> tuple[float, ...]:
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise ValueProblem(f"{what} must list at least one number, got {shown(value)}")
    return tuple(real(item, what, positive=True) for item in items)


def cell_anchors(sizes: tuple[float, ...], ratios: tuple[float, ...]) -> list[tuple[float, float, float, float]]:
    """The boxes around one pixel, as torchvision's `generate_anchors`: for ratio r = h/w and size s, w = s/√r and
    h = s·√r, the box (−w, −h, w, h)/2 rounded half to even, as torch.round does, in float32 arithmetic: each
    operation in Python's floats rounded to float32 (exact for one √, ÷ or ×: a double holds 2·24 + 2 bits), so
    that `check` and `summary` need no numpy."""
    boxes = []
    for ratio in ratios:
        height = _float32(math.sqrt(_float32(ratio)))
        width = _float32(1 / height)
        for size in sizes:
            half_w, half_h = _float32(width * _float32(size)) / 2, _float32(height * _float32(size)) / 2
            boxes.append((float(round(-half_w)), float(round(-half_h)), float(round(half_w)), float(round(half_h))))
    return boxes


def _float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


@register
class Anchors(OpKind):
    name = "anchors"
    family = "reshape"
    takes_taps = True
    tap_values = False  # the image tap gives only its size
    signature = (("sizes", (32,)), ("ratios", (0.5, 1.0, 2.0)))
    doc = (
        "anchors(@image, sizes=[32], ratios=[0.5, 1, 2]): the RPN's anchor boxes of this feature map, H·W·A×4 "
        "(x1, y1, x2, y2 in the pixels of tap image), as torchvision's AnchorGenerator"
    )
    example = Example("anchors(@in, sizes=[4, 8], ratios=[0.5, 2])", (4, 6, 5), before="conv(4, s=2)")

    def resolve(self, attrs, inputs):
        spatial(self, inputs[0])
        if len(inputs) != 2:
            raise ValueProblem(
                f"`anchors` takes one tap, the image its boxes are measured on; got {len(inputs) - 1}",
                hint="label the input (`image: input 3x224x224`) and write anchors(@image)",
            )
        if len(inputs[1]) != 3:
            raise ShapeProblem(f"`anchors` measures its boxes on a C×H×W image, got {format_shape(inputs[1])}")
        sizes = _positive_list(attrs["sizes"], "anchor sizes")
        ratios = _positive_list(attrs["ratios"], "aspect ratios")
        if len(sizes) * len(ratios) > MOST_PER_PIXEL:
            raise LimitProblem(
                f"`anchors` would put {len(sizes) * len(ratios):,} boxes on each pixel, more than {MOST_PER_PIXEL:,}",
                hint="give a few sizes and ratios for each feature map, as torchvision's detectors do",
            )
        stride = (inputs[1][1] // inputs[0][1], inputs[1][2] // inputs[0][2])
        if min(stride) < 1:
            raise ShapeProblem(
                f"`anchors` needs a feature map no larger than its image: {format_shape(inputs[0][1:])} "
                f"is read off {format_shape(inputs[1][1:])}",
                hint="give the tap of the network's input image",
            )
        return {"sizes": sizes, "ratios": ratios, "stride": stride, "cell": cell_anchors(sizes, ratios)}

    def shape(self, attrs, inputs):
        return (inputs[0][1] * inputs[0][2] * len(attrs["cell"]), 4)

    def label(self, attrs):
        sizes = ", ".join(f"{size:g}" for size in attrs["sizes"])
        return f"anchors {sizes} × {len(attrs['ratios'])} ratios, /{attrs['stride'][0]}"

    def torch_forward(self, attrs, inputs):
        return Call("", "grid_anchors", (Arg(0), attrs["stride"], tuple(attrs["cell"])))

    def onnx(self, attrs, inputs, args, emit):
        emit.require(13, "`anchors` (ONNX Expand of a constant to the batch)")
        boxes = emit.computed("anchors", (1, *self.shape(attrs, inputs)), lambda: grid_anchors(attrs, inputs[0]))
        batch = emit.op("Slice", [emit.op("Shape", [args[0]]), emit.ints("start", [0]), emit.ints("end", [1])])
        target = emit.op("Concat", [batch, emit.ints("boxes", list(self.shape(attrs, inputs)))], axis=0)
        return emit.op("Expand", [boxes, target])


def grid_anchors(attrs, feature_shape):
    """1 × H·W·A × 4: the cell anchors shifted to every pixel, row-major, as torchvision's `grid_anchors`."""
    import numpy as np

    _, height, width = feature_shape
    rows = np.arange(height, dtype=np.float32) * attrs["stride"][0]
    columns = np.arange(width, dtype=np.float32) * attrs["stride"][1]
    shift_y, shift_x = np.meshgrid(rows, columns, indexing="ij")
    shifts = np.stack([shift_x.ravel(), shift_y.ravel(), shift_x.ravel(), shift_y.ravel()], 1)
    cell = np.asarray(attrs["cell"], dtype=np.float32)
    return (shifts[:, None, :] + cell[None]).reshape(1, -1, 4)
