"""Tensors beyond C×H×W (issue 26): shapes of 1 to 6 axes through every kind, and the kinds that lay values out
anew (reshape, permute, transpose, flatten, split, chunk, concat and softmax along an axis), element-wise
arithmetic with broadcasting, exp, and constants. Oracles: torch's own functions on the same input, numpy's
broadcasting, onnxruntime, and shapes counted by hand."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from test_onnx import TOLERANCE, _assert_inferred_shapes_agree, _session, _torch_outputs

import cnndsl
from cnndsl.backends.onnx import build_model
from cnndsl.core.errors import CnnDslError
from cnndsl.graph import ir
from cnndsl.ops import REGISTRY

KINDS = sorted(name for name, kind in REGISTRY.items() if kind.called_by_name)


def _net(*lines: str, input: str = "4x3x2") -> str:
    body = "\n".join(f"  {line}" for line in lines)
    return f"network t {{\n  input {input}\n{body}\n}}\n"


def _run_both(network, batch: int = 3) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The torch module's outputs and onnxruntime's on the same random batch; the ONNX model checked by onnx."""
    module = network.to_torch(seed=0).eval()
    model = build_model(network, weights=module)
    onnx.checker.check_model(model, full_check=True)
    _assert_inferred_shapes_agree(network, model)
    images = np.random.default_rng(0).standard_normal((batch, *network.input_shape), dtype=np.float32)
    return _torch_outputs(module, images), _session(model).run(None, {network.input_name: images})


def _assert_same(expected: np.ndarray, got: np.ndarray) -> None:
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= TOLERANCE * max(np.abs(expected).max(), 1e-6)


@pytest.mark.parametrize("rank", [2, 4, 6])
@pytest.mark.parametrize("name", KINDS)
def test_every_kind_takes_any_rank_or_refuses_it_where_it_is_written(name, rank):
    """Each kind's example on a tensor of 2, 4 or 6 axes: `check` refuses it with a position, or torch and
    onnxruntime compute the same values of the analysed shape."""
    example = REGISTRY[name].example
    channels, *rest = example.input
    size = {2: (channels, rest[0] * rest[1]), 4: (channels, *rest, 2), 6: (channels, *rest, 2, 1, 2)}[rank]
    text = example.network(f"example_{name}", input=size)
    try:
        network = cnndsl.parse(text, file="k.cnn")
    except CnnDslError as error:
        assert error.pos is not None and error.pos.line == 3, error  # the layers' line, never the input's
        return
    (expected,), (got,) = _run_both(network)
    assert expected.shape[1:] == ir.layer(network.graph, network.outputs[0][1]).shape
    _assert_same(expected, got)


def _grid(height: int, width: int, offset: float) -> torch.Tensor:
    """Cell coordinates from torch.meshgrid: [0] the column, [1] the row."""
    rows, columns = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([columns, rows]).float() + offset


# (id, the layers after `input 4x3x2` and `a: identity`, torch's own function on the input x, the shape by hand)
ORACLES = [
    ("reshape-inferred", "reshape((2, -1, 3, 2))", lambda x: torch.reshape(x, (-1, 2, 2, 3, 2)), (2, 2, 3, 2)),
    ("reshape-vector", "reshape(-1)", lambda x: torch.reshape(x, (len(x), -1)), (24,)),
    ("permute", "permute((1, 2, 0))", lambda x: x.permute(0, 2, 3, 1), (3, 2, 4)),
    ("permute-negative", "permute((-1, 0, 1))", lambda x: x.permute(0, 3, 1, 2), (2, 4, 3)),
    ("transpose", "transpose(0, -1)", lambda x: torch.transpose(x, 1, 3), (2, 3, 4)),
    ("flatten-all", "flatten", lambda x: torch.flatten(x, 1), (24,)),
    ("flatten-part", "flatten(1, 2)", lambda x: torch.flatten(x, 2, 3), (4, 6)),
    ("flatten-start", "flatten(0, 1)", lambda x: torch.flatten(x, 1, 2), (12, 2)),
    ("split-sizes", "split([1, 3], 1)", lambda x: torch.split(x, [1, 3], dim=1)[1], (3, 3, 2)),
    ("split-size-last", "split(2, 1, axis=1)", lambda x: torch.split(x, 2, dim=2)[1], (4, 1, 2)),
    ("chunk-axis", "chunk(3, 2, axis=-2)", lambda x: torch.chunk(x, 3, dim=2)[2], (4, 1, 2)),
    ("chunk-channels", "chunk(2, 0)", lambda x: torch.chunk(x, 2, dim=1)[0], (2, 3, 2)),
    ("concat-last", "relu, concat(@a, axis=-1)", lambda x: torch.cat([torch.relu(x), x], dim=-1), (4, 3, 4)),
    ("concat-rows", "relu, concat(@a, axis=1)", lambda x: torch.cat([torch.relu(x), x], dim=2), (4, 6, 2)),
    ("softmax-last", "softmax(-1)", lambda x: torch.softmax(x, dim=-1), (4, 3, 2)),
    ("softmax-rows", "softmax(1)", lambda x: torch.softmax(x, dim=2), (4, 3, 2)),
    ("sigmoid", "sigmoid", torch.sigmoid, (4, 3, 2)),
    ("exp", "exp", torch.exp, (4, 3, 2)),
    (
        "sub-broadcast",
        "c: constant([[1], [2], [-3]]), @a, sub(@c)",
        lambda x: x - torch.tensor([[1.0], [2.0], [-3.0]]),
        (4, 3, 2),
    ),
    (
        "div-broadcast-grows",
        "c: constant([[[1.5, 2]], [[3, 4]], [[5, 6]], [[7, 8]], [[9, 10]]]), @a, split(1, 0), div(@c, 2)",
        lambda x: x[:, 0:1] / torch.tensor([[[1.5, 2.0]], [[3, 4]], [[5, 6]], [[7, 8]], [[9, 10]]]) / 2,
        (5, 3, 2),
    ),
    ("add-broadcast", "g: gap, @a, add(@g)", lambda x: x + x.mean((2, 3), keepdim=True), (4, 3, 2)),
    ("mul-map", "g: chunk(4, 1), @a, mul(@g)", lambda x: x * x[:, 1:2], (4, 3, 2)),
    ("sub-constant", "sub(0.25)", lambda x: x - 0.25, (4, 3, 2)),
    ("grid", "grid(offset=0.5)", lambda x: _grid(3, 2, 0.5).expand(len(x), -1, -1, -1), (2, 3, 2)),
    ("grid-sized", "grid(2, 5)", lambda x: _grid(2, 5, 0.0).expand(len(x), -1, -1, -1), (2, 2, 5)),
    (
        "constant",
        "constant([1, 2, 3, 4, 5, 6], shape=(2, 1, 3))",
        lambda x: torch.arange(1.0, 7.0).reshape(1, 2, 1, 3).expand(len(x), -1, -1, -1),
        (2, 1, 3),
    ),
    (
        "yolo-decode",
        "reshape((2, 2, 3, 2)), split(1, 0, axis=1), xy: sigmoid, g: grid(3, 2), @xy, add(@g), mul(8)",
        lambda x: (torch.sigmoid(x.reshape(-1, 2, 2, 3, 2)[:, :, 0:1]) + _grid(3, 2, 0.0)) * 8,
        (2, 2, 3, 2),
    ),
]


@pytest.mark.parametrize("lines,oracle,shape", [case[1:] for case in ORACLES], ids=[case[0] for case in ORACLES])
def test_each_tensor_op_computes_what_torch_computes_with_the_shape_counted_by_hand(lines, oracle, shape):
    network = cnndsl.parse(_net("a: identity", lines), file="t.cnn")
    assert ir.layer(network.graph, network.outputs[0][1]).shape == shape
    assert network.params == 0 and network.macs == 0  # no weights; element-wise ops count no MAC, as add and mul
    images = torch.from_numpy(np.random.default_rng(1).standard_normal((3, 4, 3, 2), dtype=np.float32))
    with torch.no_grad():
        got = network.to_torch().eval()(images)
    assert got.shape == (3, *shape)
    torch.testing.assert_close(got, oracle(images), rtol=1e-6, atol=1e-6)
    (expected,), (from_onnx,) = _run_both(network)
    _assert_same(expected, from_onnx)


@pytest.mark.parametrize("lines,oracle,shape", [case[1:] for case in ORACLES], ids=[case[0] for case in ORACLES])
def test_each_tensor_op_written_as_python_computes_what_the_module_computes(lines, oracle, shape, tmp_path):
    from cnndsl.backends.torch import standalone_source
    from cnndsl.backends.torch_source import class_name

    network = cnndsl.parse(_net("a: identity", lines), file="t.cnn")
    namespace: dict = {}
    exec(compile(standalone_source(network), "t.py", "exec"), namespace)  # noqa: S102  (the source just written)
    written = namespace[class_name(network.name)]().eval()
    images = torch.randn(2, 4, 3, 2, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(written(images), oracle(images), rtol=1e-6, atol=1e-6)
