"""Check that torchvision's weights fit the library's networks: same tensors, same order, same outputs.

    python docs/library/torchvision_check.py [NAME...]   # needs torchvision; default: every shared name

For each network, torchvision's state_dict is loaded into cnndsl's module by position (the names
differ, the shapes must not), BatchNorm statistics are randomised so they matter, and both models
run on the same image in eval mode. torchvision is not a dependency, so the test suite cannot run
this; tests/test_library.py pins the counts it implies.
"""
from __future__ import annotations

import sys

import torch

import cnndsl
from cnndsl.library import network_names

OPTIONS = {"googlenet": {"aux_logits": False, "init_weights": False}}


def check(name: str, models) -> str:
    network = cnndsl.load(name)
    ours = network.to_torch().eval()
    theirs = getattr(models, name)(**OPTIONS.get(name, {})).eval()
    with torch.no_grad():
        for module in theirs.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
        reference = theirs.state_dict()
        mine = ours.state_dict()
        shapes = [tuple(tensor.shape) for tensor in mine.values()]
        if shapes != [tuple(tensor.shape) for tensor in reference.values()]:
            return f"{name}: the tensors differ in shape or order"
        ours.load_state_dict(dict(zip(mine, reference.values())))
        image = torch.randn(1, *network.input_shape)
        difference = float((ours(image) - theirs(image)).abs().max())
    return f"{name}: {len(shapes)} tensors load in order; outputs differ by at most {difference:.1e}"


def main(names: list[str]) -> None:
    import torchvision.models as models

    torch.manual_seed(0)
    for name in names or [name for name, _ in network_names() if hasattr(models, name)]:
        print(check(name, models))


if __name__ == "__main__":
    main(sys.argv[1:])
