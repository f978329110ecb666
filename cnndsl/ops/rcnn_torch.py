"""Faster R-CNN's two selections in pure torch, with static shapes: the RPN's proposals (`level_nms`) and the
RoI head's detections (`roi_detections`); cnndsl/ops/rcnn.py says what each selects and why it is exact.

Registered in torch_functions.py: the torch backend calls each as one node of its fx graph; `--to python`
copies them (and `greedy_nms`, `decode_boxes`, `clip_boxes`) into the file it writes, so that file needs only
torch. Written as ruff formats them at its default width, as every function a generated file holds.
"""

from __future__ import annotations

import torch

from .box_torch import clip_boxes, decode_boxes
from .detect_torch import greedy_nms


def level_nms(boxes, scores, iou: float, score: float, min_size: float, k: int):
    """torchvision's RPN filter_proposals after its top-k: boxes N × K × 4 (clipped),
    scores one N × K_l tensor a level (probabilities, the levels' boxes in turn); drops
    boxes thinner than min_size and scores below `score`, suppresses within each level
    by IoU above `iou`, keeps the best k: N × k × 4, then zero boxes."""
    result = boxes.new_zeros((boxes.shape[0], k, 4))
    if boxes.is_meta:  # a shape-only run: a result that depends on every input
        return result + boxes.sum() * 0 + sum(level.sum() for level in scores) * 0
    device = boxes.device
    levels = [torch.full((s.shape[1],), i, device=device) for i, s in enumerate(scores)]
    levels, scores = torch.cat(levels), torch.cat(list(scores), 1)
    for image in range(boxes.shape[0]):
        chosen, found = boxes[image], scores[image]
        width, height = chosen[:, 2] - chosen[:, 0], chosen[:, 3] - chosen[:, 1]
        valid = (width >= min_size) & (height >= min_size) & (found >= score)
        valid = torch.nonzero(valid)[:, 0]
        order = torch.sort(found[valid], descending=True, stable=True).indices
        order = valid[order]
        kept = order[greedy_nms(chosen[order], levels[order], iou, k)]
        result[image, : len(kept)] = chosen[kept]
    return result


def roi_detections(logits, deltas, rois, size, weights, clamp, score, small, iou, top):
    """torchvision's RoIHeads.postprocess_detections: logits N × K × C, deltas
    N × K × 4·C, proposals (rois) N × K × 4 -> N × top × 6 (x1, y1, x2, y2, score,
    label) by falling score, then rows of score 0 and label -1. Softmax, a box a class
    (BoxCoder with `weights`), clipped to `size`; the background (class 0) left out,
    then scores not above `score` and boxes thinner than `small`; NMS per class by
    IoU above `iou`, the best `top` kept."""
    batch, count, classes = logits.shape
    result = logits.new_zeros((batch, top, 6))
    result[..., 5] = -1
    if logits.is_meta:  # a shape-only run: a result that depends on every input
        return result + (logits.sum() + deltas.sum() + rois.sum()) * 0
    probabilities = torch.softmax(logits, -1)[:, :, 1:].reshape(batch, -1)
    repeated = rois.repeat_interleave(classes, dim=1)
    boxes = decode_boxes(deltas.reshape(batch, -1, 4), repeated, weights, clamp)
    boxes = clip_boxes(boxes, size).view(batch, count, classes, 4)[:, :, 1:]
    boxes = boxes.reshape(batch, -1, 4)
    # proposal by proposal, the classes of each in turn, as torchvision flattens them
    labels = torch.arange(1, classes, device=logits.device).repeat(count)
    for image in range(batch):
        chosen, found = boxes[image], probabilities[image]
        width, height = chosen[:, 2] - chosen[:, 0], chosen[:, 3] - chosen[:, 1]
        valid = (found > score) & (width >= small) & (height >= small)
        valid = torch.nonzero(valid)[:, 0]
        order = torch.sort(found[valid], descending=True, stable=True).indices
        order = valid[order]
        kept = order[greedy_nms(chosen[order], labels[order], iou, top)]
        result[image, : len(kept), 0:4] = chosen[kept]
        result[image, : len(kept), 4] = found[kept]
        result[image, : len(kept), 5] = labels[kept].to(logits.dtype)
    return result
