"""ONNX export: cnndsl's emitter beside `torch.onnx.export` (its default exporter) of the same torch modules.

    python bench/onnx_export.py            # whole processes, in-process export, onnxruntime latency

Prints, in one run: (1) the whole `cnndsl compile resnet50 --to onnx` process beside a whole process
that builds the same torch module and calls `torch.onnx.export`; (2) in-process export times for
ResNet-50 and DenseNet-121, both sides given the same weights; (3) onnxruntime latency of both files at
batch 1 and 8, timed in alternation so a busy machine affects both alike. Goals: the whole process at
least 5x faster, and equal or lower latency.
"""
from __future__ import annotations

import argparse
import inspect
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

import cnndsl
from cnndsl.backends.onnx import export_onnx

NETWORKS = ("resnet50", "densenet121")

TORCH_PROCESS = """
import torch, cnndsl
network = cnndsl.load("resnet50")
module = network.to_torch().eval()
example = torch.randn(2, *network.input_shape)
torch.onnx.export(module, (example,), {path!r}, input_names=["input"], output_names=["output"],
                  dynamic_shapes=({{0: torch.export.Dim("batch")}},))
"""


def whole_process(command: list[str], runs: int) -> float:
    """Best wall time of `runs` runs of a whole process (output discarded, failure fatal)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return min(times)


def torch_export(module, network, path: Path) -> float:
    """Seconds for `torch.onnx.export` with its defaults, a dynamic batch as ours."""
    example = torch.randn(2, *network.input_shape)
    start = time.perf_counter()
    torch.onnx.export(module, (example,), str(path), input_names=[network.input_name], output_names=["output"],
                      dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    return time.perf_counter() - start


def ours(module, network, path: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        export_onnx(network, path, weights=module)
        times.append(time.perf_counter() - start)
    return min(times)


def latencies(paths: list[Path], input_name: str, shape: tuple, batch: int, runs: int) -> list[float]:
    """Median milliseconds per run of each file, the runs of all files interleaved."""
    sessions = [onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]) for path in paths]
    feeds = [{session.get_inputs()[0].name: np.random.default_rng(0).standard_normal((batch, *shape), np.float32)}
             for session in sessions]
    for session, feed in zip(sessions, feeds):
        session.run(None, feed)  # warm-up
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(runs):
        for index, (session, feed) in enumerate(zip(sessions, feeds)):
            start = time.perf_counter()
            session.run(None, feed)
            times[index].append((time.perf_counter() - start) * 1000)
    return [statistics.median(series) for series in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--process-runs", type=int, default=3, help="whole-process runs per side (best is kept)")
    parser.add_argument("--latency-runs", type=int, default=20)
    options = parser.parse_args()
    exporter = "dynamo (torch.export)" if inspect.signature(torch.onnx.export).parameters["dynamo"].default else "TorchScript"
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"onnxruntime {onnxruntime.__version__}, cnndsl {cnndsl.__version__}; torch.onnx.export default: {exporter}")
    folder = Path(tempfile.mkdtemp(prefix="onnx_bench."))

    print("\nwhole process, best of", options.process_runs)
    cnndsl_cli = str(Path(sys.executable).with_name("cnndsl"))
    mine = whole_process([cnndsl_cli, "compile", "resnet50", "--to", "onnx", "-o", str(folder / "cli.onnx")],
                         options.process_runs)
    theirs = whole_process([sys.executable, "-c", TORCH_PROCESS.format(path=str(folder / "torch_cli.onnx"))],
                           options.process_runs)
    print(f"  cnndsl compile resnet50 --to onnx                  {mine:7.2f} s")
    print(f"  python: build the torch module + torch.onnx.export {theirs:7.2f} s")
    print(f"  ratio torch / cnndsl: {theirs / mine:.1f}x (goal: at least 5x) -> {'met' if theirs >= 5 * mine else 'NOT met'}")

    print("\nin process, the same weights on both sides (cnndsl best of 3, torch one run)")
    for name in NETWORKS:
        network = cnndsl.load(name)
        module = network.to_torch(seed=0).eval()
        mine = ours(module, network, folder / f"{name}.onnx", 3)
        theirs = torch_export(module, network, folder / f"{name}_torch.onnx")
        print(f"  {name:12s} cnndsl {mine:6.2f} s   torch.onnx.export {theirs:6.2f} s   ratio {theirs / mine:5.1f}x")

    print(f"\nonnxruntime latency, median of {options.latency_runs} interleaved runs (default session options)")
    for name in NETWORKS:
        network = cnndsl.load(name)
        for batch in (1, 8):
            mine, theirs = latencies([folder / f"{name}.onnx", folder / f"{name}_torch.onnx"], network.input_name,
                                     network.input_shape, batch, options.latency_runs)
            print(f"  {name:12s} batch {batch}: cnndsl {mine:8.2f} ms   torch's file {theirs:8.2f} ms   "
                  f"ratio cnndsl / torch {mine / theirs:.3f}")
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
