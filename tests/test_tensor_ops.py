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


# (id, the layers after `a: identity` on line 3, the first line of the rendered error, its hint)
ERRORS = [
    (
        "axis-out-of-range",
        "softmax(3)",
        "t.cnn:4:3: error: `softmax`'s axis 3 does not exist in a 4×3×2 tensor",
        "its axes are 0 to 2, or -3 to -1 from the end (the batch is not counted)",
    ),
    (
        "negative-axis-out-of-range",
        "transpose(0, -4)",
        "t.cnn:4:3: error: `transpose`'s axis -4 does not exist in a 4×3×2 tensor",
        "its axes are 0 to 2, or -3 to -1 from the end (the batch is not counted)",
    ),
    (
        "axis-not-whole",
        "softmax(axis=1.5)",
        "t.cnn:4:3: error: `softmax`'s axis must be a whole number, got 1.5",
        None,
    ),
    (
        "concat-axis",
        "relu, concat(@a, axis=5)",
        "t.cnn:4:9: error: `concat`'s axis 5 does not exist in a 4×3×2 tensor",
        "its axes are 0 to 2, or -3 to -1 from the end (the batch is not counted)",
    ),
    (
        "reshape-two-inferred",
        "reshape((-1, -1))",
        "t.cnn:4:3: error: `reshape` can work out one dimension (-1), not 2",
        "give every other dimension",
    ),
    (
        "reshape-inferred-not-a-multiple",
        "reshape((5, -1))",
        "t.cnn:4:3: error: `reshape` cannot view 4×3×2 (24 values) as 5×-1: 24 is not a multiple of 5",
        None,
    ),
    (
        "reshape-count",
        "reshape((5, 5))",
        "t.cnn:4:3: error: `reshape` cannot view 4×3×2 (24 values) as 5×5 (25 values)",
        None,
    ),
    (
        "reshape-seven-axes",
        "reshape((1, 1, 1, 1, 1, 1, 24))",
        "t.cnn:4:3: error: `reshape` makes a tensor of 1 to 6 axes (the batch not counted), not 7",
        "give fewer dimensions, e.g. reshape((30, 7, 7))",
    ),
    (
        "sub-not-broadcastable",
        "c: constant([1, 2, 3]), @a, sub(@c)",
        "t.cnn:4:31: error: cannot subtract 3 from 4×3×2: the shapes do not broadcast",
        "from the last axis, the sizes must be equal or 1",
    ),
    (
        "div-not-broadcastable",
        "c: constant([[1, 2], [3, 4]]), @a, div(@c)",
        "t.cnn:4:38: error: cannot divide 2×2 into 4×3×2: the shapes do not broadcast",
        "from the last axis, the sizes must be equal or 1",
    ),
    (
        "add-not-broadcastable",
        "reshape((4, 6)), b: relu, @a, reshape((2, 12)), add(@b)",
        "t.cnn:4:51: error: cannot add 4×6 to 2×12",
        "make both operands the same shape, or shapes that broadcast (from the last axis, equal sizes or 1)",
    ),
    (
        "permute-repeats",
        "permute((0, 0, 1))",
        "t.cnn:4:3: error: `permute` needs each axis of a 4×3×2 tensor once, got (0, 0, 1)",
        "give an order of 0 to 2, e.g. (2, 1, 0)",
    ),
    (
        "split-sizes",
        "split([1, 2], 0)",
        "t.cnn:4:3: error: `split` cannot cut axis 0 of 4×3×2 (4) into parts of 1, 2 (together 3)",
        "the sizes must add up to 4",
    ),
    (
        "split-part",
        "split([1, 3], 2)",
        "t.cnn:4:3: error: part i=2 does not exist among 2 parts",
        "i counts from 0 to 1",
    ),
    (
        "chunk-axis",
        "chunk(2, 0, axis=1)",
        "t.cnn:4:3: error: `chunk` cannot cut axis 1 of 4×3×2 into 2 equal parts",
        "n must divide the size of the axis (3)",
    ),
    (
        "flatten-backwards",
        "flatten(2, 1)",
        "t.cnn:4:3: error: `flatten` ends at axis 1 before it starts at axis 2",
        "give start <= end, e.g. flatten(1, 2)",
    ),
    (
        "concat-sizes",
        "reshape((4, 6)), relu, concat(@a, axis=1)",
        "t.cnn:4:26: error: cannot concatenate 4×3×2 with 4×6",
        None,
    ),
    (
        "concat-other-axis",
        "b: permute((0, 2, 1)), @a, concat(@b, axis=-1)",
        "t.cnn:4:30: error: cannot concatenate 4×2×3 with 4×3×2: sizes differ",
        "every size but that of axis 2 must agree",
    ),
    (
        "constant-ragged",
        "constant([[1, 2], [3]])",
        "t.cnn:4:3: error: `constant`'s lists have different lengths",
        "every row must be as long",
    ),
    (
        "constant-shape",
        "constant([1, 2, 3], shape=(2, 2))",
        "t.cnn:4:3: error: `constant` has 3 values, not the 4 of 2×2",
        "give as many values as the shape holds",
    ),
    (
        "div-by-zero",
        "div(0)",
        "t.cnn:4:3: error: `div` by 0 makes every value infinite",
        "divide by a number other than 0",
    ),
    ("sub-nothing", "sub", "t.cnn:4:3: error: `sub` needs something to subtract", "sub(@t) or a constant, sub(2)"),
    (
        "grid-of-a-vector",
        "flatten, grid",
        "t.cnn:4:12: error: `grid` takes its size from the last two axes of its input, and 24 has one",
        "give the size: grid(h, w)",
    ),
    (
        "layernorm-rank",
        "reshape((4, 6)), layernorm",
        "t.cnn:4:20: error: `layernorm` takes a tensor of 1 or 3 axes, not 4×6 (the batch is not counted)",
        "reshape, permute or flatten it to such a tensor first",
    ),
    (
        "conv-rank",
        "reshape((2, 2, 3, 2)), conv3x3(8)",
        "t.cnn:4:26: error: `conv` needs a C×H×W input, got 2×2×3×2",
        "it cannot follow a flatten or fully connected layer",
    ),
]


@pytest.mark.parametrize("lines,expected,hint", [case[1:] for case in ERRORS], ids=[case[0] for case in ERRORS])
def test_each_error_of_a_tensor_op_has_its_exact_text_position_and_hint(lines, expected, hint):
    with pytest.raises(CnnDslError) as caught:
        cnndsl.parse(_net("a: identity", lines), file="t.cnn")
    assert caught.value.render().splitlines()[0] == expected
    assert caught.value.hint == hint


def test_an_input_of_seven_axes_is_refused_where_it_is_written():
    with pytest.raises(CnnDslError) as caught:
        cnndsl.parse(_net("relu", input="1x2x3x4x5x6x7"), file="t.cnn")
    assert (
        caught.value.render().splitlines()[0]
        == "t.cnn:2:3: error: an input has 1 to 6 axes (the batch not counted), not 7"
    )


def test_yolov3_decoding_written_with_tensor_ops_equals_darknets_get_yolo_box(tmp_path):
    """The language page's YOLOv3 decoding against darknet's formulas (yolo_layer.c `get_yolo_box`), computed
    here cell by cell: x = (col + σ(t_x))·stride, y = (row + σ(t_y))·stride, w = e^(t_w)·anchor_w,
    h = e^(t_h)·anchor_h, then σ of the objectness and class scores; one row per (anchor, row, col)."""
    from docs_pages import fences

    (body,) = [fence.body for fence in fences("language.md", "cnn") if "yolov3_decode" in fence.body]
    path = tmp_path / "decode.cnn"
    path.write_text(body, encoding="utf-8")
    network = cnndsl.load(path, classes=2, size=4, stride=8)
    anchors = [(116, 90), (156, 198), (373, 326)]
    raw = np.random.default_rng(3).standard_normal((2, 3 * 7, 4, 4)).astype(np.float32)
    sigmoid = lambda value: 1 / (1 + np.exp(-value))  # noqa: E731
    expected = np.zeros((2, 3 * 4 * 4, 7), dtype=np.float64)
    for image in range(2):
        for anchor, (anchor_w, anchor_h) in enumerate(anchors):
            for row in range(4):
                for col in range(4):
                    t = raw[image, anchor * 7 : (anchor + 1) * 7, row, col].astype(np.float64)
                    expected[image, (anchor * 4 + row) * 4 + col] = [
                        (col + sigmoid(t[0])) * 8,
                        (row + sigmoid(t[1])) * 8,
                        np.exp(t[2]) * anchor_w,
                        np.exp(t[3]) * anchor_h,
                        *sigmoid(t[4:]),
                    ]
    with torch.no_grad():
        got = network.to_torch().eval()(torch.from_numpy(raw)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    (from_torch,), (from_onnx,) = _run_both(network)
    _assert_same(from_torch, from_onnx)


@pytest.mark.parametrize("opset", [9, 11])
def test_older_opsets_express_each_tensor_op_or_refuse_it_with_the_layer_named(opset):
    """Slice's bounds as attributes before opset 10, Softmax that flattened the axes after its own before 13."""
    for case_id, lines, _, _ in ORACLES:
        network = cnndsl.parse(_net("a: identity", lines), file="t.cnn")
        module = network.to_torch().eval()
        if case_id == "softmax-rows":
            with pytest.raises(CnnDslError) as caught:
                build_model(network, weights=module, opset=opset)
            assert caught.value.render().splitlines()[0] == (
                f"t.cnn:4:3: error: `softmax` over axis 1 of a tensor needs ONNX opset 13 or newer, not {opset}"
            )
            continue
        model = build_model(network, weights=module, opset=opset)
        onnx.checker.check_model(model, full_check=True)
        images = np.random.default_rng(0).standard_normal((2, 4, 3, 2), dtype=np.float32)
        (expected,) = _torch_outputs(module, images)
        (got,) = _session(model).run(None, {network.input_name: images})
        _assert_same(expected, got)
