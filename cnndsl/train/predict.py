"""`cnndsl predict`: a trained network on image files, with the preprocessing its run stored beside the
weights (best.safetensors' metadata): top-k classes with probabilities, a mask PNG per image, or a detector's
boxes, printed and drawn (predict_boxes.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.atomic import write_atomically
from ..core.errors import FileProblem, ValueProblem
from . import run_metadata
from .datasets import Preprocessing
from .memory import located_out_of_memory
from .predict_boxes import boxes_of, detection_preprocessing, drawn, is_detector
from .prepare import task_of

IMAGE_HINT = "give it a file PIL reads (PNG, JPEG, ...), of fewer pixels than PIL's decompression-bomb limit"


@dataclass
class Stored:
    """What a run wrote beside its weights: task, class names, preprocessing."""

    task: str
    classes: list[str]
    preprocessing: Preprocessing


def stored_metadata(weights: Path, network) -> Stored:
    """The run's metadata in a .safetensors file, each entry checked against the network; for other weights, the
    network's input and index names."""
    task, count = task_of(network, None)
    found = run_metadata.read(weights)
    classes = run_metadata.checked_classes(weights, found, count) or [str(i) for i in range(count)]
    preprocessing = run_metadata.checked_preprocessing(weights, found, network.input_shape)
    return Stored(run_metadata.checked_task(weights, found, task), classes, preprocessing)


def predict(
    network, weights: str | Path, images: list[str], top: int = 5, masks_to: str | Path | None = None
) -> list[dict]:
    """One dict per image: {"image", "top": [{"class", "prob"}...]}, {"image", "mask": PATH} or, for a detector,
    {"image", "boxes": [{"class", "score", "box": [x1, y1, x2, y2]}...], "drawn": PATH}."""
    network.require_one_input("cnndsl predict")
    weights = Path(weights)
    if not weights.is_file():
        raise FileProblem(f"weights file {weights} does not exist")
    if is_detector(network):
        return _detect(network, weights, images, masks_to)
    stored = stored_metadata(weights, network)
    module = network.to_torch(weights=str(weights)).eval()
    transform = stored.preprocessing.transform()
    results = []
    for path in images:
        if not Path(path).is_file():
            raise FileProblem(f"image {path} does not exist")
        output = _forward(network, module, transform(stored.preprocessing.read(path, IMAGE_HINT)).unsqueeze(0))[0]
        if stored.task == "segment":
            results.append({"image": str(path), "mask": str(_write_mask(output, path, masks_to))})
            continue
        if top < 1:
            raise ValueProblem("--top must be at least 1")
        probs = output.softmax(0)
        values, indices = probs.topk(min(top, len(probs)))
        results.append(
            {
                "image": str(path),
                "top": [{"class": stored.classes[i], "prob": v} for v, i in zip(values.tolist(), indices.tolist())],
            }
        )
    return results


def _forward(network, module, batch: torch.Tensor):
    with torch.no_grad(), located_out_of_memory(network, f"run `{network.name}` on an image"):
        return module(batch)


def _detect(network, weights: Path, images: list[str], folder: str | Path | None) -> list[dict]:
    preprocessing = detection_preprocessing(network)
    classes = _class_names(weights)
    module = network.to_torch(weights=str(weights)).eval()
    transform, results = preprocessing.transform(), []
    for path in images:
        if not Path(path).is_file():
            raise FileProblem(f"image {path} does not exist")
        image = preprocessing.read(path, IMAGE_HINT)
        output = _forward(network, module, transform(image).unsqueeze(0))[0]
        boxes = boxes_of(output, image.size, network.input_shape[1:], classes)
        results.append({"image": str(path), "boxes": boxes, "drawn": str(drawn(image, boxes, path, folder))})
    return results


def _class_names(weights: Path) -> list[str]:
    """Class names stored with the weights by a run (best.safetensors' metadata), else none: labels by number."""
    return run_metadata.checked_classes(weights, run_metadata.read(weights), None)


def _write_mask(output: torch.Tensor, image: str, folder: str | Path | None) -> Path:
    """The predicted class of each pixel as an 8-bit PNG named after the image."""
    import io

    from PIL import Image

    target = Path(folder or ".") / f"{Path(image).stem}.mask.png"
    buffer = io.BytesIO()
    Image.fromarray(output.argmax(0).to(torch.uint8).numpy()).save(buffer, format="PNG")
    return write_atomically(target, buffer.getvalue())
