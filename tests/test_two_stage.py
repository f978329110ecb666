"""Two-stage detection's building blocks (cnndsl/ops/deform.py, ...) against references outside cnndsl:
torch.nn.functional.conv2d, a NumPy bilinear-sampling deformable convolution written here from the papers'
definition (torchvision's `bilinear_interpolate`), and onnxruntime's kernels."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_onnx import _session

import cnndsl
from cnndsl.backends.torch import write_python
from cnndsl.core.errors import CnnDslError
from cnndsl.graph import ir


# ---- deformable convolution -------------------------------------------------------------------------------
def _deform_network(geometry: str, kernel: tuple[int, int], groups: int = 1, offset_groups: int = 1, mask=False):
    """A deformable convolution whose offsets (and mask) convolutions of the same `geometry` compute from the
    image; all of them are outputs, so that the test reads the offsets the layer was given."""
    taps = offset_groups * kernel[0] * kernel[1]
    masked = f"  @image, mask: (conv({taps}, {geometry}), sigmoid)\n" if mask else ""
    text = (
        "network dcn {\n  image: input 4x9x8\n"
        f"  offsets: conv({2 * taps}, {geometry})\n{masked}"
        f"  @image, out: deformconv(6, {geometry}, g={groups}, og={offset_groups}, @offsets{', @mask' * mask})\n"
        f"  output @out, @offsets{', @mask' * mask}\n}}\n"
    )
    return cnndsl.parse(text, file="dcn.cnn")


def _bilinear(image: np.ndarray, y: float, x: float) -> np.ndarray:
    """Every channel of `image` at (y, x): the four neighbours weighed by distance, zero outside the map and
    nothing at all a pixel or more outside it (Dai et al. 2017, eq. 3; torchvision's bilinear_interpolate)."""
    height, width = image.shape[1:]
    if y <= -1 or y >= height or x <= -1 or x >= width:
        return np.zeros(image.shape[0])
    low_y, low_x = math.floor(y), math.floor(x)
    value = np.zeros(image.shape[0])
    for row, col in ((low_y, low_x), (low_y, low_x + 1), (low_y + 1, low_x), (low_y + 1, low_x + 1)):
        if 0 <= row < height and 0 <= col < width:
            value += (1 - abs(y - row)) * (1 - abs(x - col)) * image[:, row, col]
    return value


def _reference_deform_conv(image, offsets, mask, weight, bias, stride, padding, dilation, groups, offset_groups):
    """y(p) = Σ_k w_k · m_k · x(p0 + p_k + Δp_k) directly, in float64 (mask None: v1)."""
    batch, channels = image.shape[:2]
    out_channels, _, kernel_h, kernel_w = weight.shape
    out_h, out_w = offsets.shape[2:]
    per_offset_group = channels // offset_groups
    columns = np.zeros((batch, channels, kernel_h, kernel_w, out_h, out_w))
    for n, group, i, j, row, col in np.ndindex(batch, offset_groups, kernel_h, kernel_w, out_h, out_w):
        tap = (group * kernel_h + i) * kernel_w + j
        y = row * stride[0] - padding[0] + i * dilation[0] + offsets[n, 2 * tap, row, col]
        x = col * stride[1] - padding[1] + j * dilation[1] + offsets[n, 2 * tap + 1, row, col]
        scale = 1.0 if mask is None else mask[n, tap, row, col]
        part = slice(group * per_offset_group, (group + 1) * per_offset_group)
        columns[n, part, i, j, row, col] = scale * _bilinear(image[n, part], y, x)
    per_group, out_per_group = channels // groups, out_channels // groups
    out = np.zeros((batch, out_channels, out_h, out_w))
    for group in range(groups):
        block = columns[:, group * per_group : (group + 1) * per_group]
        kernels = weight[group * out_per_group : (group + 1) * out_per_group]
        out[:, group * out_per_group : (group + 1) * out_per_group] = np.einsum("ncijhw,ocij->nohw", block, kernels)
    return out + bias[None, :, None, None]


# geometry, kernel, stride, padding, dilation, groups, offset groups
DEFORM_CASES = {
    "plain": ("k=3", (3, 3), (1, 1), (1, 1), (1, 1), 1, 1),
    "strided": ("k=3, s=2, p=0", (3, 3), (2, 2), (0, 0), (1, 1), 1, 1),
    "dilated": ("k=(3, 2), p=(1, 0), d=(2, 1)", (3, 2), (1, 1), (1, 0), (2, 1), 1, 1),
    "groups": ("k=3", (3, 3), (1, 1), (1, 1), (1, 1), 2, 2),
}


def _deform_outputs(case: str, mask: bool, offset_scale: float):
    geometry, kernel, _, _, _, groups, offset_groups = DEFORM_CASES[case]
    network = _deform_network(geometry, kernel, groups, offset_groups, mask)
    module = network.to_torch(seed=0).eval()
    with torch.no_grad():
        offset_conv = module.get_submodule("conv1" if mask else "conv")  # the mask's is conv2
        offset_conv.weight.mul_(offset_scale)
        offset_conv.bias.mul_(offset_scale)
        image = torch.randn(2, *network.input_shape, generator=torch.Generator().manual_seed(0))
        return network, module, image, module(image)


@pytest.mark.parametrize("mask", [False, True], ids=["v1", "v2"])
@pytest.mark.parametrize("case", DEFORM_CASES)
def test_deformconv_with_random_offsets_is_the_direct_bilinear_sampling_sum(case, mask):
    _, _, stride, padding, dilation, groups, offset_groups = DEFORM_CASES[case]
    _, module, image, (out, offsets, *masks) = _deform_outputs(case, mask, offset_scale=8)
    assert (offsets.abs() > 1.5).any() and offsets.abs().max() < 30  # between pixels, some off the map
    expected = _reference_deform_conv(
        image.double().numpy(),
        offsets.double().numpy(),
        masks[0].double().numpy() if masks else None,
        module.deformconv.weight.detach().double().numpy(),
        module.deformconv.bias.detach().double().numpy(),
        stride,
        padding,
        dilation,
        groups,
        offset_groups,
    )
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.double().numpy(), expected, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("mask", [False, True], ids=["v1", "v2"])
@pytest.mark.parametrize("case", DEFORM_CASES)
def test_deformconv_with_zero_offsets_and_a_mask_of_one_is_convolution(case, mask):
    _, _, stride, padding, dilation, groups, _ = DEFORM_CASES[case]
    network, module, image, _ = _deform_outputs(case, mask, offset_scale=0)
    if mask:  # sigmoid(0) is 1/2: make the mask exactly one
        with torch.no_grad():
            module.conv2.bias.fill_(1e4)
    with torch.no_grad():
        out = module(image)[0]
        expected = F.conv2d(image, module.deformconv.weight, module.deformconv.bias, stride, padding, dilation, groups)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("opset", [19, None], ids=["DeformConv-19", "newest"])
@pytest.mark.parametrize("mask", [False, True], ids=["v1", "v2"])
@pytest.mark.parametrize("case", ["strided", "groups"])
def test_deformconv_in_onnxruntime_computes_what_torch_computes(case, mask, opset):
    network, module, image, expected = _deform_outputs(case, mask, offset_scale=8)
    model = network.to_onnx(weights=module, opset=opset)
    assert "DeformConv" in [node.op_type for node in model.graph.node]
    got = _session(model).run(None, {network.input_name: image.numpy()})
    for value, reference in zip(got, expected):
        np.testing.assert_allclose(value, reference.numpy(), atol=1e-4, rtol=1e-4)


def test_deformconv_before_opset_19_is_refused_naming_the_opset_it_needs():
    network = _deform_network("k=3", (3, 3))
    with pytest.raises(CnnDslError) as caught:
        network.to_onnx(opset=18)
    assert caught.value.message == "`deformconv` (ONNX DeformConv) needs ONNX opset 19 or newer, not 18"
    assert (caught.value.pos.line, caught.value.pos.column) == (4, 16)  # `deformconv` after `  @image, out: `


def test_deformconv_as_python_source_computes_what_the_fx_module_computes(tmp_path):
    network, module, image, expected = _deform_outputs("dilated", mask=True, offset_scale=8)
    path = write_python(network, tmp_path / "dcn.py")
    for command in (["check", "--isolated"], ["format", "--isolated", "--check"]):
        done = subprocess.run([sys.executable, "-m", "ruff", *command, str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    written = _imported(path).Dcn()
    written.load_state_dict(module.state_dict())
    with torch.no_grad():
        for value, reference in zip(written.eval()(image), expected):
            torch.testing.assert_close(value, reference)


def test_deformconv_figures_are_the_convolutions_plus_the_sampling():
    network = _deform_network("k=3, s=2, p=0", (3, 3), groups=2, offset_groups=2, mask=True)
    layer = next(layer for _, layer in ir.layers(network.graph) if layer.op == "deformconv")
    assert layer.shape == (6, 4, 3)  # (9 - 3) // 2 + 1 rows, (8 - 3) // 2 + 1 columns
    assert layer.figures.params == 6 * (4 // 2) * 9 + 6
    convolution = 6 * 4 * 3 * 9 * (4 // 2)
    samples = 4 * 9 * 4 * 3  # input channels × taps × output pixels
    assert layer.figures.macs == convolution + samples * (4 + 1)  # four neighbours each, and the mask


DEFORM_ERRORS = [
    (
        "offsets: conv3x3(16), @image, deformconv(6, @offsets)",
        "`deformconv`'s offsets must be 18×9×8 (2·og·kh·kw × the output's size), got 16×9×8",
        32,
    ),
    (
        "offsets: conv3x3(18), @image, deformconv(6, s=2, @offsets)",
        "`deformconv`'s offsets must be 18×5×4 (2·og·kh·kw × the output's size), got 18×9×8",
        32,
    ),
    (
        "offsets: conv3x3(18), mask: conv3x3(18), @image, deformconv(6, @offsets, @mask)",
        "`deformconv`'s mask must be 9×9×8 (og·kh·kw × the output's size), got 18×9×8",
        51,
    ),
    ("deformconv(6)", "`deformconv` takes its offsets and optionally a mask as taps, got 0 tap(s)", 2),
    (
        "offsets: conv3x3(36), @image, deformconv(6, og=3, @offsets)",
        "offset groups og=3 must divide the input channels (4)",
        32,
    ),
]


@pytest.mark.parametrize("body, message, column", DEFORM_ERRORS)
def test_deformconv_refuses_taps_that_do_not_fit_at_the_layer(body, message, column):
    with pytest.raises(CnnDslError) as caught:
        cnndsl.parse(f"network bad {{\n image: input 4x9x8\n {body}\n}}\n", file="bad.cnn")
    assert (caught.value.message, caught.value.pos.line, caught.value.pos.column) == (message, 3, column)


# ---- RoI pooling and RoI Align ----------------------------------------------------------------------------
def _random_rois(count: int = 24, images: int = 2, seed: int = 0):
    """Boxes of every kind: inside the map, partly and wholly outside it, thinner than a pixel; in image pixels."""
    rng = np.random.default_rng(seed)
    corner = rng.uniform(-12, 36, (count, 2))
    size = rng.uniform(0, 40, (count, 2))
    size[:4] = rng.uniform(0, 1.5, (4, 2))
    boxes = np.concatenate([corner, corner + size], 1).astype(np.float32)
    return rng.integers(0, images, count), boxes


def _one_node_session(node, inputs, opset: int):
    from onnx import TensorProto, helper

    types = {"float": TensorProto.FLOAT, "int64": TensorProto.INT64}
    info = [helper.make_tensor_value_info(name, types[kind], None) for name, kind in inputs]
    output = [helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, None)]
    imports = [helper.make_opsetid("", opset)]
    model = helper.make_model(helper.make_graph([node], "one", info, output), opset_imports=imports, ir_version=8)
    return _session(model.SerializeToString())


@pytest.mark.parametrize("sampling_ratio", [0, 1, 2, 3])
@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_is_onnxruntimes_roialign_on_random_boxes(aligned, sampling_ratio):
    from onnx import helper

    from cnndsl.ops.torch_functions import roi_align

    features = np.random.default_rng(1).standard_normal((2, 3, 11, 13)).astype(np.float32)
    images, boxes = _random_rois()
    mode = "half_pixel" if aligned else "output_half_pixel"
    node = helper.make_node(
        "RoiAlign", ["x", "rois", "images"], ["y"], output_height=3, output_width=4, sampling_ratio=sampling_ratio,
        spatial_scale=0.25, mode="avg", coordinate_transformation_mode=mode,
    )  # fmt: skip
    session = _one_node_session(node, [("x", "float"), ("rois", "float"), ("images", "int64")], opset=16)
    (expected,) = session.run(None, {"x": features, "rois": boxes, "images": images})
    rois = torch.from_numpy(np.concatenate([images[:, None], boxes], 1).astype(np.float32))
    got = roi_align(torch.from_numpy(features), rois, (3, 4), 0.25, sampling_ratio or -1, aligned)
    assert (expected == 0).mean() > 0.1 and (expected != 0).mean() > 0.5  # boxes off the map and on it
    np.testing.assert_allclose(got.numpy(), expected, atol=2e-6, rtol=1e-5)


def test_roi_pool_is_onnxruntimes_maxroipool_on_random_boxes():
    from onnx import helper

    from cnndsl.ops.torch_functions import roi_pool

    features = np.random.default_rng(1).standard_normal((2, 3, 11, 13)).astype(np.float32)
    images, boxes = _random_rois()
    rois = np.concatenate([images[:, None], boxes], 1).astype(np.float32)
    node = helper.make_node("MaxRoiPool", ["x", "rois"], ["y"], pooled_shape=[3, 4], spatial_scale=0.25)
    (expected,) = _one_node_session(node, [("x", "float"), ("rois", "float")], opset=16).run(
        None, {"x": features, "rois": rois}
    )
    got = roi_pool(torch.from_numpy(features), torch.from_numpy(rois), (3, 4), 0.25)
    assert (expected == 0).mean() > 0.1 and (expected != 0).mean() > 0.5
    np.testing.assert_array_equal(got.numpy(), expected)


def _roi_network(call: str) -> cnndsl.Network:
    return cnndsl.parse(
        "network regions {\n  image: input 3x20x16\n  conv3x3(5, s=2), features: relu\n"
        f"  boxes: anchors(@image, sizes=[6, 14], ratios=[0.5, 2])\n  @features\n  {call}\n}}\n",
        file="regions.cnn",
    )


@pytest.mark.parametrize(
    "call",
    [
        "roipool(@boxes, size=(3, 2), scale=0.5)",
        "roialign(@boxes, size=3, scale=0.5)",
        "roialign(@boxes, size=(2, 3), scale=0.5, sampling_ratio=2, aligned=true)",
    ],
)
def test_region_pooling_layers_in_onnxruntime_compute_what_torch_computes(call):
    network = _roi_network(call)
    module = network.to_torch(seed=0).eval()
    images = np.random.default_rng(2).standard_normal((2, 3, 20, 16)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(images)).numpy()
    model = network.to_onnx(weights=module)
    assert model.opset_import[0].version == 21  # the newest at which onnxruntime runs RoiAlign and MaxRoiPool
    (got,) = _session(model).run(None, {network.input_name: images})
    assert got.shape == expected.shape == (2, 10 * 8 * 4, 5, *ir.layer(network.graph, max(network.graph)).shape[2:])
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "call, opset, message",
    [
        ("roialign(@boxes, aligned=true)", 15, "`roialign` with aligned=true needs ONNX opset 16 or newer, not 15"),
        (
            "roipool(@boxes)",
            22,
            f"`roipool` at ONNX opset 22 would be MaxRoiPool-22, which onnxruntime "
            f"{importlib.metadata.version('onnxruntime')} does not run",
        ),
    ],
)
def test_region_pooling_refuses_an_opset_onnxruntime_cannot_run_at_the_layer(call, opset, message):
    with pytest.raises(CnnDslError) as caught:
        _roi_network(call).to_onnx(opset=opset)
    assert (caught.value.message, caught.value.pos.line, caught.value.pos.column) == (message, 6, 3)


@pytest.mark.parametrize(
    "call, message",
    [
        ("roipool(size=7)", "`roipool` takes one tap, the boxes; got 0"),
        ("roialign(@image)", "`roialign` takes K×4 boxes (x1, y1, x2, y2) for each image, got 3×20×16"),
        ("roialign(@boxes, sampling_ratio=1.5)", "sampling_ratio must be a whole number (≤ 0: adaptive), got 1.5"),
        ("anchors(sizes=[8])", "`anchors` takes one tap, the image its boxes are measured on; got 0"),
        ("anchors(@image, ratios=[1, -2])", "aspect ratios must be a positive number, got -2"),
        (
            "anchors(@image, sizes=range(1, 101), ratios=range(1, 12))",
            "`anchors` would put 1,100 boxes on each pixel, more than 1,024",
        ),
    ],
)
def test_region_layers_refuse_wrong_inputs_at_the_layer(call, message):
    with pytest.raises(CnnDslError) as caught:
        _roi_network(call)
    assert (caught.value.message, caught.value.pos.line, caught.value.pos.column) == (message, 6, 3)


# ---- anchors ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "image, stride, sizes, ratios",
    [
        ((3, 64, 48), 8, (16, 32), (0.5, 1.0, 2.0)),
        ((3, 37, 50), 4, (10,), (0.3, 1.7)),
        ((3, 32, 32), 32, (128, 256, 512), (1.0,)),
    ],
)
def test_anchors_are_torchvisions_anchor_generator(image, stride, sizes, ratios):
    from oracles import torchvision_models

    torchvision_models()  # importable on the CPU build
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.image_list import ImageList

    network = cnndsl.parse(
        f"network a {{\n  image: input {'x'.join(map(str, image))}\n  features: conv(4, k={stride}, s={stride}, p=0)\n"
        f"  anchors(@image, sizes={list(sizes)}, ratios={list(ratios)})\n}}\n"
    )
    batch = torch.zeros(2, *image)
    with torch.no_grad():
        got = network.to_torch(seed=0)(batch)
        feature_map = torch.zeros(2, 4, image[1] // stride, image[2] // stride)
    expected = AnchorGenerator((sizes,), (ratios,))(ImageList(batch, [image[1:]] * 2), [feature_map])
    assert got.shape == (2, *expected[0].shape)
    for index in range(2):
        torch.testing.assert_close(got[index], expected[index], rtol=0, atol=0)
    (onnx_boxes,) = _session(network.to_onnx()).run(None, {network.input_name: batch.numpy()})
    np.testing.assert_array_equal(onnx_boxes, got.numpy())


@pytest.mark.parametrize(
    "call", ["roipool(@boxes, size=2, scale=0.5)", "roialign(@boxes, size=(2, 3), scale=0.5, aligned=true)"]
)
def test_region_pooling_as_python_source_needs_only_torch_and_computes_what_the_fx_module_computes(call, tmp_path):
    network = _roi_network(call)
    module = network.to_torch(seed=0).eval()
    path = write_python(network, tmp_path / "regions.py")
    text = path.read_text()
    assert "cnndsl" not in text.split('"""', 2)[2]  # past the docstring: no import of cnndsl
    assert [line for line in text.splitlines() if line.startswith(("import", "from"))] == [
        "import torch",
        "from torch import nn",
    ]
    for command in (["check", "--isolated"], ["format", "--isolated", "--check"]):
        done = subprocess.run([sys.executable, "-m", "ruff", *command, str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    written = _imported(path).Regions()
    written.load_state_dict(module.state_dict())
    images = torch.randn(2, 3, 20, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(written.eval()(images), module(images), rtol=0, atol=0)


def _imported(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    source = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(source)
    return source


@pytest.mark.parametrize(
    "call",
    [
        "roipool(@boxes, size=2, scale=0.5)",
        "roialign(@boxes, size=(2, 3), scale=0.5, sampling_ratio=2)",
        "offsets: conv(18), mask: (@features, conv(9), sigmoid), @features, deformconv(4, @offsets, @mask)",
    ],
)
def test_two_stage_layers_as_a_torch_export_program_compute_what_the_fx_module_computes(call, tmp_path):
    from cnndsl.backends.torch import write_pt2

    network = _roi_network(call)
    module = network.to_torch(seed=0).eval()
    program = torch.export.load(write_pt2(network, tmp_path / "regions.pt2", module))
    images = torch.randn(3, 3, 20, 16, generator=torch.Generator().manual_seed(4))  # not the export's batch of 2
    with torch.no_grad():
        torch.testing.assert_close(program.module()(images), module(images))


def test_adaptive_roi_align_is_refused_by_torch_export_at_the_layer(tmp_path):
    from cnndsl.backends.torch import write_pt2

    with pytest.raises(CnnDslError) as caught:
        write_pt2(_roi_network("roialign(@boxes, scale=0.5)"), tmp_path / "regions.pt2")
    assert (caught.value.message, caught.value.pos.line, caught.value.pos.column) == (
        "`roialign` with adaptive sampling (sampling_ratio ≤ 0) takes as many samples as its boxes decide: "
        "torch.export cannot write it",
        6,
        3,
    )
    assert not (tmp_path / "regions.pt2").exists()


def test_the_functions_a_generated_file_defines_are_names_no_layer_takes():
    from cnndsl.backends.python_names import RESERVED
    from cnndsl.ops.torch_functions import NAMES

    assert NAMES <= RESERVED


# ---- box decoding, clipping, top-k ------------------------------------------------------------------------
RPN = """network rpn {
  image: input 3x32x24
  conv3x3(8, s=4), features: relu
  scores: conv1x1(3)
  @features, deltas: conv1x1(12)
  anchors: anchors(@image, sizes=[12], ratios=[0.5, 1, 2])
  @deltas, proposals: boxdecode(@anchors, weights=[1, 1, 2, 2])
  clipped: clipboxes(@image)
  best: topk(10, @scores)
  @scores, top: topk(10)
  output @proposals, @clipped, @best, @top, @scores, @deltas, @anchors
}
"""


def test_rpn_boxes_are_torchvisions_box_coder_clipping_and_top_k():
    from oracles import torchvision_models

    torchvision_models()  # importable on the CPU build
    from torchvision.models.detection._utils import BoxCoder
    from torchvision.models.detection.rpn import concat_box_prediction_layers
    from torchvision.ops.boxes import clip_boxes_to_image

    network = cnndsl.parse(RPN, file="rpn.cnn")
    module = network.to_torch(seed=0).eval()
    with torch.no_grad():
        deltas_conv = next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels == 12)
        deltas_conv.weight.mul_(60)  # some widths and heights beyond the log(1000/16) clamp
        images = torch.randn(2, 3, 32, 24, generator=torch.Generator().manual_seed(5))
        proposals, clipped, best, top, scores, deltas, anchors = module(images)
    objectness, regression = concat_box_prediction_layers([scores], [deltas])
    assert (regression[:, 2:] / 2 > math.log(1000 / 16)).any()
    expected = BoxCoder((1.0, 1.0, 2.0, 2.0)).decode(regression, list(anchors)).view(2, -1, 4)
    torch.testing.assert_close(proposals, expected, rtol=0, atol=0)
    torch.testing.assert_close(clipped, clip_boxes_to_image(expected, (32, 24)), rtol=0, atol=0)
    assert (clipped != proposals).any()
    ranked = objectness.view(2, -1).topk(10, dim=1)
    torch.testing.assert_close(top, ranked.values, rtol=0, atol=0)
    torch.testing.assert_close(best, clipped[torch.arange(2)[:, None], ranked.indices], rtol=0, atol=0)
    got = _session(network.to_onnx(weights=module)).run(None, {network.input_name: images.numpy()})
    for value, reference in zip(got, (proposals, clipped, best, top)):
        np.testing.assert_allclose(value, reference.numpy(), rtol=1e-5, atol=1e-3)  # boxes in pixels


@pytest.mark.parametrize(
    "line, message",
    [
        ("@deltas, boxdecode(@scores)", "`boxdecode` takes boxes as K×4 (x1, y1, x2, y2), got 3×8×6"),
        ("@scores, boxdecode(@anchors)", "`boxdecode` takes deltas as K×4 or a map of A·4×H×W, got 3×8×6"),
        ("@features, boxdecode(@anchors)", "`boxdecode` has 96 deltas for 144 boxes"),
        ("@anchors, topk(5)", "`topk` of K×4 boxes needs their scores as a tap"),
        ("@anchors, topk(5, @features)", "`topk` has 384 scores for 144 boxes"),
        ("@deltas, boxdecode(@anchors, weights=[1, 2])", "the box weights are four numbers (x, y, w, h), got [1, 2]"),
    ],
)
def test_box_layers_refuse_inputs_that_do_not_match_at_the_layer(line, message):
    text = RPN.replace("  output @proposals", f"  {line}\n  output @proposals")
    with pytest.raises(CnnDslError) as caught:
        cnndsl.parse(text, file="rpn.cnn")
    assert (caught.value.message, caught.value.pos.line) == (message, 11)


def test_every_function_a_generated_file_may_define_passes_ruff_as_written(tmp_path):
    from cnndsl.ops.torch_functions import NAMES, source

    path = tmp_path / "functions.py"
    path.write_text(f"import torch\n\n\n{source(NAMES)}")
    for command in (["check", "--isolated"], ["format", "--isolated", "--check"]):
        done = subprocess.run([sys.executable, "-m", "ruff", *command, str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


# ---- the page ---------------------------------------------------------------------------------------------
def test_every_example_on_the_two_stage_page_runs(cli, tmp_path, monkeypatch):
    from docs_pages import run_page
    from oracles import torchvision_models

    torchvision_models()  # the page imports torchvision, which the CPU build imports only so (run on its own too)

    monkeypatch.chdir(tmp_path)

    from cnndsl.core.resources import library_dir

    def write_file(fence):
        if fence.kind == "text":  # an excerpt of library/fasterrcnn.cnn: each line as the library has it
            library = (library_dir() / "fasterrcnn.cnn").read_text(encoding="utf-8")
            assert all(line.strip() in library for line in fence.body.splitlines())
            return
        assert fence.kind == "cnn" and fence.info.startswith("file=")
        (tmp_path / fence.info.removeprefix("file=")).write_text(fence.body)

    ran = run_page("two-stage.md", cli, folder=tmp_path, other=write_file)
    assert ran == {"python": 6, "console": 5, "cnn": 6, "text": 1}


def test_the_seeds_faster_rcnn_is_the_librarys_with_the_parameters_of_torchvisions_vgg16_and_detection_heads():
    """The page's network is library/fasterrcnn_vgg16.cnn's, line for line; its count, from torchvision's layers
    (built on the meta device: shapes, no weights) and the prototxt's RPN convolutions (18 scores, 36 deltas)."""
    from docs_pages import fences
    from oracles import torchvision_models

    from cnndsl.core.resources import library_dir

    models = torchvision_models()
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead

    (text,) = [fence.body for fence in fences("two-stage.md", "cnn") if fence.info == "file=fasterrcnn_vgg16.cnn"]
    assert text.strip() in (library_dir() / "fasterrcnn_vgg16.cnn").read_text(encoding="utf-8")
    network = cnndsl.parse(text, file="fasterrcnn_vgg16.cnn")
    with torch.device("meta"):
        parts = [models.vgg16().features, TwoMLPHead(512 * 7 * 7, 4096), FastRCNNPredictor(4096, 21)]
        rpn = [torch.nn.Conv2d(512, 512, 3), torch.nn.Conv2d(512, 18, 1), torch.nn.Conv2d(512, 36, 1)]
    expected = sum(parameter.numel() for part in parts + rpn for parameter in part.parameters())
    assert network.params == expected == 137_078_239


# ---- multi-scale RoI Align ----------------------------------------------------------------------------------
def _onnxruntime_roi_align(input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    """torchvision.ops.roi_align's signature, computed by onnxruntime's RoiAlign kernel."""
    from onnx import helper

    node = helper.make_node(
        "RoiAlign", ["x", "rois", "images"], ["y"], output_height=output_size[0], output_width=output_size[1],
        sampling_ratio=max(sampling_ratio, 0), spatial_scale=spatial_scale, mode="avg",
        coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel",
    )  # fmt: skip
    session = _one_node_session(node, [("x", "float"), ("rois", "float"), ("images", "int64")], opset=16)
    feeds = {"x": input.numpy(), "rois": rois[:, 1:].numpy(), "images": rois[:, 0].long().numpy()}
    return torch.from_numpy(session.run(None, feeds)[0])


PYRAMID = """network pyramid {
  image: input 3x64x64
  conv(8, k=4, s=4, p=0), p2: relu
  conv(8, s=2), p3: relu
  conv(8, s=2), p4: relu
  boxes: anchors(@image, sizes=[6, 12, 24], ratios=[0.5, 2])
  out: msroialign(@p2, @p3, @p4, scales=[1/4, 1/8, 1/16], size=(2, 3), canonical=(16, 4))
  output @out, @p2, @p3, @p4, @boxes
}
"""


def test_multiscale_roi_align_is_torchvisions_with_onnxruntimes_roi_align(monkeypatch):
    from oracles import torchvision_models

    torchvision_models()  # importable on the CPU build
    import torchvision.ops.poolers as poolers

    monkeypatch.setattr(poolers, "roi_align", _onnxruntime_roi_align)
    network = cnndsl.parse(PYRAMID, file="pyramid.cnn")
    module = network.to_torch(seed=0).eval()
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        got, p2, p3, p4, boxes = module(images)
    reference = poolers.MultiScaleRoIAlign(["p2", "p3", "p4"], (2, 3), 2, canonical_scale=16, canonical_level=4)
    expected = reference({"p2": p2, "p3": p3, "p4": p4}, list(boxes), [(64, 64)] * 2)
    sides = ((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])).sqrt()
    levels = torch.floor(4 + torch.log2(sides / 16) + 1e-6).clamp(2, 4)
    assert set(levels.unique().tolist()) == {2.0, 3.0, 4.0}  # every level is used
    torch.testing.assert_close(got.reshape(-1, 8, 2, 3), expected, atol=1e-5, rtol=1e-5)
    (onnx_got, *_) = _session(network.to_onnx(weights=module)).run(None, {network.input_name: images.numpy()})
    np.testing.assert_allclose(onnx_got, got.numpy(), atol=1e-5, rtol=1e-5)
