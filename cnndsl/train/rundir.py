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
    except (OSError, ValueError) as error:
        raise FileProblem(f"cannot read {path}: {error}") from None


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
