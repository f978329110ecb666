"""Text-guided layers of open-vocabulary detectors (YOLO-World, Cheng et al. 2024), as Ultralytics computes them.

The class text is a tensor the model holds (`textembed`: Ultralytics' `txt_feats`, set from CLIP by
`set_classes`), the same for every image; inside the network it is laid out channels first, dims × classes × 1,
one pixel per class, so that `fc(pixelwise=true)` and `layernorm` map each class's embedding. `maxsigmoid` is
MaxSigmoidAttnBlock's attention weights, `contrast` the region-text similarity of (BN)ContrastiveHead,
`crossattend` ImagePoolingAttn's attention of the classes (queries) over the pooled image patches.
"""

from __future__ import annotations

import math
import struct

from ..core.errors import ShapeProblem, ValueProblem
from .base import REQUIRED, OpKind, flag, format_shape, register, spatial, whole
from .constants import _onnx_expanded
from .pool import onnx_reduce
from .tensors import BUFFER, Example, Filled, TensorSpec
from .torch_code import OWN, Arg, Attribute, Call, Index, Method, Operation

NORMALIZE_EPS = 1e-12  # F.normalize's


def _call(function: str, *args, **keywords) -> Call:
    return Call("torch", function, args, tuple(keywords.items()))


def _batch() -> Index:
    return Index(Attribute(Arg(0), "shape"), 0)


def _holder(specs: list[TensorSpec]):
    """A plain module holding the layer's named tensors (`self.<layer>.bias`), as Ultralytics' modules hold them."""
    import torch
    from torch import nn

    holder = nn.Module()
    for spec in specs:
        value = torch.full(spec.shape, spec.init.value)
        if spec.role == BUFFER:
            holder.register_buffer(spec.name, value)
        else:
            holder.register_parameter(spec.name, nn.Parameter(value))
    return holder


def _text_taps(kind: OpKind, inputs, what: str) -> tuple[int, int]:
    """The (dims, classes) of the text tap, checked: one tap, dims × classes × 1."""
    if len(inputs) != 2:
        raise ValueProblem(
            f"`{kind.name}` takes {what} as one tap, got {len(inputs) - 1}",
            hint=f"{kind.name}(@text, ...) with the text of textembed",
        )
    text = inputs[1]
    if len(text) != 3 or text[2] != 1:
        raise ShapeProblem(
            f"`{kind.name}`'s {what} must be dims × classes × 1, got {format_shape(text)}",
            hint="textembed gives the text so; fc(pixelwise=true) keeps the layout",
        )
    return text[0], text[1]


def _float32(value: float) -> float:
    """The value as a float32 tensor holds it."""
    return struct.unpack("f", struct.pack("f", value))[0]


def _onnx_normalized(emit, value: str, axis: int) -> str:
    """F.normalize: value / max(‖value‖₂ over axis, 1e-12)."""
    norm = emit.op("Max", [onnx_reduce(emit, "ReduceL2", value, axis), emit.floats("eps", NORMALIZE_EPS)])
    return emit.op("Div", [value, norm])


@register
class TextEmbed(OpKind):
    """The class text embeddings a model holds, Ultralytics' `txt_feats` (1 × classes × dims): a buffer the
    checkpoint supplies, not learned, repeated along the input's batch."""

    name = "textembed"
    buffers_hold = "class text embeddings"
    family = "io"
    tap_values = False  # it reads its input's batch size only
    signature = (("classes", REQUIRED), ("dims", 512))
    doc = (
        "textembed(classes, dims=512): the class text embeddings the model holds (Ultralytics' txt_feats, from CLIP), "
        "a buffer the checkpoint supplies, the same for every image: dims × classes × 1"
    )
    example = Example("textembed(3, 4)", (2, 4, 4))

    def resolve(self, attrs, inputs):
        return {"classes": whole(attrs["classes"], "classes"), "dims": whole(attrs["dims"], "dims")}

    def keeps_positions(self, attrs, inputs):
        return False

    def shape(self, attrs, inputs):
        return (attrs["dims"], attrs["classes"], 1)

    def tensors(self, attrs, inputs):
        return [TensorSpec("txt_feats", (1, attrs["classes"], attrs["dims"]), Filled(0.0), role=BUFFER)]

    def label(self, attrs):
        return f"class text {attrs['classes']}×{attrs['dims']}"

    def torch_module(self, attrs, inputs):
        return _holder(self.tensors(attrs, inputs))

    def torch_forward(self, attrs, inputs):
        held = _call("unsqueeze", _call("transpose", Attribute(OWN, "txt_feats"), 1, 2), -1)
        return Method(held, "expand", (_batch(), -1, -1, -1))

    def onnx(self, attrs, inputs, args, emit):
        held = emit.op(
            "Unsqueeze", [emit.op("Transpose", [emit.weight("txt_feats")], perm=(0, 2, 1)), emit.ints("axis", (3,))]
        )
        return _onnx_expanded(emit, held, args, self.shape(attrs, inputs))


@register
class MaxSigmoid(OpKind):
    """MaxSigmoidAttnBlock's weights: per head, each pixel's best match over the classes of the guide,
    sigmoid(max_k ⟨x_head, guide_head,k⟩ / √head_dim + bias), repeated over the head's channels."""

    name = "maxsigmoid"
    family = "act"
    takes_taps = True
    tap_edge = "branch"
    ranks = (3,)
    signature = (("heads", REQUIRED),)
    doc = (
        "maxsigmoid(@guide, heads): YOLO-World's text attention weights, per head sigmoid(max over the guide's "
        "classes of the head's channels · the class / √(C/heads) + bias), repeated over the head's C/heads channels; "
        "guide C×classes×1"
    )
    example = Example(
        "maxsigmoid(@guide, 2)", (4, 3, 3), before="x: bn, @x, gap, conv(12, k=1), guide: reshape((4, 3, 1)), @x"
    )

    def resolve(self, attrs, inputs):
        channels = spatial(self, inputs[0])[0]
        dims, _ = _text_taps(self, inputs, "its guide")
        heads = whole(attrs["heads"], "heads")
        if dims != channels:
            raise ShapeProblem(
                f"`maxsigmoid` needs a guide of the map's {channels} channels, got {dims}",
                hint="the guide's fc gives as many channels as the map has",
            )
        if channels % heads:
            raise ShapeProblem(f"`maxsigmoid` cannot cut {channels} channels into {heads} heads")
        return {"heads": heads}

    def shape(self, attrs, inputs):
        return inputs[0]

    def tensors(self, attrs, inputs):
        return [TensorSpec("bias", (attrs["heads"],))]

    def macs(self, attrs, inputs, output):
        channels, height, width = inputs[0]
        return channels * height * width * inputs[1][1]

    def label(self, attrs):
        return f"max-sigmoid text attention ×{attrs['heads']}"

    def torch_module(self, attrs, inputs):
        return _holder(self.tensors(attrs, inputs))

    def torch_forward(self, attrs, inputs):
        (channels, height, width), classes = inputs[0], inputs[1][1]
        heads = attrs["heads"]
        per_head = channels // heads
        embed = _call("reshape", Arg(0), (-1, heads, per_head, height * width))
        guide = _call("reshape", Arg(1), (-1, heads, per_head, classes))
        best = _call("amax", _call("matmul", _call("transpose", embed, 2, 3), guide), -1)
        bias = _call("reshape", Attribute(OWN, "bias"), (1, heads, 1))
        weights = _call("sigmoid", Operation("+", (Operation("/", (best, per_head**0.5)), bias)))
        return _call("repeat_interleave", _call("reshape", weights, (-1, heads, height, width)), per_head, 1)

    def onnx(self, attrs, inputs, args, emit):
        (channels, height, width), classes = inputs[0], inputs[1][1]
        heads = attrs["heads"]
        per_head = channels // heads
        embed = emit.op("Reshape", [args[0], emit.ints("embed", (0, heads, per_head, height * width))])
        guide = emit.op("Reshape", [args[1], emit.ints("guide", (0, heads, per_head, classes))])
        scores = emit.op("MatMul", [emit.op("Transpose", [embed], perm=(0, 1, 3, 2)), guide])
        best = onnx_reduce(emit, "ReduceMax", scores, 3)  # B × heads × pixels × 1
        bias = emit.op("Reshape", [emit.weight("bias"), emit.ints("per_head", (1, heads, 1, 1))])
        scaled = emit.op("Add", [emit.op("Div", [best, emit.floats("root", per_head**0.5)]), bias])
        weights = emit.op("Reshape", [emit.op("Sigmoid", [scaled]), emit.ints("heads", (0, heads, 1, height, width))])
        spread = emit.op("Expand", [weights, emit.ints("spread", (1, heads, per_head, height, width))])
        return emit.op("Reshape", [spread, emit.ints("map", (0, channels, height, width))])


@register
class Contrast(OpKind):
    """The region-text similarity of YOLO-World's ContrastiveHead (normalize=true) and of BNContrastiveHead's
    end (normalize=false, after its bn): each class's unit text embedding · the pixel's embedding (unit length
    with normalize), times e^logit_scale, plus bias."""

    name = "contrast"
    family = "fc"
    takes_taps = True
    tap_edge = "branch"
    ranks = (3,)
    signature = (("normalize", True),)
    doc = (
        "contrast(@text, normalize=true): class scores classes×H×W, each class's unit text embedding (dims×classes×1) "
        "· the pixel's embedding (made unit length with normalize), times e^logit_scale, plus bias, as YOLO-World's "
        "ContrastiveHead (BNContrastiveHead with normalize=false)"
    )
    example = Example("contrast(@text)", (4, 3, 3), before="x: bn, text: textembed(5, 4), @x")

    def resolve(self, attrs, inputs):
        channels = spatial(self, inputs[0])[0]
        dims, _ = _text_taps(self, inputs, "its text")
        if dims != channels:
            raise ShapeProblem(
                f"`contrast` compares {channels}-channel pixels with {dims}-dim text embeddings",
                hint="the map's channels are the text's dims (WorldDetect's cv3 ends with conv(embed, k=1))",
            )
        return {"normalize": flag(attrs["normalize"], "normalize")}

    def shape(self, attrs, inputs):
        return (inputs[1][1], *inputs[0][1:])

    def tensors(self, attrs, inputs):
        scale = _float32(math.log(1 / 0.07)) if attrs["normalize"] else -1.0  # each head's own start
        return [TensorSpec("bias", (1,), Filled(-10.0)), TensorSpec("logit_scale", (), Filled(scale))]

    def macs(self, attrs, inputs, output):
        channels, height, width = inputs[0]
        return channels * height * width * inputs[1][1]

    def label(self, attrs):
        return "text contrast" + (" (unit)" if attrs["normalize"] else "")

    def torch_module(self, attrs, inputs):
        return _holder(self.tensors(attrs, inputs))

    def torch_forward(self, attrs, inputs):
        (channels, height, width), classes = inputs[0], inputs[1][1]
        text = _call("transpose", _call("reshape", Arg(1), (-1, channels, classes)), 1, 2)
        text = Call("F", "normalize", (text,), (("dim", -1), ("p", 2)))
        pixels = Call("F", "normalize", (Arg(0),), (("dim", 1), ("p", 2))) if attrs["normalize"] else Arg(0)
        scores = _call("reshape", _call("matmul", text, _call("flatten", pixels, 2)), (-1, classes, height, width))
        scale = _call("exp", Attribute(OWN, "logit_scale"))
        return Operation("+", (Operation("*", (scores, scale)), Attribute(OWN, "bias")))

    def onnx(self, attrs, inputs, args, emit):
        (channels, height, width), classes = inputs[0], inputs[1][1]
        text = emit.op("Reshape", [args[1], emit.ints("text", (0, channels, classes))])
        text = _onnx_normalized(emit, emit.op("Transpose", [text], perm=(0, 2, 1)), 2)
        pixels = _onnx_normalized(emit, args[0], 1) if attrs["normalize"] else args[0]
        flat = emit.op("Reshape", [pixels, emit.ints("flat", (0, channels, height * width))])
        scores = emit.op("Reshape", [emit.op("MatMul", [text, flat]), emit.ints("map", (0, classes, height, width))])
        scaled = emit.op("Mul", [scores, emit.op("Exp", [emit.weight("logit_scale")])])
        return emit.op("Add", [scaled, emit.weight("bias")])


@register
class CrossAttend(OpKind):
    """Multi-head attention of each position of the current tensor (queries) over the positions of a keys and a
    values tap, as ImagePoolingAttn: softmax(qᵀk / √head_dim) over the keys, then the values weighed by it."""

    name = "crossattend"
    family = "merge"
    takes_taps = True
    tap_edge = "branch"
    signature = (("heads", REQUIRED),)
    doc = (
        "crossattend(@keys, @values, heads): multi-head attention of the current tensor's positions (queries, "
        "C×...) over the keys' positions, per head softmax(qᵀk / √(C/heads)) times the values, as YOLO-World's "
        "ImagePoolingAttn; keys and values C×... of the same positions; out: the queries' shape"
    )
    example = Example(
        "crossattend(@k, @v, 2)", (4, 3, 1), before="x: bn, @x, adaptivemaxpool((5, 1)), k: bn, v: relu, @x"
    )

    def resolve(self, attrs, inputs):
        if len(inputs) != 3:
            raise ValueProblem(
                f"`crossattend` takes its keys and values as two taps, got {len(inputs) - 1}",
                hint="crossattend(@keys, @values, heads)",
            )
        queries, keys, values = inputs
        heads = whole(attrs["heads"], "heads")
        if keys != values or keys[0] != queries[0] or len(queries) < 2 or len(keys) < 2:
            raise ShapeProblem(
                f"`crossattend` needs keys and values of one shape and of the queries' channels, got queries "
                f"{format_shape(queries)}, keys {format_shape(keys)}, values {format_shape(values)}",
                hint="project all three to the same channels, each position along the axes after them",
            )
        if queries[0] % heads:
            raise ShapeProblem(f"`crossattend` cannot cut {queries[0]} channels into {heads} heads")
        return {"heads": heads}

    def shape(self, attrs, inputs):
        return inputs[0]

    def keeps_positions(self, attrs, inputs):
        return False

    def macs(self, attrs, inputs, output):
        queries, keys = math.prod(inputs[0][1:]), math.prod(inputs[1][1:])
        return 2 * inputs[0][0] * queries * keys  # qᵀk, then the values weighed

    def label(self, attrs):
        return f"cross-attention ×{attrs['heads']}"

    def _grouped(self, attrs, inputs) -> tuple[int, int, int]:
        return inputs[0][0] // attrs["heads"], math.prod(inputs[0][1:]), math.prod(inputs[1][1:])

    def torch_forward(self, attrs, inputs):
        heads = attrs["heads"]
        per_head, queries, keys = self._grouped(attrs, inputs)
        query = _call("reshape", Arg(0), (-1, heads, per_head, queries))
        key = _call("reshape", Arg(1), (-1, heads, per_head, keys))
        value = _call("reshape", Arg(2), (-1, heads, per_head, keys))
        scores = Operation("/", (_call("matmul", _call("transpose", query, 2, 3), key), per_head**0.5))
        attended = _call("matmul", value, _call("transpose", _call("softmax", scores, -1), 2, 3))
        return _call("reshape", attended, (-1, *inputs[0]))

    def onnx(self, attrs, inputs, args, emit):
        emit.require(13, "`crossattend`")  # Softmax over the last axis alone
        heads = attrs["heads"]
        per_head, queries, keys = self._grouped(attrs, inputs)
        query = emit.op("Reshape", [args[0], emit.ints("queries", (0, heads, per_head, queries))])
        key = emit.op("Reshape", [args[1], emit.ints("keys", (0, heads, per_head, keys))])
        value = emit.op("Reshape", [args[2], emit.ints("keys", (0, heads, per_head, keys))])
        scores = emit.op("MatMul", [emit.op("Transpose", [query], perm=(0, 1, 3, 2)), key])
        weights = emit.op("Softmax", [emit.op("Div", [scores, emit.floats("root", per_head**0.5)])], axis=-1)
        attended = emit.op("MatMul", [value, emit.op("Transpose", [weights], perm=(0, 1, 3, 2))])
        return emit.op("Reshape", [attended, emit.ints("shape", (0, *inputs[0]))])
