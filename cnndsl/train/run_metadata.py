"""What a run writes into best.safetensors' metadata for `cnndsl predict` (task, class names, preprocessing),
read back from a file that may come from anyone: each entry must have the type a run writes and fit the network
it is used with, or the file is refused by name, before any image is read."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..core.errors import FileProblem
from .datasets import Preprocessing

HINT = "give the best.safetensors of a run of this network, or weights without cnndsl metadata"


def read(weights: Path) -> dict:
    """The `cnndsl` entry of a .safetensors file's metadata as a dict; {} for other weights or none."""
    if weights.suffix != ".safetensors":
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(weights), "pt") as handle:
            found = json.loads((handle.metadata() or {}).get("cnndsl", "{}"))
    except RecursionError:
        raise _unfit(weights, "its cnndsl metadata nests too deep") from None
    except (OSError, ValueError, RuntimeError) as error:
        raise FileProblem(f"cannot read weights {weights}: {error}") from None
    if not isinstance(found, dict):
        raise _unfit(weights, "its cnndsl metadata is not an object")
    return found


def checked_task(weights: Path, found: dict, task: str) -> str:
    """The network's task, which the stored one must be where there is one."""
    if found.get("task", task) != task:
        raise _unfit(
            weights, f"it was trained for the task {_short(found['task'])}; this network's outputs are for {task}"
        )
    return task


def checked_classes(weights: Path, found: dict, count: int | None) -> list[str]:
    """The stored class names (`count` of them where the network says how many), else []."""
    classes = found.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(name, str) for name in classes):
        raise _unfit(weights, "its class names are not a list of strings")
    if classes and count is not None and len(classes) != count:
        raise _unfit(weights, f"it names {len(classes)} class{'es' * (len(classes) != 1)}; the network has {count}")
    return classes


def checked_preprocessing(weights: Path, found: dict, shape: tuple) -> Preprocessing:
    """The stored preprocessing: the network's own input size and channels, a finite mean and a positive
    standard deviation per channel; the input's default where none is stored."""
    stored = found.get("preprocessing")
    if stored is None:
        return Preprocessing.for_input(shape)
    fields = ("channels", "height", "width", "mean", "std")
    if not isinstance(stored, dict) or sorted(stored) != sorted(fields):
        raise _unfit(weights, f"its preprocessing is not an object of {', '.join(fields)}")
    if [stored["channels"], stored["height"], stored["width"]] != list(shape):
        size = "x".join(_short(stored[key]) for key in fields[:3])
        raise _unfit(weights, f"its preprocessing is for {size} inputs; the network takes {'x'.join(map(str, shape))}")
    for key, smallest in (("mean", -math.inf), ("std", 0)):
        values = stored[key]
        numbers = isinstance(values, list) and all(type(value) in (int, float) for value in values)
        if not numbers or len(values) != shape[0] or not all(smallest < value < math.inf for value in values):
            number = "a number above 0" if smallest == 0 else "a finite number"
            raise _unfit(weights, f"its preprocessing's {key} must be {number} per channel ({shape[0]})")
    return Preprocessing(*shape, tuple(stored["mean"]), tuple(stored["std"]))


def _unfit(weights: Path, why: str) -> FileProblem:
    return FileProblem(f"the metadata of {weights} does not fit: {why}", hint=HINT)


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:39] + "…"
