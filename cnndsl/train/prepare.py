"""Before the first step, in the launching process: the network and the data checked against each other,
the run folder made (or, on --resume, the stored run checked against what is on disk now)."""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass
from pathlib import Path

from ..api import load
from ..core.errors import FileProblem, ShapeProblem, ValueProblem
from ..core.version import __version__
from ..graph import ir
from . import rundir
from .data import Layout, find_layout
from .options import Options
from .vision import torchvision


@dataclass
class Spec:
    """Everything a training process needs; picklable, so that each rank of a DDP run gets its own copy."""

    network: object
    source: dict
    options: Options
    layout: Layout
    task: str
    classes: int
    folder: Path
    resume: bool
    threads: int = 0  # torch's CPU threads: sums split by thread, so a resumed run must use as many


def prepare(network, data, options: dict, out=None, resume=None, source: dict | None = None) -> Spec:
    """A checked Spec. `network` is a cnndsl Network (or None on resume: the stored one is reloaded);
    `source` says how it was loaded (file, network, params, input), recorded for --resume."""
    if resume is not None:
        return _resumed(Path(resume), network, data, source)
    network.require_one_input("cnndsl train")
    opts = Options.of(options)
    task, classes = task_of(network, opts.task)
    layout = find_layout(data, task, classes, opts.ignore_index, opts.skip_bad)
    if task == "classify" and len(layout.classes) != classes:
        shown = ", ".join(layout.classes[:8]) + (", ..." if len(layout.classes) > 8 else "")
        raise ShapeProblem(
            f"{layout.root / 'train'} has {len(layout.classes)} classes ({shown}) but `{network.name}` outputs {classes}",
            hint=f"set the network's class count: -p classes={len(layout.classes)}",
        )
    folder = rundir.new_folder(out, network.name)
    import torch

    spec = Spec(
        network, source or _source_of(network), opts, layout, task, classes, folder, False, torch.get_num_threads()
    )
    rundir.write_json(folder / rundir.RUN, _record(spec))
    rundir.write_json(folder / rundir.CLASSES, layout.classes)
    return spec


def task_of(network, asked: str | None) -> tuple[str, int]:
    """classify (a vector out) or segment (maps of the input's size out), and the class count."""
    for name, node in ir.network_info(network.graph).train_outputs[:1]:  # in train() mode the module returns a tuple
        raise ShapeProblem(
            f"`{network.name}` has a train output, `{name}`, for which `cnndsl train` has no loss",
            ir.layer(network.graph, node).pos,
            "train it in your own loop (in train() mode the module returns the train outputs after the outputs)",
        )
    output = ir.layer(network.graph, network.outputs[0][1]).shape
    found = (
        "classify" if len(output) == 1 else "segment" if tuple(output[1:]) == tuple(network.input_shape[1:]) else None
    )
    if found is None or (asked is not None and asked != found):
        raise ShapeProblem(
            f"`{network.name}` outputs {'x'.join(map(str, output))}: "
            + (f"not what --task {asked} trains" if asked else "neither class scores nor maps of the input's size"),
            hint="classification ends in a vector of class scores (gap, fc(classes)); segmentation in classes x H x W",
        )
    return found, output[0]


def network_hash(network) -> str:
    return hashlib.sha256(network.source.encode()).hexdigest()


def _source_of(network) -> dict:
    return {"file": network.file, "network": network.name, "params": None, "input": None}


def _record(spec: Spec) -> dict:
    import torch

    try:
        vision = torchvision().__version__
    except FileProblem:
        vision = None
    return {
        "network": {**spec.source, "name": spec.network.name, "sha256": network_hash(spec.network)},
        "data": {
            "root": str(spec.layout.root.resolve()),
            "validation": spec.layout.validation,
            "listing": spec.layout.listing(),
            "skipped": spec.layout.skipped,
        },
        "task": spec.task,
        "classes": spec.classes,
        "threads": spec.threads,
        "options": spec.options.as_dict(),
        "versions": {
            "cnndsl": __version__,
            "torch": torch.__version__,
            "torchvision": vision,
            "python": platform.python_version(),
        },
    }


def _recorded_input(given: list | dict | None) -> tuple | dict | None:
    """The run's --input as `load` takes it: CxHxW, shapes by input name (`--input image=3x32x32`), or none."""
    if isinstance(given, dict):
        return {name: tuple(shape) for name, shape in given.items()}
    return None if given is None else tuple(given)


def _resumed(folder: Path, network, data, source: dict | None) -> Spec:
    """The stored run, refused where the network or the data listing changed since it started."""
    if not (folder / rundir.LAST).is_file():
        raise FileProblem(f"{folder} holds no last.ckpt to resume", hint="--resume takes the folder of a run")
    record = rundir.read_record(folder)
    stored = record["network"]
    if network is None:
        shape = _recorded_input(stored["input"])
        network = load(stored["file"], network=stored["network"], input=shape, **(stored.get("params") or {}))
    if network_hash(network) != stored["sha256"]:
        raise ValueProblem(
            f"the network changed since the run started: {stored['file']} is not the text {folder} was trained from",
            hint="resume only with the same .cnn text; start a new run to train the changed network",
        )
    if source is not None and source.get("params") is not None and source["params"] != stored.get("params"):
        raise ValueProblem(
            f"the network's parameters changed: {json.dumps(stored.get('params'))} then, {json.dumps(source['params'])} now"
        )
    options = Options.of(record["options"])
    root = Path(data) if data is not None else Path(record["data"]["root"])
    layout = find_layout(root, record["task"], record["classes"], options.ignore_index, options.skip_bad)
    then, now = record["data"]["listing"], layout.listing()
    changed = sorted(group for group in then.keys() | now.keys() if then.get(group) != now.get(group))
    if changed:
        raise ValueProblem(
            f"the data listing changed since the run started: {', '.join(changed)}",
            hint="resume with the same files; start a new run to train on the changed data",
        )
    return Spec(network, stored, options, layout, record["task"], record["classes"], folder, True, record["threads"])
