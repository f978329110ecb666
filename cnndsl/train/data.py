"""The data folder: its layout, its listing, and the datasets that read it (torchvision's ImageFolder, pairs of
image and mask), checked before the first step so that a bad folder fails at once and says where.

Classification: DATA/train/<class>/<image> and a validation folder `val`, `valid` or `validation` with the
same class folders. Segmentation: DATA/<split>/images/<image> paired by file stem with
DATA/<split>/masks/<stem>.png holding class indices. Hidden files and folders (`.ipynb_checkpoints`) are
ignored everywhere; class folders sort naturally (`2` before `10`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import FileProblem
from .image_files import opened
from .vision import torchvision

VALIDATION_FOLDERS = ("val", "valid", "validation")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def natural_key(name: str) -> list:
    """`class2` before `class10`: digit runs compare as numbers."""
    return [(0, int(part), part) if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def visible(path: Path, root: Path) -> bool:
    """No part of the path below `root` is hidden (`.DS_Store`, `.ipynb_checkpoints/x.png`)."""
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def is_image(path: Path, root: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and visible(path, root) and path.is_file()


@dataclass
class Layout:
    """What the data folder holds: the task's samples per split, and the class names (indices for masks)."""

    root: Path
    task: str
    validation: str
    classes: list[str]
    train: list[tuple[str, int | str]]
    val: list[tuple[str, int | str]]
    skipped: list[str] = field(default_factory=list)

    def listing(self) -> dict[str, str]:
        """A hash of each group's file names and sizes (`train/cat`, `val/masks`), to name what changed on resume."""
        groups: dict[str, hashlib._Hash] = {}
        for sample in self.train + self.val:
            for path in sample if self.task == "segment" else sample[:1]:
                relative = Path(path).relative_to(self.root)
                digest = groups.setdefault("/".join(relative.parts[:2]), hashlib.sha256())
                digest.update(f"{relative.as_posix()}\t{Path(path).stat().st_size}\n".encode())
        return {group: digest.hexdigest() for group, digest in sorted(groups.items())}


def find_layout(root: str | Path, task: str, classes: int, ignore_index: int, skip_bad: bool) -> Layout:
    """The checked layout of `root` for `task` (classify | segment); `classes` is the network's output count."""
    root = Path(root)
    if not root.is_dir():
        raise FileProblem(f"data folder {root} does not exist")
    train = root / "train"
    if not train.is_dir():
        raise FileProblem(
            f"{root} has no train/ folder",
            hint="classification: DATA/train/<class>/*.png; segmentation: DATA/train/images and DATA/train/masks",
        )
    validation = next((name for name in VALIDATION_FOLDERS if (root / name).is_dir()), None)
    if validation is None:
        raise FileProblem(f"{root} has no validation folder", hint=f"name it {', '.join(VALIDATION_FOLDERS)}")
    if task == "segment":
        layout = Layout(root, task, validation, [str(index) for index in range(classes)], [], [])
        layout.train = _pairs(train, root)
        layout.val = _pairs(root / validation, root)
    else:
        names = class_folders(train, root)
        layout = Layout(root, task, validation, names, _images(train, names, root), [])
        layout.val = _images(root / validation, names, root, training=False)
    _check_images(layout, skip_bad)
    if task == "segment":
        _check_masks(layout, classes, ignore_index)
    return layout


def class_folders(folder: Path, root: Path) -> list[str]:
    names = sorted(
        (entry.name for entry in folder.iterdir() if entry.is_dir() and visible(entry, root)), key=natural_key
    )
    if not names:
        raise FileProblem(f"{folder} holds no class folders", hint="put each class's images in DATA/train/<class>/")
    return names


def _images(folder: Path, classes: list[str], root: Path, training: bool = True) -> list[tuple[str, int]]:
    """(path, class index) through torchvision's ImageFolder, with our class order and hidden files left out."""
    found = class_folders(folder, root)
    if not training:
        extra = [name for name in found if name not in classes]
        if extra:
            raise FileProblem(
                f"{folder} has class folder{'s' * (len(extra) > 1)} {', '.join(extra)} that train/ lacks",
                hint="every validation class must be a training class; labels follow the training folders",
            )
    torchvision()
    from torchvision.datasets import ImageFolder

    index = {name: position for position, name in enumerate(classes)}
    samples = ImageFolder.make_dataset(
        str(folder),
        {name: index[name] for name in found},
        is_valid_file=lambda p: is_image(Path(p), root),
        allow_empty=True,
    )
    samples.sort(key=lambda sample: (sample[1], natural_key(sample[0])))  # ImageFolder sorts 1, 10, 2
    counts = {name: 0 for name in found}
    for _, target in samples:
        counts[classes[target]] += 1
    for name, count in counts.items():
        if count == 0:
            raise FileProblem(
                f"class folder {folder / name} holds no images", hint=f"images end in {', '.join(IMAGE_SUFFIXES)}"
            )
    return samples


def _pairs(folder: Path, root: Path) -> list[tuple[str, str]]:
    """(image, mask) pairs by file stem; an image without its mask is refused."""
    images, masks = folder / "images", folder / "masks"
    for needed in (images, masks):
        if not needed.is_dir():
            raise FileProblem(
                f"{folder} has no {needed.name}/ folder", hint="segmentation: <split>/images and <split>/masks"
            )
    by_stem = {path.stem: path for path in masks.rglob("*") if is_image(path, root)}
    pairs = []
    for image in sorted(
        (path for path in images.rglob("*") if is_image(path, root)), key=lambda p: natural_key(p.name)
    ):
        if image.stem not in by_stem:
            raise FileProblem(f"{image} has no mask", hint=f"expected {masks / image.stem}.png")
        pairs.append((str(image), str(by_stem[image.stem])))
    if not pairs:
        raise FileProblem(f"{images} holds no images")
    return pairs


def _check_images(layout: Layout, skip_bad: bool) -> None:
    """Every image's header reads; an unreadable one is named (and left out with --skip-bad)."""
    for split in ("train", "val"):
        kept = []
        for sample in getattr(layout, split):
            try:
                with opened(sample[0]) as image:
                    image.size  # noqa: B018 -- reading the header is the check
            except FileProblem:
                if not skip_bad:
                    raise
                layout.skipped.append(sample[0])
                continue
            kept.append(sample)
        setattr(layout, split, kept)


def _check_masks(layout: Layout, classes: int, ignore_index: int) -> None:
    """Every mask holds class indices below the network's class count (or the ignore index)."""
    import numpy as np

    for _, mask_path in layout.train + layout.val:
        with opened(mask_path, "mask", hint="replace it with a PNG of class indices") as mask:
            values = np.unique(np.asarray(mask))
        bad = [int(value) for value in values if value >= classes and value != ignore_index]
        if bad:
            raise FileProblem(
                f"mask {mask_path} holds value {bad[0]}, but the network has {classes} classes (0 to {classes - 1})",
                hint=f"masks hold class indices; {ignore_index} (--ignore-index) marks pixels to ignore",
            )
