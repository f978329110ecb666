"""Check that torchvision's weights fit the library's networks: same tensors, same order, same outputs.

    python docs/library/torchvision_check.py [--size N] [NAME...]   # default: every torchvision name, 64x64

For each network, torchvision 0.28's state_dict is loaded into cnndsl's module by position (the names
differ, the shapes must not), every one-per-channel tensor (norm weights and biases, layer scales) and
the BatchNorm statistics are randomised so they matter, and both models run on the same image in eval
mode. torchvision's RegNet registers a block's shortcut before its body; its tensors are taken in the
body-then-shortcut order cnndsl builds. tests/test_library.py pins the counts this implies.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import torch

import cnndsl

REFERENCE = Path(__file__).resolve().parents[2] / "tests" / "data" / "torchvision-all.md"
OPTIONS = {
    "googlenet": {"aux_logits": False, "init_weights": False},
    "inception_v3": {"aux_logits": False, "init_weights": False},
}
SEGMENTATION = {"num_classes": 21, "aux_loss": False, "weights": None, "weights_backbone": None}


def torchvision_names() -> list[str]:
    rows = [line.split("|") for line in REFERENCE.read_text(encoding="utf-8").splitlines()]
    return [cells[1].strip() for cells in rows if len(cells) == 7 and cells[2].strip().isdigit()]


def shortcut_after_body(state: dict) -> dict:
    """A RegNet block's `proj.` tensors moved after its `f.` tensors."""
    keys = list(state)

    def position(key: str) -> float:
        if ".proj." not in key:
            return keys.index(key)
        block = key.split(".proj.")[0]
        return max(i for i, other in enumerate(keys) if other.startswith(block + ".f.")) + 0.5 + keys.index(key) / 1e6

    return {key: state[key] for key in sorted(keys, key=position)}


def check(name: str, models, size: int) -> str:
    network = cnndsl.load(name, input=(3, size, size))
    ours = network.to_torch().eval()
    if hasattr(models.segmentation, name):
        theirs = getattr(models.segmentation, name)(**SEGMENTATION).eval()
    else:
        theirs = getattr(models, name)(**OPTIONS.get(name, {})).eval()
    with torch.no_grad():
        for parameter in theirs.parameters():
            if parameter.numel() == parameter.shape[0]:
                parameter.uniform_(-0.5, 0.5)
        for module in theirs.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
        reference = shortcut_after_body(theirs.state_dict())
        mine = ours.state_dict()
        shapes = [tuple(tensor.shape) for tensor in mine.values()]
        if shapes != [tuple(tensor.shape) for tensor in reference.values()]:
            return f"{name}: the tensors differ in shape or order"
        ours.load_state_dict(dict(zip(mine, reference.values())))
        image = torch.randn(1, 3, size, size)
        expected = theirs(image)
        expected = expected["out"] if isinstance(expected, dict) else expected
        difference = float((ours(image) - expected).abs().max() / expected.abs().max())
    return f"{name}: {len(shapes)} tensors load in order; outputs differ by at most {difference:.1e} (relative)"


def main(argv: list[str]) -> None:
    size = 64
    if argv[:1] == ["--size"]:
        size, argv = int(argv[1]), argv[2:]
    # torchvision's C ops do not load on torch's CPU build; its model constructors need none of them
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    import torchvision.models as models

    torch.manual_seed(0)
    torch.set_num_threads(1)
    for name in argv or torchvision_names():
        print(check(name, models, size if name != "inception_v3" else max(size, 75)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
