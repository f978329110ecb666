"""Every library network but RegNetY-128GF (see RUN), built once at its smallest input: the ONNX model checks,
infers the analysed shapes, and computes what the torch module computes (eval mode, random weights, non-trivial
BatchNorm statistics) in onnxruntime at batch 1 and 2 at the newest opset, with BatchNorm folded at opset 13, and
(the networks that hold every operator signature of the library: OPENVINO) in OpenVINO's CPU plugin at batch 2;
its oldest opset is known, and one below it is refused naming the layer.

(The `weights` tests compare the same networks with torchvision's modules; these compare with cnndsl's own.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import library_networks
from test_detection import assert_same_detections
from test_onnx import TOLERANCE, _assert_inferred_shapes_agree, _session, _torch_outputs, _trained_looking

import cnndsl
from cnndsl.backends.onnx import OLDEST_OPSET, _planned_model, default_opset, export_onnx
from cnndsl.core.errors import CnnDslError, ValueProblem
from cnndsl.graph import ir
from cnndsl.ops.detect_torch import detections_nms

SIDES = (16, 32, 48, 64, 96, 128, 160, 192, 224, 256, 320, 448, 512)
COMPATIBLE_OPSET = 13  # what older runtimes and converters still take


@dataclass
class Built:
    network: cnndsl.Network
    newest: Path  # the model at the default (newest) opset, with external data
    folded: Path  # BatchNorm folded, at opset 13
    images: dict[int, np.ndarray]  # batch size -> input
    expected: dict[int, list[np.ndarray]]  # batch size -> the torch module's outputs
    decoded: dict[int, dict[str, np.ndarray]]  # batch size -> each `nms` output's input (by layer name), in torch


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


# RegNetY-128GF (2.6 GB of weights) is left to test_onnx's own network over 2 GiB, which checks the external-data
# path, and to RegNetY-32GF, which has its code: writing and running its two models took a minute of the suite.
RUN = [name for name in library_networks() if name != "regnet_y_128gf"]


# One xdist group per network: a module-scoped fixture is built again in every worker that runs one of its tests.
@pytest.fixture(
    scope="module", params=[pytest.param(name, marks=pytest.mark.xdist_group(f"onnx-{name}")) for name in RUN]
)
def built(request, tmp_path_factory):
    """Both models are written with external data: each tensor is streamed to the data file, the checker and
    shape inference read only the small model file, the runtimes map the data file (a third of the time
    and memory of reading one protobuf). The torch module is dropped once its outputs are known."""
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
    decoded = {batch: _nms_inputs(network, module, images[batch]) for batch in images}
    del module
    if decoded[1]:  # the runtimes return each nms's input too, from a copy of the model naming it an output
        for path in (newest, folded):
            model = onnx.load(path, load_external_data=False)
            model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(name) for name in decoded[1])
            onnx.save(model, path.with_name(f"probed-{path.name}"))
    yield Built(network, newest, folded, images, expected, decoded)
    for path in folder.iterdir():
        path.unlink()


def _nms_layers(network) -> dict[str, tuple]:
    """The name of each `nms` output's input layer (its ONNX value) -> the nms layer's attributes."""
    graph = network.graph
    found = {}
    for _, node in network.outputs:
        if ir.layer(graph, node).op == "nms":
            (source,) = graph.pred[node]
            found[ir.layer(graph, source).name] = ir.layer(graph, node).attrs
    return found


def _nms_inputs(network, module, images: np.ndarray) -> dict[str, np.ndarray]:
    """What each `nms` output receives in the torch module, from an fx interpreter that keeps it."""
    wanted = set(_nms_layers(network))
    if not wanted:
        return {}
    kept = {}

    class Keeping(torch.fx.Interpreter):
        def run_node(self, node):
            result = super().run_node(node)
            layer = node.meta.get("cnndsl_node")
            if layer is not None and ir.layer(network.graph, layer).name in wanted:
                kept[ir.layer(network.graph, layer).name] = result.detach().numpy().copy()
            return result

    with torch.no_grad():
        Keeping(module).run(torch.from_numpy(images))
    return kept


def _probed(path: Path) -> Path:
    return path.with_name(f"probed-{path.name}") if path.with_name(f"probed-{path.name}").exists() else path


def _assert_equal_to_torch(built: Built, outputs: list[np.ndarray], batch: int, what: str) -> None:
    """Detections are compared in two steps: the runtime's input to nms equals torch's, and its detections are
    torch's nms of that input. (Its boxes differ from torch's in the last bits, which can flip an IoU that lies at
    the threshold: comparing the final rows alone fails now and then on a correct model.)"""
    network = built.network
    probes = _nms_layers(network)
    assert len(outputs) == len(built.expected[batch]) + len(probes) and len(built.expected[batch]) == len(
        network.outputs
    )
    computed = dict(zip(probes, outputs[len(network.outputs) :]))
    for name, value in computed.items():
        reference = built.decoded[batch][name]
        error = np.abs(value - reference).max() / np.abs(reference).max()
        assert value.shape == reference.shape and error <= TOLERANCE, f"{what}: {name} at batch {batch}: {error:.2e}"
    for (name, node), value, reference in zip(network.outputs, outputs, built.expected[batch]):
        layer = ir.layer(network.graph, node)
        assert value.shape == reference.shape == (batch, *layer.shape), name
        if layer.op == "nms":
            (source,) = network.graph.pred[node]
            decoded = torch.from_numpy(computed[ir.layer(network.graph, source).name])
            attrs = layer.attrs
            assert_same_detections(
                value, detections_nms(decoded, attrs["iou"], attrs["score"], attrs["max_det"]).numpy()
            )
            continue
        error = np.abs(value - reference).max() / np.abs(reference).max()
        assert error <= TOLERANCE, f"{what}: {name} at batch {batch}: relative error {error:.2e}"


def test_the_model_checks_and_infers_the_analysed_shapes(built):
    onnx.checker.check_model(built.newest, full_check=True)
    onnx.checker.check_model(built.folded, full_check=True)
    _assert_inferred_shapes_agree(built.network, built.newest)


def test_onnxruntime_computes_what_torch_computes_at_the_newest_opset_and_folded_at_opset_13(built):
    name = built.network.input_name
    session = _session(_probed(built.newest))
    for batch in (1, 2):
        _assert_equal_to_torch(built, session.run(None, {name: built.images[batch]}), batch, f"opset {default_opset()}")
    del session  # one session's weights at a time
    session = _session(_probed(built.folded))
    _assert_equal_to_torch(built, session.run(None, {name: built.images[2]}), 2, "folded, opset 13")


# OpenVINO, a second runtime, shows that the files carry to another implementation of the operators: what it does
# depends on each node's operator and attributes, not on the network around it (onnxruntime checks every network's
# function). So it runs the fewest networks whose models hold every operator signature of the library's (_signatures:
# the operator, its inputs and each attribute as it can change the kernel; running all 98 took 50 s of CPU), and a
# test below checks that no network has a signature outside theirs: a network that adds one must join this list.
OPENVINO = [
    "alexnet_paper",
    "convnext_tiny",
    "deeplabv3_mobilenet_v3_large",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_vgg16",
    "fcn8s",
    "googlenet",
    "inception_v3",
    "lenet5",
    "mobilenet_v1",
    "resnet18",
    "shufflenet_v2_x0_5",
    "squeezenet1_0",
    "unet",
    "yolo11n",
    "yolov3_tiny",
]


def _attribute_signature(attribute: onnx.AttributeProto) -> tuple:
    """An attribute as it can change the kernel: a mode, an axis or a flag as is, pads as symmetric or not,
    strides and dilations as one or more, a kernel by its rank and whether it is 1x1, groups as one or several."""
    name = attribute.name
    if attribute.type == onnx.AttributeProto.INT:
        return (name, attribute.i > 1) if name == "group" else (name, attribute.i)
    if attribute.type == onnx.AttributeProto.INTS:
        values = list(attribute.ints)
        if name == "pads":
            return (name, values[: len(values) // 2] == values[len(values) // 2 :])
        if name in ("strides", "dilations"):
            return (name, any(value > 1 for value in values))
        if name == "kernel_shape":
            return (name, len(values), all(value == 1 for value in values))
        return (name, tuple(values))
    if attribute.type == onnx.AttributeProto.STRING:
        return (name, attribute.s.decode())
    return (name,)  # a float (epsilon, alpha) or a tensor: the same kernel whatever its value


def _signatures(network) -> set[tuple]:
    """Each node of the network's model (planned at the newest opset, no weights drawn) as the runtime sees it."""
    model, _ = _planned_model(network, None, None, False)
    return {
        (node.domain, node.op_type, sum(1 for value in node.input if value))
        + tuple(sorted(_attribute_signature(attribute) for attribute in node.attribute))
        for node in model.graph.node
    }


def test_every_library_networks_operator_signatures_run_in_openvino_in_one_network_of_the_list():
    covered = set().union(*(_signatures(smallest(name)) for name in OPENVINO))
    missing = {name: _signatures(smallest(name)) - covered for name in RUN}
    assert not any(missing.values()), {name: signatures for name, signatures in missing.items() if signatures}


@pytest.mark.networks(OPENVINO)
def test_openvino_computes_what_torch_computes(built):
    """OpenVINO's CPU plugin computes in bfloat16 where the processor can; f32 is asked for, so the tolerance
    is the same 1e-4 of the output's scale."""
    openvino = pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install openvino)")
    compiled = openvino.Core().compile_model(
        str(_probed(built.newest)), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1}
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
