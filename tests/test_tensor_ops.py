"""Tensors beyond C×H×W (issue 26): shapes of 1 to 6 axes through every kind, and the kinds that lay values out
anew (reshape, permute, transpose, flatten, split, chunk, concat and softmax along an axis), element-wise
arithmetic with broadcasting, exp, and constants. Oracles: torch's own functions on the same input, numpy's
broadcasting, onnxruntime, and shapes counted by hand."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
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
