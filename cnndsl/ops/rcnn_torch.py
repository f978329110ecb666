"""Faster R-CNN's two selections in pure torch, with static shapes: the RPN's proposals (`level_nms`) and the
RoI head's detections (`roi_detections`); cnndsl/ops/rcnn.py says what each selects and why it is exact.

Registered in torch_functions.py: the torch backend calls each as one node of its fx graph; `--to python`
copies them (and `greedy_nms`, `decode_boxes`, `clip_boxes`) into the file it writes, so that file needs only torch.
"""

from __future__ import annotations

import torch

from .detect_torch import greedy_nms
from .torch_functions import clip_boxes, decode_boxes  # defined before torch_functions imports this module


def level_nms(boxes, scores, iou: float, score: float, min_size: float, k: int):
    """torchvision's RPN filter_proposals after its top-k: boxes N × K × 4 (clipped), scores one N × K_l tensor a
    level (probabilities, the levels' boxes in turn); drops boxes thinner than min_size and scores below `score`,
    suppresses within each level by IoU above `iou`, keeps the best k: N × k × 4, then zero boxes."""
    result = boxes.new_zeros((boxes.shape[0], k, 4))
    if boxes.is_meta:  # a shape-only run: a result that depends on every input, as the real one does
        return result + boxes.sum() * 0 + sum(level.sum() for level in scores) * 0
    levels = torch.cat(
        [torch.full((level.shape[1],), index, device=boxes.device) for index, level in enumerate(scores)]
    )
    scores = torch.cat(list(scores), 1)
    for image in range(boxes.shape[0]):
        chosen = boxes[image]
        width, height = chosen[:, 2] - chosen[:, 0], chosen[:, 3] - chosen[:, 1]
        valid = torch.nonzero((width >= min_size) & (height >= min_size) & (scores[image] >= score))[:, 0]
        order = valid[torch.sort(scores[image, valid], descending=True, stable=True).indices]
        kept = order[greedy_nms(chosen[order], levels[order], iou, k)]
        result[image, : len(kept)] = chosen[kept]
    return result


def roi_detections(logits, deltas, proposals, size, weights, clamp, score, min_size, iou, max_det):
    """torchvision's RoIHeads.postprocess_detections: logits N × K × C, deltas N × K × 4·C, proposals N × K × 4 ->
    N × max_det × 6 (x1, y1, x2, y2, score, label) by falling score, then rows of score 0 and label -1. Softmax,
    a box a class (BoxCoder with `weights`), clipped to `size`; the background (class 0) left out, then scores not
    above `score` and boxes thinner than min_size; NMS per class by IoU above `iou`, the best max_det kept."""
    batch, count, classes = logits.shape
    result = logits.new_zeros((batch, max_det, 6))
    result[..., 5] = -1
    if logits.is_meta:  # a shape-only run: a result that depends on every input, as the real one does
        return result + (logits.sum() + deltas.sum() + proposals.sum()) * 0
    probabilities = torch.softmax(logits, -1)[:, :, 1:].reshape(batch, -1)
    repeated = proposals.repeat_interleave(classes, dim=1)
    boxes = decode_boxes(deltas.reshape(batch, -1, 4), repeated, weights, clamp)
    boxes = clip_boxes(boxes, size).view(batch, count, classes, 4)[:, :, 1:].reshape(batch, -1, 4)
    labels = torch.arange(1, classes, device=logits.device).repeat(count)  # proposal by proposal, as torchvision
    for image in range(batch):
        chosen, found = boxes[image], probabilities[image]
        width, height = chosen[:, 2] - chosen[:, 0], chosen[:, 3] - chosen[:, 1]
        valid = torch.nonzero((found > score) & (width >= min_size) & (height >= min_size))[:, 0]
        order = valid[torch.sort(found[valid], descending=True, stable=True).indices]
        kept = order[greedy_nms(chosen[order], labels[order], iou, max_det)]
        result[image, : len(kept), 0:4] = chosen[kept]
        result[image, : len(kept), 4] = found[kept]
        result[image, : len(kept), 5] = labels[kept].to(logits.dtype)
    return result
