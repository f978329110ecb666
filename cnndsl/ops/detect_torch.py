"""The detection kinds' torch forward in pure torch: YOLO decoding (cnndsl/ops/detect_grid.py) and
non-maximum suppression (cnndsl/ops/nms.py says what it selects; torchvision's C ops do not load on every build).

Registered in torch_functions.py: the torch backend calls each as one node of its fx graph; `--to python`
copies the functions it calls into the file it writes, so that file needs only torch.
"""

from __future__ import annotations

import torch


def batched_nms(boxes, scores, labels, iou: float):
    """torchvision.ops.batched_nms in pure torch: boxes N × 4 (x1, y1, x2, y2), scores N, labels N; returns the
    indices kept, by falling score (ties: the lower index first). Boxes of different labels never suppress."""
    order = torch.sort(scores, descending=True, stable=True).indices
    return order[greedy_nms(boxes[order], labels[order], iou, None)]


def greedy_nms(boxes, labels, iou: float, limit: int | None):
    """Positions kept among boxes already sorted by falling score, up to `limit`: one pass per kept box over
    the boxes after it (memory O(N), never the N × N IoU matrix). IoU as onnxruntime computes it: no overlap,
    an empty box or an empty union suppresses nothing."""
    x1, y1, x2, y2 = boxes.unbind(1)
    area = (x2 - x1) * (y2 - y1)
    alive = torch.ones(len(boxes), dtype=torch.bool, device=boxes.device)
    kept: list[int] = []
    start = 0
    while limit is None or len(kept) < limit:
        rest = torch.nonzero(alive[start:])
        if not len(rest):
            break
        index = start + int(rest[0])
        kept.append(index)
        later = slice(index + 1, None)
        right = torch.minimum(x2[index], x2[later])
        bottom = torch.minimum(y2[index], y2[later])
        width = (right - torch.maximum(x1[index], x1[later])).clamp(min=0)
        height = (bottom - torch.maximum(y1[index], y1[later])).clamp(min=0)
        overlap = width * height
        union = area[index] + area[later] - overlap
        valid = (overlap > 0) & (union > 0) & (area[index] > 0) & (area[later] > 0)
        suppressed = valid & (overlap / union > iou)
        alive[later] &= ~(suppressed & (labels[later] == labels[index]))
        start = index + 1
    return torch.tensor(kept, dtype=torch.long, device=boxes.device)


def detections_nms(detections, iou: float, score: float, max_det: int):
    """B × (4 + classes) × boxes -> B × max_det × 6 (x1, y1, x2, y2, score, label), padded with score 0, label -1.
    One fixed-shape step per row, so that torch.export can trace it: the row is the best (class, box) pair still
    standing (ties: the lower class, then the lower box), which then drops itself and the boxes of its class it
    overlaps by an IoU above `iou` — the first max_det picks of per-class greedy NMS in falling score order. IoU
    as onnxruntime computes it: no overlap, an empty box or an empty union suppresses nothing."""
    batch, rows, count = detections.shape
    if detections.is_meta:
        # a shape-only run: no boxes, but a result that depends on every input, as
        # autograd sees the real one (a kept box may come from any head)
        return detections.new_zeros((batch, max_det, 6)) + detections.sum() * 0
    centre, size = detections[:, 0:2], detections[:, 2:4]
    boxes = torch.cat([centre - size / 2, centre + size / 2], 1)  # B × 4 × boxes
    x1, y1, x2, y2 = boxes.unbind(1)
    area = (x2 - x1) * (y2 - y1)
    # class-major (class, then box): the order in which ONNX's TopK ranks ties
    scores = detections[:, 4:].flatten(1)
    device = detections.device
    labels = torch.arange(rows - 4, device=device).repeat_interleave(count)
    numbers = torch.arange(count, device=device).repeat(rows - 4)
    if not torch.compiler.is_compiling():
        # eager: only the pairs above `score` in some image
        standing = (scores > score).any(0)
        scores = scores[:, standing]
        labels, numbers = labels[standing], numbers[standing]
    alive = scores > score
    positions = torch.arange(scores.shape[1], device=device)
    padding = detections.new_tensor([0, 0, 0, 0, 0, -1])
    picked = []
    for _ in range(min(max_det, scores.shape[1])):
        if not torch.compiler.is_compiling() and not alive.any():
            break  # none left: padding follows (compiled or exported, every step runs)
        best = torch.where(alive, scores, -torch.inf).argmax(1, keepdim=True)
        found = alive.gather(1, best)
        label, number = labels[best], numbers[best]
        one = [side.gather(1, number) for side in (x1, y1, x2, y2)]  # B × 1 each
        width = (torch.minimum(one[2], x2) - torch.maximum(one[0], x1)).clamp(min=0)
        height = (torch.minimum(one[3], y2) - torch.maximum(one[1], y1)).clamp(min=0)
        overlap = width * height
        own = area.gather(1, number)
        union = own + area - overlap
        valid = (overlap > 0) & (union > 0) & (own > 0) & (area > 0)
        suppressed = (valid & (overlap / union > iou))[:, numbers]
        alive = alive & ~(suppressed & (labels == label)) & (positions != best)
        value = [scores.gather(1, best), label.to(detections.dtype)]
        picked.append(torch.where(found, torch.cat([*one, *value], 1), padding))
    rest = padding.expand(batch, max_det - len(picked), 6)
    return torch.cat([torch.stack(picked, 1), rest], 1) if picked else rest.clone()


def yolo_decode(maps, *earlier, anchors, stride, scale_xy):
    """B × anchors·(5 + classes) × H × W -> B × (4 + classes) × boxes, darknet's `get_yolo_box` in input pixels
    (boxes cell by cell, the anchors of a cell in turn); the `earlier` levels' detections go first."""
    batch, _, height, width = maps.shape
    count = len(anchors)
    maps = maps.reshape(batch, count, -1, height * width).permute(0, 2, 3, 1).flatten(2)
    cell = torch.arange(height * width * count, device=maps.device) // count
    cells = torch.stack([cell % width, cell // width])
    centre = maps[:, 0:2].sigmoid() * scale_xy - (scale_xy - 1) / 2 + cells
    options = {"dtype": maps.dtype, "device": maps.device}
    strides = torch.tensor([[stride[1]], [stride[0]]], **options)
    sizes = torch.tensor(anchors, **options).T.repeat(1, height * width)
    scores = maps[:, 5:].sigmoid() * maps[:, 4:5].sigmoid()
    decoded = torch.cat([centre * strides, maps[:, 2:4].exp() * sizes, scores], 1)
    return torch.cat([*earlier, decoded], 2)


def grid_decode(values, grid, boxes, classes, size, sqrt):
    """YOLOv1's darknet output (S·S·C class probabilities, S·S·B confidences, S·S·B boxes of 4) -> B × (4 + classes)
    × boxes, darknet's `get_detection_detections` in input pixels (size = (h, w))."""
    batch = values.shape[0]
    flat = values.reshape(batch, -1)
    cells, count = grid * grid, grid * grid * boxes
    confidences, coordinates = cells * classes, cells * classes + count
    probabilities = flat[:, :confidences].reshape(batch, cells, 1, classes)
    confidence = flat[:, confidences:coordinates].reshape(batch, cells, boxes, 1)
    scores = (confidence * probabilities).reshape(batch, count, classes).transpose(1, 2)
    coords = flat[:, coordinates:].reshape(batch, count, 4).transpose(1, 2)
    cell = torch.arange(count, device=values.device) // boxes
    options = {"dtype": values.dtype, "device": values.device}
    image = torch.tensor([[size[1]], [size[0]]], **options)
    cells = torch.stack([cell % grid, cell // grid])
    centre = (coords[:, 0:2] + cells) * (image / grid)
    extent = coords[:, 2:4].square() if sqrt else coords[:, 2:4]
    return torch.cat([centre, extent * image, scores], 1)
