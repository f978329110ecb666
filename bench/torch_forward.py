"""Forward and training-step time of cnndsl's ResNet-50 beside a hand-written one, as torchvision writes it,
and beside the class `cnndsl compile resnet50 --to python` writes.

    python bench/torch_forward.py                                    # CPU, eager, batch 8
    python bench/torch_forward.py --device cuda --amp bf16 --channels-last --compile --batch 256

Both modules hold the same weights (checked by comparing their outputs) and are timed in alternation,
so that drifting clocks or a busy machine affect both alike; the paired ratio is the median over rounds
of (cnndsl's time / the hand-written module's time in the same round), the figure least moved by other
load, which the load average printed before and after shows. The goal is a ratio of at most 1.02, for
to_torch() against the hand-written module and for the generated class against to_torch().

On the CPU, where a module's tensors land in memory moves its speed by several percent, and that
placement is fixed for the life of a process: two modules timed in one process keep their luck in every
round, so pairing rounds cannot cancel it. The CPU run therefore times each module in a fresh process
per round (what a user who runs one of them sees), so that the rounds sample placements. Every
activation there is a fresh malloc of several MB that glibc hands back to the kernel when it is freed
and page-faults in again, zeroed, on the next forward (the page faults column); `--malloc keep` has
glibc keep freed memory for reuse instead (`mallopt`; what jemalloc or TCMalloc, which PyTorch's tuning
guide recommends for CPU work, do by design).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from handwritten import resnet50
from timing import Pair, user_env
from torch import nn

import cnndsl
from cnndsl.backends.torch import standalone_source

MODULES = ("cnndsl", "hand-written", "generated")
TASKS = ("forward (inference)", "training step")


def same_weights(source: nn.Module, target: nn.Module) -> None:
    """Copy the state in order: both list their tensors in the same order, under different names."""
    pairs = list(zip(source.state_dict().values(), target.state_dict().keys(), strict=True))
    target.load_state_dict({name: value.clone() for value, name in pairs})


def keep_freed_memory() -> None:
    """Tell glibc to keep freed blocks for reuse rather than hand them back to the kernel."""
    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3
    kept = libc.mallopt(m_trim_threshold, 2**31 - 1) and libc.mallopt(m_mmap_threshold, 2**25)  # 32 MB: glibc's max
    if not kept:
        sys.exit("mallopt refused the setting")


def page_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class Bench:
    """The two modules with the same weights, their inputs, optimizers, and one timed run of a task."""

    def __init__(self, options) -> None:
        torch.manual_seed(0)
        self.options, device = options, options.device
        self.steps = options.steps or (20 if device == "cuda" else 1)
        network = cnndsl.load("resnet50")
        ours = network.to_torch(init="kaiming", seed=0)
        theirs = resnet50()
        same_weights(ours, theirs)
        namespace: dict = {}
        exec(standalone_source(network), namespace)  # noqa: S102  (the file --to python writes)
        generated = namespace["Resnet50"]()
        generated.load_state_dict(ours.state_dict())
        memory = torch.channels_last if options.channels_last else torch.contiguous_format
        self.models = {"cnndsl": ours, "hand-written": theirs, "generated": generated}
        for model in self.models.values():
            model.to(device=device, memory_format=memory)
        self.images = torch.randn(options.batch, 3, 224, 224, device=device).to(memory_format=memory)
        self.labels = torch.randint(0, 1000, (options.batch,), device=device)
        with torch.inference_mode():
            expected = ours.eval()(self.images)
            self.difference = max(
                (expected - model.eval()(self.images)).abs().max().item() for model in (theirs, generated)
            )
        self.runners = {key: (torch.compile(model) if options.compile else model) for key, model in self.models.items()}
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(options.amp)
        self.optimizers = {
            key: torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9) for key, model in self.models.items()
        }
        self.scalers = {key: torch.amp.GradScaler(device, enabled=options.amp == "fp16") for key in self.models}

    def forward(self, key: str) -> None:
        self.models[key].eval()
        with (
            torch.inference_mode(),
            torch.autocast(self.options.device, dtype=self.dtype, enabled=self.dtype is not None),
        ):
            self.runners[key](self.images)

    def train_step(self, key: str) -> None:
        self.models[key].train()
        with torch.autocast(self.options.device, dtype=self.dtype, enabled=self.dtype is not None):
            loss = nn.functional.cross_entropy(self.runners[key](self.images), self.labels)
        self.scalers[key].scale(loss).backward()
        self.scalers[key].step(self.optimizers[key])
        self.scalers[key].update()
        self.optimizers[key].zero_grad(set_to_none=True)

    def task(self, label: str):
        return self.forward if label == TASKS[0] else self.train_step

    def warm_up(self, label: str, key: str) -> None:
        """Allocator, cuDNN autotuning, compilation."""
        for _ in range(3 if self.options.compile or self.options.device == "cuda" else 1):
            self.task(label)(key)

    def run(self, label: str, key: str) -> tuple[float, int]:
        """Seconds per step and page faults per step of one timed run."""
        task, cuda = self.task(label), self.options.device == "cuda"
        if cuda:
            torch.cuda.synchronize()
        faults, start = page_faults(), time.perf_counter()
        for _ in range(self.steps):
            task(key)
        if cuda:
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / self.steps, (page_faults() - faults) // self.steps


def report(label: str, times: dict[str, list[float]], faults: dict[str, list[int]], batch: int) -> None:
    median = {key: statistics.median(values) for key, values in times.items()}
    best = {key: min(values) for key, values in times.items()}
    print(f"{label}, {len(times[MODULES[0]])} rounds")
    for key in MODULES:
        print(
            f"  {key:13s} median {median[key] * 1e3:9.2f} ms  best {best[key] * 1e3:9.2f} ms  "
            f"{batch / median[key]:9.1f} images/s  {statistics.median(faults[key]):9,.0f} page faults"
        )
    for ours, theirs in (("cnndsl", "hand-written"), ("generated", "cnndsl")):
        paired = statistics.median(a / b for a, b in zip(times[ours], times[theirs]))
        print(
            f"  ratio {ours} / {theirs}: paired {paired:.3f}, of medians {median[ours] / median[theirs]:.3f}, "
            f"of bests {best[ours] / best[theirs]:.3f} (goal: at most 1.02)"
        )


def in_process(bench: Bench, rounds: int, heading: str) -> None:
    """Both modules in this process, alternating which goes first."""
    for label in bench.options.tasks:
        for key in MODULES:
            bench.warm_up(label, key)
        times, faults = {key: [] for key in MODULES}, {key: [] for key in MODULES}
        for round_ in range(rounds):
            for key in MODULES if round_ % 2 == 0 else MODULES[::-1]:
                seconds, count = bench.run(label, key)
                times[key].append(seconds)
                faults[key].append(count)
        report(f"{label}, {heading}", times, faults, bench.options.batch)


def one_module(options) -> None:
    """Child process: time one module (both are built, so that the heap's history is the same)."""
    if options.malloc == "keep":
        keep_freed_memory()
    bench = Bench(options)
    result = {}
    for label in options.tasks:
        bench.warm_up(label, options.child)
        runs = [bench.run(label, options.child) for _ in range(options.runs_per_process)]
        result[label] = [
            statistics.median(seconds for seconds, _ in runs),
            statistics.median(count for _, count in runs),
        ]
    print(json.dumps({"difference": bench.difference, "tasks": result}))


def child(key: str, argv: list[str]) -> dict:
    """One module timed in a new process: {"difference": ..., "tasks": {label: [seconds, page faults]}}."""
    result = subprocess.run(
        [sys.executable, __file__, *argv, "--child", key], check=True, capture_output=True, text=True, env=user_env()
    )
    return json.loads(result.stdout.splitlines()[-1])


@contextmanager
def forward_pair() -> Iterator[Pair]:
    """The forward of to_torch()'s ResNet-50 beside the hand-written one (batch 8, freed memory kept), each
    timed in a fresh process (median of 3 runs there), as the paired rounds of fresh_processes time them."""
    argv = ["--task", "forward", "--malloc", "keep"]

    def forward(key: str) -> float:
        return child(key, argv)["tasks"][TASKS[0]][0]

    yield Pair(lambda: forward("cnndsl"), lambda: forward("hand-written"))


def fresh_processes(options, argv: list[str]) -> None:
    """Each module timed in its own new process each round, alternating which goes first."""
    times = {label: {key: [] for key in MODULES} for label in options.tasks}
    faults = {label: {key: [] for key in MODULES} for label in options.tasks}
    difference = 0.0
    for round_ in range(options.repeats):
        for key in MODULES if round_ % 2 == 0 else MODULES[::-1]:
            result = child(key, argv)
            difference = max(difference, result["difference"])
            for label, (seconds, count) in result["tasks"].items():
                times[label][key].append(seconds)
                faults[label][key].append(count)
    print(f"same weights, largest output difference {difference:.2e}")
    for label in options.tasks:
        policy = "glibc's default malloc" if options.malloc == "default" else "freed memory kept"
        report(
            f"{label}, each module in a fresh process (median of {options.runs_per_process} runs each), {policy}",
            times[label],
            faults[label],
            options.batch,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10, help="rounds: timed runs of each module and each task")
    parser.add_argument("--steps", type=int, help="iterations per timed run (default: 1 on CPU, 20 on CUDA)")
    parser.add_argument("--amp", choices=["bf16", "fp16"], help="autocast to this precision")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile both modules")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's, one per core)")
    parser.add_argument(
        "--malloc",
        choices=["default", "keep"],
        default="default",
        help="CPU: glibc's default policy, or keep freed memory for reuse",
    )
    parser.add_argument("--task", choices=["both", "forward", "train"], default="both", help="what to time")
    parser.add_argument("--runs-per-process", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=MODULES, help=argparse.SUPPRESS)
    options = parser.parse_args()
    options.tasks = {"both": TASKS, "forward": TASKS[:1], "train": TASKS[1:]}[options.task]
    if options.threads:
        torch.set_num_threads(options.threads)
    if options.child:
        return one_module(options)
    device = options.device
    name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"load average {os.getloadavg()[0]:.1f}; torch {torch.__version__}, {name}; batch {options.batch}, "
        f"amp {options.amp or 'off'}, channels_last {options.channels_last}, compile {options.compile}"
    )
    # Fresh processes on the CPU in eager mode; with compilation each process would recompile.
    if device == "cpu" and not options.compile and sys.platform == "linux":
        fresh_processes(options, sys.argv[1:])
    else:
        if options.malloc == "keep" and device == "cpu":
            keep_freed_memory()
        bench = Bench(options)
        print(f"same weights, largest output difference {bench.difference:.2e}")
        in_process(bench, options.repeats, f"{bench.steps} step(s) per run, malloc {options.malloc}")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
