"""Every library network, built once at its smallest input: the ONNX model checks, infers the analysed shapes,
and computes what the torch module computes (eval mode, random weights, non-trivial BatchNorm statistics) in
onnxruntime at batch 1 and 2 at the newest opset, with BatchNorm folded at opset 13, and in OpenVINO's CPU
plugin at batch 2; its oldest opset is known, and one below it is refused naming the layer.

(The `weights` tests compare the same networks with torchvision's modules; these compare with cnndsl's own.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import library_networks
from test_detection import assert_same_detections
from test_onnx import TOLERANCE, _assert_inferred_shapes_agree, _session, _torch_outputs, _trained_looking

import cnndsl
from cnndsl.backends.onnx import OLDEST_OPSET, _planned_model, default_opset, export_onnx
from cnndsl.core.errors import CnnDslError, ValueProblem
from cnndsl.graph import ir

SIDES = (16, 32, 48, 64, 96, 128, 160, 192, 224, 256, 320, 448, 512)
COMPATIBLE_OPSET = 13  # what older runtimes and converters still take


@dataclass
class Built:
    network: cnndsl.Network
    newest: Path  # the model at the default (newest) opset, with external data
    folded: Path  # BatchNorm folded, at opset 13
    images: dict[int, np.ndarray]  # batch size -> input
    expected: dict[int, list[np.ndarray]]  # batch size -> the torch module's outputs


def smallest(name: str) -> cnndsl.Network:
    """The network at the smallest square input (of SIDES) it accepts with every pooling window inside its
    padded input (OpenVINO refuses a larger window, which PyTorch's ceil mode allows), else at its own."""
    default = cnndsl.load(name)
    channels, height, _ = default.input_shape
    for side in (side for side in SIDES if side < height):
        try:
            network = cnndsl.load(name, input=(channels, side, side))
        except CnnDslError:
            continue
        if _windows_fit(network):
            return network
    return default


def _windows_fit(network) -> bool:
    graph = network.graph
    for node, data in ir.layers(graph):
        if data.op in ("maxpool", "avgpool"):
            _, height, width = next(ir.layer(graph, source).shape for source in graph.pred[node])
            (kernel_h, kernel_w), (pad_h, pad_w) = data.attrs["k"], data.attrs["p"]
            if kernel_h > height + 2 * pad_h or kernel_w > width + 2 * pad_w:
                return False
    return True


# One xdist group per network: a module-scoped fixture is built again in every worker that runs one of its tests.
@pytest.fixture(
    scope="module",
    params=[pytest.param(name, marks=pytest.mark.xdist_group(f"onnx-{name}")) for name in library_networks()],
)
def built(request, tmp_path_factory):
    """Both models are written with external data: each tensor is streamed to the data file, the checker and
    shape inference read only the small model file, the runtimes map the data file (a third of the time
    and memory of reading one protobuf), and a network over 2 GiB (regnet_y_128gf) is treated like any
    other. The torch module is dropped once its outputs are known."""
    network = smallest(request.param)
    module = _trained_looking(network)
    folder = tmp_path_factory.mktemp(request.param)
    newest, _ = export_onnx(network, folder / "newest.onnx", weights=module, external_data=True)
    folded, _ = export_onnx(
        network, folder / "folded.onnx", weights=module, fold_bn=True, opset=COMPATIBLE_OPSET, external_data=True
    )
    rng = np.random.default_rng(0)
    images = {batch: rng.standard_normal((batch, *network.input_shape), dtype=np.float32) for batch in (1, 2)}
    expected = {batch: _torch_outputs(module, images[batch]) for batch in images}
    del module
    yield Built(network, newest, folded, images, expected)
    for path in folder.iterdir():
        path.unlink()


def _assert_equal_to_torch(built: Built, outputs: list[np.ndarray], batch: int, what: str) -> None:
    network = built.network
    assert len(outputs) == len(built.expected[batch]) == len(network.outputs)
    for (name, node), value, reference in zip(network.outputs, outputs, built.expected[batch]):
        assert value.shape == reference.shape == (batch, *ir.layer(network.graph, node).shape), name
        if ir.layer(network.graph, node).op == "nms":  # detections: rows whose scores tie within rounding may swap
            assert_same_detections(value, reference)
            continue
        error = np.abs(value - reference).max() / np.abs(reference).max()
        assert error <= TOLERANCE, f"{what}: {name} at batch {batch}: relative error {error:.2e}"


def test_the_model_checks_and_infers_the_analysed_shapes(built):
    onnx.checker.check_model(built.newest, full_check=True)
    onnx.checker.check_model(built.folded, full_check=True)
    _assert_inferred_shapes_agree(built.network, built.newest)


def test_onnxruntime_computes_what_torch_computes_at_the_newest_opset_and_folded_at_opset_13(built):
    name = built.network.input_name
    session = _session(built.newest)
    for batch in (1, 2):
        _assert_equal_to_torch(built, session.run(None, {name: built.images[batch]}), batch, f"opset {default_opset()}")
    del session  # one session's weights at a time
    session = _session(built.folded)
    _assert_equal_to_torch(built, session.run(None, {name: built.images[2]}), 2, "folded, opset 13")


def test_openvino_computes_what_torch_computes(built):
    """OpenVINO's CPU plugin computes in bfloat16 where the processor can; f32 is asked for, so the tolerance
    is the same 1e-4 of the output's scale."""
    openvino = pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install openvino)")
    compiled = openvino.Core().compile_model(
        str(built.newest), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1}
    )
    result = compiled(built.images[2])
    _assert_equal_to_torch(built, [result[output] for output in compiled.outputs], 2, "OpenVINO")


@pytest.mark.parametrize("name", library_networks())
def test_the_oldest_opset_builds_and_one_below_names_the_layer_that_needs_more(name):
    """Planned only (no weights are drawn): every network fits opset 13; below its oldest, the error says
    which layer needs which opset, at the layer's position."""
    network = smallest(name)
    oldest = next(opset for opset in range(OLDEST_OPSET, COMPATIBLE_OPSET + 1) if _plans(network, opset))
    if oldest == OLDEST_OPSET:
        return
    with pytest.raises(ValueProblem) as caught:
        _planned_model(network, None, oldest - 1, False)
    assert re.fullmatch(
        rf"`[a-z0-9()=_, ]+` .*needs ONNX opset {oldest} or newer, not {oldest - 1}", caught.value.message
    ), caught.value.message
    assert caught.value.pos is not None and caught.value.hint == f"use --opset {oldest} or newer, or leave --opset out"


def _plans(network, opset: int) -> bool:
    try:
        _planned_model(network, None, opset, False)
    except ValueProblem:
        return False
    return True
