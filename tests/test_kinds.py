"""Every layer kind, from what it declares (cnndsl/ops/tensors.py): its example builds in torch and in ONNX, each
holding exactly the tensors the kind declares (names, shapes, parameter or buffer, initial values), the
parameter count is torch's, and onnxruntime computes what torch computes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from test_onnx import TOLERANCE, _assert_inferred_shapes_agree, _session, _torch_outputs

import cnndsl
from cnndsl.backends.onnx import build_model
from cnndsl.graph import ir
from cnndsl.ops import REGISTRY
from cnndsl.ops.tensors import BUFFER, PARAMETER, Ramp, Table, Uniform

KINDS = sorted(name for name, kind in REGISTRY.items() if kind.called_by_name)


def _example(name: str):
    """The kind's example as a network, the name of its layer of that kind, and the tensors the kind declares."""
    kind = REGISTRY[name]
    network = cnndsl.parse(kind.example.network(f"example_{name}"))
    node = max(node for node, layer in ir.layers(network.graph) if layer.op == name)
    layer = ir.layer(network.graph, node)
    return network, node, layer.name, kind.tensors(layer.attrs, ir.input_shapes(network.graph, node))


def _owned(key: str, layer: str) -> bool:
    return key == layer or key.startswith(layer + ".")


def test_every_kind_called_by_name_has_an_example_and_the_input_none():
    assert [name for name in KINDS if REGISTRY[name].example is None] == []
    assert REGISTRY["input"].example is None and not REGISTRY["input"].called_by_name


@pytest.mark.parametrize("name", KINDS)
def test_the_example_holds_in_torch_the_tensors_its_kind_declares_starting_where_torch_starts(name):
    network, node, layer, specs = _example(name)
    module = network.to_torch(seed=0)
    parameters = {key: tensor for key, tensor in module.named_parameters() if _owned(key, layer)}
    buffers = {key: tensor for key, tensor in module.named_buffers() if _owned(key, layer)}
    assert {key: (tuple(tensor.shape), tensor.requires_grad) for key, tensor in parameters.items()} == {
        spec.key(layer): (spec.shape, spec.trainable) for spec in specs if spec.role == PARAMETER
    }
    assert {key: (tuple(tensor.shape), str(tensor.dtype)) for key, tensor in buffers.items()} == {
        spec.key(layer): (spec.shape, f"torch.{spec.dtype}") for spec in specs if spec.role == BUFFER
    }
    kind, layer_record, shapes = REGISTRY[name], ir.layer(network.graph, node), ir.input_shapes(network.graph, node)
    assert kind.params(layer_record.attrs, shapes) == sum(t.numel() for t in parameters.values())
    assert kind.buffers(layer_record.attrs, shapes) == sum(t.numel() for t in buffers.values())
    assert layer_record.figures.params == sum(t.numel() for t in parameters.values())
    state = module.state_dict()
    for spec in specs:
        _assert_starts_as_declared(state[spec.key(layer)].double().numpy(), spec)


@pytest.mark.parametrize("name", KINDS)
def test_the_example_exports_to_onnx_with_the_declared_tensors_and_computes_what_torch_computes(name):
    network, _, layer, specs = _example(name)
    module = _randomised(network.to_torch(seed=0).eval())
    model = build_model(network, weights=module)
    onnx.checker.check_model(model, full_check=True)
    _assert_inferred_shapes_agree(network, model)
    given = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    declared = {spec.key(layer): spec.shape for spec in specs if spec.floating}
    assert {key: value.shape for key, value in given.items() if _owned(key, layer)} == declared
    state = module.state_dict()
    for key in declared:
        np.testing.assert_array_equal(given[key], state[key].numpy())
    images = np.random.default_rng(0).standard_normal((3, *network.input_shape), dtype=np.float32)
    (expected,) = _torch_outputs(module, images)
    (got,) = _session(model).run(None, {network.input_name: images})
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= TOLERANCE * np.abs(expected).max()
    fresh = {tensor.name: numpy_helper.to_array(tensor) for tensor in build_model(network).graph.initializer}
    for spec in specs:
        if spec.floating:
            _assert_starts_as_declared(fresh[spec.key(layer)], spec)


def _assert_starts_as_declared(values: np.ndarray, spec) -> None:
    """Uniform(bound): every value within the bound, the largest near it where there are many; Ramp: 0, 1, 2, …; Table: its values; Filled: all equal."""
    if isinstance(spec.init, Uniform):
        assert np.abs(values).max() <= spec.init.bound * (1 + 1e-6), spec
        if values.size >= 100:  # P(all of 100 values inside 0.9 · bound) = 0.9^100 < 3e-5
            assert np.abs(values).max() > 0.9 * spec.init.bound, spec
    elif isinstance(spec.init, Ramp):
        assert (values.ravel() == np.arange(values.size)).all(), spec
    elif isinstance(spec.init, Table):
        assert (values.ravel() == np.array(spec.init.values, dtype=np.float32)).all(), spec
    else:
        assert (values == spec.init.value).all(), spec


def _randomised(module: torch.nn.Module) -> torch.nn.Module:
    """Every floating-point tensor drawn from U(0.5, 1.5), so that no two are alike (a weight taken for a bias
    changes the output) and variances stay positive."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
    return module
