"""What one process trains with: the module on its device (DDP-wrapped, compiled, channels-last as asked),
its EMA, optimizer, schedule, AMP scaler and data loaders, and the sums that ranks share."""

from __future__ import annotations

import contextlib
import warnings

import torch
from torch import nn

from .datasets import Preprocessing, Samples
from .options import Options, parse_devices


class Setup:
    def __init__(self, spec, rank: int, world: int):
        options: Options = spec.options
        self.spec, self.options, self.rank, self.world = spec, options, rank, world
        self.task, self.seed, self.batch = spec.task, options.seed, min(options.batch, len(spec.layout.train))
        self.batch -= self.batch % world
        self.classes, self.ignore_index, self.smoothing = spec.classes, options.ignore_index, options.smoothing
        devices = parse_devices(options.devices)
        self.device = torch.device("cpu") if devices.kind == "cpu" else torch.device("cuda", devices.indices[rank])
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.precision = options.precision()
        if options.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=False)
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
        self.raw_model, self.weights_note = build_model(spec)
        self.raw_model.to(self.device, memory_format=self.memory_format)
        model: nn.Module = self.raw_model
        if world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.model = torch.compile(model) if options.compile else model
        self.ema = None
        if options.ema is not None:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(self.raw_model, multi_avg_fn=get_ema_multi_avg_fn(options.ema), use_buffers=True)
        preprocessing = Preprocessing.for_input(spec.network.input_shape)
        self.preprocessing = preprocessing
        self.train_data = Samples(spec.layout.train, self.task, preprocessing, options.flip, options.seed)
        self.val_data = Samples(spec.layout.val, self.task, preprocessing, False, options.seed)
        self.steps_per_epoch = max(1, len(self.train_data) // self.batch)
        self.optimizer = optimizer(self.raw_model, options)
        self.scheduler = schedule(self.optimizer, options, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def loader(self, dataset, batches):
        return torch.utils.data.DataLoader(
            dataset,
            batch_sampler=batches,
            num_workers=self.options.workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator(),  # its base seed is drawn here, not from the global generator
            persistent_workers=False,
        )

    def to_device(self, images: torch.Tensor) -> torch.Tensor:
        """A batch of uint8 images to the device, normalised there, in the module's memory format."""
        images = self.preprocessing.normalise(images.to(self.device, non_blocking=True))
        return images.contiguous(memory_format=self.memory_format)

    def autocast(self):
        if self.precision == "off":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def all_ranks_max(self, value: float) -> float:
        if self.world == 1:
            return value
        tensor = torch.tensor([float(value)], device=self.device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return tensor.item()

    def all_ranks_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            torch.distributed.all_reduce(tensor)
        return tensor.cpu()

    def evaluated_model(self) -> nn.Module:
        """The EMA's average where there is one, else the trained module."""
        return self.ema.module if self.ema is not None else self.raw_model

    def share_buffers(self) -> None:
        """Rank 0's buffers to every rank (each keeps its own BatchNorm statistics until the next forward
        broadcasts them), so that every rank evaluates the weights that are saved. Called by all ranks."""
        if self.world > 1:
            for buffer in self.evaluated_model().buffers():
                torch.distributed.broadcast(buffer, src=0)

    def state(self) -> dict:
        return {
            "model": self.raw_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
        }

    def load_state(self, state: dict) -> None:
        self.raw_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])


def build_model(spec) -> tuple[nn.Module, str]:
    """The network's module: seeded fresh initialisation, then `--weights` where given (what fits; a head
    of another class count is left fresh and said so)."""
    network, weights = spec.network, spec.options.weights
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = network.to_torch(init="kaiming", seed=spec.options.seed, weights=weights, strict=weights is None)
    notes = [str(warning.message) for warning in caught if type(warning.message).__name__ == "PartialWeights"]
    return module, "\n".join(notes)


def optimizer(model: nn.Module, options: Options) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum, or AdamW; no weight decay on biases and normalisation scales."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": options.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    if options.opt == "adamw":
        return torch.optim.AdamW(groups, lr=options.learning_rate)
    return torch.optim.SGD(groups, lr=options.learning_rate, momentum=options.momentum, nesterov=options.momentum > 0)


def schedule(optimizer: torch.optim.Optimizer, options: Options, steps_per_epoch: int):
    """Stepped once per training step: linear warm-up over --warmup epochs, then cosine, step (x0.1 every
    --step-every epochs, default a third of the run) or constant."""
    from torch.optim import lr_scheduler

    warmup = options.warmup * steps_per_epoch
    total = options.epochs * steps_per_epoch
    if options.sched == "cosine":
        main = lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total - warmup))
    elif options.sched == "step":
        every = (options.step_every or max(1, options.epochs // 3)) * steps_per_epoch
        main = lr_scheduler.StepLR(optimizer, step_size=every, gamma=0.1)
    else:
        main = lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if not warmup:
        return main
    ramp = lr_scheduler.LinearLR(optimizer, start_factor=1.0 / warmup, total_iters=warmup)
    return lr_scheduler.SequentialLR(optimizer, [ramp, main], milestones=[warmup])
