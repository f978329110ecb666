"""RT-DETR's two kinds as ONNX nodes: the encoder layer (`aifi`) and the decoder (`rtdetrdecoder`), node for node
what rtdetr_torch.py and rtdetr_decoder_torch.py compute. Every size is static but the batch, so the anchors,
the valid mask and the positions are constants computed here; the deformable attention samples with
GridSample (opset 16)."""

from __future__ import annotations

from .activation import _gelu
from .norm import _normalize_last_axis
from .rcnn import _top


class Graph:
    """The layer's weights by their declared names, and the sub-graphs both kinds are made of."""

    def __init__(self, emit):
        self.emit = emit
        self.weight = {spec.name: emit.weight(spec.name) for spec in emit.declared if spec.floating}

    def op(self, op_type: str, *inputs: str, **attributes) -> str:
        return self.emit.op(op_type, list(inputs), **attributes)

    def ints(self, *values: int) -> str:
        return self.emit.ints("shape", values)

    def linear(self, x: str, prefix: str, rows: tuple[int, int] | None = None) -> str:
        """x · Wᵀ + b; with `rows`, those rows of W and b alone (one of the packed q, k, v projections)."""
        weight, bias = self.weight[f"{prefix}weight"], self.weight[f"{prefix}bias"]
        if rows is not None:
            bounds = (self.ints(rows[0]), self.ints(rows[1]), self.ints(0))
            weight, bias = self.op("Slice", weight, *bounds), self.op("Slice", bias, *bounds)
        return self.op("Add", self.op("MatMul", x, self.op("Transpose", weight, perm=(1, 0))), bias)

    def mlp(self, x: str, prefix: str, count: int) -> str:
        for i in range(count):
            x = self.linear(x, f"{prefix}.layers.{i}.")
            x = self.op("Relu", x) if i < count - 1 else x
        return x

    def norm(self, x: str, prefix: str) -> str:
        operands = [self.weight[f"{prefix}.weight"], self.weight[f"{prefix}.bias"]]
        return _normalize_last_axis(self.emit, x, operands, 1e-5)

    def attention(self, placed: str, values: str, prefix: str, channels: int, heads: int) -> str:
        """nn.MultiheadAttention (batch first): queries and keys from `placed`, values from `values`."""
        per_head = channels // heads

        def split(x):  # B × tokens × C -> B × heads × tokens × C/heads
            return self.op("Transpose", self.op("Reshape", x, self.ints(0, -1, heads, per_head)), perm=(0, 2, 1, 3))

        query, key, value = (
            split(self.linear(x, f"{prefix}in_proj_", (i * channels, (i + 1) * channels)))
            for i, x in enumerate((placed, placed, values))
        )
        scores = self.op("MatMul", query, self.op("Transpose", key, perm=(0, 1, 3, 2)))
        weights = self.op("Softmax", self.op("Mul", scores, self.emit.floats("scale", per_head**-0.5)), axis=-1)
        attended = self.op("Transpose", self.op("MatMul", weights, value), perm=(0, 2, 1, 3))
        return self.linear(self.op("Reshape", attended, self.ints(0, -1, channels)), f"{prefix}out_proj.")


def encoder_layer(attrs, inputs, args, emit, positions) -> str:
    """aifi: the map's pixels as tokens, attention with positions on queries and keys, the GELU feed-forward."""
    emit.require(13, "`aifi`")  # Softmax over the last axis alone
    graph, (channels, height, width) = Graph(emit), inputs[0]
    tokens = graph.op("Transpose", graph.op("Reshape", args[0], graph.ints(0, channels, -1)), perm=(0, 2, 1))
    placed = graph.op("Add", tokens, emit.floats("positions", positions[None]))
    attended = graph.attention(placed, tokens, "ma.", channels, attrs["heads"])
    tokens = graph.norm(graph.op("Add", tokens, attended), "norm1")
    hidden = _gelu(graph.linear(tokens, "fc1."), emit)
    tokens = graph.norm(graph.op("Add", tokens, graph.linear(hidden, "fc2.")), "norm2")
    return graph.op("Reshape", graph.op("Transpose", tokens, perm=(0, 2, 1)), graph.ints(0, channels, height, width))


def decoder(attrs, inputs, args, emit, anchors, valid) -> str:
    """rtdetrdecoder: the projected levels as one sequence, the encoder head, the top-k queries, then the decoder
    layers up to eval_idx; `anchors` and `valid` are the pixels' anchors (logits, +inf outside) and mask."""
    emit.require(16, "`rtdetrdecoder` (GridSample)")
    graph, hidden = Graph(emit), attrs["hidden"]
    sequence = []
    for i, level in enumerate(args):
        prefix = f"input_proj.{i}.1."
        norm = [graph.weight[prefix + name] for name in ("weight", "bias", "running_mean", "running_var")]
        projected = graph.op("Conv", level, graph.weight[f"input_proj.{i}.0.weight"])
        projected = graph.op("BatchNormalization", projected, *norm, epsilon=attrs["bn_eps"])
        flat = graph.op("Reshape", projected, graph.ints(0, hidden, -1))
        sequence.append(graph.op("Transpose", flat, perm=(0, 2, 1)))
    values = graph.op("Concat", *sequence, axis=1)  # B × pixels × hidden
    masked = graph.op("Mul", values, emit.floats("valid", valid))
    features = graph.norm(graph.linear(masked, "enc_output.0."), "enc_output.1")
    logits = graph.linear(features, "enc_score_head.")
    best = (
        graph.op("ReduceMax", logits, graph.ints(-1), keepdims=0)
        if emit.opset >= 18
        else graph.op("ReduceMax", logits, axes=(-1,), keepdims=0)
    )
    count = min(attrs["queries"], sum(h * w for _, h, w in inputs))
    _, chosen = _top(emit, best, count)  # B × queries
    queries = graph.op("GatherND", features, graph.op("Unsqueeze", chosen, graph.ints(-1)), batch_dims=1)
    picked = graph.op("Gather", emit.floats("anchors", anchors), chosen, axis=0)
    boxes = graph.op("Sigmoid", graph.op("Add", graph.mlp(queries, "enc_bbox_head", 3), picked))
    x = queries
    for index in range(attrs["eval_idx"] + 1):
        layer = f"decoder.layers.{index}."
        positions = graph.mlp(boxes, "query_pos_head", 2)
        placed = graph.op("Add", x, positions)
        x = graph.norm(
            graph.op("Add", x, graph.attention(placed, x, f"{layer}self_attn.", hidden, attrs["heads"])),
            layer + "norm1",
        )
        sampled = _deformable(graph, attrs, inputs, graph.op("Add", x, positions), boxes, values, layer + "cross_attn.")
        x = graph.norm(graph.op("Add", x, sampled), layer + "norm2")
        ffn = graph.linear(graph.op("Relu", graph.linear(x, layer + "linear1.")), layer + "linear2.")
        x = graph.norm(graph.op("Add", x, ffn), layer + "norm3")
        boxes = graph.op("Sigmoid", graph.op("Add", graph.mlp(x, f"dec_bbox_head.{index}", 3), _logit(graph, boxes)))
    scores = graph.op("Sigmoid", graph.linear(x, f"dec_score_head.{attrs['eval_idx']}."))
    return graph.op("Concat", boxes, scores, axis=-1)


def _logit(graph: Graph, boxes: str) -> str:
    """log(x / (1 − x)) with x in [0, 1] and both kept 1e-5 away from 0."""
    eps, zero, one = (graph.emit.floats(name, value) for name, value in (("eps", 1e-5), ("zero", 0.0), ("one", 1.0)))
    clipped = graph.op("Min", graph.op("Max", boxes, zero), one)
    low, high = graph.op("Max", clipped, eps), graph.op("Max", graph.op("Sub", one, clipped), eps)
    return graph.op("Log", graph.op("Div", low, high))


def _deformable(graph: Graph, attrs, inputs, query: str, boxes: str, values: str, prefix: str) -> str:
    """Multi-scale deformable attention: `points` bilinear samples per head and level around each box's centre,
    offsets scaled by its half size, weighted by a softmax over every level's samples."""
    hidden, heads, points = attrs["hidden"], attrs["heads"], attrs["points"]
    per_head, samples, pixels = hidden // heads, len(inputs) * points, sum(h * w for _, h, w in inputs)
    count = min(attrs["queries"], pixels)
    value = graph.op("Reshape", graph.linear(values, prefix + "value_proj."), graph.ints(0, pixels, heads, per_head))
    value = graph.op("Reshape", graph.op("Transpose", value, perm=(0, 2, 3, 1)), graph.ints(-1, per_head, pixels))
    offsets = graph.op(
        "Reshape", graph.linear(query, prefix + "sampling_offsets."), graph.ints(0, -1, heads, samples, 2)
    )
    weights = graph.op("Reshape", graph.linear(query, prefix + "attention_weights."), graph.ints(0, -1, heads, samples))
    weights = graph.op("Softmax", weights, axis=-1)
    corner = graph.op("Unsqueeze", boxes, graph.ints(2, 3))  # B × queries × 1 × 1 × 4
    centres = graph.op("Slice", corner, graph.ints(0), graph.ints(2), graph.ints(-1))
    halves = graph.op(
        "Mul", graph.op("Slice", corner, graph.ints(2), graph.ints(4), graph.ints(-1)), graph.emit.floats("half", 0.5)
    )
    steps = graph.op("Div", offsets, graph.emit.floats("points", float(points)))
    places = graph.op("Add", centres, graph.op("Mul", steps, halves))
    grids = graph.op("Sub", graph.op("Mul", places, graph.emit.floats("two", 2.0)), graph.emit.floats("one", 1.0))
    grids = graph.op("Reshape", graph.op("Transpose", grids, perm=(0, 2, 1, 3, 4)), graph.ints(-1, count, samples, 2))
    mode = "linear" if graph.emit.opset >= 20 else "bilinear"
    sampled, start = [], 0
    for i, (_, height, width) in enumerate(inputs):
        level = graph.op("Slice", value, graph.ints(start), graph.ints(start + height * width), graph.ints(2))
        level = graph.op("Reshape", level, graph.ints(-1, per_head, height, width))
        grid = graph.op("Slice", grids, graph.ints(i * points), graph.ints((i + 1) * points), graph.ints(2))
        sampled.append(graph.op("GridSample", level, grid, mode=mode, padding_mode="zeros", align_corners=0))
        start += height * width
    weights = graph.op("Reshape", graph.op("Transpose", weights, perm=(0, 2, 1, 3)), graph.ints(-1, 1, count, samples))
    weighted = graph.op("Mul", graph.op("Concat", *sampled, axis=-1), weights)
    attended = graph.op("ReduceSum", weighted, graph.ints(-1), keepdims=0)  # (B·heads) × per head × queries
    attended = graph.op("Transpose", graph.op("Reshape", attended, graph.ints(-1, hidden, count)), perm=(0, 2, 1))
    return graph.linear(attended, prefix + "output_proj.")
