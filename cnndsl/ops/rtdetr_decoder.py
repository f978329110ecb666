"""`rtdetrdecoder`: RT-DETR's head (Zhao et al., 2023), from the levels of the hybrid encoder to every query's box
and class scores, as Ultralytics' RTDETRDecoder computes them in eval mode (rtdetr_decoder_torch.py says how).

One kind, because its query selection (the top-k pixels by class logit) and multi-scale deformable attention
(bilinear samples at offsets the queries predict) have no cnndsl form. Its tensors are declared in the order
and under the names of Ultralytics' state_dict, so that a checkpoint loads key for key."""

from __future__ import annotations

import math

from ..core.errors import ShapeProblem, ValueProblem
from .base import REQUIRED, OpKind, real, register, repeats, spatial, whole
from .rtdetr_encoder import attention_tensors, linear_tensors, norm_tensors
from .rtdetr_onnx import decoder
from .tensors import BUFFER, ONES, ZEROS, Example, TensorSpec, Uniform
from .torch_code import Arg, applied


def _mlp(prefix: str, widths: list[int]) -> list[TensorSpec]:
    return [
        spec for i, pair in enumerate(zip(widths, widths[1:])) for spec in linear_tensors(f"{prefix}.layers.{i}", *pair)
    ]


def _batch_norm(prefix: str, channels: int) -> list[TensorSpec]:
    return [
        *norm_tensors(prefix, channels),
        TensorSpec(f"{prefix}.running_mean", (channels,), ZEROS, BUFFER),
        TensorSpec(f"{prefix}.running_var", (channels,), ONES, BUFFER),
        TensorSpec(f"{prefix}.num_batches_tracked", (), ZEROS, BUFFER, "int64"),
    ]


@register
class RTDETRDecoderKind(OpKind):
    """levels -> queries × (4 + classes): boxes (cx, cy, w, h as fractions of the input) beside sigmoid scores."""

    name = "rtdetrdecoder"
    buffers_hold = "batch-norm running statistics"
    family = "other"
    takes_taps = True
    tap_edge = "concat"
    signature = (
        ("classes", REQUIRED), ("hidden", 256), ("queries", 300), ("points", 4), ("heads", 8), ("layers", 6),
        ("ffn", 1024), ("eval_idx", -1), ("bn_eps", 1e-5), ("bn_momentum", 0.1),
    )  # fmt: skip
    doc = (
        "rtdetrdecoder(classes, @level, ...): RT-DETR's decoder on the current map and the tapped levels, as "
        "Ultralytics' RTDETRDecoder in eval mode: the best `queries` pixels, `layers` deformable-attention "
        "decoder layers; out: queries × (4 + classes), boxes (cx, cy, w, h in [0, 1]) beside sigmoid scores"
    )
    example = Example(
        "rtdetrdecoder(3, @small, hidden=16, queries=10, points=2, heads=2, layers=2, ffn=32)",
        (4, 4, 4),
        before="big: bn, small: maxpool, @big",
    )

    def resolve(self, attrs, inputs):
        for shape in inputs:
            spatial(self, shape)
        values = {key: whole(attrs[key], key) for key in ("classes", "hidden", "queries", "points", "heads", "ffn")}
        values["layers"] = repeats(attrs["layers"], "layers")
        if values["hidden"] % values["heads"]:
            raise ShapeProblem(
                f"`rtdetrdecoder` cannot split {values['hidden']} hidden channels among {values['heads']} heads",
                hint="hidden must be a multiple of heads",
            )
        index = attrs["eval_idx"]
        if isinstance(index, bool) or not isinstance(index, int) or not -values["layers"] <= index < values["layers"]:
            raise ValueProblem(
                f"eval_idx must name one of the {values['layers']} decoder layers, got {index}",
                hint=f"0 to {values['layers'] - 1}, or -1 for the last",
            )
        eps, momentum = real(attrs["bn_eps"], "bn_eps", positive=True), real(attrs["bn_momentum"], "bn_momentum")
        return {**values, "eval_idx": index % values["layers"], "bn_eps": eps, "bn_momentum": momentum}

    def shape(self, attrs, inputs):
        pixels = sum(height * width for _, height, width in inputs)
        return (min(attrs["queries"], pixels), 4 + attrs["classes"])

    def keeps_positions(self, attrs, inputs):
        return False

    def tensors(self, attrs, inputs):
        hidden, classes, layers = attrs["hidden"], attrs["classes"], attrs["layers"]
        samples = attrs["heads"] * len(inputs) * attrs["points"]
        specs: list[TensorSpec] = []
        for i, (channels, _, _) in enumerate(inputs):
            specs.append(
                TensorSpec(f"input_proj.{i}.0.weight", (hidden, channels, 1, 1), Uniform(1 / math.sqrt(channels)))
            )
            specs += _batch_norm(f"input_proj.{i}.1", hidden)
        for i in range(layers):
            layer = f"decoder.layers.{i}"
            specs += [*attention_tensors(f"{layer}.self_attn", hidden), *norm_tensors(f"{layer}.norm1", hidden)]
            for name, width in (("sampling_offsets", 2 * samples), ("attention_weights", samples)):
                specs += linear_tensors(f"{layer}.cross_attn.{name}", hidden, width)
            specs += linear_tensors(f"{layer}.cross_attn.value_proj", hidden, hidden)
            specs += linear_tensors(f"{layer}.cross_attn.output_proj", hidden, hidden)
            specs += norm_tensors(f"{layer}.norm2", hidden)
            specs += linear_tensors(f"{layer}.linear1", hidden, attrs["ffn"])
            specs += linear_tensors(f"{layer}.linear2", attrs["ffn"], hidden)
            specs += norm_tensors(f"{layer}.norm3", hidden)
        specs.append(TensorSpec("denoising_class_embed.weight", (classes, hidden), Uniform(1.0)))
        specs += _mlp("query_pos_head", [4, 2 * hidden, hidden])
        specs += [*linear_tensors("enc_output.0", hidden, hidden), *norm_tensors("enc_output.1", hidden)]
        specs += linear_tensors("enc_score_head", hidden, classes)
        specs += _mlp("enc_bbox_head", [hidden, hidden, hidden, 4])
        for i in range(layers):
            specs += linear_tensors(f"dec_score_head.{i}", hidden, classes)
        for i in range(layers):
            specs += _mlp(f"dec_bbox_head.{i}", [hidden, hidden, hidden, 4])
        return specs

    def macs(self, attrs, inputs, output):
        """The eval forward's multiplications: the projections and the encoder head at every pixel; per query and
        decoder layer run (up to eval_idx) the position MLP, self-attention, the deformable attention's
        projections and weighted samples, the feed-forward and the box MLP; the score head of the last."""
        hidden, classes, ffn = attrs["hidden"], attrs["classes"], attrs["ffn"]
        pixels, queries = sum(h * w for _, h, w in inputs), output[0]
        samples = attrs["heads"] * len(inputs) * attrs["points"]
        box_mlp = 2 * hidden * hidden + 4 * hidden
        encoder = sum(c * h * w for c, h, w in inputs) * hidden + pixels * (hidden * hidden + hidden * classes)
        per_layer = queries * (8 * hidden + 2 * hidden * hidden)  # the query position MLP
        per_layer += 4 * queries * hidden * hidden + 2 * queries * queries * hidden  # self-attention
        per_layer += pixels * hidden * hidden + queries * hidden * (3 * samples + hidden)  # deformable projections
        per_layer += queries * samples * (hidden // attrs["heads"])  # the weighted samples
        per_layer += 2 * queries * hidden * ffn + queries * box_mlp
        return encoder + queries * box_mlp + (attrs["eval_idx"] + 1) * per_layer + queries * hidden * classes

    def label(self, attrs):
        return f"RT-DETR decoder, {attrs['queries']} queries"

    def torch_module(self, attrs, inputs):
        from .rtdetr_decoder_torch import RTDETRDecoder

        options = ("hidden", "queries", "points", "heads", "layers", "ffn", "eval_idx", "bn_eps", "bn_momentum")
        return RTDETRDecoder([shape[0] for shape in inputs], attrs["classes"], *(attrs[key] for key in options))

    def torch_forward(self, attrs, inputs):
        return applied(*(Arg(index) for index in range(len(inputs))))

    def onnx(self, attrs, inputs, args, emit):
        return decoder(attrs, inputs, args, emit, *anchor_table([shape[1:] for shape in inputs]))


def anchor_table(sizes: list[tuple[int, int]], size: float = 0.05, eps: float = 0.01):
    """rtdetr_decoder_torch.RTDETRDecoder.anchors in NumPy (float32): pixels × 4 anchors in logit space (+inf
    outside), and the pixels × 1 mask of those inside."""
    import numpy as np  # kept out of `cnndsl summary`

    boxes = []
    for level, (height, width) in enumerate(sizes):
        ys, xs = np.meshgrid(np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32), indexing="ij")
        centres = np.stack([(xs + 0.5) / width, (ys + 0.5) / height], -1).reshape(-1, 2)
        sides = np.full_like(centres, np.float32(size * 2.0**level))
        boxes.append(np.concatenate([centres, sides], -1))
    boxes = np.concatenate(boxes).astype(np.float32)
    valid = ((boxes > eps) & (boxes < 1 - eps)).all(-1, keepdims=True)
    with np.errstate(divide="ignore"):
        logits = np.log(boxes / (1 - boxes)).astype(np.float32)
    return np.where(valid, logits, np.float32(np.inf)).astype(np.float32), valid.astype(np.float32)
