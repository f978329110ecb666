"""One epoch of training and one pass of validation, on one process or one rank of several.

The training order is a permutation drawn from (seed, epoch), cut into global batches that the ranks
share; validation gives each rank every world-th image and sums counts across ranks, so every image is
evaluated exactly once (no padding, no dropped tail).
"""

from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..core.errors import CnnDslError, ValueProblem


class Interrupted(CnnDslError):
    """SIGINT or SIGTERM stopped the run after last.ckpt was written."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


class StopRequest:
    """SIGINT/SIGTERM only note the request; the loop stops after the current step, with a checkpoint."""

    def __init__(self):
        self.signum = 0
        self.previous = {}

    def __enter__(self):
        for number in (signal.SIGINT, signal.SIGTERM):
            self.previous[number] = signal.signal(number, self._note)
        return self

    def _note(self, signum, frame):
        self.signum = self.signum or signum

    def __exit__(self, *exc):
        for number, handler in self.previous.items():
            signal.signal(number, handler)


@dataclass
class Step:
    """Where the run stands: epoch (1-based) and the steps of it already done, with the epoch's loss so far."""

    epoch: int = 1
    done: int = 0
    loss_sum: float = 0.0
    timing: dict = field(default_factory=lambda: {"images": 0, "seconds": 0.0, "wait": 0.0})


class TrainOrder(torch.utils.data.Sampler):
    """This rank's share of each global batch of the epoch's permutation, from step `start` on."""

    def __init__(self, size: int, batch: int, seed: int, epoch: int, rank: int, world: int, start: int = 0):
        self.batch, self.rank, self.world, self.start = batch, rank, world, start
        order = torch.randperm(size, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        self.steps = max(1, size // batch)
        self.order = order.tolist()

    def __iter__(self):
        share = self.batch // self.world
        for step in range(self.start, self.steps):
            chunk = self.order[step * self.batch : (step + 1) * self.batch]
            yield chunk[self.rank * share : (self.rank + 1) * share]

    def __len__(self) -> int:
        return self.steps - self.start


def train_epoch(setup, step: Step, stop: StopRequest, display, bar) -> bool:
    """Train from `step` to the epoch's end; False if a signal asked to stop (step then says where).

    Timed as a hand-written loop times itself: seconds run from asking the loader for its first batch to its
    end (bookkeeping included), and data wait is the time spent in the loader, its start and end included."""
    setup.model.train()
    setup.train_data.epoch = step.epoch
    order = TrainOrder(len(setup.train_data), setup.batch, setup.seed, step.epoch, setup.rank, setup.world, step.done)
    loader = setup.loader(setup.train_data, order)
    timing = step.timing
    mark = time.perf_counter()
    for images, targets in loader:
        fetched = time.perf_counter()
        timing["wait"] += fetched - mark
        loss = train_step(setup, images, targets)
        value = loss.item()
        if not math.isfinite(value) or not math.isfinite(setup.all_ranks_max(abs(value))):
            raise ValueProblem(
                f"the loss became {value} at epoch {step.epoch}, step {step.done + 1}; stopped",
                hint=f"last.ckpt is kept from before; lower --lr (now {setup.optimizer.param_groups[0]['lr']:.3g}) or add --warmup",
            )
        step.done += 1
        step.loss_sum += value
        timing["images"] += len(images) * setup.world
        if not bar.disable:  # a piped run shows no bar: no postfix to format
            bar.set_postfix(loss=f"{value:.4f}", lr=f"{setup.optimizer.param_groups[0]['lr']:.3g}", refresh=False)
        bar.update(1)
        stopping = setup.all_ranks_max(stop.signum)
        now = time.perf_counter()
        timing["seconds"] += now - mark
        mark = now
        if stopping:
            return False
    ended = time.perf_counter()
    timing["seconds"] += ended - mark
    timing["wait"] += ended - mark
    return True


def train_step(setup, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    images, targets = setup.to_device(images), targets.to(setup.device, non_blocking=True)
    with setup.autocast():
        loss = F.cross_entropy(
            setup.model(images), targets, label_smoothing=setup.smoothing, ignore_index=setup.ignore_index
        )
    setup.optimizer.zero_grad(set_to_none=True)
    setup.scaler.scale(loss).backward()
    setup.scaler.step(setup.optimizer)
    setup.scaler.update()
    setup.scheduler.step()
    if setup.ema is not None:
        setup.ema.update_parameters(setup.raw_model)
    return loss.detach().float()


@torch.no_grad()
def evaluate(setup, model) -> dict:
    """val_loss and val_acc (classification) or val_miou (segmentation) over every validation image once."""
    model.eval()
    indices = list(range(setup.rank, len(setup.val_data), setup.world))
    batches = [indices[i : i + setup.batch // setup.world] for i in range(0, len(indices), setup.batch // setup.world)]
    classes = setup.classes
    loss_sum = torch.zeros((), dtype=torch.float64, device=setup.device)
    counts = torch.zeros(classes * classes if setup.task == "segment" else 2, dtype=torch.float64, device=setup.device)
    for images, targets in setup.loader(setup.val_data, batches):
        images, targets = setup.to_device(images), targets.to(setup.device)
        with setup.autocast():
            logits = model(images)
        losses = F.cross_entropy(logits.float(), targets, ignore_index=setup.ignore_index, reduction="none")
        loss_sum += losses.double().sum()
        predicted = logits.argmax(1)
        if setup.task == "segment":
            valid = targets != setup.ignore_index
            pairs = targets[valid] * classes + predicted[valid]
            counts += torch.bincount(pairs, minlength=classes * classes).double()
        else:
            counts += torch.stack(
                [(predicted == targets).sum(), torch.tensor(len(targets), device=setup.device)]
            ).double()
    totals = setup.all_ranks_sum(torch.cat([loss_sum.view(1), counts]))
    if setup.task == "segment":
        confusion = totals[1:].view(classes, classes)
        pixels = confusion.sum()
        union = confusion.sum(0) + confusion.sum(1) - confusion.diag()
        present = union > 0
        miou = (confusion.diag()[present] / union[present]).mean().item()
        return {"val_loss": (totals[0] / pixels).item(), "val_miou": miou}
    return {"val_loss": (totals[0] / totals[2]).item(), "val_acc": (totals[1] / totals[2]).item()}
