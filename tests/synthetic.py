"""Small learnable image sets written as files, for the training tests and bench/train.py: classes of
synthetic shapes and stripes on noise, and a segmentation set of shapes with their masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SHAPES = ("disk", "square", "hstripes", "vstripes")
CLASSIFIER = """network shapes(classes=4) {
    input 3x32x32
    conv3x3(8), bn, relu, maxpool
    conv3x3(16), bn, relu, maxpool
    conv3x3(32), bn, relu
    gap, fc(classes)
}
"""
SEGMENTER = """network segnet(classes=3) {
    input 3x32x32
    conv3x3(16), bn, relu, maxpool
    conv3x3(32), bn, relu, maxpool
    conv3x3(32), bn, relu
    upsample(4, mode=bilinear)
    conv3x3(16), bn, relu
    conv1x1(classes)
}
"""
TWO_CLASSES = CLASSIFIER.replace("classes=4", "classes=2")


def draw(kind: str, rng: np.random.Generator, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image of one shape at a random place and colour on noise, and its mask (1 on the shape)."""
    ys, xs = np.mgrid[:size, :size]
    image = rng.integers(0, 60, (size, size, 3)).astype(np.int64)
    colour = rng.integers(150, 256, 3)
    radius = rng.integers(size // 6, size // 3)
    cy, cx = rng.integers(radius, size - radius, 2)
    if kind == "disk":
        mask = (ys - cy) ** 2 + (xs - cx) ** 2 <= radius**2
    elif kind == "square":
        mask = (abs(ys - cy) <= radius) & (abs(xs - cx) <= radius)
    elif kind == "hstripes":
        mask = (ys // 3 + rng.integers(0, 2)) % 2 == 0
    else:
        mask = (xs // 3 + rng.integers(0, 2)) % 2 == 0
    image[mask] = colour
    return image.astype(np.uint8), mask.astype(np.uint8)


def classification_set(
    root: Path, train: int, val: int, classes=SHAPES, seed: int = 0, validation: str = "val"
) -> Path:
    """root/train/<class>/<n>.png and root/<validation>/<class>/<n>.png, `train` and `val` images per class."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), (validation, val)):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                Image.fromarray(draw(name, rng)[0]).save(folder / f"{index}.png")
    return root


def segmentation_set(root: Path, train: int, val: int, seed: int = 0) -> Path:
    """root/<split>/images/<n>.png with masks/<n>.png: 0 background, 1 disk, 2 square."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("val", val)):
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "masks").mkdir(parents=True, exist_ok=True)
        for index in range(count):
            label = 1 + index % 2
            image, mask = draw(("disk", "square")[label - 1], rng)
            Image.fromarray(image).save(root / split / "images" / f"{index}.png")
            Image.fromarray(mask * label).save(root / split / "masks" / f"{index}.png")
    return root


def tiny_set(root: Path, classes=("a", "b")) -> Path:
    """Two training images and one validation image per class: enough to reach a refusal or one step."""
    return classification_set(root, train=2, val=1, classes=classes)
