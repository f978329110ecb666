"""YOLOv8n as cnndsl builds it beside Ultralytics' own module: the same weights, the same input.

    python bench/detect.py                  # eager forward, interleaved paired rounds; ONNX export times
    python bench/detect.py --rounds 21 --size 320

Prints, in one run: (1) the eager forward (batch 1, eval mode, no grad) of `cnndsl.load("yolov8n")
.to_torch(weights=...)` loaded with the state_dict of Ultralytics' `DetectionModel("yolov8n.yaml")`, beside that
model, in rounds that alternate which side goes first; each round gives one paired ratio (ours ÷ Ultralytics'),
and the figure is their median with its quartiles (goal: at most 1.05); the two outputs are checked equal first.
(2) ONNX export of the same weights: cnndsl's emitter (`Network.to_onnx`) beside `torch.onnx.export` of
Ultralytics' module (its default exporter, with Detect's `export` flag set as Ultralytics' own exporter sets it),
best of a few runs each. bench/all.py runs (1) as the figure `detect-yolov8n`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from timing import Pair, best_of

import cnndsl

GOAL = 1.05


def models(size: int):
    """(Ultralytics' yolov8n in eval mode, cnndsl's with its weights, the cnndsl network, an image batch of 1)."""
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    reference = DetectionModel("yolov8n.yaml", verbose=False).eval()
    network = cnndsl.load("yolov8n", size=size, postprocess="decoded")  # Ultralytics' eval output
    ours = network.to_torch(weights=reference.state_dict()).eval()
    images = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        difference = (ours(images) - reference(images)[0]).abs().max().item()
    if difference > 1e-3:
        raise SystemExit(f"the two modules disagree by {difference:g}: no timing of different functions")
    return reference, ours, network, images


def timed(module: torch.nn.Module, images: torch.Tensor) -> float:
    with torch.no_grad():
        start = time.perf_counter()
        module(images)
        return time.perf_counter() - start


@contextmanager
def forward_pair(size: int = 640) -> Iterator[Pair]:
    """One eager forward of cnndsl's yolov8n beside one of Ultralytics' (bench/all.py's `detect-yolov8n`)."""
    reference, ours, _, images = models(size)
    yield Pair(lambda: timed(ours, images), lambda: timed(reference, images))


def paired_rounds(pair: Pair, rounds: int) -> tuple[list[float], list[float]]:
    """A warm-up of each side, then `rounds` rounds alternating which side goes first (as bench/all.py measures)."""
    pair.ours(), pair.anchor()
    ours, anchor = [], []
    for index in range(rounds):
        sides = [(pair.ours, ours), (pair.anchor, anchor)]
        for run, times in sides if index % 2 == 0 else sides[::-1]:
            times.append(run())
    return ours, anchor


def export_times(reference, network, images, repeats: int) -> tuple[float, float]:
    """Best seconds of cnndsl's ONNX emitter and of torch.onnx.export writing the same weights to a file."""
    state = reference.state_dict()
    detect = reference.model[-1]
    detect.export = True  # what Ultralytics' exporter sets: the forward returns the decoded tensor alone

    def torch_export(path: Path):
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # its progress lines
            warnings.simplefilter("ignore")
            torch.onnx.export(reference, (images,), path)

    try:
        with tempfile.TemporaryDirectory() as folder:
            ours = best_of(lambda: network.to_onnx(Path(folder) / "cnndsl.onnx", weights=state), repeats)
            theirs = best_of(lambda: torch_export(Path(folder) / "torch.onnx"), repeats)
    finally:
        detect.export = False
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--export-repeats", type=int, default=3)
    options = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, yolov8n at {options.size}×{options.size}")
    reference, ours, network, images = models(options.size)
    pair = Pair(lambda: timed(ours, images), lambda: timed(reference, images))
    mine, theirs = paired_rounds(pair, options.rounds)
    ratios = [a / b for a, b in zip(mine, theirs)]
    low, _, high = statistics.quantiles(ratios, n=4, method="inclusive")
    ratio = statistics.median(ratios)
    print(
        f"eager forward: cnndsl {statistics.median(mine) * 1e3:.1f} ms, Ultralytics "
        f"{statistics.median(theirs) * 1e3:.1f} ms (medians of {options.rounds}); ratio {ratio:.3f} "
        f"(quartiles {low:.3f}–{high:.3f}), goal ≤ {GOAL}: {'met' if ratio <= GOAL else 'NOT met'}"
    )
    onnx_ours, onnx_theirs = export_times(reference, network, images, options.export_repeats)
    print(
        f"ONNX export: cnndsl {onnx_ours:.2f} s, torch.onnx.export of Ultralytics' module {onnx_theirs:.2f} s "
        f"(best of {options.export_repeats}): {onnx_theirs / onnx_ours:.1f}× faster"
    )


if __name__ == "__main__":
    main()
