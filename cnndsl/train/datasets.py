"""The samples as torch datasets: each image (and its mask) decoded with PIL and transformed together by
torchvision's transforms v2, with the random draws of each sample seeded by (seed, epoch, index).

Seeding per sample makes augmentation independent of the worker count, of the process rank and of where a
resumed run starts, so an interrupted run sees exactly the images the uninterrupted one saw.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from .image_files import SKIP_HINT, opened
from .vision import transforms_v2

UNREADABLE_MID_RUN = "remove it: the check before the run reads each image's header, and this one's is whole"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """What turns a file into the network's input; stored with the weights so `cnndsl predict` repeats it."""

    channels: int
    height: int
    width: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def for_input(cls, shape: tuple) -> Preprocessing:
        channels, height, width = shape
        if channels == 3:
            return cls(3, height, width, IMAGENET_MEAN, IMAGENET_STD)
        return cls(channels, height, width, (0.5,) * channels, (0.5,) * channels)

    def as_dict(self) -> dict:
        return asdict(self)

    def transform(self, flip: bool = False):
        """Resize to the input, optionally flip at random, scale to [0, 1], normalise (masks are only resized):
        the whole pipeline on one image, as `predict` applies it."""
        v2, tv_tensors = transforms_v2()
        return v2.Compose([self.sample_transform(flip), v2.Lambda(self.normalise, tv_tensors.Image)])

    def sample_transform(self, flip: bool = False):
        """The per-image part of `transform`, up to the flip: images stay uint8 (masks are only resized)."""
        v2, _ = transforms_v2()
        steps = [v2.ToImage(), v2.Resize((self.height, self.width))]
        if flip:
            steps.append(v2.RandomHorizontalFlip())
        return v2.Compose(steps)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (one, or a batch) scaled to [0, 1] and normalised. Each step is elementwise, so a batch
        normalised at once equals its images normalised one by one, bit for bit; the training loop does it per
        batch on the device, which spares each image the dispatch of two transforms and moves a quarter of
        the bytes."""
        v2, _ = transforms_v2()
        scaled = v2.functional.to_dtype(images.as_subclass(torch.Tensor), torch.float32, scale=True)
        return v2.functional.normalize(scaled, list(self.mean), list(self.std))

    def read(self, path: str, hint: str = SKIP_HINT):
        """The image as PIL in the network's colour mode; a FileProblem for a file PIL cannot or will not
        decode."""
        with opened(path, hint=hint) as image:
            return image.convert("RGB" if self.channels == 3 else "L")


class Samples(torch.utils.data.Dataset):
    """(image, target) for classification or (image, mask) for segmentation, transformed together; images
    come out uint8, to be normalised a batch at a time (`Preprocessing.normalise`)."""

    def __init__(self, samples: list, task: str, preprocessing: Preprocessing, flip: bool, seed: int):
        self.samples, self.task, self.preprocessing, self.seed = samples, task, preprocessing, seed
        self.transform = preprocessing.sample_transform(flip)  # uint8: Setup.to_device normalises batches
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list:
        """A batch's samples (the DataLoader asks for them together) under one fork of the CPU generator: the
        caller's generator state comes back once per batch, not once per image."""
        with torch.random.fork_rng(devices=[]):
            return [self._sample(index) for index in indices]

    def _sample(self, index: int):
        path, target = self.samples[index]
        image = self.preprocessing.read(path, UNREADABLE_MID_RUN)
        torch.default_generator.manual_seed(sample_seed(self.seed, self.epoch, index))  # CPU only
        if self.task == "segment":
            _, tv_tensors = transforms_v2()
            with opened(target, "mask") as mask:
                mask = tv_tensors.Mask(torch.from_numpy(np.array(mask, dtype=np.int64)))
            image, mask = self.transform(image, mask)
            return image, mask.as_subclass(torch.Tensor)
        return self.transform(image), target


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """One seed per (run seed, epoch, sample), distinct for every triple a run meets."""
    return ((seed * 100_003 + epoch) * 1_000_000_007 + index) % 2**63
