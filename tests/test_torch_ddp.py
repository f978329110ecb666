"""A compiled network trains under DistributedDataParallel: two gloo processes, different data on each,
one SGD step; both ranks end with the same gradients and weights (BatchNorm's running statistics stay
per rank until DDP broadcasts rank 0's at the next forward), and those are what one process
computes by averaging the two ranks' gradients itself."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import cnndsl

WORLD = 2
INPUT = (3, 32, 32)
LEARNING_RATE = 0.1


def _network():
    return cnndsl.load("resnet18", input=INPUT, classes=10).to_torch(init="kaiming", seed=0)


def _batch(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(100 + rank)
    return torch.randn(4, *INPUT, generator=generator), torch.randint(0, 10, (4,), generator=generator)


def _train_one_step(rank: int, store: str, results: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        model = DistributedDataParallel(_network())
        optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
        images, labels = _batch(rank)
        loss = nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        gradients = {name: parameter.grad.clone() for name, parameter in model.module.named_parameters()}
        optimizer.step()
        weights = {name: parameter.detach().clone() for name, parameter in model.module.named_parameters()}
        torch.save({"loss": loss.item(), "gradients": gradients, "weights": weights}, f"{results}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _averaged_gradients() -> dict[str, torch.Tensor]:
    """What DDP should produce: each rank's gradient on its own batch (BatchNorm statistics per rank), averaged."""
    model = _network().train()
    total: dict[str, torch.Tensor] = {}
    for rank in range(WORLD):
        images, labels = _batch(rank)
        model.zero_grad()
        nn.functional.cross_entropy(model(images), labels).backward()
        for name, parameter in model.named_parameters():
            total[name] = total.get(name, 0) + parameter.grad / WORLD
    return total


def test_ddp_with_two_gloo_processes_agrees_on_gradients_and_updated_weights(tmp_path):
    mp.spawn(_train_one_step, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=True)
    first, second = (torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD))
    assert first["loss"] != second["loss"]  # the ranks saw different data
    assert list(first["gradients"]) == list(second["gradients"]) and len(first["gradients"]) == 62
    for name, gradient in first["gradients"].items():
        assert gradient.abs().sum() > 0, name
        assert torch.equal(gradient, second["gradients"][name]), name
    for name, tensor in first["weights"].items():
        assert torch.equal(tensor, second["weights"][name]), name
    initial = _network().state_dict()
    for name, expected in _averaged_gradients().items():
        tolerance = 1e-5 * expected.abs().max().item()  # thread counts differ: sums in another order
        torch.testing.assert_close(first["gradients"][name], expected, rtol=1e-4, atol=tolerance)
        torch.testing.assert_close(
            first["weights"][name], initial[name] - LEARNING_RATE * expected, rtol=1e-4, atol=LEARNING_RATE * tolerance
        )
