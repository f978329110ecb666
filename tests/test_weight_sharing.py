"""`shared(@t)`: one layer used twice (issue 26, point 2). The parameters are counted once, torch holds and
calls one module, ONNX one initializer per tensor, `--to python` one attribute, and the weights API maps one
tensor; equal layers written twice stay two. Oracles: a hand count, torch's own module graph and state_dict,
onnxruntime, and the same convolution applied twice with torch.nn.functional."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from test_onnx import _session

import cnndsl
from cnndsl.backends.onnx import build_model
from cnndsl.backends.torch import standalone_source
from cnndsl.backends.torch_source import class_name
from cnndsl.core.errors import CnnDslError
from cnndsl.weights.checkpoint import mapping

SIAMESE = """network siamese {
    input 3x16x16
    a: conv3x3(8), relu
    head: conv3x3(4), p: relu
    @a, maxpool, shared(@head), relu, upsample(2)
    add(@p)
}
"""
HEAD_PARAMS = 4 * 8 * 9 + 4  # the shared 3×3 convolution, 8 -> 4 channels, with its bias
PARAMS = (8 * 3 * 9 + 8) + HEAD_PARAMS


def _reference(module, images: torch.Tensor) -> torch.Tensor:
    """The network computed with torch.nn.functional from the module's tensors, the head's conv applied twice."""
    conv1, conv2 = module.conv1, module.conv2
    a = F.conv2d(images, conv1.weight, conv1.bias, padding=1)
    first = torch.relu(F.conv2d(torch.relu(a), conv2.weight, conv2.bias, padding=1))
    second = torch.relu(F.conv2d(F.max_pool2d(a, 2), conv2.weight, conv2.bias, padding=1))
    return F.interpolate(second, scale_factor=2, mode="nearest") + first


def test_a_shared_layer_is_counted_once_and_torch_calls_one_module_twice():
    network = cnndsl.parse(SIAMESE, file="s.cnn")
    assert network.params == PARAMS
    module = network.to_torch(seed=0).eval()
    assert sorted(module.state_dict()) == ["conv1.bias", "conv1.weight", "conv2.bias", "conv2.weight"]
    assert sum(p.numel() for p in module.parameters()) == PARAMS
    calls = [node.target for node in module.graph.nodes if node.op == "call_module"]
    assert calls.count("conv2") == 2
    images = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(module(images), _reference(module, images))
    # the shared use costs its MACs (it computes) but no parameters: 4·8·9 MACs at each of 8×8 positions
    summary = network.summary().to_dict()
    shared = next(layer for layer in summary["layers"] if layer["name"] == "conv3")
    assert (shared["params"], shared["macs"]) == (0, 4 * 8 * 9 * 8 * 8)
    assert "conv3: conv 3×3, 4, shared with conv2" in str(network.summary())


def test_backward_sums_the_gradients_of_both_uses_into_the_one_weight():
    network = cnndsl.parse(SIAMESE, file="s.cnn")
    module = network.to_torch(seed=0)
    images = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    module(images).square().sum().backward()
    weight = module.conv2.weight
    (expected,) = torch.autograd.grad(_reference(module, images).square().sum(), [weight])
    torch.testing.assert_close(weight.grad, expected)


def test_onnx_holds_one_initializer_per_tensor_and_computes_what_torch_computes():
    network = cnndsl.parse(SIAMESE, file="s.cnn")
    module = network.to_torch(seed=0).eval()
    model = build_model(network, weights=module)
    onnx.checker.check_model(model, full_check=True)
    weights = sorted(t.name for t in model.graph.initializer if len(t.dims) > 1)
    assert weights == ["conv1.weight", "conv2.weight"]
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    assert [node.input[1] for node in convs] == ["conv1.weight", "conv2.weight", "conv2.weight"]
    images = np.random.default_rng(0).standard_normal((2, 3, 16, 16), dtype=np.float32)
    (got,) = _session(model).run(None, {network.input_name: images})
    with torch.no_grad():
        expected = module(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_python_source_writes_one_attribute_called_twice_and_loads_the_state_dict():
    network = cnndsl.parse(SIAMESE, file="s.cnn")
    text = standalone_source(network)
    assert text.count("self.conv2 = nn.Conv2d(8, 4,") == 1
    assert text.count("= self.conv2(") == 2
    namespace: dict = {}
    exec(compile(text, "s.py", "exec"), namespace)  # noqa: S102  (the source just written)
    written = namespace[class_name(network.name)]().eval()
    module = network.to_torch(seed=0).eval()
    written.load_state_dict(module.state_dict(), strict=True)
    images = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(written(images), module(images))


TWICE = """block twice(c) {
    head: conv3x3(c), relu, shared(@head), relu
}

network n {
    input 3x16x16
    conv3x3(8), twice(8), maxpool, twice(8)
}
"""


def test_a_block_that_shares_a_layer_is_one_class_calling_its_one_module_twice():
    """The compact source: the block's class holds the shared convolution once and calls it twice; its two
    instances are two objects of that class, each with its own convolution, as to_torch builds them."""
    network = cnndsl.parse(TWICE, file="t.cnn")
    text = standalone_source(network)
    block = text[text.index("class Twice(nn.Module):") : text.index("class N(nn.Module):")]
    assert block.count("= nn.Conv2d(") == 1 and block.count("self.conv1(") == 2
    assert text.count("= Twice(") == 2
    namespace: dict = {}
    exec(compile(text, "t.py", "exec"), namespace)  # noqa: S102  (the source just written)
    written = namespace["N"]().eval()
    module = network.to_torch(seed=0).eval()
    written.load_state_dict(module.state_dict(), strict=True)
    assert sum(p.numel() for p in written.parameters()) == network.params == (3 * 9 + 1) * 8 + 2 * (8 * 9 + 1) * 8
    images = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = module.conv(images)
        for block in (module.twice1, module.twice2):  # each block's convolution twice, a max pool between
            expected = torch.relu(block.conv1(torch.relu(block.conv1(expected))))
            expected = F.max_pool2d(expected, 2) if block is module.twice1 else expected
        torch.testing.assert_close(module(images), expected)
        torch.testing.assert_close(written(images), expected)


def test_a_stage_that_shares_a_layer_from_outside_it_is_written_unrolled_and_computes_the_same():
    """A class reaches only its own modules: the stage that uses the network's head is no class of its own,
    and the file, every layer spelt out, calls the one head twice."""
    network = cnndsl.parse(_net("head: conv3x3(3)", "stage s { relu, shared(@head), relu, conv3x3(4) }"), file="t.cnn")
    text = standalone_source(network)
    assert "self.s = nn.Module()" in text and "class S(" not in text
    assert re.findall(r"= self\.conv\((\w+)\)", text) == ["x", "x"]
    namespace: dict = {}
    exec(compile(text, "t.py", "exec"), namespace)  # noqa: S102  (the source just written)
    written = namespace["N"]().eval()
    module = network.to_torch(seed=0).eval()
    written.load_state_dict(module.state_dict(), strict=True)
    images = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        twice = module.conv(torch.relu(module.conv(images)))
        torch.testing.assert_close(module(images), module.s.conv2(torch.relu(twice)))
        torch.testing.assert_close(written(images), module(images))


def test_the_weights_api_maps_one_tensor_for_the_shared_layer(tmp_path):
    network = cnndsl.parse(SIAMESE, file="s.cnn")
    state = {key: torch.randn(value.shape) for key, value in network.to_torch(seed=0).state_dict().items()}
    found = mapping(network, state)
    assert [slot.key for slot in found.slots] == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"]
    assert (
        found.listing().splitlines()[0]
        == "siamese <- the state_dict: 4 of 4 tensors matched (4 by name, 0 by structure)"
    )
    loaded = network.to_torch(weights=state).eval()
    torch.testing.assert_close(loaded.conv2.weight, state["conv2.weight"])
    images = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), _reference(loaded, images))


def test_equal_layers_written_twice_are_two_modules_never_shared_by_accident():
    network = cnndsl.parse(SIAMESE.replace("shared(@head)", "conv3x3(4)"), file="s.cnn")
    assert network.params == PARAMS + HEAD_PARAMS
    assert "conv3.weight" in network.to_torch().state_dict()


def test_a_shared_layer_may_read_another_spatial_size_as_a_pyramid_head_does():
    network = cnndsl.parse(
        "network fpn {\n  input 8x16x16\n  head: conv3x3(8), p3: relu\n  maxpool, shared(@head), relu\n}\n"
    )
    assert network.params == 8 * 8 * 9 + 8
    module = network.to_torch().eval()
    images = torch.randn(1, 8, 16, 16)
    weight, bias = module.conv1.weight, module.conv1.bias
    with torch.no_grad():
        first = torch.relu(F.conv2d(images, weight, bias, padding=1))
        expected = torch.relu(F.conv2d(F.max_pool2d(first, 2), weight, bias, padding=1))
        torch.testing.assert_close(module(images), expected)


def _net(*lines: str) -> str:
    return "network n {\n    input 3x16x16\n" + "".join(f"    {line}\n" for line in lines) + "}\n"


@pytest.mark.parametrize(
    "lines,expected,hint",
    [
        (
            ("head: conv3x3(8)", "conv3x3(4), shared(@head)"),
            "t.cnn:4:17: error: `shared(@head)` cannot use `conv` @head, made for 3×16×16, on 4×16×16: its weights "
            "would differ",
            "share a layer where its input has the channels (and axes) it was made for",
        ),
        (
            ("head: (conv3x3(8), relu)", "shared(@head)"),
            "t.cnn:4:12: error: `@head` labels a group or block, not one layer",
            "`shared` uses one layer again: label that layer itself, e.g. `head: conv3x3(64)`",
        ),
        (
            ("conv3x3(8), r: relu", "shared(@r)"),
            "t.cnn:4:12: error: `relu` @r holds no weights: there is nothing to share",
            "write `relu` again: without weights, two uses are the same layer",
        ),
        (
            ("head: conv3x3(8)", "shared(@head, 2)"),
            "t.cnn:4:5: error: `shared` takes one @tap, the labelled layer to use again",
            "label the layer, `head: conv3x3(64)`, then write `shared(@head)` where it is used again",
        ),
        (
            ("conv3x3(8)", "shared(@in)"),
            "t.cnn:4:12: error: `@in` labels the input, not one layer",
            "`shared` uses one layer again: label that layer itself, e.g. `head: conv3x3(64)`",
        ),
        (
            ("head: fc(10)", "@in, maxpool, shared(@head)"),
            "t.cnn:4:19: error: `shared(@head)` cannot use `fc` @head, made for 3×16×16, on 3×8×8: its weights "
            "would differ",
            "share a layer where its input has the channels (and axes) it was made for",
        ),
    ],
    ids=["other-channels", "group", "no-weights", "extra-argument", "input", "fc-other-size"],
)
def test_a_share_that_cannot_be_is_refused_where_it_is_written(lines, expected, hint):
    with pytest.raises(CnnDslError) as caught:
        cnndsl.parse(_net(*lines), file="t.cnn")
    assert caught.value.render().splitlines()[0] == expected
    assert caught.value.hint == hint
