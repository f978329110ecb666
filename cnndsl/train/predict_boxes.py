"""`cnndsl predict` for a detector (a network ending in `nms`): the boxes kept, in the image's own pixels, printed
and drawn on a copy of the image (torchvision's `draw_bounding_boxes`), one PNG per image."""

from __future__ import annotations

import io
from pathlib import Path

import numpy
import torch

from ..core.atomic import write_atomically
from ..graph import ir
from .datasets import Preprocessing


def is_detector(network) -> bool:
    """The network's (first) output is `nms`'s rows of (x1, y1, x2, y2, score, label)."""
    return ir.layer(network.graph, network.outputs[0][1]).op == "nms"


def detection_preprocessing(network) -> Preprocessing:
    """Darknet's and Ultralytics' input: the image resized to the input, values scaled to [0, 1], no mean or std."""
    channels, height, width = network.input_shape
    return Preprocessing(channels, height, width, (0.0,) * channels, (1.0,) * channels)


def boxes_of(output: torch.Tensor, size: tuple[int, int], input_size: tuple[int, int], classes: list[str]) -> list:
    """The kept rows (label ≥ 0) as dicts, their corners scaled from the input's pixels to the image's (w, h)."""
    scale = torch.tensor([size[0] / input_size[1], size[1] / input_size[0]] * 2)
    found = []
    for row in output[output[:, 5] >= 0]:
        label = int(row[5])
        found.append(
            {
                "class": classes[label] if label < len(classes) else str(label),
                "score": float(row[4]),
                "box": [round(value, 2) for value in (row[:4] * scale).tolist()],
            }
        )
    return found


def drawn(image, boxes: list, image_path: str, folder: str | Path | None) -> Path:
    """A PNG of the image with each box and its class and score, named `<image>.boxes.png`."""
    from PIL import Image

    from .vision import torchvision

    utils = torchvision().utils
    pixels = torch.from_numpy(numpy.array(image.convert("RGB"))).permute(2, 0, 1).contiguous()  # a writable copy
    if boxes:
        corners = torch.tensor([box["box"] for box in boxes], dtype=torch.float32)
        labels = [f"{box['class']} {box['score']:.2f}" for box in boxes]
        pixels = utils.draw_bounding_boxes(pixels, corners, labels=labels, colors="red", width=2)
    buffer = io.BytesIO()
    Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(buffer, format="PNG")
    return write_atomically(Path(folder or ".") / f"{Path(image_path).stem}.boxes.png", buffer.getvalue())
