"""The library's YOLOv8 and YOLO11 against Ultralytics' own DetectionModel: parameters at every scale, MACs as
thop counts them, and the same eval output once Ultralytics' state_dict is loaded through cnndsl's weights API.

Ultralytics is the oracle: its models are built from its own YAMLs (`yolov8n.yaml` -> scale n), given random
weights and batch-norm statistics, and compared on a small input (256×256, 1,344 anchors) to keep the suite fast.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

import cnndsl
from cnndsl.core.errors import CnnDslError
from cnndsl.graph import ir

ultralytics_tasks = pytest.importorskip(
    "ultralytics.nn.tasks", reason="Ultralytics (pip install --no-deps ultralytics, see scripts/test) is not importable"
)
thop = pytest.importorskip("thop", reason="ultralytics-thop, which Ultralytics counts FLOPs with, is not importable")

SIZE = 256
SCALES = "nsmlx"
# Ultralytics' own figures (the `scales` comments of yolov8.yaml and yolo11.yaml), which DetectionModel reproduces
PUBLISHED = {"yolov8n": 3_157_200, "yolo11n": 2_624_080}


def _randomised(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Every weight, bias and batch-norm statistic drawn at random (DFL's fixed bins kept), at scales that keep the
    output spread out: boxes of many sizes, scores between 0.25 and 0.75 rather than all 0 or 1."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point() or name.endswith("dfl.conv.weight"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.5 + 0.5)
            elif name.endswith(("running_mean", "bias")):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.2)
            elif name.endswith("bn.weight"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.5 + 0.75)
            else:
                fan_in = math.prod(tensor.shape[1:])
                tensor.copy_(torch.randn(tensor.shape, generator=generator) / fan_in**0.5)
    return model.eval()


@pytest.fixture(  # one xdist group per model: each worker running one of its tests would build it again
    scope="module", params=[pytest.param(name, marks=pytest.mark.xdist_group(name)) for name in ("yolov8n", "yolo11n")]
)
def pair(request):
    """(name, Ultralytics' model with random weights, cnndsl's network at 256 and its module loaded from that
    model's state_dict, an image batch), built once for the module."""
    name = request.param
    reference = _randomised(ultralytics_tasks.DetectionModel(f"{name}.yaml", verbose=False))
    network = cnndsl.load(name, size=SIZE, postprocess="decoded")  # Ultralytics' eval output
    module = network.to_torch(weights=reference.state_dict()).eval()
    images = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    return name, reference, network, module, images


@pytest.mark.parametrize("family", ["yolov8", "yolo11"])
@pytest.mark.parametrize("scale", SCALES)
def test_parameters_equal_ultralytics_at_every_scale(family, scale):
    """DetectionModel's layers are parse_model's (built here on the meta device: no weights drawn)."""
    with torch.device("meta"):
        layers, _ = ultralytics_tasks.parse_model(
            ultralytics_tasks.yaml_model_load(f"{family}{scale}.yaml"), ch=3, verbose=False
        )
    expected = sum(parameter.numel() for parameter in layers.parameters())
    assert cnndsl.load(f"{family}{scale}").params == expected


def test_parameters_equal_the_published_counts_dfl_included(pair):
    name, reference, network, _, _ = pair
    assert network.params == sum(parameter.numel() for parameter in reference.parameters()) == PUBLISHED[name]
    dfl = [layer for _, layer in ir.layers(network.graph) if layer.op == "dfl"]
    assert [(layer.name, layer.figures.params) for layer in dfl] == [("detect.dfl", 16)]
    trainable = sum(parameter.numel() for parameter in reference.parameters() if parameter.requires_grad)
    totals = network.summary().totals
    assert (totals["trainable_params"], totals["non_trainable_params"]) == (trainable, 16)  # DFL's fixed bins


def test_macs_are_thops_less_four_per_batch_norm_output(pair):
    """thop, which Ultralytics' GFLOPs come from (2 × its MACs, at 640), counts a batch norm 2 × its elements, twice
    for its affine part; cnndsl counts norms as nothing (torchvision's convention). Every other layer agrees."""
    name, reference, _, _, _ = pair
    network = cnndsl.load(name)  # at 640, as Ultralytics reports it
    counted, _ = thop.profile(copy.deepcopy(reference), inputs=[torch.zeros(1, 3, 640, 640)], verbose=False)
    norms = sum(4 * math.prod(layer.shape) for _, layer in ir.layers(network.graph) if layer.op == "bn")
    assert network.macs + norms == int(counted)
    if name == "yolov8n":  # the figures library/yolov8.cnn states
        assert (network.macs, int(counted), round(2 * counted / 1e9, 2)) == (4_371_993_600, 4_427_545_600, 8.86)


def test_decoded_output_equals_ultralytics_eval_output(pair):
    _, reference, _, module, images = pair
    with torch.no_grad():
        expected, _ = reference(images)
        got = module(images)
    assert got.shape == expected.shape == (2, 84, 1344)
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()
    scores = expected[:, 4:]
    assert scores.std() > 0.05 and expected[:, 2].max() > 2 * expected[:, 2].min()  # the test can tell a difference


def test_raw_output_is_each_levels_box_bins_then_class_logits(pair):
    name, reference, _, _, images = pair
    """The raw head ends before DFL: Ultralytics' fixed DFL bins are the one tensor it does not take."""
    network = cnndsl.load(name, size=SIZE, postprocess="raw")
    with pytest.raises(CnnDslError, match=r"has `model\.\d+\.dfl\.conv\.weight` of shape 1×16×1×1, which no layer"):
        network.to_torch(weights=reference.state_dict())
    state = {key: tensor for key, tensor in reference.state_dict().items() if not key.endswith("dfl.conv.weight")}
    raw = network.to_torch(weights=state).eval()
    detect = reference.model[-1]
    seen = {}
    hook = detect.register_forward_hook(lambda _, inputs, __: seen.update(levels=inputs[0]))
    with torch.no_grad():
        reference(images)
        hook.remove()
        expected = [torch.cat([box(x), cls(x)], 1) for box, cls, x in zip(detect.cv2, detect.cv3, seen["levels"])]
        got = raw(images)
    assert [tuple(map.shape) for map in got] == [(2, 144, 32, 32), (2, 144, 16, 16), (2, 144, 8, 8)]
    for map, want in zip(got, expected):
        assert (map - want).abs().max() <= 1e-4 * want.abs().max()


def test_onnx_decoded_detector_in_onnxruntime_equals_torch(pair):
    onnxruntime = pytest.importorskip("onnxruntime")
    name, reference, network, module, images = pair
    model = network.to_onnx(weights=reference.state_dict())
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {network.input_name: images.numpy()})
    with torch.no_grad():
        expected = module(images).numpy()
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


def test_classes_and_scale_are_parameters():
    network = cnndsl.load("yolov8n", size=320, classes=3, postprocess="decoded")
    assert ir.layer(network.graph, network.outputs[0][1]).shape == (7, 2100)  # 40² + 20² + 10² anchors at 320
    with pytest.raises(CnnDslError, match=r"yolov8.cnn:\d+:\d+: error: index 0 is outside a list of 0"):
        cnndsl.load("yolov8", scale="q")
    with pytest.raises(CnnDslError, match=r"yolo11.cnn:\d+:\d+: error: 'boxes' is not one of 'raw', 'decoded', 'nms'"):
        cnndsl.load("yolo11", postprocess="boxes")
    for name in ("yolov8n", "yolo11n"):
        ends = cnndsl.load(name, size=320, classes=3, postprocess="nms")
        assert [ir.layer(ends.graph, node).shape for _, node in ends.outputs] == [(300, 6)]
