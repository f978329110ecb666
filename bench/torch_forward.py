"""Forward and training-step time of cnndsl's ResNet-50 beside a hand-written one, as torchvision writes it.

    python bench/torch_forward.py                                    # CPU, eager, batch 8
    python bench/torch_forward.py --device cuda --amp bf16 --channels-last --compile --batch 256

Both modules hold the same weights (checked by comparing their outputs) and are timed in alternation,
so that drifting clocks or a busy machine affect both alike; the paired ratio is the median over runs of
(cnndsl's time / the hand-written module's time in the same round), the figure least moved by other
load, which the load average printed before and after shows. The goal is a ratio of at most 1.02.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

import cnndsl
from handwritten import resnet50


def same_weights(source: nn.Module, target: nn.Module) -> None:
    """Copy the state in order: both list their tensors in the same order, under different names."""
    pairs = list(zip(source.state_dict().values(), target.state_dict().keys(), strict=True))
    target.load_state_dict({name: value.clone() for value, name in pairs})


def timer(device: str):
    def now() -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()
    return now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10, help="timed runs of each module and each task")
    parser.add_argument("--steps", type=int, help="iterations per timed run (default: 1 on CPU, 20 on CUDA)")
    parser.add_argument("--amp", choices=["bf16", "fp16"], help="autocast to this precision")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile both modules")
    options = parser.parse_args()
    torch.manual_seed(0)
    device, now = options.device, timer(options.device)
    steps = options.steps or (20 if device == "cuda" else 1)
    name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"load average {os.getloadavg()[0]:.1f}; torch {torch.__version__}, {name}; batch {options.batch}, {steps} step(s) per run, amp {options.amp or 'off'}, "
          f"channels_last {options.channels_last}, compile {options.compile}")

    ours = cnndsl.load("resnet50").to_torch(init="kaiming", seed=0)
    theirs = resnet50()
    same_weights(ours, theirs)
    memory = torch.channels_last if options.channels_last else torch.contiguous_format
    models = {"cnndsl": ours, "hand-written": theirs}
    for key, model in models.items():
        model.to(device=device, memory_format=memory)
    images = torch.randn(options.batch, 3, 224, 224, device=device).to(memory_format=memory)
    labels = torch.randint(0, 1000, (options.batch,), device=device)
    with torch.inference_mode():
        difference = (ours.eval()(images) - theirs.eval()(images)).abs().max().item()
    print(f"same weights, largest output difference {difference:.2e}")
    runners = {key: (torch.compile(model) if options.compile else model) for key, model in models.items()}
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(options.amp)

    def forward(key: str) -> None:
        models[key].eval()
        with torch.inference_mode(), torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            runners[key](images)

    optimizers = {key: torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9) for key, model in models.items()}
    scalers = {key: torch.amp.GradScaler(device, enabled=options.amp == "fp16") for key in models}

    def train_step(key: str) -> None:
        models[key].train()
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            loss = nn.functional.cross_entropy(runners[key](images), labels)
        scalers[key].scale(loss).backward()
        scalers[key].step(optimizers[key])
        scalers[key].update()
        optimizers[key].zero_grad(set_to_none=True)

    for task, label in ((forward, "forward (inference)"), (train_step, "training step")):
        times = {key: [] for key in models}
        for key in models:  # warm-up: allocator, cuDNN autotuning, compilation
            for _ in range(3 if options.compile or device == "cuda" else 1):
                task(key)
        for repeat in range(options.repeats):
            for key in (list(models) if repeat % 2 == 0 else list(models)[::-1]):
                start = now()
                for _ in range(steps):
                    task(key)
                times[key].append((now() - start) / steps)
        median = {key: statistics.median(values) for key, values in times.items()}
        best = {key: min(values) for key, values in times.items()}
        print(f"{label}, {options.repeats} runs each")
        for key in models:
            print(f"  {key:13s} median {median[key] * 1e3:9.2f} ms  best {best[key] * 1e3:9.2f} ms  "
                  f"{options.batch / median[key]:9.1f} images/s")
        paired = statistics.median(ours / theirs for ours, theirs in zip(times["cnndsl"], times["hand-written"]))
        print(f"  ratio cnndsl / hand-written: paired {paired:.3f}, of medians {median['cnndsl'] / median['hand-written']:.3f}, "
              f"of bests {best['cnndsl'] / best['hand-written']:.3f} (goal: at most 1.02)")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
