"""last.ckpt: everything a resumed run needs to continue as if never stopped, written atomically.

Model, optimizer, scheduler, AMP scaler, EMA (with its step count), every random generator (torch, CUDA,
Python, NumPy), the position in the epoch and the partial sums of the epoch's loss. Read back with
`weights_only=True`: a checkpoint is data, never code.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from ..core.atomic import write_atomically
from ..core.errors import FileProblem


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
