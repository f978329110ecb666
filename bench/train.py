"""Images per second of `cnndsl train` against a hand-written PyTorch loop and against timm's training pieces
(where timm imports), on the same module, data and options, in one run; on a GPU also torchvision's ResNet-50
in the same hand-written loop.

timm's `train.py` is a script of timm's repository, not in the wheel: `with_timm` runs timm's own data loader,
optimizer and scheduler factories in a loop that mirrors train.py's `train_one_epoch` (no EMA, no mixup, no
prefetcher, which is CUDA-only), with its augmentation held to the same flip and whole-image resize.

Both read the same synthetic image folder through the same torchvision pipeline (ImageFolder-style files,
transforms v2: resize, random flip, scale, normalise) with the same batch, DataLoader settings (shuffled,
last partial batch dropped, the same workers and pinning) and number of steps, and train the same module
(`to_torch(init="kaiming", seed=0)`) with SGD (Nesterov, decay on weights only) and a cosine schedule per
step, without AMP, EMA or label smoothing unless asked. The hand loop normalises each image in its dataset;
`cnndsl train` loads uint8 images and normalises each batch at once (the same elementwise operations: the
network sees the same numbers, bit for bit). The timed region is the same on both sides: each epoch's
training loop, from asking the loader for its first batch to its end, everything inside it included (for
`cnndsl train`: the loss read back for the NaN check, the progress bar, the stop check); validation,
checkpoints and the run folder's files are outside it (the hand loop has none). `cnndsl train`'s figure is
the one its summary.json reports. On a machine shared with other work the ratio moves by several per cent
from run to run: quote it with the load.

    python bench/train.py                        # CPU: a small network on 32x32 images
    python bench/train.py --device cuda --network resnet50 --size 224 --amp bf16 --channels-last [--compile]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from timing import Pair  # noqa: E402

import cnndsl  # noqa: E402
from cnndsl.train import train  # noqa: E402
from cnndsl.train.datasets import Preprocessing  # noqa: E402
from cnndsl.train.vision import torchvision  # noqa: E402

SMALL = """network small(classes=4) {
    input 3x32x32
    conv3x3(32), bn, relu, maxpool
    conv3x3(64), bn, relu, maxpool
    conv3x3(128), bn, relu
    gap, fc(classes)
}
"""


def make_data(root: Path, size: int, per_class: int, classes: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for split, count in (("train", per_class), ("val", max(1, per_class // 8))):
        for label in range(classes):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{index}.png")
    return root


def hand_written(module, data: Path, args, preprocessing: Preprocessing) -> float:
    """The loop a PyTorch user writes: ImageFolder, DataLoader, autocast, SGD, cosine; images/s over the steps."""
    torchvision()
    from torchvision.datasets import ImageFolder

    device = torch.device(args.device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    module = module.to(device, memory_format=memory_format).train()
    model = torch.compile(module) if args.compile else module
    dataset = ImageFolder(str(data / "train"), transform=preprocessing.transform(flip=True))
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
    )
    decay = [p for p in module.parameters() if p.ndim > 1]
    rest = [p for p in module.parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": 5e-4}, {"params": rest, "weight_decay": 0.0}],
        lr=args.lr,
        momentum=0.9,
        nesterov=True,
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs * len(loader))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")
    images_seen, seconds = 0, 0.0
    for _ in range(args.epochs):
        started = time.perf_counter()
        for images, targets in loader:
            images = images.to(device, non_blocking=True, memory_format=memory_format)
            targets = targets.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = torch.nn.functional.cross_entropy(model(images), targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            images_seen += len(images)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - started
    return images_seen / seconds


def timm_pieces():
    """timm's data, optimizer and scheduler factories, or None where timm does not import. timm's train.py is a
    script of its repository, not part of the wheel; its loop is mirrored in `with_timm`."""
    torchvision()  # stubs torchvision's C ops where they do not load, before timm imports torchvision
    try:
        import timm.data
        import timm.optim
        import timm.scheduler
    except ImportError:
        return None
    return timm


def with_timm(timm, module, data: Path, args, preprocessing: Preprocessing) -> float:
    """timm's training pieces as its train.py puts them together: `timm.data.create_dataset` (an image folder)
    and `create_loader` (its train transforms: random-resized crop held to the whole image, flip, ImageNet
    normalisation), `timm.optim.create_optimizer_v2("sgd")` (Nesterov, no decay on biases and norms),
    `timm.scheduler.create_scheduler_v2("cosine")` stepped per update, and train.py's `train_one_epoch` loop
    (autocast, cross-entropy, zero_grad, backward, step, `step_update`); images/s over the steps."""
    device = torch.device(args.device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    module = module.to(device, memory_format=memory_format).train()
    model = torch.compile(module) if args.compile else module
    dataset = timm.data.create_dataset("", root=str(data / "train"), is_training=True)
    loader = timm.data.create_loader(
        dataset,
        input_size=(3, args.size, args.size),
        batch_size=args.batch,
        is_training=True,
        scale=(1.0, 1.0),
        ratio=(1.0, 1.0),
        hflip=0.5,
        color_jitter=0.0,
        mean=preprocessing.mean,
        std=preprocessing.std,
        num_workers=args.workers,
        device=device,
        use_prefetcher=False,
        persistent_workers=False,
        pin_memory=device.type == "cuda",
    )
    optimizer = timm.optim.create_optimizer_v2(module, "sgd", lr=args.lr, weight_decay=5e-4, momentum=0.9)
    scheduler, _ = timm.scheduler.create_scheduler_v2(
        optimizer,
        "cosine",
        num_epochs=args.epochs,
        warmup_epochs=0,
        step_on_epochs=False,
        updates_per_epoch=len(loader),
    )
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")
    loss_fn = torch.nn.CrossEntropyLoss()
    images_seen, seconds, updates = 0, 0.0, 0
    for _ in range(args.epochs):
        started = time.perf_counter()
        for images, targets in loader:
            images = images.to(device, non_blocking=True, memory_format=memory_format)
            targets = targets.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = loss_fn(model(images), targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            updates += 1
            scheduler.step_update(num_updates=updates)
            images_seen += len(images)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - started
    return images_seen / seconds


def with_cnndsl(source, data: Path, out: Path, args, params: dict) -> float:
    """`cnndsl train` with the same options as the hand-written loop; images/s as its summary.json reports."""
    devices = "cpu" if args.device == "cpu" else args.device if ":" in args.device else "cuda:0"
    result = train(
        source,
        data,
        out=out,
        params=params,
        input=(3, args.size, args.size),
        stream=io.StringIO(),
        epochs=args.epochs,
        batch=args.batch,
        lr=args.lr,
        devices=devices,
        amp=args.amp,
        channels_last=args.channels_last,
        compile=args.compile,
        workers=args.workers,
        sched="cosine",
        weight_decay=5e-4,
    )
    return result.summary["images_per_second"]


@contextmanager
def train_pair(images: int = 128, epochs: int = 2) -> Iterator[Pair]:
    """bench/all.py's figure: the small network on 32x32 CPU images, `cnndsl train` beside the hand-written loop,
    as seconds per training image, so that anchor/ours is the images/s ratio this script prints."""
    args = argparse.Namespace(
        size=32, images=images, epochs=epochs, batch=32, lr=0.05, device="cpu", amp="off", channels_last=False
    )
    args.compile, args.workers = False, 0
    with tempfile.TemporaryDirectory() as temp:
        temp, params, runs = Path(temp), {"classes": 4}, iter(range(1_000_000))
        source = temp / "small.cnn"
        source.write_text(SMALL)
        network = cnndsl.load(source, input=(3, args.size, args.size), **params)
        data = make_data(temp / "data", args.size, images)
        preprocessing = Preprocessing.for_input(network.input_shape)
        yield Pair(
            lambda: 1 / with_cnndsl(source, data, temp / f"run{next(runs)}", args, params),
            lambda: 1 / hand_written(network.to_torch(init="kaiming", seed=0), data, args, preprocessing),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", help="a .cnn file or library name (default: a small CPU network)")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--images", type=int, default=256, help="training images per class (4 classes)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each; the best is shown")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        source = args.network
        params = {"classes": 4}
        if source is None:
            source = temp / "small.cnn"
            source.write_text(SMALL)
        network = cnndsl.load(source, input=(3, args.size, args.size), **params)
        data = make_data(temp / "data", args.size, args.images)
        preprocessing = Preprocessing.for_input(network.input_shape)
        timm = timm_pieces()
        ours, theirs, timms = [], [], []
        for attempt in range(args.rounds):  # alternated, best of each: none pays the warm-up alone
            ours.append(with_cnndsl(source, data, temp / f"run{attempt}", args, params))
            theirs.append(hand_written(network.to_torch(init="kaiming", seed=0), data, args, preprocessing))
            if timm is not None:
                timms.append(with_timm(timm, network.to_torch(init="kaiming", seed=0), data, args, preprocessing))
        ours, theirs = max(ours), max(theirs)
        device = torch.cuda.get_device_name(0) if args.device != "cpu" else f"CPU, {torch.get_num_threads()} threads"
        print(
            f"device: {device}; torch {torch.__version__}; {network.name} {args.size}x{args.size}, batch "
            f"{args.batch}, {args.epochs} epochs of {4 * args.images} images, amp {args.amp}, channels_last "
            f"{args.channels_last}, compile {args.compile}, workers {args.workers}"
        )
        print(f"cnndsl train:      {ours:10,.1f} images/s")
        print(f"hand-written loop: {theirs:10,.1f} images/s   (same module)")
        print(f"ratio:             {ours / theirs:10.3f}   (goal >= 0.97)")
        figures = {"cnndsl": ours, "hand_written": theirs, "ratio": ours / theirs, "device": device}
        if timms:
            figures["timm"] = max(timms)
            print(f"timm's pieces:     {max(timms):10,.1f} images/s   (same module; timm {timm.__version__})")
        else:
            print("timm's pieces:     not run (timm does not import here)")
        if args.device != "cpu" and network.name == "resnet50":
            models = torchvision().models
            reference = hand_written(models.resnet50(num_classes=4), data, args, preprocessing)
            print(f"torchvision resnet50, hand-written loop: {reference:10,.1f} images/s")
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
