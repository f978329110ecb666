"""Checkpoint files for bench/fuzz.py: a state_dict for a small network, saved straight or broken the ways an
author of a `.pt` or `.safetensors` file could break it (issue 24): wrappers that contain themselves, keys
thousands of levels deep, tensors of other shapes and dtypes, meta, sparse and quantized tensors, views of
large storages recompressed with DEFLATE, flipped and cut bytes. Loading one into the network, for torch and
for ONNX, must end in the weights or a CnnDslError; the worker bounds its time and memory as for any input.

A recipe is a seed: the worker builds the file from it (before its clock starts), so a run is reproducible.
bench/fuzz.py sends the seeds that are 3 modulo 20 here.
"""

from __future__ import annotations

import random
import zipfile
from pathlib import Path

NETWORK = "network net {\n    input 3x8x8\n    conv3x3(4), bn, relu, gap, fc(2)\n}\n"
BOMB_VALUES = 2**25  # a 128 MiB storage: past the 64 MiB and change this network's checkpoint may inflate to


def _state(torch, rng: random.Random) -> dict:
    generator = torch.Generator().manual_seed(rng.randrange(2**31))
    shapes = {"conv.weight": (4, 3, 3, 3), "conv.bias": (4,), "bn.weight": (4,), "bn.bias": (4,)}
    shapes |= {"bn.running_mean": (4,), "bn.running_var": (4,), "fc.weight": (2, 4), "fc.bias": (2,)}
    state = {key: torch.rand(shape, generator=generator) for key, shape in shapes.items()}
    state["bn.num_batches_tracked"] = torch.tensor(3)
    return state


def _odd_tensor(torch, rng: random.Random, shape: tuple):
    """A tensor an honest state_dict would not hold in that place."""
    make = rng.choice(
        [
            lambda: torch.empty(shape, device="meta"),
            lambda: torch.zeros(shape).to_sparse(),
            lambda: torch.zeros(shape, dtype=torch.complex64),
            lambda: torch.zeros(shape, dtype=rng.choice([torch.int8, torch.int64, torch.bool, torch.float16])),
            lambda: torch.zeros(rng.choice([(0,), (1,), (*shape, 1), tuple(reversed(shape)), (2**20,)])),
            lambda: torch.zeros(64).as_strided(shape, [0] * len(shape)),
            lambda: torch.full(shape, float(rng.choice(["nan", "inf", "-inf"]))),
            lambda: rng.choice([3, "text", None, [1, 2], {"a": 1}, (torch.zeros(1),)]),
        ]
    )
    return make()


def _broken_state(torch, rng: random.Random) -> object:
    state = _state(torch, rng)
    key = rng.choice(sorted(state))
    change = rng.randrange(9)
    if change == 0:
        state[key] = _odd_tensor(torch, rng, tuple(state[key].shape))
    elif change == 1:
        state[rng.choice(["a." * rng.choice([33, 1000, 40000]) + "weight", "x" * rng.choice([501, 10**5])])] = (
            torch.zeros(1)
        )
    elif change == 2:
        del state[key]
    elif change == 3:
        state[rng.choice([7, ("a", 1), 2.5])] = torch.zeros(1)
    elif change == 4:
        state = {f"module.{name}": value for name, value in state.items()}
    elif change == 5:
        wrapper: dict = {"epoch": 1}
        wrapper[rng.choice(["state_dict", "model"])] = rng.choice([state, wrapper, {"model": wrapper}])
        return wrapper
    elif change == 6:
        return rng.choice([[state], 3, "state", None, {}, {"state_dict": 3}])
    elif change == 7:
        state = {f"renamed{index}.{name.split('.')[1]}": value for index, (name, value) in enumerate(state.items())}
    return state


def write(recipe: int, folder: Path) -> Path:
    """The checkpoint file of this recipe, in `folder`."""
    import torch

    rng = random.Random(recipe)
    form = rng.randrange(10)
    path = folder / f"checkpoint.{'safetensors' if form == 9 else 'pt'}"
    path.unlink(missing_ok=True)
    if form == 9:
        _write_safetensors(torch, rng, path)
        return path
    state = _state(torch, rng) if form < 2 else _broken_state(torch, rng)
    if form == 2:  # a right-shaped tensor viewing a large storage, recompressed: a small file, 128 MiB inflated
        state = _state(torch, rng)
        state["conv.weight"] = torch.zeros(BOMB_VALUES).as_strided((4, 3, 3, 3), (27, 9, 3, 1))
    torch.save(state, path)
    if form in (2, 3):
        _recompress(path)
    elif form == 4:
        _damage(path, rng)
    return path


def _recompress(path: Path) -> None:
    """The same zip with every entry DEFLATE-compressed, as any zip tool may rewrite it."""
    packed = path.with_suffix(".packed")
    with zipfile.ZipFile(path) as plain, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as out:
        for entry in plain.infolist():
            with plain.open(entry) as source, out.open(entry.filename, "w") as target:
                while chunk := source.read(2**24):
                    target.write(chunk)
    packed.replace(path)


def _damage(path: Path, rng: random.Random) -> None:
    data = bytearray(path.read_bytes())
    if rng.random() < 0.5:
        del data[rng.randrange(len(data)) :]
    else:
        for _ in range(rng.randrange(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    path.write_bytes(bytes(data))


def _write_safetensors(torch, rng: random.Random, path: Path) -> None:
    from safetensors.torch import save

    data = bytearray(save({key: value.contiguous() for key, value in _state(torch, rng).items()}))
    if rng.random() < 0.7:
        header = 8 + int.from_bytes(data[:8], "little")
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(min(header, len(data)))] = rng.randrange(256)
    path.write_bytes(bytes(data))


def run(path: Path) -> tuple[None, str]:
    """Load the file into the network for torch and for ONNX: (None, "loaded") when both took it, (None, "error
    FileProblem") and the like for a CnnDslError; anything else raised is the caller's escape."""
    import cnndsl

    network = cnndsl.parse(NETWORK)
    try:
        network.to_torch(weights=path)
        network.to_onnx(weights=path)
    except cnndsl.CnnDslError as error:
        return None, f"error {type(error).__name__}"
    return None, "loaded"
