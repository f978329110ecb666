"""The options of a training run, checked and resolved once (devices, precision, learning rate), so that the
run folder records exactly what ran."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields

from ..core.errors import ValueProblem

OPTIMISERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step", "none")
PRECISIONS = ("auto", "bf16", "fp16", "off")
TASKS = ("classify", "segment")
_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "None": ()}
DEFAULT_LR = {"sgd": 0.1, "adamw": 1e-3}


@dataclass
class Options:
    """Every option of `cnndsl train` (docs/train.md describes each)."""

    epochs: int = 10
    batch: int = 32
    lr: float | None = None
    opt: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    sched: str = "cosine"
    warmup: int = 0
    step_every: int | None = None
    amp: str = "auto"
    channels_last: bool = False
    compile: bool = False
    ema: float | None = None
    smoothing: float = 0.0
    seed: int = 0
    deterministic: bool = False
    workers: int = 0
    devices: str = "cpu"
    weights: str | None = None
    task: str | None = None
    ignore_index: int = 255
    skip_bad: bool = False
    flip: bool = True

    @classmethod
    def of(cls, values: dict) -> Options:
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueProblem(f"unknown training option `{unknown[0]}`", hint=f"options: {', '.join(sorted(known))}")
        for name, value in values.items():
            if value is not None and not _of_type(value, cls.__annotations__[name]):
                shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:39] + "…"
                raise ValueProblem(f"training option `{name}` is {shown}, not {cls.__annotations__[name]}")
        options = cls(**{name: value for name, value in values.items() if value is not None})
        options.check()
        return options

    def check(self) -> None:
        for name, choices in (("opt", OPTIMISERS), ("sched", SCHEDULES), ("amp", PRECISIONS)):
            if getattr(self, name) not in choices:
                raise ValueProblem(f"--{name} {getattr(self, name)!r} is not one of {', '.join(choices)}")
        if self.task is not None and self.task not in TASKS:
            raise ValueProblem(f"--task {self.task!r} is not one of {', '.join(TASKS)}")
        for name in ("epochs", "batch"):
            if getattr(self, name) < 1:
                raise ValueProblem(f"--{name} must be at least 1")
        if self.warmup < 0 or self.workers < 0 or not 0 <= self.smoothing < 1:
            raise ValueProblem("--warmup and --workers must be at least 0, --smoothing in [0, 1)")
        if self.ema is not None and not 0 < self.ema < 1:
            raise ValueProblem(f"--ema {self.ema} must lie between 0 and 1 (e.g. 0.999)")
        devices = parse_devices(self.devices)
        if devices.kind == "cpu" and self.amp == "fp16":
            raise ValueProblem(
                "--amp fp16 needs a CUDA device; float16 autocast on CPU is slow and unscaled",
                hint="on CPU use --amp bf16 or --amp off",
            )
        if self.batch % devices.count:
            raise ValueProblem(f"--batch {self.batch} does not divide among {devices.count} processes")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.opt]

    def precision(self) -> str:
        """`bf16`, `fp16` or `off`: auto is bf16 on a GPU that has it, fp16 on another GPU, off on CPU."""
        if self.amp != "auto":
            return self.amp
        if parse_devices(self.devices).kind == "cpu":
            return "off"
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Devices:
    """`cpu` (one process), `cpu:2` (two), `cuda:0`, `cuda:0,1` (one process per GPU)."""

    kind: str
    indices: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.indices)


def parse_devices(text: str) -> Devices:
    match = re.fullmatch(r"(cpu|cuda)(?::(\d+(?:,\d+)*))?", text.strip())
    if match is None:
        raise ValueProblem(f"--devices {text!r} is not understood", hint="e.g. cpu, cpu:2, cuda:0, cuda:0,1")
    kind, listed = match.groups()
    if kind == "cpu":
        count = int(listed) if listed and "," not in listed else 1
        if count < 1:
            raise ValueProblem("--devices cpu:N needs N of at least 1")
        return Devices("cpu", tuple(range(count)))
    indices = tuple(int(part) for part in listed.split(",")) if listed else (0,)
    if len(set(indices)) != len(indices):
        raise ValueProblem(f"--devices {text!r} names a GPU twice")
    return Devices("cuda", indices)


def _of_type(value, annotation: str) -> bool:
    """Whether `value` (not None) is of a field's declared type, as the annotation's text says it: an option
    from a run.json or a Python caller is checked before any arithmetic meets it. A bool is no number."""
    kinds = tuple(kind for name in annotation.split(" | ") for kind in _TYPES[name])
    return isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool))
