"""The kinds the later Ultralytics models need, each against a computation written here from Ultralytics'
formulas or torch.nn.functional: dist2bbox's corners (end-to-end heads), attend over areas (YOLO12's area
attention) and zero padding (yolov3-tiny)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_detect_anchor_free import HEAD, _run

import cnndsl
from cnndsl.core.errors import CnnDslError
from cnndsl.graph import ir


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


def _area_attention(qkv: torch.Tensor, heads: int, area: int) -> torch.Tensor:
    """YOLO12's area attention (Ultralytics' AAttn between its qkv and pe convolutions), with
    F.scaled_dot_product_attention: the pixels in row order cut into `area` runs, each attending to itself."""
    batch, channels, height, width = qkv.shape
    head_dim, pixels = channels // heads // 3, height * width
    tokens = qkv.flatten(2).transpose(1, 2).reshape(batch * area, pixels // area, heads, 3 * head_dim)
    q, k, v = tokens.permute(0, 2, 1, 3).split(head_dim, dim=-1)  # (B·area) × heads × pixels × head_dim
    out = F.scaled_dot_product_attention(q, k, v)  # softmax(q kᵀ / √head_dim) v
    return (
        out.permute(0, 2, 1, 3)
        .reshape(batch, pixels, heads * head_dim)
        .transpose(1, 2)
        .reshape(batch, heads * head_dim, height, width)
    )


@pytest.mark.parametrize(("area", "size"), [(1, (4, 6)), (4, (4, 6)), (3, (3, 5))])
def test_attend_with_areas_is_attention_within_each_run_of_pixels(area, size):
    text = f"network a {{\n    input 24x{size[0]}x{size[1]}\n    attend(2, 4, area={area})\n}}\n"
    network = cnndsl.parse(text)
    qkv = torch.randn(2, 24, *size)
    with torch.no_grad():
        got = network.to_torch().eval()(qkv)
    torch.testing.assert_close(got, _area_attention(qkv, 2, area), rtol=1e-5, atol=1e-5)
    pixels = size[0] * size[1] // area
    assert network.macs == 2 * area * pixels * pixels * (4 + 4)  # per head and area: qᵀk and v·attnᵀ


def test_attend_with_areas_in_onnx_equals_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    network = cnndsl.parse("network a {\n    input 24x4x6\n    attend(2, 4, area=4)\n}\n")
    qkv = torch.randn(2, 24, 4, 6)
    network.to_onnx(tmp_path / "a.onnx")
    session = ort.InferenceSession(str(tmp_path / "a.onnx"))
    (got,) = session.run(None, {session.get_inputs()[0].name: qkv.numpy()})
    np.testing.assert_allclose(got, _area_attention(qkv, 2, 4).numpy(), rtol=1e-5, atol=1e-5)


def test_areas_that_do_not_divide_the_pixels_are_a_located_error():
    with pytest.raises(CnnDslError) as error:
        cnndsl.parse("network a {\n    input 24x3x5\n    attend(2, 4, area=4)\n}\n", "a.cnn")
    assert str(error.value.pos) == "a.cnn:3:5"
    assert error.value.message == "`attend` cannot cut 3×5 pixels into 4 areas of equal size"


@pytest.mark.parametrize(("sides", "expected"), [("[0, 1, 0, 1]", (0, 1, 0, 1)), ("2", (2, 2, 2, 2))])
def test_zeropad_is_f_pad_with_zeros(sides, expected):
    network = cnndsl.parse(f"network z {{\n    input 3x5x4\n    zeropad({sides})\n}}\n")
    images = torch.randn(2, 3, 5, 4) - 5  # negative: zeros differ from a max pool's -inf padding
    with torch.no_grad():
        got = network.to_torch().eval()(images)
    torch.testing.assert_close(got, F.pad(images, expected), rtol=0, atol=0)
    left, right, top, bottom = expected
    assert ir.layer(network.graph, network.outputs[0][1]).shape == (3, 5 + top + bottom, 4 + left + right)
    assert network.params == 0


def test_zeropad_in_onnx_equals_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    network = cnndsl.parse("network z {\n    input 3x5x4\n    zeropad([1, 2, 0, 3])\n}\n")
    images = torch.randn(2, 3, 5, 4)
    network.to_onnx(tmp_path / "z.onnx")
    session = ort.InferenceSession(str(tmp_path / "z.onnx"))
    (got,) = session.run(None, {session.get_inputs()[0].name: images.numpy()})
    np.testing.assert_array_equal(got, F.pad(images, (1, 2, 0, 3)).numpy())


def test_zeropad_of_three_sides_is_a_located_error():
    with pytest.raises(CnnDslError) as error:
        cnndsl.parse("network z {\n    input 3x5x4\n    zeropad([1, 2, 3])\n}\n", "z.cnn")
    assert str(error.value.pos) == "z.cnn:3:5"
    assert error.value.message == "`zeropad` takes one size or four (left, right, top, bottom), got 3"


POSE = """network pose {{
    image: input 3x32x32
    conv3x3(8, s=4), p3: conv3x3(6, s=2)
    p4: conv3x3(6, s=2)
    @p3, anchorcat(@p4)
    {end}
}}
"""


@pytest.mark.parametrize("centred", [False, True])
@pytest.mark.parametrize("dims", [3, 2])
def test_kptdecode_maps_offsets_to_pixels_and_visibility_to_a_score(dims, centred):
    """Ultralytics' Pose.kpts_decode: x, y = (2·offset + cell index)·stride (anchor − 0.5 = the cell's corner);
    Pose26's (`centred=true`): x, y = (offset + cell + 0.5)·stride; the third value of each keypoint its sigmoid."""
    images = torch.randn(2, 3, 32, 32)
    _, rows = _run(POSE.format(end="identity"), images)
    _, decoded = _run(
        POSE.format(end=f"kptdecode(@image, @p3, @p4, dims={dims}, centred={str(centred).lower()})"), images
    )
    d = rows.numpy()
    cells = [(x, y, 8) for y in range(4) for x in range(4)] + [(x, y, 16) for y in range(2) for x in range(2)]
    expected = np.empty_like(d)
    for a, (x, y, stride) in enumerate(cells):
        for k in range(6 // dims):
            for axis, cell in ((0, x), (1, y)):
                offset = d[:, k * dims + axis, a]
                expected[:, k * dims + axis, a] = ((offset + cell + 0.5) if centred else (offset * 2 + cell)) * stride
            if dims == 3:
                expected[:, k * dims + 2, a] = 1 / (1 + np.exp(-d[:, k * dims + 2, a]))
    np.testing.assert_allclose(decoded.numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("centred", ["false", "true"])
def test_kptdecode_in_onnx_equals_torch(tmp_path, centred):
    ort = pytest.importorskip("onnxruntime")
    network = cnndsl.parse(POSE.format(end=f"kptdecode(@image, @p3, @p4, centred={centred})"))
    module = network.to_torch(seed=0).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = module(images)
    network.to_onnx(tmp_path / "pose.onnx", weights=module)
    session = ort.InferenceSession(str(tmp_path / "pose.onnx"))
    (got,) = session.run(None, {session.get_inputs()[0].name: images.numpy()})
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-4)


def test_kptdecode_of_rows_that_are_not_whole_keypoints_is_a_located_error():
    with pytest.raises(CnnDslError) as error:
        cnndsl.parse(POSE.format(end="kptdecode(@image, @p3, @p4, dims=2)").replace("(6, s=2)", "(5, s=2)"), "p.cnn")
    assert str(error.value.pos) == "p.cnn:6:5"
    assert error.value.message == "`kptdecode` cannot cut 5 rows into keypoints of 2 values"
