"""Several processes (`--devices cpu:2`, `cuda:0,1`) started by torch's own elastic launcher, as torchrun
--standalone starts them: a c10d rendezvous on a free local port, gloo on CPU, nccl on CUDA, one
DistributedDataParallel module per process; rank 0 writes the run folder."""

from __future__ import annotations

import os
import uuid

from ..core.errors import CnnDslError
from . import checkpoint, rundir
from .loop import Interrupted
from .options import parse_devices
from .worker import run


def launch(spec, stream=None):
    """Train on the devices asked for; the run's Result (rank 0's)."""

    devices = parse_devices(spec.options.devices)
    if devices.count == 1:
        return run(spec, stream=stream)
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=devices.count,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.1,
        start_method="spawn",
    )
    from torch.distributed.elastic.multiprocessing.api import SignalException

    try:
        outcome = elastic_launch(config, _rank_main)(spec)[0]
    except SignalException as stop:  # the launcher passed SIGINT/SIGTERM on; rank 0 saved after its step
        raise _stopped(stop.sigval, spec.folder) from None
    if isinstance(outcome, tuple):  # a refusal or a stop, carried back as data
        kind, message, hint, signum = outcome
        raise Interrupted(signum, message) if kind == "Interrupted" else CnnDslError(message, hint=hint)
    return outcome


def _rank_main(spec):
    """One rank: join the group, train, and hand back the Result or the error as plain data."""
    import torch
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    backend = "gloo" if parse_devices(spec.options.devices).kind == "cpu" else "nccl"
    if backend == "gloo":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group(backend)
    try:
        return run(spec, rank, world)
    except CnnDslError as error:
        return (type(error).__name__, error.message, error.hint, getattr(error, "signum", 0))
    finally:
        dist.destroy_process_group()


def _stopped(signum: int, folder) -> Interrupted:
    """Where the stopped ranks left the run, read back from last.ckpt."""
    import signal

    name = signal.Signals(signum).name
    if not (folder / rundir.LAST).is_file():
        return Interrupted(signum, f"{name}: stopped before the first step; {folder} holds nothing to resume")
    step = checkpoint.load(folder / rundir.LAST)["step"]
    return Interrupted(
        signum,
        f"{name}: stopped at epoch {step['epoch']}, step {step['done']}; wrote "
        f"{folder / rundir.LAST}\ncontinue with: cnndsl train --resume {folder}",
    )
