"""Loading a torchvision ResNet-50 checkpoint: cnndsl's module beside torchvision's own.

    python bench/weights.py [--rounds 7]

Prints, in one run, the whole process of each side, from interpreter start to a module holding the
checkpoint's weights: `cnndsl.load("resnet50").to_torch(weights=path)` (matched by structure: no key
agrees but `fc`) and `torchvision.models.resnet50()` + `load_state_dict(torch.load(path))`. The rounds
alternate the two sides so that a busy machine affects both alike; each side's best and median are
printed, with their ratio. Goal: cnndsl no slower.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from timing import Pair, timed_process

ROOT = Path(__file__).resolve().parent.parent
STUB = (
    "import sys, types; sys.modules.setdefault('torchvision._meta_registrations', "
    "types.ModuleType('torchvision._meta_registrations'))\n"
)  # torchvision's C ops need not load on CPU torch

SIDES = {
    "cnndsl": "import cnndsl\nmodule = cnndsl.load('resnet50').to_torch(weights={path!r})\n",
    "torchvision": STUB
    + (
        "import torch, torchvision\nmodule = torchvision.models.resnet50()\n"
        "module.load_state_dict(torch.load({path!r}, map_location='cpu', weights_only=True))\n"
    ),
}
CHECK = "assert abs(module.state_dict()[{key!r}].sum().item() - {total!r}) < 1e-3\n"


def _checkpoint(folder: Path) -> tuple[Path, str, float]:
    """torchvision's ResNet-50 state_dict with random weights, saved as torch.save writes it."""
    script = STUB + (
        "import torch, torchvision\ntorch.manual_seed(0)\nstate = torchvision.models.resnet50().state_dict()\n"
        f"torch.save(state, {str(folder / 'resnet50.pth')!r})\nprint(state['layer4.2.conv3.weight'].sum().item())"
    )
    total = float(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout)
    return folder / "resnet50.pth", "layer4.bottleneck3.conv3.weight", total


def _run(code: str) -> float:
    return timed_process([sys.executable, "-c", code], cwd=ROOT)


@contextmanager
def _sides() -> Iterator[dict[str, str]]:
    """Each side's program, loading the same fresh torchvision ResNet-50 checkpoint."""
    with tempfile.TemporaryDirectory() as folder:
        path, key, total = _checkpoint(Path(folder))
        codes = {side: code.format(path=str(path)) for side, code in SIDES.items()}
        codes["cnndsl"] += CHECK.format(key=key, total=total)  # the weights arrived where they belong
        yield codes


@contextmanager
def load_pair() -> Iterator[Pair]:
    """The whole process of loading the checkpoint into cnndsl's module beside torchvision's own route."""
    with _sides() as codes:
        yield Pair(lambda: _run(codes["cnndsl"]), lambda: _run(codes["torchvision"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    with _sides() as codes:
        for code in codes.values():
            _run(code)  # warm the file cache and write bytecode, as a user's second run would find them
        times: dict[str, list[float]] = {side: [] for side in codes}
        for _ in range(rounds):
            for side, code in codes.items():
                times[side].append(_run(code))
    print(f"whole process, ResNet-50 checkpoint into a module ({rounds} alternating rounds)")
    for side, values in times.items():
        print(f"  {side:<12} best {min(values):6.2f} s   median {statistics.median(values):6.2f} s")
    best = min(times["cnndsl"]) / min(times["torchvision"])
    median = statistics.median(times["cnndsl"]) / statistics.median(times["torchvision"])
    print(f"  cnndsl / torchvision: best {best:.2f}, median {median:.2f} (goal: at most 1.00)")


if __name__ == "__main__":
    main()
