"""library/fasterrcnn.cnn against torchvision's Faster R-CNN models, and its selection kinds (`levelnms`,
`roidetections`) against torchvision's RPN.filter_proposals and RoIHeads.postprocess_detections.

torchvision's compiled nms and roi_align do not load on the CPU build: the reference runs with onnxruntime's
NonMaxSuppression and RoiAlign kernels in their place (tests/rcnn_reference.py).
"""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
import torch
from oracles import torchvision_models
from rcnn_reference import detection_model, patch_torchvision

import cnndsl
from cnndsl.graph import ir


@pytest.mark.parametrize(
    "name",
    ["fasterrcnn_mobilenet_v3_large_320_fpn", "fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_resnet50_fpn"],
)
def test_parameters_and_buffers_are_torchvisions(name):
    """Built as torchvision builds them without weights: BatchNorm with its running statistics, not frozen."""
    torchvision_models()
    from torchvision.models.detection import faster_rcnn

    with torch.device("meta"):
        reference = getattr(faster_rcnn, name)(weights=None, weights_backbone=None)
    assert isinstance(reference.backbone.body["1" if "mobilenet" in name else "bn1"], torch.nn.Module)
    frozen = [module for module in reference.modules() if type(module).__name__ == "FrozenBatchNorm2d"]
    assert not frozen
    network = cnndsl.load(name)
    assert network.params == sum(parameter.numel() for parameter in reference.parameters())
    stats = sum(buffer.numel() for buffer in reference.buffers())  # running statistics, step counts
    assert (
        sum(
            kind.buffers(layer.attrs, shapes)
            for _, layer, kind, _, shapes in ir.walk(network.graph)
            if layer.shares is None
        )
        == stats
    )


def _detections(network, model, image):
    """cnndsl's rows and torchvision's detections for one image."""
    module = network.to_torch(weights=model.state_dict()).eval()
    with torch.no_grad():
        expected = model(list(image))[0]
        got = module(image)[0]
    return got, expected


def _assert_same(got: np.ndarray, expected: dict, boxes_within: float) -> None:
    kept = len(expected["boxes"])
    assert np.array_equal(got[:kept, 5], expected["labels"].numpy().astype(np.float32))
    np.testing.assert_allclose(got[:kept, 4], expected["scores"].numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(got[:kept, :4], expected["boxes"].numpy(), atol=boxes_within, rtol=0)
    assert (got[kept:, 4] == 0).all() and (got[kept:, 5] == -1).all()


def test_the_320_model_detects_what_torchvisions_detects_in_torch_and_onnxruntime(monkeypatch, tmp_path):
    """Random weights, box_score_thresh 0 (every class of every proposal a candidate), an RPN score threshold
    that leaves fewer than 150 proposals (so padding proposals reach the RoI head), the transform the identity."""
    patch_torchvision(monkeypatch)
    options = {"box_score_thresh": 0.0, "rpn_score_thresh": 0.97}
    model = detection_model("fasterrcnn_mobilenet_v3_large_320_fpn", 320, **options)
    image = torch.rand(1, 3, 320, 320, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        images, _ = model.transform(list(image))
        assert torch.equal(images.tensors, image)  # the transform hands the image through
        (proposals,), _ = model.rpn(images, model.backbone(images.tensors))
    assert 0 < len(proposals) < 150  # 97: the other 53 proposals are padding
    network = cnndsl.load("fasterrcnn_mobilenet_v3_large_320_fpn", **options)
    got, expected = _detections(network, model, image)
    assert len(expected["boxes"]) == 100 and len(expected["labels"].unique()) > 1
    _assert_same(got.numpy(), expected, boxes_within=1e-3)

    network.to_onnx(tmp_path / "frcnn.onnx", weights=model.state_dict())
    session = onnxruntime.InferenceSession(str(tmp_path / "frcnn.onnx"), providers=["CPUExecutionProvider"])
    (rows,) = session.run(None, {session.get_inputs()[0].name: image.numpy()})
    # onnxruntime's convolutions round differently from torch's: boxes of some 300 pixels within 1e-2
    _assert_same(rows[0], expected, boxes_within=1e-2)
