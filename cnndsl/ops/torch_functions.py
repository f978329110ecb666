"""cnndsl's own torch functions, for the layers torch has no op for: deformable convolution, anchors, RoI pooling
and RoI Align, with torchvision's signatures and semantics.

torchvision's `deform_conv2d`, `roi_pool` and `roi_align` are compiled ops that the CPU build of torch cannot load;
these compute what torchvision's kernels compute with the ops every build has. Only the torch backends import
this module: the fx module calls them, and `--to python` writes the ones its network uses into its file, which
so needs only torch.

Deformable convolution gathers each output pixel's kh×kw shifted samples with `F.grid_sample` (bilinear, zero
outside the map, as torchvision's `bilinear_interpolate`) into a mosaic of kh×kw tiles, which a plain convolution
of stride (kh, kw) reduces. RoI Align is bilinear, so it is separable: each RoI's output is A · F · Bᵀ, with A
(out_h × H) and B (out_w × W) the averaged interpolation weights of its sampling rows and columns and F its
image's feature map; a one-hot batch index makes that one einsum over the batch, without copying a feature map
per RoI. RoI pooling takes the maximum over each bin's rows, then its columns.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import torch
from torch.fx import Proxy

from .box_torch import clip_boxes, decode_boxes  # also Faster R-CNN's selections' (rcnn_torch.py)
from .detect_torch import detections_nms, greedy_nms, grid_decode, yolo_decode  # YOLO's decoders and nms
from .flow_torch import RealNVP  # Pose26's flow model, written whole
from .rcnn_torch import level_nms, roi_detections  # Faster R-CNN's selections


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


def deform_conv2d(x, offset, mask, weight, bias, stride, padding, dilation, groups, og):
    """torchvision.ops.deform_conv2d with offset_groups=og: offsets (dy, dx) per offset
    group and kernel position, 2·og·kh·kw × Ho × Wo; the mask og·kh·kw × Ho × Wo or None."""
    channels, height, width = x.shape[1:]
    kernel_h, kernel_w = weight.shape[2:]
    out_h, out_w = offset.shape[2:]
    tall, wide = out_h * kernel_h, out_w * kernel_w  # the mosaic: a kh×kw tile a pixel
    device = offset.device
    rows = torch.arange(out_h, device=device)[:, None] * stride[0] - padding[0]
    columns = torch.arange(out_w, device=device)[:, None] * stride[1] - padding[1]
    rows = rows + torch.arange(kernel_h, device=device) * dilation[0]
    columns = columns + torch.arange(kernel_w, device=device) * dilation[1]
    base = torch.cartesian_prod(rows.flatten(), columns.flatten()).view(tall, wide, 2)
    shifts = offset.reshape(-1, kernel_h, kernel_w, 2, out_h, out_w)
    shifts = shifts.permute(0, 4, 1, 5, 2, 3).reshape(-1, tall, wide, 2)
    where = (shifts + base).flip(-1)  # (y, x) to grid_sample's (x, y)
    # pixel x is (2x + 1)/W − 1 with align_corners=False, also on a one-pixel map
    size = torch.tensor((width, height), device=device, dtype=where.dtype)
    grid = (2 * where + 1) / size - 1
    groups_in = x.reshape(-1, channels // og, height, width)
    sampled = torch.nn.functional.grid_sample(groups_in, grid, align_corners=False)
    if mask is not None:
        scale = mask.reshape(-1, kernel_h, kernel_w, out_h, out_w)
        sampled = sampled * scale.permute(0, 3, 1, 4, 2).reshape(-1, 1, tall, wide)
    mosaic = sampled.reshape(-1, channels, tall, wide)
    step = (kernel_h, kernel_w)
    return torch.nn.functional.conv2d(mosaic, weight, bias, step, groups=groups)


def grid_anchors(features, stride, cell):
    """torchvision's AnchorGenerator on one feature map: the `cell` boxes (x1, y1, x2, y2
    around a pixel) at every pixel times the stride, row-major; N × H·W·A × 4."""
    height, width = features.shape[2:]
    rows = torch.arange(height, device=features.device) * stride[0]
    columns = torch.arange(width, device=features.device) * stride[1]
    shifts = torch.cartesian_prod(rows, columns).flip(-1).repeat(1, 2)  # x, y, x, y
    around = torch.tensor(cell, device=features.device, dtype=features.dtype)
    boxes = (shifts[:, None] + around).reshape(1, -1, 4)
    return boxes.repeat(features.shape[0], 1, 1)  # its own memory: may be written to


def batched_rois(boxes):
    """N × K × 4 boxes as torchvision's N·K × 5 RoIs: the image's index, then the box."""
    images = torch.arange(boxes.shape[0], device=boxes.device, dtype=boxes.dtype)
    index = images[:, None, None].expand(-1, boxes.shape[1], 1)
    return torch.cat([index, boxes], 2).reshape(-1, 5)


def roi_align(x, rois, output_size, spatial_scale, sampling_ratio, aligned):
    """torchvision.ops.roi_align: each bin the mean of sampling_ratio² bilinear samples
    (ceil(roi/bin) a side where it is ≤ 0); `aligned` shifts the boxes by half a pixel."""
    out_h, out_w = output_size
    boxes = rois[:, 1:] * spatial_scale - (0.5 if aligned else 0.0)
    sizes = boxes[:, 2:] - boxes[:, :2]
    if not aligned:  # the legacy form stretches a box thinner than a pixel to one
        sizes = sizes.clamp(min=1.0)
    height, width = x.shape[2:]
    rows = _interpolation(boxes[:, 1], sizes[:, 1], out_h, height, sampling_ratio)
    columns = _interpolation(boxes[:, 0], sizes[:, 0], out_w, width, sampling_ratio)
    batch = torch.arange(x.shape[0], device=x.device, dtype=rois.dtype)
    images = (rois[:, :1] == batch).to(x.dtype)  # one-hot: each RoI's image
    sampled = torch.einsum("kn,kph,nchw->kpcw", images, rows, x)
    return torch.einsum("kpcw,kqw->kcpq", sampled, columns)


def multiscale_roi_align(boxes, maps, size, scales, sampling_ratio, levels, canonical):
    """torchvision's MultiScaleRoIAlign: each box pooled on the level its size asks for,
    ⌊level + log2(√area / size)⌋ for canonical (size, level), within the maps' levels."""
    rois = batched_rois(boxes)
    area = (rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2])
    wanted = torch.log2(torch.sqrt(area) / canonical[0])
    wanted = torch.floor(canonical[1] + wanted + torch.tensor(1e-6, dtype=area.dtype))
    wanted = wanted.clamp(min=levels[0], max=levels[1]).long() - levels[0]
    pooled = rois.new_zeros(rois.shape[0], maps[0].shape[1], *size)
    for index, (features, scale) in enumerate(zip(maps, scales)):
        level = roi_align(features, rois, size, scale, sampling_ratio, False)
        pooled = torch.where((wanted == index)[:, None, None, None], level, pooled)
    return pooled.view(boxes.shape[0], boxes.shape[1], *pooled.shape[1:])


def _interpolation(start, size, bins, length, sampling_ratio):
    """K × bins × length: each input row's (or column's) weight in each bin's mean, as
    torchvision's bilinear_interpolate: nothing from a sample a pixel or more outside
    the map, a sample before the first pixel read there, one past the last from the last."""
    bin_size = (size / bins)[:, None, None]
    if sampling_ratio > 0:  # a size known before the boxes: torch.export can write it
        counts = torch.full_like(size, sampling_ratio, dtype=torch.long)[:, None, None]
        most = sampling_ratio
    else:
        counts = torch.ceil(size / bins).long()[:, None, None]
        most = max(int(counts.max()), 1) if counts.numel() else 1
    like = {"device": start.device, "dtype": start.dtype}
    steps = torch.arange(most, **like)
    first = start[:, None, None] + torch.arange(bins, **like)[:, None] * bin_size
    where = first + (steps + 0.5) * bin_size / counts.clamp(min=1)
    used = (steps < counts) & (where >= -1.0) & (where <= length)
    where = where.clamp(min=0.0)
    low = where.floor().long()
    last = low >= length - 1
    low = torch.where(last, length - 1, low)
    high = torch.where(last, low, low + 1)
    upper = torch.where(last, 0.0, where - low)
    share = used.to(where.dtype) / counts.clamp(min=1)
    weights = torch.zeros(start.shape[0], bins, length, **like)
    weights.scatter_add_(2, low, (1 - upper) * share)
    return weights.scatter_add_(2, high, upper * share)


def roi_pool(x, rois, output_size, spatial_scale):
    """torchvision.ops.roi_pool (Fast R-CNN): the box rounded to the map's pixels (half
    away from zero), at least one a side, cut into bins from ⌊i·size/out⌋ to
    ⌈(i+1)·size/out⌉; each bin's maximum, 0 for a bin outside the map."""
    out_h, out_w = output_size
    scaled = rois[:, 1:] * spatial_scale
    corners = torch.sign(scaled) * torch.floor(scaled.abs() + 0.5)  # C's round()
    rows = _bins(corners[:, 1], corners[:, 3], out_h, x.shape[2])
    columns = _bins(corners[:, 0], corners[:, 2], out_w, x.shape[3])
    features = x[rois[:, 0].long()]
    lowest = torch.finfo(x.dtype).min
    fills = [~column[:, None, None] for column in columns.unbind(1)]  # K × 1 × 1 × W
    by_column = torch.stack([features.masked_fill(f, lowest).amax(3) for f in fills], 3)
    fills = [~row[:, None, :, None] for row in rows.unbind(1)]  # K × 1 × H × 1
    pooled = torch.stack([by_column.masked_fill(f, lowest).amax(2) for f in fills], 2)
    empty = ~(rows.any(2)[:, :, None] & columns.any(2)[:, None, :])
    return pooled.masked_fill(empty[:, None], 0.0)


def _bins(first, last, bins, length):
    """K × bins × length: which input rows (or columns) each bin covers."""
    size = (last - first + 1).clamp(min=1.0)[:, None]
    index = torch.arange(bins, device=first.device, dtype=first.dtype)
    starts = torch.floor(index * (size / bins)) + first[:, None]
    ends = torch.ceil((index + 1) * (size / bins)) + first[:, None]
    starts, ends = starts.clamp(0, length)[..., None], ends.clamp(0, length)[..., None]
    positions = torch.arange(length, device=first.device, dtype=first.dtype)
    return (positions >= starts) & (positions < ends)


def top_k(values, scores, k):
    """The k entries of `values` (N × K × 4 boxes, or the scores) with the highest
    scores, best first, as torch.topk orders them."""
    index = _flat_scores(scores).topk(k, dim=1).indices
    if values.dim() == 3:
        return values.gather(1, index[..., None].expand(-1, -1, 4))
    return _flat_scores(values).gather(1, index)


def _flat_scores(scores):
    """N × K scores; an N × A × H × W map read pixel by pixel (permute_and_flatten)."""
    if scores.dim() == 4:
        scores = scores.permute(0, 2, 3, 1)
    return scores.reshape(scores.shape[0], -1)


WRITTEN = (
    deform_conv2d,
    grid_anchors,
    batched_rois,
    roi_align,
    multiscale_roi_align,
    _interpolation,
    roi_pool,
    _bins,
    decode_boxes,
    clip_boxes,
    top_k,
    _flat_scores,
    yolo_decode,
    grid_decode,
    greedy_nms,
    detections_nms,
    level_nms,
    roi_detections,
)  # in the order a file defines them
HELPERS = {
    "roi_align": ("_interpolation",),
    "multiscale_roi_align": ("batched_rois", "roi_align", "_interpolation"),
    "roi_pool": ("_bins",),
    "top_k": ("_flat_scores",),
    "level_nms": ("greedy_nms",),
    "roi_detections": ("greedy_nms", "decode_boxes", "clip_boxes"),
}
NAMES = frozenset(function.__name__ for function in WRITTEN)
CLASSES = {cls.__name__: cls for cls in (RealNVP,)}  # modules written whole, each argument kept by its name
# The backends' namespace: fx records each as one call (RoI Align's sampling grid depends on the boxes)
TORCH = SimpleNamespace(**{function.__name__: traced_whole(function) for function in WRITTEN})


def source(used) -> str:
    """The functions and classes among `used` and their helpers as `--to python` writes them into its file."""
    wanted = {name for name in used if name in NAMES}
    wanted |= {helper for name in list(wanted) for helper in HELPERS.get(name, ())}
    written = [function for function in WRITTEN if function.__name__ in wanted]
    written += [cls for name, cls in CLASSES.items() if name in used]
    return "\n\n".join(inspect.getsource(item) for item in written)
