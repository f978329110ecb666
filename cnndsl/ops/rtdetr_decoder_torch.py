"""RT-DETR's decoder head as a torch module, in eval mode (Zhao et al., "DETRs Beat YOLOs on Real-time Object
Detection", 2023; the deformable attention of Zhu et al., "Deformable DETR", 2021).

The levels are projected (1×1 conv, batch norm) and laid side by side as one sequence of pixels; the encoder
head scores every pixel, the best `queries` pixels (by their largest class logit) become the queries, their
anchors (each pixel's centre and a size that doubles per level, in logit space) refined by a box MLP the
reference boxes. Each decoder layer runs self-attention over the queries, multi-scale deformable attention
(every head samples `points` bilinear points per level around its reference box) and a feed-forward, and
refines the boxes; the layer at `eval_idx` gives the boxes (cx, cy, w, h in [0, 1]) and the class logits.

Written for cnndsl from the papers and Ultralytics' documented eval computation (cnndsl does not import
ultralytics); every submodule carries the name Ultralytics' RTDETRDecoder gives it, so that its state_dict
loads key for key. The training-only denoising embedding is held, as Ultralytics holds it, but not used."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class MLP(nn.Module):
    """Linear layers of the given widths with ReLU between them."""

    def __init__(self, widths: list[int]):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x)


def logit(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """The inverse of the sigmoid on [0, 1], both ends kept eps away from it."""
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


class DeformableAttention(nn.Module):
    """Multi-scale deformable attention: per query and head, `points` samples on each level at offsets from the
    reference box's centre scaled by its half size, weighted by a softmax over all levels' samples."""

    def __init__(self, hidden: int, levels: int, heads: int, points: int):
        super().__init__()
        self.levels, self.heads, self.points = levels, heads, points
        self.sampling_offsets = nn.Linear(hidden, heads * levels * points * 2)
        self.attention_weights = nn.Linear(hidden, heads * levels * points)
        self.value_proj = nn.Linear(hidden, hidden)
        self.output_proj = nn.Linear(hidden, hidden)

    def forward(self, query, boxes, values, sizes: list[tuple[int, int]]):
        batch, count, hidden = query.shape
        heads, samples = self.heads, self.levels * self.points
        value = self.value_proj(values).view(batch, -1, heads, hidden // heads)
        offsets = self.sampling_offsets(query).view(batch, count, heads, samples, 2)
        weights = self.attention_weights(query).view(batch, count, heads, samples).softmax(-1)
        centres, halves = boxes[:, :, None, None, :2], boxes[:, :, None, None, 2:] * 0.5
        places = centres + offsets / self.points * halves  # batch × queries × heads × samples × (x, y) in [0, 1]
        grids = (2 * places - 1).transpose(1, 2).flatten(0, 1)  # (batch·heads) × queries × samples × 2
        per_level = value.permute(0, 2, 3, 1).flatten(0, 1).split([h * w for h, w in sizes], -1)
        sampled = [
            F.grid_sample(
                level.reshape(batch * heads, hidden // heads, h, w),
                grids[:, :, i * self.points : (i + 1) * self.points],
                mode="bilinear",
                padding_mode="zeros",
                align_corners=False,
            )
            for i, (level, (h, w)) in enumerate(zip(per_level, sizes))
        ]  # each (batch·heads) × channels per head × queries × points
        weights = weights.transpose(1, 2).reshape(batch * heads, 1, count, samples)
        attended = (torch.cat(sampled, -1) * weights).sum(-1).view(batch, hidden, count)
        return self.output_proj(attended.transpose(1, 2))


class DecoderLayer(nn.Module):
    """Self-attention over the queries (positions added to queries and keys), deformable cross-attention on the
    levels, a ReLU feed-forward; post-norm."""

    def __init__(self, hidden: int, heads: int, ffn: int, levels: int, points: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(hidden, heads)
        self.norm1 = nn.LayerNorm(hidden)
        self.cross_attn = DeformableAttention(hidden, levels, heads, points)
        self.norm2 = nn.LayerNorm(hidden)
        self.linear1 = nn.Linear(hidden, ffn)
        self.linear2 = nn.Linear(ffn, hidden)
        self.norm3 = nn.LayerNorm(hidden)

    def forward(self, x, boxes, values, sizes, positions):
        placed = (x + positions).transpose(0, 1)  # nn.MultiheadAttention without batch_first: queries first
        x = self.norm1(x + self.self_attn(placed, placed, x.transpose(0, 1))[0].transpose(0, 1))
        x = self.norm2(x + self.cross_attn(x + positions, boxes, values, sizes))
        return self.norm3(x + self.linear2(F.relu(self.linear1(x))))


class Decoder(nn.Module):
    def __init__(self, layers: list[DecoderLayer]):
        super().__init__()
        self.layers = nn.ModuleList(layers)


class RTDETRDecoder(nn.Module):
    """levels (B × C_i × H_i × W_i) -> B × queries × (4 + classes): boxes (cx, cy, w, h in [0, 1]) beside the
    classes' sigmoid scores, from the decoder layer at eval_idx."""

    def __init__(self, channels, classes, hidden=256, queries=300, points=4, heads=8, layers=6, ffn=1024,
                 eval_idx=-1, bn_eps=1e-5, bn_momentum=0.1):  # fmt: skip
        super().__init__()
        self.queries, self.eval_idx = queries, eval_idx % layers
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, hidden, 1, bias=False), nn.BatchNorm2d(hidden, bn_eps, bn_momentum))
            for c in channels
        )
        self.decoder = Decoder([DecoderLayer(hidden, heads, ffn, len(channels), points) for _ in range(layers)])
        self.denoising_class_embed = nn.Embedding(classes, hidden)  # training's noised labels: held, not used
        nn.init.uniform_(self.denoising_class_embed.weight, -1, 1)
        self.query_pos_head = MLP([4, 2 * hidden, hidden])
        self.enc_output = nn.Sequential(nn.Linear(hidden, hidden), nn.LayerNorm(hidden))
        self.enc_score_head = nn.Linear(hidden, classes)
        self.enc_bbox_head = MLP([hidden, hidden, hidden, 4])
        self.dec_score_head = nn.ModuleList(nn.Linear(hidden, classes) for _ in range(layers))
        self.dec_bbox_head = nn.ModuleList(MLP([hidden, hidden, hidden, 4]) for _ in range(layers))

    @staticmethod
    def anchors(sizes: list[tuple[int, int]], like: torch.Tensor, size: float = 0.05, eps: float = 0.01):
        """Each pixel's anchor (its centre, and `size` · 2^level for width and height) in logit space, and
        whether it lies inside (eps, 1 − eps) on every side; an anchor outside is +inf."""
        boxes = []
        for level, (h, w) in enumerate(sizes):
            ys, xs = torch.meshgrid(torch.arange(h).type_as(like), torch.arange(w).type_as(like), indexing="ij")
            centres = torch.stack([(xs + 0.5) / w, (ys + 0.5) / h], -1).view(-1, 2)
            boxes.append(torch.cat([centres, torch.full_like(centres, size * 2.0**level)], -1))
        boxes = torch.cat(boxes)[None]
        valid = ((boxes > eps) & (boxes < 1 - eps)).all(-1, keepdim=True)
        return torch.log(boxes / (1 - boxes)).masked_fill(~valid, float("inf")), valid

    def forward(self, *levels: torch.Tensor) -> torch.Tensor:
        projected = [proj(level) for proj, level in zip(self.input_proj, levels)]
        sizes = [tuple(level.shape[2:]) for level in projected]
        values = torch.cat([level.flatten(2).transpose(1, 2) for level in projected], 1)  # B × pixels × hidden
        anchors, valid = self.anchors(sizes, values)
        features = self.enc_output(valid * values)
        logits = self.enc_score_head(features)
        count = min(self.queries, values.shape[1])
        chosen = logits.max(-1).values.topk(count, dim=1).indices  # B × queries
        queries = features.gather(1, chosen[..., None].expand(-1, -1, features.shape[-1]))
        boxes = (self.enc_bbox_head(queries) + anchors[0][chosen]).sigmoid()
        x = queries
        for index, layer in enumerate(self.decoder.layers):
            x = layer(x, boxes, values, sizes, self.query_pos_head(boxes))
            boxes = torch.sigmoid(self.dec_bbox_head[index](x) + logit(boxes))
            if index == self.eval_idx:
                return torch.cat([boxes, self.dec_score_head[index](x).sigmoid()], -1)
        raise AssertionError("eval_idx is one of the layers")  # __init__ takes it modulo the layers
