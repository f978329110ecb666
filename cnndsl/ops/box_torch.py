"""Box decoding and clipping in pure torch, as torchvision's BoxCoder and clip_boxes_to_image compute them: the
`boxdecode` and `clipboxes` layers' torch functions, which Faster R-CNN's detections (rcnn_torch.py) call too.
Registered in torch_functions.py, whose backends call them and whose `--to python` copies them into its file.
"""

from __future__ import annotations

import torch


def decode_boxes(deltas, boxes, weights, clamp):
    """torchvision's BoxCoder.decode_single: centres move by d·size/weight, sizes grow
    by exp(min(d/weight, clamp)); deltas N × K × 4, or an N × A·4 × H × W map."""
    if deltas.dim() == 4:  # torchvision's permute_and_flatten: pixel by pixel
        height, width = deltas.shape[2:]
        deltas = deltas.view(deltas.shape[0], -1, 4, height, width)
        deltas = deltas.permute(0, 3, 4, 1, 2).reshape(deltas.shape[0], -1, 4)
    widths = boxes[..., 2] - boxes[..., 0]
    heights = boxes[..., 3] - boxes[..., 1]
    centre_x = deltas[..., 0] / weights[0] * widths + (boxes[..., 0] + 0.5 * widths)
    centre_y = deltas[..., 1] / weights[1] * heights + (boxes[..., 1] + 0.5 * heights)
    half_w = 0.5 * (torch.exp((deltas[..., 2] / weights[2]).clamp(max=clamp)) * widths)
    half_h = 0.5 * (torch.exp((deltas[..., 3] / weights[3]).clamp(max=clamp)) * heights)
    low = (centre_x - half_w, centre_y - half_h)
    return torch.stack((*low, centre_x + half_w, centre_y + half_h), dim=2)


def clip_boxes(boxes, size):
    """torchvision.ops.clip_boxes_to_image: x within [0, width], y within [0, height]."""
    height, width = size
    x = boxes[..., 0::2].clamp(min=0, max=width)
    y = boxes[..., 1::2].clamp(min=0, max=height)
    return torch.stack((x, y), dim=-1).reshape(boxes.shape)
