"""ONNX export: cnndsl's emitter beside `torch.onnx.export` (its default exporter) of the same torch modules.

    python bench/onnx_export.py            # whole processes, in-process export, onnxruntime latency

Prints, in one run: (1) the whole `cnndsl compile resnet50 --to onnx` process beside a whole process
that builds the same torch module and calls `torch.onnx.export`; (2) in-process export times for
ResNet-50 and DenseNet-121, both sides given the same weights; (3) onnxruntime latency of both files at
batch 1 and 8, timed in alternation so a busy machine affects both alike; (4) a network over 2 GiB
(BIG, 540,705,000 parameters) written with external data, each side a whole process: its wall time and
peak memory (the child's maximum resident set). Goals: the whole process at least 5x faster, and equal or
lower latency. `--skip-big` leaves (4) out, `--only-big` runs it alone. torch.onnx.export's default (dynamo)
exporter needs the `onnxscript` package.
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from timing import Pair, best_of, cnndsl_command, timed_process

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


BIG = "network big {\n    input 16384\n    fc(33000)\n}\n"

TORCH_BIG = """
import time, torch, cnndsl
network = cnndsl.load({source!r})
module = network.to_torch().eval()
start = time.perf_counter()
torch.onnx.export(module, (torch.randn(2, 16384),), {path!r}, input_names=["input"], output_names=["output"],
                  dynamic_shapes=({{0: torch.export.Dim("batch")}},), external_data=True)
print(time.perf_counter() - start)
"""


PEAK = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
)


def measured_process(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak resident GiB and stdout of one whole process (failure fatal), measured by a wrapper
    process whose only child it is."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", PEAK, *command], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"{' '.join(command[:3])} failed: {result.stderr[-2000:]}")
    output, _, peak = result.stdout.rstrip().rpartition("\n")
    return elapsed, int(peak) / 2**20, output


def big_network(folder: Path) -> None:
    """The 2 GiB network written with external data by both sides, each a whole process."""
    source = folder / "big.cnn"
    source.write_text(BIG)
    cnndsl_cli = str(Path(sys.executable).with_name("cnndsl"))
    mine = measured_process([cnndsl_cli, "compile", str(source), "--to", "onnx", "-o", str(folder / "big.onnx")])
    sizes = [path.stat().st_size for path in sorted(folder.glob("big.onnx*"))]
    for path in folder.glob("big.onnx*"):
        path.unlink()
    theirs = measured_process(
        [sys.executable, "-c", TORCH_BIG.format(source=str(source), path=str(folder / "big_torch.onnx"))]
    )
    torch_sizes = sum(path.stat().st_size for path in folder.iterdir() if path.name.startswith("big_torch"))
    print("\n2 GiB network (540,705,000 parameters), external data, whole process each")
    print(
        f"  cnndsl compile big.cnn --to onnx     {mine[0]:7.2f} s   peak {mine[1]:5.2f} GiB   "
        f"files {sizes[0]:,} + {sizes[1]:,} bytes"
    )
    print(
        f"  torch module + torch.onnx.export     {theirs[0]:7.2f} s   peak {theirs[1]:5.2f} GiB   "
        f"files {torch_sizes:,} bytes; the export call alone {float(theirs[2].split()[-1]):.2f} s"
    )
    print(f"  ratio torch / cnndsl: time {theirs[0] / mine[0]:.1f}x, peak memory {theirs[1] / mine[1]:.1f}x")


def whole_process(command: list[str], runs: int) -> float:
    """Best wall time of `runs` runs of a whole process (output discarded, failure fatal)."""
    return best_of(lambda: timed_process(command), runs)


@contextmanager
def export_pair() -> Iterator[Pair]:
    """The whole `cnndsl compile resnet50 --to onnx` process beside a whole process that builds the same torch
    module and calls `torch.onnx.export` (its default exporter, a dynamic batch as ours)."""
    with tempfile.TemporaryDirectory() as folder:
        ours = [cnndsl_command(), "compile", "resnet50", "--to", "onnx", "-o", str(Path(folder) / "cli.onnx")]
        theirs = [sys.executable, "-c", TORCH_PROCESS.format(path=str(Path(folder) / "torch_cli.onnx"))]
        yield Pair(lambda: timed_process(ours), lambda: timed_process(theirs))


def torch_export(module, network, path: Path) -> float:
    """Seconds for `torch.onnx.export` with its defaults, a dynamic batch as ours."""
    example = torch.randn(2, *network.input_shape)
    start = time.perf_counter()
    torch.onnx.export(
        module,
        (example,),
        str(path),
        input_names=[network.input_name],
        output_names=["output"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        verbose=False,
    )
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
    feeds = [
        {session.get_inputs()[0].name: np.random.default_rng(0).standard_normal((batch, *shape), np.float32)}
        for session in sessions
    ]
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
    parser.add_argument("--skip-big", action="store_true", help="leave out the network over 2 GiB")
    parser.add_argument("--only-big", action="store_true", help="run only the network over 2 GiB")
    options = parser.parse_args()
    exporter = (
        "dynamo (torch.export)" if inspect.signature(torch.onnx.export).parameters["dynamo"].default else "TorchScript"
    )
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__}, cnndsl {cnndsl.__version__}; torch.onnx.export default: {exporter}"
    )
    folder = Path(tempfile.mkdtemp(prefix="onnx_bench."))
    if options.only_big:
        big_network(folder)
        shutil.rmtree(folder)
        return

    print("\nwhole process, best of", options.process_runs)
    cnndsl_cli = cnndsl_command()
    mine = whole_process(
        [cnndsl_cli, "compile", "resnet50", "--to", "onnx", "-o", str(folder / "cli.onnx")], options.process_runs
    )
    theirs = whole_process(
        [sys.executable, "-c", TORCH_PROCESS.format(path=str(folder / "torch_cli.onnx"))], options.process_runs
    )
    print(f"  cnndsl compile resnet50 --to onnx                  {mine:7.2f} s")
    print(f"  python: build the torch module + torch.onnx.export {theirs:7.2f} s")
    print(
        f"  ratio torch / cnndsl: {theirs / mine:.1f}x (goal: at least 5x) -> {'met' if theirs >= 5 * mine else 'NOT met'}"
    )

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
            mine, theirs = latencies(
                [folder / f"{name}.onnx", folder / f"{name}_torch.onnx"],
                network.input_name,
                network.input_shape,
                batch,
                options.latency_runs,
            )
            print(
                f"  {name:12s} batch {batch}: cnndsl {mine:8.2f} ms   torch's file {theirs:8.2f} ms   "
                f"ratio cnndsl / torch {mine / theirs:.3f}"
            )
    if not options.skip_big:
        big_network(folder)
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
