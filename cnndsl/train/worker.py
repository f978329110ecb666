"""The run itself, in each training process: epochs of training and validation, the run folder's files
written by rank 0 after each epoch, last.ckpt on a signal, and the deployable outputs at the end."""

from __future__ import annotations

import contextlib
import gc
import json
import random
import resource
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core.atomic import write_atomically
from . import checkpoint, rundir
from .display import Display, epoch_line
from .loop import Interrupted, Step, StopRequest, evaluate, train_epoch
from .memory import located_out_of_memory
from .setup import Setup


@dataclass
class Result:
    """What `train` returns: the run folder, the metrics of each epoch and the best epoch's figures."""

    folder: Path
    task: str
    metric: str
    best: float
    best_epoch: int
    rows: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def run(spec, rank: int = 0, world: int = 1, stream=None) -> Result:
    """Train; torch's global settings and random generators are the caller's again afterwards."""
    with _isolated():
        if world == 1 and spec.threads:
            torch.set_num_threads(spec.threads)
        return _run(spec, rank, world, stream)


@contextlib.contextmanager
def _isolated():
    """A run seeds the generators and may switch on deterministic kernels; a Python caller keeps its own."""
    deterministic = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark, threads = torch.backends.cudnn.benchmark, torch.get_num_threads()
    python, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
            yield
    finally:
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        torch.backends.cudnn.benchmark = benchmark
        torch.set_num_threads(threads)
        random.setstate(python)
        np.random.set_state(numpy_state)


@contextlib.contextmanager
def _settled_heap():
    """Collect once, then freeze what survives: the objects made before the first step (the parse, the module,
    the caller's own) no longer make a full collection sweep the whole heap in the middle of an epoch (one
    such sweep cost 0.7 s of a 9 s training loop, measured under load). Unfrozen afterwards; a caller that
    froze objects itself is left as it is."""
    if gc.get_freeze_count():
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _run(spec, rank: int, world: int, stream) -> Result:
    torch.manual_seed(spec.options.seed)
    random.seed(spec.options.seed)
    np.random.seed(spec.options.seed % 2**32)
    setup = Setup(spec, rank, world)
    display = Display(stream, enabled=rank == 0)
    metric = "val_miou" if spec.task == "segment" else "val_acc"
    folder, epochs = spec.folder, spec.options.epochs
    state = {"step": Step(), "rows": [], "best": None}
    if spec.resume:
        saved = checkpoint.load(folder / rundir.LAST)
        with checkpoint.fitting(folder / rundir.LAST):
            setup.load_state(saved["train"])
            checkpoint.restore_random_states(saved["random"])
            state = {"step": checkpoint.step_of(saved["step"]), **checkpoint.history_of(saved, metric)}
    else:
        _save(setup, state, rank)
    step = state["step"]
    display.say(_header(spec, setup, world, step))
    if setup.weights_note:
        display.say(setup.weights_note)
    started = time.perf_counter()
    doing = f"train `{spec.network.name}` on batches of {spec.options.batch}"
    with StopRequest() as stop, _settled_heap(), located_out_of_memory(spec.network, doing):
        while step.epoch <= epochs:
            with display.bar(step.epoch, epochs, setup.steps_per_epoch, step.done) as bar:
                finished = train_epoch(setup, step, stop, display, bar)
            if not finished:
                _save(setup, state, rank)
                raise _interrupted(stop.signum, folder, step)
            setup.share_buffers()
            row = {
                "epoch": step.epoch,
                "train_loss": setup.all_ranks_sum(torch.tensor([step.loss_sum / step.done], dtype=torch.float64)).item()
                / world,
                **evaluate(setup, setup.evaluated_model()),
                "lr": setup.optimizer.param_groups[0]["lr"],
            }
            state["rows"].append(row)
            if state["best"] is None or row[metric] > state["best"][0]:
                state["best"] = (row[metric], step.epoch)
                if rank == 0:
                    _write_best(setup, folder / rundir.BEST, step.epoch, row[metric])
            timing = step.timing
            step = state["step"] = Step(step.epoch + 1, 0, 0.0, timing)
            if rank == 0:
                rundir.write_metrics(folder / rundir.METRICS, state["rows"])
            _save(setup, state, rank)
            display.say(epoch_line(row, metric, epochs, timing["images"] / max(timing["seconds"], 1e-9)))
            if setup.all_ranks_max(stop.signum):
                raise _interrupted(stop.signum, folder, step)
    best, best_epoch = state["best"]
    summary = _summary(setup, step.timing, time.perf_counter() - started, best, best_epoch, metric)
    if rank == 0:
        spec.network.to_onnx(folder / rundir.BEST_ONNX, weights=str(folder / rundir.BEST))
        curves = rundir.write_curves(folder, state["rows"], metric)
        rundir.write_json(folder / rundir.SUMMARY, summary)
        display.say(_footer(summary, folder, curves))
    return Result(folder, spec.task, metric, best, best_epoch, state["rows"], summary)


def _save(setup: Setup, state: dict, rank: int) -> None:
    if rank != 0:
        return
    step = state["step"]
    checkpoint.save(
        setup.spec.folder / rundir.LAST,
        {
            "train": setup.state(),
            "random": checkpoint.random_states(),
            "step": {"epoch": step.epoch, "done": step.done, "loss_sum": step.loss_sum, "timing": step.timing},
            "rows": state["rows"],
            "best": state["best"],
        },
    )


def _interrupted(signum: int, folder: Path, step: Step) -> Interrupted:
    name = signal.Signals(signum).name
    return Interrupted(
        signum,
        f"{name}: stopped at epoch {step.epoch}, step {step.done}; wrote {folder / rundir.LAST}\n"
        f"continue with: cnndsl train --resume {folder}",
    )


def _write_best(setup: Setup, path: Path, epoch: int, value: float) -> None:
    """The best epoch's weights under cnndsl's names, with what `cnndsl predict` needs in the metadata."""
    from safetensors.torch import save_file

    tensors = {
        name: tensor.detach().cpu().contiguous() for name, tensor in setup.evaluated_model().state_dict().items()
    }
    spec = setup.spec
    metadata = {
        "cnndsl": json.dumps(
            {
                "task": spec.task,
                "classes": spec.layout.classes,
                "preprocessing": setup.preprocessing.as_dict(),
                "network": spec.network.name,
                "epoch": epoch,
                "metric": value,
            }
        )
    }
    write_atomically(path, lambda temp: save_file(tensors, str(temp), metadata=metadata))


def _summary(setup: Setup, timing: dict, seconds: float, best: float, best_epoch: int, metric: str) -> dict:
    if setup.device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(setup.device)
        where = "GPU memory allocated by torch"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        where = "process resident memory (rank 0)"
    compute = timing["seconds"] - timing["wait"]
    return {
        metric: best,
        "best_epoch": best_epoch,
        "images_per_second": timing["images"] / max(timing["seconds"], 1e-9),
        "images_per_second_excluding_data_wait": timing["images"] / max(compute, 1e-9),
        "data_wait_share": timing["wait"] / max(timing["seconds"], 1e-9),
        "peak_memory_bytes": peak,
        "peak_memory_of": where,
        "seconds": seconds,
        "device": str(setup.device) + (f" x{setup.world}" if setup.world > 1 else ""),
        "precision": setup.precision,
    }


def _header(spec, setup: Setup, world: int, step: Step) -> str:
    layout = spec.layout
    resumed = f"; resumed at epoch {step.epoch}, step {step.done}" if spec.resume else ""
    return (
        f"train {spec.network.name} on {layout.root} ({spec.task}, {len(layout.classes)} classes; "
        f"{len(layout.train)} train, {len(layout.val)} {layout.validation}/) on {setup.device}"
        f"{f' x{world}' if world > 1 else ''}, {setup.precision}; run folder {spec.folder}{resumed}"
        f"{_skipped(layout.skipped)}"
    )


def _skipped(paths: list[str], shown: int = 3) -> str:
    """--skip-bad's images, named (the first few; run.json lists them all)."""
    if not paths:
        return ""
    more = f", and {len(paths) - shown} more (run.json lists them)" if len(paths) > shown else ""
    noun = "image" if len(paths) == 1 else "images"
    return f"; skipped {len(paths)} unreadable {noun}: {', '.join(paths[:shown])}{more}"


def _footer(summary: dict, folder: Path, curves: str) -> str:
    metric = next(iter(summary))
    return (
        f"best {metric} {summary[metric]:.4f} at epoch {summary['best_epoch']}; "
        f"{summary['images_per_second']:,.0f} img/s ({summary['images_per_second_excluding_data_wait']:,.0f} "
        f"excluding data wait, {summary['data_wait_share']:.0%} waiting); peak memory "
        f"{summary['peak_memory_bytes'] / 2**20:,.0f} MiB\nwrote {folder / rundir.BEST}, {folder / rundir.BEST_ONNX}; {curves}"
    )
