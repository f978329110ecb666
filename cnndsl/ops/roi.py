"""RoI pooling (Fast R-CNN, Girshick 2015) and RoI Align (Mask R-CNN, He et al. 2017): a fixed grid of features
for each box.

The first input is the feature map (C×H×W), the tap the boxes: K×4 for each image (x1, y1, x2, y2 in input
pixels; `scale` maps them onto the map, 1/16 for VGG-16's conv5). cnndsl's shapes leave out the batch, so a
batch of N images has N×K boxes and N×K×C×h×w outputs; torchvision's K×5 form (batch index first), which the
torch functions (cnndsl/ops/torch_functions.py) and ONNX's `MaxRoiPool` take, is made from each box's image.
"""

from __future__ import annotations

import math

from ..core.errors import ShapeProblem, ValueProblem
from .base import OpKind, flag, format_shape, numel, pair, real, register, spatial, whole
from .tensors import Example, TensorSpec, Uniform
from .torch_code import Arg, Call, Listed, Method, applied

SAMPLE_MACS = 4  # a bilinear sample weighs four neighbours
EXAMPLE_BOXES = "boxes: anchors(@in, sizes=[4, 8], ratios=[1]), @features"


class RegionPooling(OpKind):
    """What RoI pooling and RoI Align share: a feature map and a tap of K×4 boxes in, K×C×h×w out."""

    family = "pool"
    takes_taps = True
    tap_edge = "branch"
    tap_values = False  # the boxes say where to read; the field is the box's, which the data decides
    function = ""
    onnx_newest = 21  # onnxruntime 1.32 runs RoiAlign-16 and MaxRoiPool-1, not their opset-22 versions

    def resolve(self, attrs, inputs):
        spatial(self, inputs[0])
        if len(inputs) != 2:
            raise ValueProblem(
                f"`{self.name}` takes one tap, the boxes; got {len(inputs) - 1}",
                hint=f"{self.name}(@proposals): K×4 boxes (x1, y1, x2, y2) for each image",
            )
        if len(inputs[1]) != 2 or inputs[1][1] != 4:
            raise ShapeProblem(
                f"`{self.name}` takes K×4 boxes (x1, y1, x2, y2) for each image, got {format_shape(inputs[1])}",
                hint="each box's batch index (torchvision's K×5 form) is its image's place in the batch",
            )
        return {"size": pair(attrs["size"], "output size"), "scale": real(attrs["scale"], "spatial scale", True)}

    def shape(self, attrs, inputs):
        return (inputs[1][0], inputs[0][0], *attrs["size"])

    def torch_forward(self, attrs, inputs):
        channels, boxes = inputs[0][0], inputs[1][0]
        rois = Call("", "batched_rois", (Arg(1),))
        pooled = Call("", self.function, (Arg(0), rois, attrs["size"], *self.options(attrs)))
        return Method(pooled, "view", (-1, boxes, channels, *attrs["size"]))

    def options(self, attrs) -> tuple:
        return (attrs["scale"],)

    def onnx_rois(self, inputs, args, emit) -> tuple[str, str]:
        """The boxes as one N·K × 4 list and each one's image (an int64 N·K): ONNX takes them apart."""
        if emit.opset > self.onnx_newest:
            raise ValueProblem(
                f"`{self.name}` at ONNX opset {emit.opset} would be {self.onnx_operator}-22, which onnxruntime "
                f"{_runtime_version()} does not run",
                hint=f"use --opset {self.onnx_oldest} to {self.onnx_newest}, or leave --opset out",
            )
        return _onnx_rois(emit, args[1])

    def onnx_per_image(self, pooled, attrs, inputs, emit) -> str:
        shape = [-1, inputs[1][0], inputs[0][0], *attrs["size"]]
        return emit.op("Reshape", [pooled, emit.ints("per_image", shape)])


def _onnx_rois(emit, boxes: str) -> tuple[str, str]:
    from onnx import TensorProto, helper

    flat = emit.op("Reshape", [boxes, emit.ints("rois_shape", [-1, 4])])
    grid = emit.op("Slice", [emit.op("Shape", [boxes]), emit.ints("start", [0]), emit.ints("end", [2])])
    ones = emit.op("ConstantOfShape", [grid], value=helper.make_tensor("one", TensorProto.INT64, [1], [1]))
    counted = emit.op("CumSum", [ones, emit.ints("axis", 0)])  # 1 for the first image's boxes, 2, ...
    images = emit.op("Sub", [counted, emit.ints("one", 1)])
    return flat, emit.op("Reshape", [images, emit.ints("flat", [-1])])


@register
class RoiPool(RegionPooling):
    name = "roipool"
    function = "roi_pool"
    onnx_operator, onnx_oldest = "MaxRoiPool", 11
    signature = (("size", 7), ("scale", 1.0))
    doc = (
        "roipool(@boxes, size=7, scale=1/16): Fast R-CNN's RoI max pooling of K×4 boxes per image to K×C×size, "
        "the box rounded to the map's pixels (torchvision's roi_pool)"
    )
    example = Example("roipool(@boxes, size=(2, 3), scale=0.5)", (4, 6, 6), before=f"features: bn, {EXAMPLE_BOXES}")

    def macs(self, attrs, inputs, output):
        return 0  # comparisons only

    def label(self, attrs):
        return f"RoI pool {attrs['size'][0]}×{attrs['size'][1]}"

    def onnx(self, attrs, inputs, args, emit):
        emit.require(self.onnx_oldest, "`roipool` (ONNX MaxRoiPool with CumSum for each box's image)")
        boxes, images = self.onnx_rois(inputs, args, emit)
        index = emit.op("Unsqueeze", [emit.op("Cast", [images], to=1), emit.ints("axes", [1])])
        rois = emit.op("Concat", [index, boxes], axis=1)
        pooled = emit.op("MaxRoiPool", [args[0], rois], pooled_shape=attrs["size"], spatial_scale=attrs["scale"])
        return self.onnx_per_image(pooled, attrs, inputs, emit)


@register
class RoiAlign(RegionPooling):
    name = "roialign"
    function = "roi_align"
    onnx_operator, onnx_oldest = "RoiAlign", 11
    signature = (("size", 7), ("scale", 1.0), ("sampling_ratio", -1), ("aligned", False))
    doc = (
        "roialign(@boxes, size=7, scale=1/16, sampling_ratio=-1, aligned=false): Mask R-CNN's RoI Align of K×4 "
        "boxes per image to K×C×size, each bin the mean of sampling_ratio² bilinear samples (ceil(box/bin) a "
        "side where ≤ 0); aligned=true shifts by half a pixel (torchvision's roi_align)"
    )
    example = Example(
        "roialign(@boxes, size=(2, 3), scale=0.5, sampling_ratio=2, aligned=true)",
        (4, 6, 6),
        before=f"features: bn, {EXAMPLE_BOXES}",
    )

    def resolve(self, attrs, inputs):
        ratio = attrs["sampling_ratio"]
        if isinstance(ratio, bool) or not isinstance(ratio, int):
            raise ValueProblem(f"sampling_ratio must be a whole number (≤ 0: adaptive), got {ratio!r}")
        return super().resolve(attrs, inputs) | {
            "sampling_ratio": ratio if ratio > 0 else -1,
            "aligned": flag(attrs["aligned"], "aligned"),
        }

    def options(self, attrs) -> tuple:
        return (attrs["scale"], attrs["sampling_ratio"], attrs["aligned"])

    def torch_export_refusal(self, attrs):
        if attrs["sampling_ratio"] > 0:
            return None
        return "`roialign` with adaptive sampling (sampling_ratio ≤ 0) takes as many samples as its boxes decide"

    def macs(self, attrs, inputs, output):
        """Four per bilinear sample; where the sampling is adaptive the boxes decide the count, and the figure is
        its bound for boxes within the map: ceil(H/h) × ceil(W/w) samples a bin."""
        _, height, width = inputs[0]
        if attrs["sampling_ratio"] > 0:
            samples = attrs["sampling_ratio"] ** 2
        else:
            samples = -(-height // attrs["size"][0]) * -(-width // attrs["size"][1])
        return SAMPLE_MACS * samples * numel(output)

    def label(self, attrs):
        return f"RoI Align {attrs['size'][0]}×{attrs['size'][1]}"

    def onnx(self, attrs, inputs, args, emit):
        emit.require(
            16 if attrs["aligned"] else self.onnx_oldest, f"`roialign` with aligned={str(attrs['aligned']).lower()}"
        )
        boxes, images = self.onnx_rois(inputs, args, emit)
        pooled = emit.op(
            "RoiAlign",
            [args[0], boxes, images],
            output_height=attrs["size"][0],
            output_width=attrs["size"][1],
            sampling_ratio=max(attrs["sampling_ratio"], 0),
            spatial_scale=attrs["scale"],
            mode="avg",
            **_coordinates(attrs, emit.opset),
        )
        return self.onnx_per_image(pooled, attrs, inputs, emit)


def _coordinates(attrs, opset: int) -> dict:
    """RoiAlign-16 names the half-pixel shift; RoiAlign-10 always had torchvision's legacy (unshifted) form."""
    if opset < 16:
        return {}
    return {"coordinate_transformation_mode": "half_pixel" if attrs["aligned"] else "output_half_pixel"}


def _runtime_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("onnxruntime")
    except PackageNotFoundError:
        return "(not installed)"


@register
class BoxFullyConnected(OpKind):
    name = "boxfc"
    family = "fc"
    torch_overwritable = True
    signature = (("n", None), ("bias", True))
    doc = (
        "boxfc(n): a fully connected layer on each box's features, K×… to K×n: Fast R-CNN's fc6, fc7 and predictors "
        "(the tensors of torchvision's TwoMLPHead and FastRCNNPredictor layers)"
    )
    example = Example(
        "boxfc(3)", (4, 6, 6), before=f"features: bn, {EXAMPLE_BOXES}, roipool(@boxes, size=2, scale=0.5), relu"
    )

    def resolve(self, attrs, inputs):
        if len(inputs[0]) < 2:
            raise ShapeProblem(
                f"`boxfc` takes the features of K boxes, K×…, got {format_shape(inputs[0])}",
                hint="pool each box first: roipool(@boxes) or roialign(@boxes); fc is for one vector",
            )
        if attrs["n"] is None:
            raise ShapeProblem("`boxfc` needs its number of outputs, e.g. boxfc(4096)")
        return {"n": whole(attrs["n"], "outputs n"), "bias": flag(attrs["bias"], "bias")}

    def shape(self, attrs, inputs):
        return (inputs[0][0], attrs["n"])

    def tensors(self, attrs, inputs):
        features = numel(inputs[0][1:])
        init = Uniform(1 / math.sqrt(features))
        bias = [TensorSpec("bias", (attrs["n"],), init)] if attrs["bias"] else []
        return [TensorSpec("weight", (attrs["n"], features), init), *bias]

    def macs(self, attrs, inputs, output):
        return numel(inputs[0]) * attrs["n"]

    def label(self, attrs):
        return f"fc {attrs['n']} per box"

    def torch_module(self, attrs, inputs):
        from torch import nn

        return nn.Linear(numel(inputs[0][1:]), attrs["n"], attrs["bias"])

    def torch_forward(self, attrs, inputs):
        return applied(Method(Arg(0), "flatten", (2,)) if len(inputs[0]) > 2 else Arg(0))

    def onnx(self, attrs, inputs, args, emit):
        weight, *bias = emit.weights()
        rows = args[0]
        if len(inputs[0]) > 2:
            rows = emit.op("Reshape", [rows, emit.ints("rows", [0, inputs[0][0], -1])])
        product = emit.op("MatMul", [rows, emit.op("Transpose", [weight], perm=[1, 0])])
        return emit.op("Add", [product, bias[0]]) if bias else product


@register
class MultiScaleRoiAlign(OpKind):
    name = "msroialign"
    family = "pool"
    takes_taps = True
    tap_edge = "branch"
    signature = (("scales", None), ("size", 7), ("sampling_ratio", 2), ("canonical", (224, 4)))
    onnx_newest = RegionPooling.onnx_newest
    doc = (
        "msroialign(@p2, @p3, ..., scales=[1/4, 1/8, ...], size=7, sampling_ratio=2, canonical=(224, 4)) on K×4 "
        "boxes: RoI Align of each box on the level its size asks for, ⌊4 + log2(√area/224)⌋ (FPN's eq. 1), as "
        "torchvision's MultiScaleRoIAlign"
    )
    example = Example(
        "msroialign(@fine, @coarse, scales=[1/2, 1/4], size=2)",
        (4, 16, 16),
        before="conv(4, s=2), fine: relu, conv(4, s=2), coarse: relu, anchors(@in, sizes=[4, 16], ratios=[1]), relu",
    )

    def resolve(self, attrs, inputs):
        if len(inputs[0]) != 2 or inputs[0][1] != 4:
            raise ShapeProblem(
                f"`msroialign` follows the K×4 boxes it pools, got {format_shape(inputs[0])}",
                hint="msroialign(@p2, @p3, ...) after the proposals",
            )
        maps = inputs[1:]
        if not maps or any(len(shape) != 3 or shape[0] != maps[0][0] for shape in maps):
            raise ShapeProblem(
                "`msroialign` takes one or more feature maps of the same channels as taps, got "
                + (", ".join(format_shape(shape) for shape in maps) or "none"),
                hint="msroialign(@p2, @p3, @p4, @p5, scales=[1/4, 1/8, 1/16, 1/32])",
            )
        scales = attrs["scales"]
        if not isinstance(scales, (list, tuple)) or len(scales) != len(maps):
            raise ValueProblem(f"`msroialign` needs one scale a feature map ({len(maps)}), got {scales!r}")
        scales = tuple(real(scale, "a scale", positive=True) for scale in scales)
        levels = [-math.log2(scale) for scale in scales]
        if any(not level.is_integer() for level in levels) or levels != list(
            range(int(levels[0]), int(levels[0]) + len(levels))
        ):
            raise ValueProblem(
                f"`msroialign`'s scales must halve from map to map, as powers of 2, got {', '.join(f'{s:g}' for s in scales)}",
                hint="FPN's levels: scales=[1/4, 1/8, 1/16, 1/32]",
            )
        canonical = attrs["canonical"]
        if not isinstance(canonical, (list, tuple)) or len(canonical) != 2:
            raise ValueProblem(f"`canonical` is (size, level), got {canonical!r}")
        ratio = attrs["sampling_ratio"]
        if isinstance(ratio, bool) or not isinstance(ratio, int):
            raise ValueProblem(f"sampling_ratio must be a whole number (≤ 0: adaptive), got {ratio!r}")
        return {
            "scales": scales,
            "levels": (int(levels[0]), int(levels[-1])),
            "size": pair(attrs["size"], "output size"),
            "sampling_ratio": ratio if ratio > 0 else -1,
            "canonical": (
                real(canonical[0], "the canonical size", positive=True),
                whole(canonical[1], "the canonical level", 0),
            ),
        }

    def shape(self, attrs, inputs):
        return (inputs[0][0], inputs[1][0], *attrs["size"])

    def macs(self, attrs, inputs, output):
        """As `roialign` on every level: the boxes are pooled on each, then each keeps its own level's."""
        return sum(RoiAlign.macs(self, attrs, [shape], output) for shape in inputs[1:])

    def label(self, attrs):
        return f"RoI Align {attrs['size'][0]}×{attrs['size'][1]}, levels {attrs['levels'][0]}–{attrs['levels'][1]}"

    def torch_forward(self, attrs, inputs):
        maps = Listed(tuple(Arg(index) for index in range(1, len(inputs))))
        arguments = (attrs["size"], attrs["scales"], attrs["sampling_ratio"], attrs["levels"], attrs["canonical"])
        return Call("", "multiscale_roi_align", (Arg(0), maps, *arguments))

    def onnx(self, attrs, inputs, args, emit):
        emit.require(11, "`msroialign` (ONNX RoiAlign, CumSum and Clip with inputs)")
        if emit.opset > self.onnx_newest:
            raise ValueProblem(
                f"`msroialign` at ONNX opset {emit.opset} would be RoiAlign-22, which onnxruntime "
                f"{_runtime_version()} does not run",
                hint=f"use --opset 11 to {self.onnx_newest}, or leave --opset out",
            )
        boxes, images = _onnx_rois(emit, args[0])
        x1, y1, x2, y2 = (
            emit.op("Slice", [boxes, emit.ints("start", [i]), emit.ints("end", [i + 1]), emit.ints("axis", [1])])
            for i in range(4)
        )
        area = emit.op("Mul", [emit.op("Sub", [x2, x1]), emit.op("Sub", [y2, y1])])
        size, level = attrs["canonical"]
        ratio = emit.op("Div", [emit.op("Sqrt", [area]), emit.floats("size", size)])
        log2 = emit.op("Div", [emit.op("Log", [ratio]), emit.floats("ln2", math.log(2))])
        wanted = emit.op("Floor", [emit.op("Add", [log2, emit.floats("level", level + 1e-6)])])
        first, last = attrs["levels"]
        wanted = emit.op("Clip", [wanted, emit.floats("first", first), emit.floats("last", last)])
        wanted = emit.op("Reshape", [wanted, emit.ints("per_box", [-1, 1, 1, 1])])
        pooled = None
        for index, (features, scale) in enumerate(zip(args[1:], attrs["scales"])):
            aligned = emit.op(
                "RoiAlign",
                [features, boxes, images],
                output_height=attrs["size"][0],
                output_width=attrs["size"][1],
                sampling_ratio=max(attrs["sampling_ratio"], 0),
                spatial_scale=scale,
                mode="avg",
                **_coordinates({"aligned": False}, emit.opset),
            )
            if pooled is None:
                pooled = aligned
            else:
                chosen = emit.op("Equal", [wanted, emit.floats("index", first + index)])
                pooled = emit.op("Where", [chosen, aligned, pooled])
        shape = [-1, inputs[0][0], inputs[1][0], *attrs["size"]]
        return emit.op("Reshape", [pooled, emit.ints("per_image", shape)])
