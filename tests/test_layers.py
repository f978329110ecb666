"""Each layer kind computes what an independent reference computes: torch.nn.functional, torch.nn or
torchvision.ops on small random inputs, through both the compiled torch module and the ONNX export
(onnxruntime); and its figures (params, MACs, receptive field) are the hand-counted ones."""
from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
import torch
import torch.nn.functional as F

import cnndsl
from cnndsl.backends.onnx import build_model
from cnndsl.errors import CnnDslError

TOLERANCE = 1e-5  # absolute, on outputs of order 1: well below the effect of any attribute tested (eps=1e-3, ...)


def compile_network(body: str, shape: str = "4x6x5"):
    """A one-network file from the lines of its body, compiled to torch (eval, seeded weights) and ONNX."""
    network = cnndsl.parse(f"network n {{\n    x: input {shape}\n{body}\n}}")
    module = network.to_torch(seed=0).eval()
    with torch.no_grad():  # weights that are not PyTorch's defaults, so a misplaced one shows
        for parameter in module.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1)) * 0.3)
    session = onnxruntime.InferenceSession(build_model(network, weights=module).SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    return network, module, session


def both(network, module, session, images: torch.Tensor) -> list[torch.Tensor]:
    """The torch module's output and onnxruntime's, for the same images."""
    with torch.no_grad():
        from_torch = module(images)
    from_onnx = session.run(None, {network.input_name: images.numpy()})[0]
    return [from_torch, torch.from_numpy(from_onnx)]


def images(shape: str, batch: int = 3, seed: int = 0) -> torch.Tensor:
    dims = [int(d) for d in shape.split("x")]
    return torch.randn(batch, *dims, generator=torch.Generator().manual_seed(seed))


def assert_computes(body: str, reference, shape: str = "4x6x5"):
    """The torch module and the ONNX export both equal `reference(images, module)`; returns the network."""
    network, module, session = compile_network(body, shape)
    x = images(shape)
    with torch.no_grad():
        expected = reference(x, module)
    for got in both(network, module, session, x):
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=TOLERANCE, rtol=0), (got - expected).abs().max()
    return network


def figures(network, name: str) -> dict:
    data = next(data for _, data in network.graph.nodes(data=True) if data["name"] == name)
    return {key: data[key] for key in ("shape", "params", "macs", "rf", "jump")}


# ---- mul ---------------------------------------------------------------------------------
def test_mul_by_a_constant_scales():
    assert_computes("relu, mul(0.5)", lambda x, m: F.relu(x) * 0.5)
