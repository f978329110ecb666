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
from oracles import torchvision_models

TOLERANCE = 1e-5  # absolute, on outputs of order 1: well below the effect of any attribute tested (eps=1e-3, ...)


def torchvision_ops():
    """`torchvision.ops`, importable on the CPU build of torch (see tests/oracles.py)."""
    torchvision_models()
    import torchvision.ops

    return torchvision.ops


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


# ---- stochastic depth -------------------------------------------------------------------------
def test_stochastic_depth_is_the_identity_in_eval_mode():
    assert_computes("conv3x3(4), stochasticdepth(0.3)", lambda x, m: m.conv(x))


def test_stochastic_depth_drops_whole_samples_at_rate_p_and_rescales_survivors_as_torchvision_does():
    stochastic_depth = torchvision_ops().stochastic_depth
    module = cnndsl.parse("network n { input 4x2x2\n droppath(0.25) }").to_torch().train()
    x = images("4x2x2", batch=4000) + 3  # no sample is zero by chance
    torch.manual_seed(7)
    out = module(x)
    torch.manual_seed(7)
    assert torch.equal(out, stochastic_depth(x, 0.25, "row", training=True))  # the same mask from the same seed
    dropped = (out == 0).flatten(1).all(1)
    kept = torch.allclose(out[~dropped], x[~dropped] / 0.75, rtol=1e-6, atol=0)
    assert kept and ((out == 0) == dropped.view(-1, 1, 1, 1)).all()  # a sample is dropped whole or kept whole
    # 4000 samples: the drop rate's standard deviation is sqrt(0.25 · 0.75 / 4000) = 0.0068; allow 4 of them
    assert abs(dropped.float().mean().item() - 0.25) < 4 * 0.0068


def test_stochastic_depth_at_the_end_of_a_residual_body_drops_the_body_not_the_shortcut():
    network = cnndsl.parse("network n { input 4x3x3\n residual { conv3x3(4), stochasticdepth(0.5) } }")
    module = network.to_torch(seed=0).train()
    x = images("4x3x3", batch=400)
    with torch.no_grad():
        body, out = module.conv(x), module(x)
    dropped = torch.isclose(out, x, atol=1e-6).flatten(1).all(1)
    assert torch.allclose(out[~dropped], x[~dropped] + body[~dropped] / 0.5, atol=1e-5)
    assert 0.4 < dropped.float().mean().item() < 0.6  # 400 samples: sd 0.025, 4 of them
    assert [name for name, _ in module.named_children()] == ["conv", "stochasticdepth"]
