"""The run folder: run.json (resolved options, versions, hashes of the network and of the data listing),
classes.json, metrics.csv, last.ckpt, best.safetensors, best.onnx, curves.png/.svg and summary.json.
Each file is written atomically, so a stopped run leaves whole files only."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..core.atomic import write_atomically
from ..core.errors import FileProblem
from .options import TASKS

RUN, METRICS, LAST, BEST, BEST_ONNX, CLASSES, SUMMARY = (
    "run.json",
    "metrics.csv",
    "last.ckpt",
    "best.safetensors",
    "best.onnx",
    "classes.json",
    "summary.json",
)


def new_folder(out: str | Path | None, name: str) -> Path:
    """`--out DIR` (refused if it holds a run), else the first free runs/NAME-N."""
    if out is not None:
        folder = Path(out)
        if (folder / RUN).exists():
            raise FileProblem(
                f"{folder} already holds a run", hint=f"continue it with --resume {folder}, or choose another --out"
            )
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    Path("runs").mkdir(exist_ok=True)
    number = 1
    while True:
        folder = Path("runs") / f"{name}-{number}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            number += 1


def write_json(path: Path, value) -> None:
    write_atomically(path, json.dumps(value, indent=2) + "\n")


def read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise FileProblem(f"cannot read {path}: it nests too deep") from None
    except (OSError, ValueError) as error:
        raise FileProblem(f"cannot read {path}: {error}") from None


MOST_THREADS = 1_024  # the CPU threads a resumed run asks torch for
OPTIONAL = type(None)
RECORD = {  # what --resume reads of run.json, and its types
    "network": {
        "file": str,
        "network": (str, OPTIONAL),
        "params": (dict, OPTIONAL),
        "input": (list, dict, OPTIONAL),
        "sha256": str,
    },
    "data": {"root": str, "listing": dict},
    "task": str,
    "classes": int,
    "threads": int,
    "options": dict,
}


def read_record(folder: Path) -> dict:
    """The run.json a run wrote, each field --resume reads of the type a run writes: a damaged or foreign file
    is refused by name, not met later as a traceback."""
    path = folder / RUN
    record = read_json(path)
    _require_fields(path, record, RECORD, "")
    given = record["network"]["input"]
    shapes = list(given.values()) if isinstance(given, dict) else [] if given is None else [given]
    if not all(isinstance(shape, list) and shape and all(_whole(size, 1) for size in shape) for shape in shapes):
        raise _not_a_record(path, "`network.input` is not a shape of whole sizes of at least 1")
    if record["task"] not in TASKS or record["classes"] < 1:
        raise _not_a_record(path, f"`task` is not one of {', '.join(TASKS)} or `classes` is under 1")
    if not 0 <= record["threads"] <= MOST_THREADS:  # torch's set_num_threads(10**6) crashes the process
        raise _not_a_record(path, f"`threads` is not from 0 to {MOST_THREADS:,}")
    return record


def _whole(value, least: int) -> bool:
    return type(value) is int and value >= least


def _require_fields(path: Path, value, fields: dict, prefix: str) -> None:
    if not isinstance(value, dict):
        raise _not_a_record(path, f"`{prefix[:-1]}` is not an object" if prefix else "it is not an object")
    for key, kind in fields.items():
        if isinstance(kind, dict):
            _require_fields(path, value.get(key), kind, f"{prefix}{key}.")
        elif not isinstance(value.get(key), kind) or isinstance(value.get(key), bool):
            raise _not_a_record(path, f"`{prefix}{key}` is missing or not of the type a run writes")


def _not_a_record(path: Path, why: str) -> FileProblem:
    return FileProblem(f"{path} is not the record of a run: {why}", hint="--resume takes the folder a run wrote")


def write_metrics(path: Path, rows: list[dict]) -> None:
    """One row per epoch; floats as Python writes them (shortest exact), so equal runs give equal files."""
    if not rows:
        return
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomically(path, text.getvalue())


def write_curves(folder: Path, rows: list[dict], metric: str) -> str:
    """curves.png and curves.svg (losses, and the validation metric), or why they were not drawn. Drawn on a
    bare matplotlib Figure: pyplot's global state and backend stay the caller's, and fixed margins stand in
    for tight_layout (which measured every label again: most of a short run's fixed cost)."""
    try:
        import matplotlib.figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return "curves not drawn: matplotlib is not installed (pip install matplotlib)"
    epochs = [row["epoch"] for row in rows]
    figure = matplotlib.figure.Figure(figsize=(9, 3.5))
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.14, top=0.9, wspace=0.28)
    losses, quality = figure.subplots(1, 2)
    losses.plot(epochs, [row["train_loss"] for row in rows], label="train")
    losses.plot(epochs, [row["val_loss"] for row in rows], label="validation")
    losses.set(xlabel="epoch", ylabel="loss", title="loss")
    losses.legend()
    quality.plot(epochs, [row[metric] for row in rows], color="tab:green")
    quality.set(xlabel="epoch", ylabel=metric, title=metric)
    for axes in (losses, quality):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
        axes.ticklabel_format(axis="y", style="sci", scilimits=(-2, 4))  # short labels fit the fixed margin
    for suffix in ("png", "svg"):
        write_atomically(folder / f"curves.{suffix}", lambda temp, s=suffix: figure.savefig(temp, format=s))
    return f"curves: {folder / 'curves.png'}, {folder / 'curves.svg'}"
