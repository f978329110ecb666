"""Trained weights into a network, for every backend: a checkpoint however it is saved or wrapped, matched
to the network's tensors (as its layers' kinds declare them) by name or by structure (cnndsl/weights/match.py),
handed over under the network's names.

A `.safetensors` file is read without importing torch; any other file only through
`torch.load(weights_only=True)`, which unpickles nothing but tensors and plain containers. A checkpoint's
author is not trusted: the zip's declared sizes are bounded by what the network can take before anything is
inflated, wrappers may not contain themselves, keys are bounded in length and depth, and only dense CPU
tensors are taken (docs/errors.md, "What an untrusted input can do").
"""

from __future__ import annotations

import math
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from ..core.atomic import write_atomically
from ..core.errors import FileProblem, ValueProblem
from .match import Match, match
from .slots import Given, Slot, network_slots

TORCHVISION = "torchvision"  # `weights="torchvision"`: torchvision's default published weights for the network
WRAPPERS = ("state_dict", "model")  # training checkpoints keep the state_dict under one of these
DDP_PREFIX = "module."
MAX_WRAPPERS = 16  # wrappers around a state_dict; a deeper (or self-containing) nesting holds none
MAX_KEY_LENGTH = 500  # characters of one key; real ones have under 100
MAX_KEY_DEPTH = 32  # dots in one key: each is a module level, and matching walks every prefix
SPARE_BYTES = 64 * 2**20  # what a zip may inflate to beyond its tensors' own bytes: the pickle, extra tensors
WIDEST_VALUE = 8  # bytes of a float64 or int64 value, the widest a state_dict holds
COPIES = 4  # a training checkpoint may also hold optimizer state: Adam keeps two values per weight


class PartialWeights(UserWarning):
    """A load with strict=False left some of the network's tensors as they were initialised."""


@dataclass
class Checkpoint:
    """A checkpoint's tensors (torch tensors or numpy arrays) by key, in its order, and how to name it."""

    tensors: Mapping[str, Any]
    origin: str
    owned: bool  # read from a file: the tensors are ours to keep, not shared with a caller's module

    def given(self) -> dict[str, Given]:
        return {key: _described(value) for key, value in self.tensors.items()}


def read(source: Any, network_name: str, slots: list[Slot]) -> Checkpoint:
    """A module, a state_dict, a `.pt`/`.pth`/`.safetensors` path, or `"torchvision"`, unwrapped; `slots`, the
    network's tensors, bound what a file may inflate to."""
    if isinstance(source, str) and source == TORCHVISION:
        state, origin, owned = *torchvision_state(network_name), True
    elif isinstance(source, (str, Path)):
        state, origin, owned = _read_file(Path(source), _inflation_bound(slots)), str(source), True
    elif callable(getattr(source, "state_dict", None)):
        state, origin, owned = source.state_dict(), "the module", False
    elif isinstance(source, Mapping):
        state, origin, owned = source, "the state_dict", False
    else:
        raise ValueProblem(
            f"cannot take weights from a {type(source).__name__}",
            hint='give a module, a state_dict, a .pt, .pth or .safetensors file, or "torchvision"',
        )
    return Checkpoint(_unwrapped(state, origin), origin, owned)


def resolve(graph, slots: list[Slot], checkpoint: Checkpoint, strict: bool) -> Match:
    """Match the checkpoint to the network: strict refuses anything unmatched; otherwise it is reported as a warning."""
    result = match(graph, slots, checkpoint.given(), checkpoint.origin)
    if result.complete:
        return result
    if strict:
        raise result.refusal()
    warnings.warn(PartialWeights(report_partial(result, slots)), stacklevel=4)
    return result


def report_partial(result: Match, slots: list[Slot]) -> str:
    weights = [slot for slot in slots if slot.floating]
    loaded = sum(1 for slot in weights if slot.key in result.pairs)
    lines = [f"loaded {loaded} of the network's {len(weights)} tensors from {result.origin}"]
    lines += [
        f"  {problem.pos}: {problem.message}" if problem.pos else f"  {problem.message}" for problem in result.problems
    ]
    return "\n".join(lines)


@dataclass
class WeightMap:
    """What `cnndsl weights NET CHECKPOINT` shows and writes: each tensor of the network and its partner."""

    network: Any
    slots: list[Slot]
    checkpoint: Checkpoint
    result: Match

    def listing(self) -> str:
        """One line per tensor (network key, shape <- checkpoint key, shape), then what did not match."""
        given = self.checkpoint.tensors
        weights = [slot for slot in self.slots if slot.floating]
        matched = [slot for slot in weights if slot.key in self.result.pairs]
        by_name = sum(1 for slot in matched if slot.key in self.result.by_name)
        width = max((len(slot.key) for slot in weights), default=0)
        lines = [
            f"{self.network.name} <- {self.checkpoint.origin}: {len(matched)} of {len(weights)} tensors matched "
            f"({by_name} by name, {len(matched) - by_name} by structure)"
        ]
        for slot in matched:
            partner = self.result.pairs[slot.key]
            lines.append(
                f"  {slot.key:<{width}}  {_shape_text(slot.shape):>14}  <-  {partner}  "
                f"{_shape_text(tuple(given[partner].shape))}"
            )
        if self.result.problems:
            lines.append("not matched:")
            lines += [
                f"  {problem.pos}: {problem.message}" if problem.pos else f"  {problem.message}"
                for problem in self.result.problems
            ]
        if self.result.unused:
            lines.append(f"not taken from the checkpoint: {', '.join(self.result.unused)}")
        if self.result.dropped:
            lines.append(f"left out (auxiliary heads the network does not have): {', '.join(self.result.dropped)}")
        return "\n".join(lines)

    def write(self, path: str | Path) -> Path:
        """The matched weights under the network's names, as one .safetensors file written atomically."""
        from safetensors.numpy import save

        return write_atomically(path, save(arrays(self.checkpoint, self.result, self.slots)))


def mapping(network, source: Any) -> WeightMap:
    """Match a checkpoint to the network without loading it anywhere (nothing raised for what does not match)."""
    slots = network_slots(network.graph)
    checkpoint = read(source, network.name, slots)
    return WeightMap(network, slots, checkpoint, match(network.graph, slots, checkpoint.given(), checkpoint.origin))


def _shape_text(shape: tuple) -> str:
    return "×".join(map(str, shape)) if shape else "scalar"


# ---- torch ----------------------------------------------------------------------------------------------
def load_into(module, network, source: Any, strict: bool) -> bool:
    """Load the checkpoint into the module, whose state_dict holds the tensors the network's kinds declare;
    returns False if tensors of the module remain uninitialised (built on the meta device, with buffers no
    state_dict holds)."""
    import torch

    slots = network_slots(network.graph)
    checkpoint = read(source, network.name, slots)
    result = resolve(network.graph, slots, checkpoint, strict)
    state = {}
    for slot in slots:
        if slot.key in result.pairs:
            state[slot.key] = _as_tensor(checkpoint.tensors[result.pairs[slot.key]], slot, copy=not checkpoint.owned)
        elif not slot.floating and strict:
            state[slot.key] = torch.zeros(slot.shape, dtype=torch.long)  # a step count the checkpoint lacks
    module.load_state_dict(state, strict=strict, assign=strict)
    return not any(tensor.is_meta for tensor in (*module.parameters(), *module.buffers()))


def _as_tensor(value: Any, slot: Slot, copy: bool):
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value.detach()
    tensor = tensor.reshape(slot.shape).to(torch.float32 if slot.floating else torch.long)
    return tensor.clone() if copy else tensor.contiguous()


# ---- numpy (ONNX, safetensors) ----------------------------------------------------------------------------
def arrays(checkpoint: Checkpoint, result: Match, slots: list[Slot]) -> dict[str, np.ndarray]:
    """The matched weights as float32 arrays under the network's names (step counts left out)."""
    return {
        slot.key: as_float32(checkpoint.tensors[result.pairs[slot.key]], slot.shape)
        for slot in slots
        if slot.floating and slot.key in result.pairs
    }


def as_float32(value: Any, shape: tuple) -> np.ndarray:
    """A numpy float32 array of `shape` from a numpy array or a torch tensor of any float width."""
    if hasattr(value, "detach"):
        tensor = value.detach().cpu()
        value = (tensor.float() if tensor.is_floating_point() else tensor).numpy()
    # np.require, not np.ascontiguousarray, which makes a scalar (a 0-d logit scale) a 1-vector
    return np.require(np.asarray(value).reshape(shape), dtype=np.float32, requirements="C")


# ---- reading ---------------------------------------------------------------------------------------------
def _read_file(path: Path, inflation_bound: int) -> Any:
    if not path.is_file():
        raise FileProblem(f"cannot read weights: {path} does not exist")
    if path.suffix != ".safetensors":
        _require_inflation_within(path, inflation_bound)
    try:
        if path.suffix == ".safetensors":
            from safetensors.numpy import load_file

            return load_file(str(path))
        import torch

        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # the loaders raise many types for a damaged or foreign file
        raise FileProblem(
            f"cannot read weights from {path}: {error}", hint="give a state_dict saved with torch.save or safetensors"
        ) from None


def _inflation_bound(slots: list[Slot]) -> int:
    """The most bytes a checkpoint for these tensors may inflate to: each at the widest dtype, with optimizer
    state beside it, plus room for the pickle and for tensors the network does not take."""
    return COPIES * WIDEST_VALUE * sum(math.prod(slot.shape) for slot in slots) + SPARE_BYTES


def _require_inflation_within(path: Path, bound: int) -> None:
    """Refuse a zip (torch.save's format) whose central directory declares more than `bound` bytes once
    inflated, before torch reads a byte of it: a small file can hold gigabytes of DEFLATE-compressed zeros."""
    try:
        if not zipfile.is_zipfile(path):  # which itself raises for some damaged end records
            return  # torch's legacy format stores tensors raw, so the file's own size bounds them
        with zipfile.ZipFile(path) as archive:
            declared = sum(entry.file_size for entry in archive.infolist())
    except Exception as error:  # zipfile raises many types for a damaged central directory
        raise FileProblem(
            f"cannot read weights from {path}: a damaged zip ({type(error).__name__}: {error})",
            hint="save the state_dict again with torch.save",
        ) from None
    if declared > max(bound, path.stat().st_size):
        raise FileProblem(
            f"cannot read weights from {path}: it inflates to {declared:,} bytes, more than the {bound:,} "
            "this network's tensors can take",
            hint="save the state_dict of the network it was trained for with torch.save",
        )


def _unwrapped(state: Any, origin: str) -> dict[str, Any]:
    """The state_dict inside a training checkpoint (`{"state_dict": ...}`, `{"model": ...}`), without the
    `module.` prefix DistributedDataParallel adds. A wrapper that contains itself ends the search."""
    seen: set[int] = set()
    while isinstance(state, Mapping) and not _holds_tensors(state) and len(seen) < MAX_WRAPPERS:
        seen.add(id(state))
        inner = next((state[key] for key in WRAPPERS if isinstance(state.get(key), Mapping)), None)
        if inner is None or id(inner) in seen:
            break
        state = inner
    if not isinstance(state, Mapping) or not _holds_tensors(state):
        raise FileProblem(
            f"{origin} holds no state_dict (a mapping of parameter names to tensors)",
            hint='save `module.state_dict()`, or a checkpoint holding it under "state_dict" or "model"',
        )
    keys = [str(key) for key in state]
    for key, value in zip(keys, state.values()):
        _require_plain(key, value, origin)
    if all(key.startswith(DDP_PREFIX) for key in keys):
        return {key[len(DDP_PREFIX) :]: value for key, value in zip(keys, state.values())}
    return dict(zip(keys, state.values()))


def _require_plain(key: str, value: Any, origin: str) -> None:
    """A key short and shallow enough to match, naming a dense tensor with values (not meta, sparse or quantized)."""
    if len(key) > MAX_KEY_LENGTH or key.count(".") > MAX_KEY_DEPTH:
        raise FileProblem(
            f"{origin} holds a key longer than {MAX_KEY_LENGTH} characters or deeper than {MAX_KEY_DEPTH} levels: "
            f"`{key[:60]}`…",
            hint="a state_dict's keys name modules, a few levels deep",
        )
    layout, device = str(getattr(value, "layout", "torch.strided")), str(getattr(value, "device", "cpu"))
    what = (
        "on the meta device"
        if device == "meta"
        else f"layout {layout.removeprefix('torch.')}"
        if layout != "torch.strided"
        else "quantized"
        if getattr(value, "is_quantized", False)
        else None
    )
    if what:
        raise FileProblem(
            f"{origin} holds `{key[:MAX_KEY_LENGTH]}` as a tensor without plain values ({what})",
            hint="save dense tensors: `.to_dense()`, `.dequantize()`, or real weights instead of the meta device",
        )


def _holds_tensors(state: Mapping) -> bool:
    return all(hasattr(value, "shape") and hasattr(value, "dtype") for value in state.values())


def _described(value: Any) -> Given:
    if hasattr(value, "is_floating_point"):
        return Given(tuple(value.shape), str(value.dtype).removeprefix("torch."), value.is_floating_point())
    array = np.asarray(value)
    return Given(tuple(array.shape), str(array.dtype), array.dtype.kind == "f")


# ---- torchvision's published weights -------------------------------------------------------------------------
def torchvision_state(name: str) -> tuple[Any, str]:
    """torchvision's default weights for the network of this name, through torch.hub's cache as torchvision
    loads them (`$TORCH_HOME/hub/checkpoints`), downloaded once where the machine is online."""
    import torch

    try:
        import torchvision.models
    except Exception as error:  # a torchvision built for another torch fails in its C ops
        raise ValueProblem(
            f"`torchvision` weights need torchvision, which cannot be imported here: {error}",
            hint="install the torchvision that matches this torch, or give a checkpoint file",
        ) from None
    try:
        url = torchvision.models.get_model_weights(name).DEFAULT.url
    except (ValueError, KeyError, AttributeError):
        raise ValueProblem(
            f"torchvision publishes no weights for a network called `{name}`", hint="give a checkpoint file instead"
        ) from None
    file = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    try:
        state = torch.hub.load_state_dict_from_url(url, map_location="cpu", check_hash=True, weights_only=True)
    except Exception as error:  # urllib's errors offline; torch.load's for a damaged file
        if file.is_file():
            raise FileProblem(
                f"cannot read weights from {file}: {error}", hint=f"delete it to download it again from {url}"
            ) from None
        raise FileProblem(
            f"torchvision's weights for `{name}` are not in torch.hub's cache ({file}) and cannot be "
            f"downloaded from {url}: {error}",
            hint=f"download {url} into {file.parent} (set TORCH_HOME to use another folder)",
        ) from None
    return state, str(file)
