"""last.ckpt: everything a resumed run needs to continue as if never stopped, written atomically.

Model, optimizer, scheduler, AMP scaler, EMA (with its step count), every random generator (torch, CUDA,
Python, NumPy), the position in the epoch and the partial sums of the epoch's loss. Read back with
`weights_only=True`: a checkpoint is data, never code.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from ..core.atomic import write_atomically
from ..core.errors import FileProblem
from .loop import Step

HINT = "--resume takes the folder a run wrote, with the last.ckpt it saved"


def random_states() -> dict:
    state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": [state[0], state[1].tolist(), *state[2:]],
    }


def restore_random_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    random.setstate(states["python"])
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))


def save(path: Path, state: dict) -> None:
    write_atomically(path, lambda temp: torch.save(state, temp))


def load(path: Path) -> dict:
    if not path.is_file():
        raise FileProblem(f"{path} does not exist", hint="--resume takes a run folder that holds last.ckpt")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged or foreign file: say so rather than show torch's traceback
        raise FileProblem(f"cannot read checkpoint {path}: {str(error).splitlines()[0]}") from None


@contextmanager
def fitting(path: Path):
    """Restoring a run from the checkpoint at `path`: one that is not a run's (a state_dict saved under its name,
    another network's, a damaged one) is refused by name, whatever part of it fails to load."""
    try:
        yield
    except KeyError as missing:
        raise FileProblem(f"checkpoint {path} is not a run's: it lacks {missing}", hint=HINT) from None
    except (TypeError, ValueError, RuntimeError, IndexError) as error:
        raise FileProblem(f"checkpoint {path} does not fit this run: {str(error).splitlines()[0]}", hint=HINT) from None


def step_of(saved) -> Step:
    """Where the run stopped, every field of the type a run writes (ValueError otherwise)."""
    step = Step(**saved)
    whole = all(type(value) is int and value >= least for value, least in ((step.epoch, 1), (step.done, 0)))
    timing = step.timing
    if (
        not whole
        or type(step.loss_sum) is not float
        or not isinstance(timing, dict)
        or timing.keys() != Step().timing.keys()
    ):
        raise ValueError("its step (epoch, done, loss_sum, timing) is not where a run stops")
    if not all(type(value) in (int, float) for value in timing.values()):
        raise ValueError("its step's timing holds other values than numbers")
    return step


def history_of(saved: dict, metric: str) -> dict:
    """The epochs' rows and the best (value, epoch) so far, each of the shape a run writes (ValueError otherwise)."""
    rows, best = saved["rows"], saved["best"]
    keys = ["epoch", "train_loss", "val_loss", metric, "lr"]
    if not isinstance(rows, list) or not all(isinstance(row, dict) and list(row) == keys for row in rows):
        raise ValueError(f"its rows are not the epochs' {', '.join(keys)}")
    if not all(type(value) in (int, float) for row in rows for value in row.values()):
        raise ValueError("its rows hold other values than numbers")
    if best is not None and not (
        isinstance(best, (list, tuple)) and len(best) == 2 and type(best[0]) in (int, float) and type(best[1]) is int
    ):
        raise ValueError(f"its best epoch is not a (value, epoch) pair: {str(best)[:80]}")
    return {"rows": rows, "best": best}
