"""RT-DETR's transformer parts as torch modules (Zhao et al., "DETRs Beat YOLOs on Real-time Object Detection",
2023): the hybrid encoder's intra-scale layer (AIFI) here; the decoder in rtdetr_decoder_torch.py.

Written for cnndsl from the paper's and Ultralytics' documented computation (cnndsl does not import
ultralytics); the submodules carry the names Ultralytics' modules give them, so that its state_dict loads
key for key."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def sincos_positions(height: int, width: int, channels: int, like: torch.Tensor, temperature: float = 10000.0):
    """The 2-D sine-cosine position embedding, 1 × (H·W) × C, pixels in row order: per pixel sin and cos of its
    row, then of its column, at C/4 frequencies 1 / temperature^(j / (C/4))."""
    seed = like.new_zeros(1, dtype=torch.float32)
    quarter = channels // 4
    frequency = 1.0 / (temperature ** (torch.arange(quarter).type_as(seed) / quarter))
    rows = torch.arange(height).type_as(seed).repeat_interleave(width)
    columns = torch.arange(width).type_as(seed).repeat(height)
    along_rows = rows[:, None] @ frequency[None]
    along_columns = columns[:, None] @ frequency[None]
    waves = (along_rows.sin(), along_rows.cos(), along_columns.sin(), along_columns.cos())
    return torch.cat(waves, 1)[None]


class EncoderLayer(nn.Module):
    """AIFI: one post-norm transformer encoder layer over the pixels of a map. Queries and keys are the pixels
    plus their sine-cosine positions, values the pixels; then a GELU feed-forward; each sub-layer is added to
    its input and layer-normed."""

    def __init__(self, channels: int, hidden: int, heads: int):
        super().__init__()
        self.ma = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        self.norm1 = nn.LayerNorm(channels)
        self.norm2 = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels, height, width = x.shape[1:]
        tokens = x.flatten(2).transpose(1, 2)  # B × pixels × C
        placed = tokens + sincos_positions(height, width, channels, x).to(x.dtype)
        tokens = self.norm1(tokens + self.ma(placed, placed, tokens)[0])
        tokens = self.norm2(tokens + self.fc2(F.gelu(self.fc1(tokens))))
        return tokens.transpose(1, 2).reshape(-1, channels, height, width)
