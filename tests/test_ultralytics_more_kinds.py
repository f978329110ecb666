"""The kinds the later Ultralytics models need, each against a computation written here from Ultralytics'
formulas or torch.nn.functional: dist2bbox's corners (end-to-end heads), attend over areas (YOLO12's area
attention) and zero padding (yolov3-tiny)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cnndsl

HEAD = """network head {{
    image: input 3x32x32
    conv3x3(8, s=4), p3: conv3x3(10, s=2)
    p4: conv3x3(10, s=2)
    @p3, anchorcat(@p4)
    {end}
}}
"""


def _run(text: str, images: torch.Tensor):
    network = cnndsl.parse(text)
    with torch.no_grad():
        return network, network.to_torch(seed=0).eval()(images)


def test_dist2bbox_xyxy_gives_the_corners_in_pixels_as_an_end_to_end_head_decodes():
    images = torch.randn(2, 3, 32, 32)
    _, cells = _run(HEAD.format(end="identity"), images)
    _, decoded = _run(HEAD.format(end="dist2bbox(@image, @p3, @p4, xyxy=true)"), images)
    d = cells.numpy()
    centres = [((x + 0.5), (y + 0.5), 8) for y in range(4) for x in range(4)]
    centres += [((x + 0.5), (y + 0.5), 16) for y in range(2) for x in range(2)]
    expected = np.empty_like(d)
    for a, (cx, cy, stride) in enumerate(centres):  # dist2bbox(xywh=False): anchor -/+ the distances
        left, top, right, bottom = d[:, 0, a], d[:, 1, a], d[:, 2, a], d[:, 3, a]
        expected[:, 0:4, a] = np.stack([cx - left, cy - top, cx + right, cy + bottom], 1) * stride
    expected[:, 4:] = 1 / (1 + np.exp(-d[:, 4:]))
    np.testing.assert_allclose(decoded.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_dist2bbox_xyxy_in_onnx_equals_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    text = HEAD.format(end="dist2bbox(@image, @p3, @p4, xyxy=true)")
    images = torch.randn(2, 3, 32, 32)
    network = cnndsl.parse(text)
    module = network.to_torch(seed=0).eval()
    with torch.no_grad():
        expected = module(images)
    network.to_onnx(tmp_path / "head.onnx", weights=module)
    session = ort.InferenceSession(str(tmp_path / "head.onnx"))
    (got,) = session.run(None, {session.get_inputs()[0].name: images.numpy()})
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-5)
