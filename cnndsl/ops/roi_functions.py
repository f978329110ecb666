"""RoI pooling and RoI Align in plain torch, with torchvision's signatures and semantics.

torchvision's `roi_pool` and `roi_align` are compiled ops that the CPU build of torch cannot load. These take
the same arguments (`rois` K×5: batch index, x1, y1, x2, y2 in input pixels; `spatial_scale` maps them onto the
feature map) and compute what torchvision's kernels compute. Only the torch backend imports this module.

RoI Align is bilinear, so it is separable: each RoI's output is A · F · Bᵀ, with A (out_h × H) and B (out_w × W)
the averaged interpolation weights of its sampling rows and columns, and F its image's feature map; a one-hot
batch index makes that one einsum over the batch, without copying a feature map per RoI. RoI pooling takes the
maximum over each bin's rows, then its columns.
"""

from __future__ import annotations

import torch
from torch.fx import Proxy


def traced_whole(function):
    """fx records a call of `function` on proxies as one node instead of tracing into it: the sampling grid's
    size depends on the boxes (adaptive sampling), which a symbolic trace cannot know."""

    def call(*args, **kwargs):
        proxy = next((value for value in (*args, *kwargs.values()) if isinstance(value, Proxy)), None)
        if proxy is not None:
            return proxy.tracer.create_proxy("call_function", call, args, kwargs)
        return function(*args, **kwargs)

    call.__name__ = call.__qualname__ = function.__name__
    call.__doc__ = function.__doc__
    call.__module__ = function.__module__
    return call


def batched_rois(boxes):
    """N × K × 4 boxes of each image as torchvision's N·K × 5 RoIs: the image's place in the batch, then the box."""
    images = torch.arange(boxes.shape[0], device=boxes.device, dtype=boxes.dtype)
    index = images[:, None, None].expand(-1, boxes.shape[1], 1)
    return torch.cat([index, boxes], 2).reshape(-1, 5)


@traced_whole
def roi_align(input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    """torchvision.ops.roi_align: each bin the average of sampling_ratio² bilinear samples (ceil(roi/bin) a side
    where sampling_ratio ≤ 0); `aligned` shifts the boxes by half a pixel (Detectron2's correction)."""
    out_h, out_w = output_size
    offset = 0.5 if aligned else 0.0
    boxes = rois[:, 1:] * spatial_scale - offset
    sizes = boxes[:, 2:] - boxes[:, :2]
    if not aligned:  # the legacy form stretches a box thinner than a pixel to one
        sizes = sizes.clamp(min=1.0)
    rows = _interpolation(boxes[:, 1], sizes[:, 1], out_h, input.shape[2], sampling_ratio)
    columns = _interpolation(boxes[:, 0], sizes[:, 0], out_w, input.shape[3], sampling_ratio)
    images = torch.nn.functional.one_hot(rois[:, 0].long(), input.shape[0]).to(input.dtype)
    sampled = torch.einsum("kn,kph,nchw->kpcw", images, rows, input)
    return torch.einsum("kpcw,kqw->kcpq", sampled, columns)


def _interpolation(start, size, bins: int, length: int, sampling_ratio: int):
    """K × bins × length: the weight of each input row (or column) in each bin's average of its samples, as
    torchvision's `bilinear_interpolate`: nothing from a sample beyond a pixel outside the map, a sample
    before the first pixel clamped to it, one past the last read from the last."""
    bin_size = size / bins
    if sampling_ratio > 0:
        counts = torch.full_like(size, sampling_ratio, dtype=torch.long)
    else:
        counts = torch.ceil(size / bins).long()
    most = max(int(counts.max()), 1) if counts.numel() else 1
    steps = torch.arange(most, device=start.device, dtype=start.dtype)
    bins_at = torch.arange(bins, device=start.device, dtype=start.dtype)
    per_sample = bin_size[:, None, None] / counts.clamp(min=1)[:, None, None]
    where = start[:, None, None] + bins_at[None, :, None] * bin_size[:, None, None] + (steps + 0.5) * per_sample
    used = (steps[None, None, :] < counts[:, None, None]) & (where >= -1.0) & (where <= length)
    where = where.clamp(min=0.0)
    low = where.floor().long()
    last = low >= length - 1
    low = torch.where(last, length - 1, low)
    high = torch.where(last, low, low + 1)
    where = torch.where(last, low.to(where.dtype), where)
    upper = where - low
    share = used.to(where.dtype) / counts.clamp(min=1)[:, None, None].to(where.dtype)
    weights = torch.zeros(start.shape[0], bins, length, device=start.device, dtype=start.dtype)
    weights.scatter_add_(2, low, (1 - upper) * share)
    weights.scatter_add_(2, high, upper * share)
    return weights


@traced_whole
def roi_pool(input, rois, output_size, spatial_scale=1.0):
    """torchvision.ops.roi_pool (Fast R-CNN): the box rounded to whole feature pixels (half away from zero),
    at least one pixel a side, cut into out_h × out_w bins from ⌊i·size/out⌋ to ⌈(i+1)·size/out⌉; each bin's
    maximum, 0 for a bin outside the map."""
    out_h, out_w = output_size
    scaled = rois[:, 1:] * spatial_scale
    corners = torch.sign(scaled) * torch.floor(scaled.abs() + 0.5)  # C's round(), not torch's half-to-even
    rows = _bins(corners[:, 1], corners[:, 3], out_h, input.shape[2])
    columns = _bins(corners[:, 0], corners[:, 2], out_w, input.shape[3])
    features = input[rois[:, 0].long()]
    lowest = torch.finfo(input.dtype).min
    by_column = torch.stack(
        [features.masked_fill(~columns[:, None, None, q], lowest).amax(3) for q in range(out_w)], 3
    )  # K × C × H × out_w
    pooled = torch.stack([by_column.masked_fill(~rows[:, None, p, :, None], lowest).amax(2) for p in range(out_h)], 2)
    empty = ~(rows.any(2)[:, :, None] & columns.any(2)[:, None, :])
    return pooled.masked_fill(empty[:, None], 0.0)


def _bins(first, last, bins: int, length: int):
    """K × bins × length: which input rows (or columns) each bin covers."""
    size = (last - first + 1).clamp(min=1.0)
    index = torch.arange(bins, device=first.device, dtype=first.dtype)
    starts = torch.floor(index[None] * (size[:, None] / bins)) + first[:, None]
    ends = torch.ceil((index[None] + 1) * (size[:, None] / bins)) + first[:, None]
    starts, ends = starts.clamp(0, length), ends.clamp(0, length)
    positions = torch.arange(length, device=first.device, dtype=first.dtype)
    return (positions >= starts[..., None]) & (positions < ends[..., None])
