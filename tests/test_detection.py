"""Detection post-processing: `nms` against onnxruntime's NonMaxSuppression kernel, the YOLO decoders against
darknet's own formulas (computed here in NumPy, independently of cnndsl), torch against ONNX."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper

import cnndsl
from cnndsl.backends.onnx import build_model
from cnndsl.core.errors import CnnDslError
from cnndsl.ops.nms import batched_nms, detections_nms


# --- the reference: onnxruntime's NonMaxSuppression kernel, ranked as ONNX's TopK ranks -----------------------
def ort_selected(boxes: np.ndarray, scores: np.ndarray, iou: float, score: float, limit: int) -> np.ndarray:
    """(batch, class, box) triples that onnxruntime's NonMaxSuppression keeps; boxes B × N × 4 (cx, cy, w, h)."""
    node = helper.make_node("NonMaxSuppression", ["boxes", "scores", "limit", "iou", "score"], ["selected"],
                            center_point_box=1)  # fmt: skip
    constants = [helper.make_tensor("limit", TensorProto.INT64, [1], [limit]),
                 helper.make_tensor("iou", TensorProto.FLOAT, [1], [iou]),
                 helper.make_tensor("score", TensorProto.FLOAT, [1], [score])]  # fmt: skip
    graph = helper.make_graph(
        [node],
        "nms",
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [None, None, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, None, None]),
        ],  # fmt: skip
        [helper.make_tensor_value_info("selected", TensorProto.INT64, [None, 3])],
        constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"boxes": boxes, "scores": scores})[0]


def expected_rows(detections: np.ndarray, iou: float, score: float, max_det: int) -> np.ndarray:
    """B × max_det × 6 from the kernel's selection: the best max_det by score (ties: lower class, then lower box)."""
    batch, rows, count = detections.shape
    boxes, scores = np.ascontiguousarray(detections[:, :4].transpose(0, 2, 1)), np.ascontiguousarray(detections[:, 4:])
    selected = ort_selected(boxes, scores, iou, score, max_det)
    result = np.zeros((batch, max_det, 6), np.float32)
    result[..., 5] = -1
    for image in range(batch):
        mine = selected[selected[:, 0] == image]
        found = scores[image, mine[:, 1], mine[:, 2]]
        order = np.lexsort((mine[:, 1] * count + mine[:, 2], -found))[:max_det]
        for row, pick in enumerate(order):
            _, label, number = mine[pick]
            cx, cy, w, h = boxes[image, number]
            result[image, row] = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, found[pick], label)
    return result


def random_detections(seed: int, batch: int, classes: int, count: int, coarse: bool = False) -> np.ndarray:
    """Boxes in a 64-pixel image; `coarse` draws from a few values, so that scores tie and boxes repeat."""
    rng = np.random.default_rng(seed)
    if coarse:
        centre = rng.integers(8, 24, (batch, 2, count)).astype(np.float32)
        size = rng.integers(2, 5, (batch, 2, count)).astype(np.float32) * 4
        scores = rng.integers(0, 5, (batch, classes, count)).astype(np.float32) / 5
    else:
        centre = rng.uniform(0, 64, (batch, 2, count)).astype(np.float32)
        size = rng.uniform(2, 30, (batch, 2, count)).astype(np.float32)
        scores = rng.uniform(0, 1, (batch, classes, count)).astype(np.float32)
    return np.concatenate([centre, size, scores], axis=1)


CASES = {
    "random": (random_detections(0, 2, 3, 60), 0.45, 0.25, 20),
    "ties": (random_detections(1, 2, 3, 50, coarse=True), 0.5, 0.2, 30),
    "one class": (random_detections(2, 1, 1, 80), 0.3, 0.1, 100),
    "all below the threshold": (random_detections(3, 2, 2, 30) * np.float32([[1]] * 4 + [[0.1]] * 2), 0.5, 0.25, 10),
    "more rows than candidates": (random_detections(4, 1, 2, 3), 0.5, 0.0, 10),
    "no boxes": (np.zeros((2, 7, 0), np.float32), 0.5, 0.25, 4),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_nms_equals_onnxruntimes_kernel(case):
    detections, iou, score, max_det = CASES[case]
    expected = expected_rows(detections, iou, score, max_det)
    got = detections_nms(torch.from_numpy(detections), iou, score, max_det).numpy()
    np.testing.assert_array_equal(got, expected)
    if case == "ties":
        assert len(set(expected[0, :, 4])) < np.count_nonzero(expected[0, :, 5] >= 0)  # scores do tie
    if case == "all below the threshold":
        assert (got[..., 5] == -1).all() and (got[..., :5] == 0).all()


def test_batched_nms_is_torchvisions_function_in_pure_torch():
    """torchvision's batched_nms contract (x1, y1, x2, y2 boxes; indices by falling score) against the kernel."""
    detections = random_detections(5, 1, 1, 70, coarse=True)[0]
    labels = np.random.default_rng(6).integers(0, 3, 70)
    centre, size = detections[0:2].T, detections[2:4].T
    corners = torch.from_numpy(np.concatenate([centre - size / 2, centre + size / 2], 1))
    kept = batched_nms(corners, torch.from_numpy(detections[4]), torch.from_numpy(labels), 0.4).numpy()
    scores = np.full((1, 3, 70), -2.0, np.float32)  # other labels: below the threshold
    scores[0, labels, np.arange(70)] = detections[4]
    selected = ort_selected(detections[None, :4].transpose(0, 2, 1).copy(), scores, 0.4, -1.0, 70)
    order = np.lexsort((selected[:, 2], -scores[0, selected[:, 1], selected[:, 2]]))
    np.testing.assert_array_equal(kept, selected[order, 2])


# --- the nms kind in a network: torch and the exported ONNX model ---------------------------------------------
DETECTOR = """network tiny_detector(classes=3) {
    input 3x64x64
    conv(8, s=2), leakyrelu(0.1), conv(16, s=2), leakyrelu(0.1), conv(32, s=2), leakyrelu(0.1)
    p8: conv(3 * (5 + classes), k=1)
    @p8, conv(32, s=2), leakyrelu(0.1), conv(3 * (5 + classes), k=1)
    y16: yolo(anchors=[10, 13, 30, 61, 62, 45, 59, 119, 116, 90, 156, 198], mask=[3, 4, 5], stride=16)
    @p8, yolo(@y16, anchors=[10, 13, 30, 61, 62, 45, 59, 119, 116, 90, 156, 198], mask=[0, 1, 2], stride=8)
    nms(iou=0.45, score=0.05, max_det=40)
}
"""


@pytest.fixture(scope="module")
def detector():
    return cnndsl.parse(DETECTOR)


def test_detector_shapes_and_the_bound_on_kept_boxes(detector):
    shapes = {layer.op: layer.shape for _, layer in cnndsl.graph.ir.layers(detector.graph)}
    assert shapes["yolo"] == (7, 3 * 4 * 4 + 3 * 8 * 8)  # both levels, 48 + 192 boxes of 4 + 3 rows
    assert shapes["nms"] == (40, 6)
    assert "Data-dependent: nms: at most 40 boxes kept; how many depends on the image" in str(detector.summary())


def test_exported_detector_in_onnxruntime_equals_the_torch_module(detector, tmp_path):
    torch.manual_seed(0)
    module = detector.to_torch(seed=1).eval()
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = module(images).numpy()
    path = tmp_path / "detector.onnx"
    detector.to_onnx(str(path), weights=dict(module.state_dict()))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: images.numpy()})[0]
    assert got.shape == (2, 40, 6) and expected.shape == (2, 40, 6)
    assert {node.op_type for node in build_model(detector).graph.node} >= {"NonMaxSuppression", "TopK"}
    kept = expected[..., 5] >= 0
    assert kept.sum() > 10  # the random detector finds boxes to keep or drop
    np.testing.assert_array_equal(got[..., 5], expected[..., 5])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_python_source_defines_the_detection_functions_and_computes_what_the_module_does(detector, tmp_path):
    module = detector.to_torch(seed=1).eval()
    from cnndsl.backends.torch import standalone_source

    text = standalone_source(detector)
    assert "def detections_nms(" in text and "def yolo_decode(" in text and "import cnndsl" not in text
    namespace: dict = {}
    exec(compile(text, "detector.py", "exec"), namespace)  # noqa: S102  (the file just generated)
    written = namespace["TinyDetector"]().eval()
    written.load_state_dict(module.state_dict())
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(written(images), module(images))


def test_pt2_of_a_detector_ending_in_nms_computes_what_the_module_does(tmp_path):
    """nms takes max_det fixed-shape steps, so torch.export traces it; the program keeps the dynamic batch. (At
    12 rows: the trace unrolls 44 operators a row, and 40 rows took 10 s of the suite.)"""
    from cnndsl.backends.torch import write_pt2

    detector = cnndsl.parse(DETECTOR.replace("max_det=40", "max_det=12"))
    module = detector.to_torch(seed=1).eval()
    write_pt2(detector, tmp_path / "d.pt2", module)
    program = torch.export.load(str(tmp_path / "d.pt2")).module()
    torch.manual_seed(0)
    for batch in (2, 3):
        images = torch.rand(batch, 3, 64, 64)
        with torch.no_grad():
            expected, got = module(images), program(images)
        assert got.shape == (batch, 12, 6) and (expected[..., 5] >= 0).sum() > 10  # of 240 candidates
        assert torch.equal(got, expected)


def greedy_rows(detections: np.ndarray, iou: float, score: float, max_det: int) -> np.ndarray:
    """The rows of per-class greedy NMS as torchvision's batched_nms keeps them (candidates class-major, by
    falling score, ties in that order), the best max_det: what nms returned before its steps were fixed."""
    result = np.zeros((len(detections), max_det, 6), np.float32)
    result[..., 5] = -1
    for image, values in enumerate(detections):
        corners, found, labels = _corners_of(values, score)
        kept = batched_nms(corners, found, labels, iou)[:max_det]
        columns = [corners[kept], found[kept, None], labels[kept, None].float()]
        result[image, : len(kept)] = torch.cat(columns, 1).numpy()
    return result


GREEDY_CASES = {
    **CASES,
    "more kept than max_det": (random_detections(5, 2, 4, 400), 0.5, 0.05, 50),
    "many overlapping ties": (random_detections(6, 3, 2, 300, coarse=True), 0.3, 0.0, 60),
}


@pytest.mark.parametrize("case", GREEDY_CASES, ids=list(GREEDY_CASES))
def test_nms_steps_equal_per_class_greedy_nms(case):
    detections, iou, score, max_det = GREEDY_CASES[case]
    expected = greedy_rows(detections, iou, score, max_det)
    got = detections_nms(torch.from_numpy(detections), iou, score, max_det).numpy()
    np.testing.assert_array_equal(got, expected)
    if case == "more kept than max_det":
        kept = batched_nms(*_corners_of(detections[0], 0.05), 0.5)
        assert len(kept) > max_det and (got[..., 5] >= 0).all()  # the cut at max_det is what is tested


def _corners_of(values: np.ndarray, score: float):
    """(corners, scores, labels) of one image's candidates above `score`, for batched_nms."""
    values = torch.from_numpy(values)
    labels, numbers = torch.nonzero(values[4:] > score, as_tuple=True)
    centre, size = values[0:2].T[numbers], values[2:4].T[numbers]
    return torch.cat([centre - size / 2, centre + size / 2], 1), values[4:][labels, numbers], labels


def test_nms_refuses_a_map_that_is_not_decoded():
    with pytest.raises(CnnDslError, match=r"`nms` takes decoded detections, \(4 \+ classes\) × boxes, got 8×4×4"):
        cnndsl.parse("network n {\n  input 3x8x8\n  conv(8, s=2), nms\n}\n")


def test_nms_pads_with_one_row_broadcast_so_a_large_max_det_makes_a_small_model():
    """The padding is one (1, 1, 6) row that Expand repeats at run time: max_det 10^12 is a 6 kB model, not a
    24 TB constant that ran out of memory unlocated. onnxruntime runs a small one: the padding rows as torch's."""
    text = "network n {{\n  input 14x2x3\n  yolo(anchors=[10, 13, 16, 30], stride=8), identity\n  nms(max_det={})\n}}\n"
    large = build_model(cnndsl.parse(text.format(10**12)))
    assert large.ByteSize() < 16_384
    dims = onnx.shape_inference.infer_shapes(large, strict_mode=True).graph.output[0].type.tensor_type.shape.dim
    assert [dim.dim_param or dim.dim_value for dim in dims] == ["batch", 10**12, 6]
    network = cnndsl.parse(text.format(30))  # 12 boxes of 2 classes: 24 candidates, then 6 rows of padding
    images = torch.randn(2, 14, 2, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = network.to_torch().eval()(images).numpy()  # no weights: yolo decodes, nms selects
    session = onnxruntime.InferenceSession(build_model(network).SerializeToString())
    [got] = session.run(None, {"input": images.numpy()})
    assert got.shape == expected.shape == (2, 30, 6)
    padding = expected[:, :, 5] == -1
    assert padding[:, 24:].all() and np.array_equal(got[padding], expected[padding])
    assert np.array_equal(expected[padding], np.tile([0, 0, 0, 0, 0, -1], (padding.sum(), 1)))


# --- YOLOv3: darknet's forward_yolo_layer and get_yolo_box, in NumPy ------------------------------------------
def darknet_yolo(output: np.ndarray, anchors, mask, classes: int, net_w: int, net_h: int, scale_xy: float = 1.0):
    """Darknet's detections of one [yolo] layer (pjreddie's yolo_layer.c, AlexeyAB's scale_x_y): rows
    (x, y, w, h in network pixels, objectness × class probability), in get_yolo_detections' order."""
    n, (_, lh, lw) = len(mask), output.shape
    x = output.reshape(n, 5 + classes, lh, lw).astype(np.float64)
    logistic = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    x[:, 0:2] = logistic(x[:, 0:2]) * scale_xy - 0.5 * (scale_xy - 1)  # activate_array + scal_add_cpu
    x[:, 4:] = logistic(x[:, 4:])
    detections = []
    for i in range(lw * lh):
        row, col = i // lw, i % lw
        for k in range(n):
            # get_yolo_box: b.x = (i + x) / lw; b.w = exp(w) * biases[2n] / w; then scaled to the network input
            bx = (col + x[k, 0, row, col]) / lw * net_w
            by = (row + x[k, 1, row, col]) / lh * net_h
            bw = math.exp(x[k, 2, row, col]) * anchors[2 * mask[k]] / net_w * net_w
            bh = math.exp(x[k, 3, row, col]) * anchors[2 * mask[k] + 1] / net_h * net_h
            probabilities = x[k, 4, row, col] * x[k, 5:, row, col]
            detections.append([bx, by, bw, bh, *probabilities])
    return np.asarray(detections).T


YOLOV3_ANCHORS = [10, 13, 16, 30, 33, 23, 30, 61, 62, 45, 59, 119, 116, 90, 156, 198, 373, 326]


@pytest.mark.parametrize("scale_xy", [1.0, 1.2])
def test_yolo_decoding_equals_darknets_get_yolo_box(scale_xy):
    classes, mask, (height, width) = 4, [6, 7, 8], (5, 6)  # a 160 × 192 input at stride 32
    text = (f"network v3 {{\n  input {3 * (5 + classes)}x{height}x{width}\n"
            f"  yolo(anchors={YOLOV3_ANCHORS}, mask={mask}, stride=32, classes={classes}, scale_xy={scale_xy})\n}}\n")  # fmt: skip
    maps = np.random.default_rng(7).normal(size=(2, 3 * (5 + classes), height, width)).astype(np.float32)
    got = cnndsl.parse(text).to_torch()(torch.from_numpy(maps)).numpy()
    for image in range(2):
        expected = darknet_yolo(maps[image], YOLOV3_ANCHORS, mask, classes, 32 * width, 32 * height, scale_xy)
        np.testing.assert_allclose(got[image], expected, rtol=1e-5, atol=1e-4)


def darknet_detection(output: np.ndarray, side: int, n: int, classes: int, w: int, h: int) -> np.ndarray:
    """Darknet's get_detection_detections (detection_layer.c, sqrt=1): probabilities, then confidences, then boxes."""
    detections = []
    for i in range(side * side):
        row, col = i // side, i % side
        for k in range(n):
            scale = output[side * side * classes + i * n + k]
            box = side * side * (classes + n) + (i * n + k) * 4
            bx, by = (output[box] + col) / side * w, (output[box + 1] + row) / side * h
            bw, bh = output[box + 2] ** 2 * w, output[box + 3] ** 2 * h
            detections.append([bx, by, bw, bh, *(scale * output[i * classes : (i + 1) * classes])])
    return np.asarray(detections).T


def test_yolov1_decoding_equals_darknets_detection_layer():
    side, boxes, classes = 3, 2, 4
    values = side * side * (boxes * 5 + classes)
    text = (f"network v1 {{\n  input {values}\n"
            f"  yologrid(grid={side}, boxes={boxes}, classes={classes}, size=(96, 192))\n}}\n")  # fmt: skip
    output = np.random.default_rng(8).uniform(0, 1, (2, values)).astype(np.float32)
    got = cnndsl.parse(text).to_torch()(torch.from_numpy(output)).numpy()
    for image in range(2):
        expected = darknet_detection(output[image].astype(np.float64), side, boxes, classes, 192, 96)
        np.testing.assert_allclose(got[image], expected, rtol=1e-5, atol=1e-4)


# --- cnndsl predict on a detector: boxes printed in the image's pixels and drawn --------------------------------
@pytest.mark.filterwarnings("error::UserWarning")  # torch's about a read-only NumPy array reached the user's stderr
def test_predict_prints_a_detectors_boxes_in_image_pixels_and_draws_them(detector, tmp_path, monkeypatch):
    from click.testing import CliRunner
    from PIL import Image
    from safetensors.torch import save_file

    from cnndsl.cli import main
    from cnndsl.train.vision import transforms_v2

    v2, _ = transforms_v2()  # torchvision, its C ops stubbed where they do not load

    (tmp_path / "out").mkdir()
    (tmp_path / "detector.cnn").write_text(DETECTOR)
    module = detector.to_torch(seed=1).eval()
    save_file({key: value.contiguous() for key, value in module.state_dict().items()}, tmp_path / "w.safetensors")
    pixels = np.random.default_rng(9).integers(0, 256, (96, 128, 3), dtype=np.uint8)  # 128 wide, 96 high
    Image.fromarray(pixels).save(tmp_path / "street.png")
    arguments = ["predict", "detector.cnn", "street.png", "--weights", "w.safetensors", "--masks", "out"]
    monkeypatch.chdir(tmp_path)  # the paths as a user in the folder types them
    runner = CliRunner()
    result = runner.invoke(main, [*arguments, "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    (found,) = json.loads(result.output)
    text = runner.invoke(main, arguments, catch_exceptions=False).output
    drawing = np.asarray(Image.open(tmp_path / "out" / "street.boxes.png"))
    # the reference: torchvision's resize to the input, [0, 1] values, the module, corners scaled to 128 × 96
    image = v2.Compose([v2.ToImage(), v2.Resize((64, 64)), v2.ToDtype(torch.float32, scale=True)])(
        Image.fromarray(pixels)
    )
    with torch.no_grad():
        rows = module(image[None])[0].numpy()
    kept = rows[rows[:, 5] >= 0]
    assert len(kept) > 5 and len(found["boxes"]) == len(kept)
    np.testing.assert_allclose([box["box"] for box in found["boxes"]], kept[:, :4] * [2, 1.5, 2, 1.5], atol=0.006)
    assert [box["class"] for box in found["boxes"]] == [str(int(label)) for label in kept[:, 5]]
    np.testing.assert_allclose([box["score"] for box in found["boxes"]], kept[:, 4], rtol=1e-6)
    assert found["drawn"] == str(Path("out") / "street.boxes.png")
    assert drawing.shape == (96, 128, 3)
    edges = [(y1, max(x1, 0), min(x2, 127)) for x1, y1, x2, _ in (box["box"] for box in found["boxes"]) if 0 <= y1 < 95]
    y1, left, right = edges[0]  # a box whose top edge lies in the image
    assert tuple(drawing[int(y1), int((left + right) / 2)]) == (255, 0, 0)  # drawn in red
    assert (drawing != pixels).any(axis=2).mean() < 0.5  # the rest is the image
    assert text.splitlines()[0] == f"street.png: {len(kept)} boxes, drawn in {Path('out') / 'street.boxes.png'}"
    first = found["boxes"][0]
    assert (
        text.splitlines()[1]
        == f"  {first['class']} {first['score']:.3f} at ({', '.join(f'{v:g}' for v in first['box'])})"
    )


# --- cnndsl compile: the library's detectors as ONNX files that take images and return detections --------------
def _compiled(tmp_path, name: str, *options: str) -> onnxruntime.InferenceSession:
    import subprocess
    import sys

    target = tmp_path / f"{name}.onnx"
    command = [
        sys.executable,
        "-m",
        "cnndsl",
        "compile",
        name,
        "--to",
        "onnx",
        "--input",
        "3x160x160",
        "-o",
        str(target),
    ]
    done = subprocess.run([*command, *options], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout == f"wrote {target}\n", done.stderr
    return onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])


def test_compile_yolov3_to_onnx_gives_images_in_detections_out(tmp_path):
    session = _compiled(tmp_path, "yolov3", "--seed", "0")
    (image,), (output,) = session.get_inputs(), session.get_outputs()
    assert (image.shape, output.shape) == (["batch", 3, 160, 160], ["batch", 300, 6])
    (rows,) = session.run(
        None, {image.name: np.random.default_rng(0).uniform(0, 1, (2, 3, 160, 160)).astype(np.float32)}
    )
    assert rows.shape == (2, 300, 6)
    labels, scores = rows[..., 5], rows[..., 4]
    assert set(np.unique(labels)) <= {-1.0, *map(float, range(80))}
    assert ((labels == -1) == (scores == 0)).all() and (scores[labels >= 0] > 0.25).all()  # nms's score threshold
    assert (np.diff(scores, axis=1) <= 0).all()  # by falling score, padding last


def test_compiled_yolov3_tiny_returns_the_torch_modules_detections(tmp_path):
    from safetensors.torch import save_file

    network = cnndsl.load("yolov3_tiny", input=(3, 160, 160), classes=3)
    module = network.to_torch(seed=2).eval()
    save_file({key: value.contiguous() for key, value in module.state_dict().items()}, tmp_path / "tiny.safetensors")
    session = _compiled(tmp_path, "yolov3_tiny", "-p", "classes=3", "--weights", str(tmp_path / "tiny.safetensors"))
    images = np.random.default_rng(1).uniform(0, 1, (2, 3, 160, 160)).astype(np.float32)
    (got,) = session.run(None, {session.get_inputs()[0].name: images})
    with torch.no_grad():
        expected = module(torch.from_numpy(images)).numpy()
    assert (expected[..., 5] >= 0).sum() > 100
    assert_same_detections(got, expected)


def assert_same_detections(got: np.ndarray, expected: np.ndarray) -> None:
    """The same rows; two rows whose scores differ by float32 rounding only (torch's and onnxruntime's sigmoid
    differ in the last bits) may come in either order."""
    np.testing.assert_allclose(got[..., 4], expected[..., 4], rtol=1e-5, atol=1e-6)
    for image in range(len(got)):
        for row, want in enumerate(expected[image]):
            near = np.flatnonzero(np.abs(expected[image, :, 4] - want[4]) <= 1e-5)  # rows it may swap with
            assert any(np.allclose(got[image, other], want, rtol=1e-4, atol=1e-3) for other in near), (image, row)


def test_every_example_in_the_detection_page_runs(cli, tmp_path, monkeypatch):
    from docs_pages import run_page

    monkeypatch.chdir(tmp_path)
    assert run_page("detection.md", cli) == {"python": 6, "console": 1}
    assert (tmp_path / "yolov3_tiny.onnx").stat().st_size > 8_852_366 * 4


@pytest.mark.parametrize("name", ["yolov8n", "yolo11n"])
def test_ultralytics_families_end_in_nms_and_export_it(name):
    """The anchor-free decoders' layout is the one `nms` reads. Their boxes differ between torch and onnxruntime
    in the last bits, which flips an IoU near the threshold now and then, so the exported nms is checked on the
    exported decoder's own output: onnxruntime's detections are the torch nms of onnxruntime's decoded boxes."""
    ends = {end: cnndsl.load(name, size=160, classes=3, postprocess=end) for end in ("decoded", "nms")}
    module = ends["decoded"].to_torch(seed=3).eval()
    images = np.random.default_rng(4).uniform(0, 1, (2, 3, 160, 160)).astype(np.float32)
    outputs = {}
    for end, network in ends.items():
        model = network.to_onnx(weights=dict(module.state_dict()))
        session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        (outputs[end],) = session.run(None, {network.input_name: images})
    with torch.no_grad():
        decoded = module(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(outputs["decoded"], decoded, rtol=1e-4, atol=1e-3)
    expected = detections_nms(torch.from_numpy(outputs["decoded"]), 0.45, 0.25, 300).numpy()
    assert outputs["nms"].shape == (2, 300, 6) and (expected[..., 5] >= 0).sum() > 0
    assert_same_detections(outputs["nms"], expected)


@pytest.mark.parametrize("name", ["yolov8n", "yolo11n"])
def test_compile_to_onnx_gives_the_ultralytics_detectors_boxes_scores_and_labels_by_default(cli, tmp_path, name):
    """`cnndsl compile yolov8n --to onnx` with no `postprocess`: one output, batch × 300 × (x1, y1, x2, y2, score,
    label), in onnxruntime the torch `nms` of the same file's decoded detections (compiled with the same seed)."""
    for end in ("nms", "decoded"):
        chosen = [] if end == "nms" else ["-p", 'postprocess="decoded"']
        done = cli(
            "compile", name, "--to", "onnx", "-p", "size=160", *chosen, "--seed", "0", "-o", tmp_path / f"{end}.onnx"
        )
        assert done.exit_code == 0, done.stderr
    images = np.random.default_rng(5).uniform(0, 1, (2, 3, 160, 160)).astype(np.float32)
    outputs = {}
    for end in ("nms", "decoded"):
        session = onnxruntime.InferenceSession(str(tmp_path / f"{end}.onnx"), providers=["CPUExecutionProvider"])
        assert len(session.get_outputs()) == 1
        (outputs[end],) = session.run(None, {session.get_inputs()[0].name: images})
    assert outputs["nms"].shape == (2, 300, 6) and outputs["decoded"].shape == (2, 84, 400 + 100 + 25)
    expected = detections_nms(torch.from_numpy(outputs["decoded"]), 0.45, 0.25, 300).numpy()
    kept = expected[..., 5] >= 0
    assert kept.sum() > 10 and set(np.unique(expected[..., 5][kept])) <= set(range(80))
    assert_same_detections(outputs["nms"], expected)
