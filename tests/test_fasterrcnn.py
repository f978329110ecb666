"""library/fasterrcnn.cnn against torchvision's Faster R-CNN models, and its selection kinds (`levelnms`,
`roidetections`) against torchvision's RPN.filter_proposals and RoIHeads.postprocess_detections.

torchvision's compiled nms and roi_align do not load on the CPU build: the reference runs with onnxruntime's
NonMaxSuppression and RoiAlign kernels in their place (tests/rcnn_reference.py).
"""

from __future__ import annotations

import re

import numpy as np
import onnxruntime
import pytest
import torch
from oracles import torchvision_models
from rcnn_reference import detection_model, patch_torchvision

import cnndsl
from cnndsl.backends.torch import standalone_source
from cnndsl.core.errors import CnnDslError
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


SCORES_WITHIN = 1e-4


def _assert_same(got: np.ndarray, expected: dict, boxes_within: float) -> None:
    """The same labels, scores within 1e-4 and boxes within `boxes_within` row by row, then padding. Only
    detections whose expected scores lie within 1e-4 of each other may come in another order: float32 rounding
    decides it (a run of such near ties keeps its rows; in it, each expected detection takes the row of its label
    and nearest box)."""
    kept = len(expected["boxes"])
    labels, scores, boxes = (expected[key].numpy() for key in ("labels", "scores", "boxes"))
    rows = got[:kept][_tie_order(got[:kept], labels, scores, boxes)]
    assert np.array_equal(rows[:, 5], labels.astype(np.float32))
    np.testing.assert_allclose(rows[:, 4], scores, atol=SCORES_WITHIN, rtol=0)
    np.testing.assert_allclose(rows[:, :4], boxes, atol=boxes_within, rtol=0)
    assert (got[kept:, 4] == 0).all() and (got[kept:, 5] == -1).all()


def _tie_order(rows: np.ndarray, labels, scores, boxes) -> np.ndarray:
    """For each expected detection, the index of its row: its own, but within a run of near ties."""
    order, start = np.arange(len(scores)), 0
    for end in range(1, len(scores) + 1):
        if end < len(scores) and scores[end - 1] - scores[end] < SCORES_WITHIN:
            continue
        free = set(range(start, end))
        for index in range(start, end):
            order[index] = min(
                free, key=lambda row: (rows[row, 5] != labels[index], np.abs(rows[row, :4] - boxes[index]).max())
            )
            free.remove(order[index])
        start = end
    return order


def test_only_near_ties_may_come_in_another_order():
    """Two detections of one label whose scores differ by 2e-5 may swap rows; by 2e-4 they may not."""
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 40.0], [5.0, 5.0, 9.0, 9.0]])
    for gap, swappable in ((2e-5, True), (2e-4, False)):
        expected = {"boxes": boxes, "scores": torch.tensor([0.9, 0.9 - gap, 0.5]), "labels": torch.tensor([3, 3, 1])}
        rows = np.concatenate([boxes.numpy(), expected["scores"][:, None], expected["labels"][:, None]], 1)
        padded = np.concatenate([rows[[1, 0, 2]], [[0, 0, 0, 0, 0, -1]]]).astype(np.float32)
        if swappable:
            _assert_same(padded, expected, boxes_within=1e-3)
        else:
            with pytest.raises(AssertionError):
                _assert_same(padded, expected, boxes_within=1e-3)


def _onnx_rows(path, image: torch.Tensor, level: str = "ORT_DISABLE_ALL") -> np.ndarray:
    """onnxruntime's rows for the first image: by default the graph as exported, node by node (no rewrites)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # the suite runs two workers on two cores
    options.graph_optimization_level = getattr(onnxruntime.GraphOptimizationLevel, level)
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: image.numpy()})[0][0]


@pytest.fixture
def one_thread():
    """torch on one thread, as onnxruntime here and the suite (scripts/test sets OMP_NUM_THREADS=1): the
    tolerances below were measured so, and two threads sum a convolution in another order (MobileNetV3 at 192
    then moves a box by 1.007e-3 pixels)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _same_in_torch_and_onnxruntime(name: str, size: int, tmp_path, **options) -> tuple:
    """torchvision's `name` with random weights on one random size × size image (its transform the identity) and
    cnndsl's network loaded with its weights detect the same in torch and, exported, in onnxruntime (the graph as
    written); boxes within 1e-3 pixels. The image, torchvision's detections and the RPN's proposals (their
    count decides how many proposals are padding)."""
    model = detection_model(name, size, box_score_thresh=0.0, **options)
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        images, _ = model.transform(list(image))
        assert torch.equal(images.tensors, image)  # the transform hands the image through
        (proposals,), _ = model.rpn(images, model.backbone(images.tensors))
    network = cnndsl.load(name, size=size, box_score_thresh=0.0, **options)
    got, expected = _detections(network, model, image)
    assert len(expected["boxes"]) == 100 and len(expected["labels"].unique()) > 1
    _assert_same(got.numpy(), expected, boxes_within=1e-3)
    network.to_onnx(tmp_path / "frcnn.onnx", weights=model.state_dict())
    _assert_same(_onnx_rows(tmp_path / "frcnn.onnx", image), expected, boxes_within=1e-3)
    return image, proposals, expected


def test_the_320_model_detects_what_torchvisions_detects_in_torch_and_onnxruntime(monkeypatch, tmp_path, one_thread):
    """Random weights, box_score_thresh 0 (every class of every proposal a candidate), an RPN score threshold
    that leaves fewer than 150 proposals (so padding proposals reach the RoI head), the transform the identity.

    onnxruntime runs the exported graph as written within 1e-3 pixels (6.7e-4 measured): what is left is float32
    rounding of the convolutions, whose sums the two libraries add in different orders (torchvision's own
    proposals differ from its float64 run by 6.3e-4 pixels on this draw: a delta off by 1e-6 moves a box of a
    512-pixel anchor by 5e-4). Its default rewrites round further: ConvBNFusion folds batch norm into the
    weights, NchwcTransformer sums in blocks of channels (2.2e-3 measured with both, 6.7e-4 without them)."""
    patch_torchvision(monkeypatch)
    name = "fasterrcnn_mobilenet_v3_large_320_fpn"
    image, proposals, expected = _same_in_torch_and_onnxruntime(name, 320, tmp_path, rpn_score_thresh=0.97)
    assert 0 < len(proposals) < 150  # 97: the other 53 proposals are padding
    optimised = _onnx_rows(tmp_path / "frcnn.onnx", image, "ORT_ENABLE_ALL")  # onnxruntime's default rewrites
    _assert_same(optimised, expected, boxes_within=3e-3)


@pytest.mark.parametrize(
    ("name", "size"), [("fasterrcnn_mobilenet_v3_large_fpn", 192), ("fasterrcnn_resnet50_fpn", 128)]
)
def test_the_full_size_models_detect_what_torchvisions_detects_at_a_small_input(
    monkeypatch, tmp_path, one_thread, name, size
):
    """The 800-pixel models at the network's `size` and torchvision's min_size = max_size = size: their own
    anchors, levels and RoI level mapper (ResNet-50's over four strides), pre- and post-NMS counts of 1000.
    Boxes within 2e-5 pixels in torch; in onnxruntime ResNet-50's within 7e-5 and MobileNetV3's within 7.5e-4 on
    this draw, though 2.4e-4 to 2.5e-3 over nine draws at sizes 128 to 192: float32 rounding, as in the 320 test."""
    patch_torchvision(monkeypatch)
    _, proposals, _ = _same_in_torch_and_onnxruntime(name, size, tmp_path)
    assert 100 < len(proposals) < 1000  # rows past the kept proposals are padding


def test_the_python_source_has_classes_and_calls_the_one_rpn_head_on_every_level():
    """`--to python` writes the compact source (a class per block structure), the RPN head's three layers written
    once and called on each level's map, as torchvision's RPNHead; test_torch_source checks the file's function."""
    text = standalone_source(cnndsl.load("fasterrcnn_mobilenet_v3_large_320_fpn", size=64))
    assert len(re.findall(r"^class MobilenetV3Body\d*\(nn.Module\):$", text, re.MULTILINE)) == 5
    head = {
        "conv1": ("nn.Conv2d(256, 256, 3, padding=1)", ["p0", "p1", "pool"]),
        "conv2": ("nn.Conv2d(256, 15, 1)", ["h0", "h1", "h2"]),
        "conv3": ("nn.Conv2d(256, 60, 1)", ["h0", "h1", "h2"]),
    }
    for layer, (made, levels) in head.items():
        assert re.findall(rf"self\.rpn\.{layer} = (.*)", text) == [made]
        assert re.findall(rf"= self\.rpn\.{layer}\((\w+)\)", text) == levels


# ---- the selection kinds on their own ---------------------------------------------------------------------------
PROPOSALS = """network proposals {
    image: input 3x32x32
    conv(8, k=4, s=4, p=0), f0: relu
    conv(8, s=2), f1: relu
    @f0, logits0: conv1x1(2), @f0, deltas0: conv1x1(8)
    @f0, a0: anchors(@image, sizes=[4, 8], ratios=[1])
    @deltas0, boxes0: boxdecode(@a0)
    b0: topk(40, @logits0)
    @logits0, topk(40), s0: sigmoid
    @f1, logits1: conv1x1(2), @f1, deltas1: conv1x1(8)
    @f1, a1: anchors(@image, sizes=[8, 16], ratios=[1])
    @deltas1, boxes1: boxdecode(@a1)
    b1: topk(20, @logits1)
    @logits1, topk(20), s1: sigmoid
    @b0, concat(@b1, axis=0), clipboxes(@image)
    out: levelnms(@s0, @s1, iou=0.3, k=30, score=0.52, min_size=4)
    output @out, @boxes0, @logits0, @boxes1, @logits1
}
"""


def _session(model):
    return onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_levelnms_is_torchvisions_filter_proposals(monkeypatch):
    """Per-level top-k (pre_nms_top_n 40 and 20), small boxes and low scores removed, NMS by level, the best
    30 (post_nms_top_n); in torch and in onnxruntime, padded with zero boxes where fewer are kept."""
    patch_torchvision(monkeypatch)
    from torchvision.models.detection.rpn import RegionProposalNetwork

    network = cnndsl.parse(PROPOSALS, file="proposals.cnn")
    module = network.to_torch(seed=0).eval()
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got, boxes0, logits0, boxes1, logits1 = module(images)
    rpn = RegionProposalNetwork(None, None, 0.7, 0.3, 256, 0.5, {"testing": 40}, {"testing": 30}, 0.3, 0.52)
    rpn.min_size = 4.0
    objectness = torch.cat([logits.permute(0, 2, 3, 1).reshape(3, -1) for logits in (logits0, logits1)], 1)
    expected, _ = rpn.eval().filter_proposals(torch.cat([boxes0, boxes1], 1), objectness, [(32, 32)] * 3, [128, 32])
    small = low = 0
    for boxes, logits, k in ((boxes0, logits0, 40), (boxes1, logits1, 20)):
        best = logits.permute(0, 2, 3, 1).reshape(3, -1).topk(k)
        top = boxes.gather(1, best.indices[..., None].expand(-1, -1, 4)).clamp(0, 32)
        small += int(((top[..., 2:] - top[..., :2]) < 4).any(-1).sum())
        low += int((best.values.sigmoid() < 0.52).sum())
    assert small > 0 and low > 0  # some boxes are small, some scores low,
    assert all(len(boxes) < 30 for boxes in expected)  # and fewer than 30 are kept: the rest is padding
    (onnx_got, *_) = _session(network.to_onnx(weights=module)).run(None, {network.input_name: images.numpy()})
    for image, boxes in enumerate(expected):
        for rows in (got[image].numpy(), onnx_got[image]):
            np.testing.assert_allclose(rows[: len(boxes)], boxes.numpy(), atol=1e-4, rtol=0)
            assert not rows[len(boxes) :].any()


HEADS = """network heads {
    image: input 3x32x32
    conv(4, k=4, s=4, p=0), f: relu
    proposals: anchors(@image, sizes=[6, 12], ratios=[0.5, 2])
    @f, roialign(@proposals, size=2, scale=1/4, sampling_ratio=2), features: relu
    logits: boxfc(4), @features, deltas: boxfc(16)
    @logits, out: roidetections(@deltas, @proposals, @image, score=0.4, iou=0.4, max_det=40, min_size=3)
    output @out, @logits, @deltas, @proposals
}
"""


def test_roidetections_is_torchvisions_postprocess_detections(monkeypatch):
    """Softmax, a box a class (weights 10, 10, 5, 5), clipped, background out, scores not above 0.4 and boxes
    thinner than 3 removed, NMS per class, the best 40; in torch and in onnxruntime, padded where fewer are kept."""
    patch_torchvision(monkeypatch)

    network = cnndsl.parse(HEADS, file="heads.cnn")
    module = network.to_torch(seed=2).eval()
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        got, logits, deltas, proposals = module(images)
    import torchvision.models.detection.roi_heads as roi_heads

    smallest = roi_heads.box_ops.remove_small_boxes  # torchvision's RoI head fixes min_size at 1e-2: made 3 here
    monkeypatch.setattr(roi_heads.box_ops, "remove_small_boxes", lambda boxes, min_size: smallest(boxes, 3.0))
    heads = roi_heads.RoIHeads(None, None, None, 0.5, 0.5, 512, 0.25, None, 0.4, 0.4, 40)
    boxes, scores, labels = heads.postprocess_detections(
        logits.reshape(-1, 4), deltas.reshape(-1, 16), list(proposals), [(32, 32)] * 2
    )
    assert all(0 < len(kept) < 40 for kept in boxes)
    (onnx_got, *_) = _session(network.to_onnx(weights=module)).run(None, {network.input_name: images.numpy()})
    for image in range(2):
        expected = {"boxes": boxes[image], "scores": scores[image], "labels": labels[image]}
        for rows in (got[image].numpy(), onnx_got[image]):
            _assert_same(rows, expected, boxes_within=1e-4)
            assert not rows[len(boxes[image]) :, :4].any()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "min_size=3)",
            "min_size=0)",
            "heads.cnn:7:19: error: `roidetections`'s min_size must be positive, got 0",
        ),
        (
            "@deltas, @proposals, @image,",
            "@features, @proposals, @image,",
            "heads.cnn:7:19: error: `roidetections` needs deltas of 256×16 for 256×4 logits, got 256×4×2×2",
        ),
    ],
)
def test_roidetections_refuses_at_its_position(old, new, message):
    with pytest.raises(CnnDslError) as caught:
        cnndsl.parse(HEADS.replace(old, new), file="heads.cnn")
    assert str(caught.value).splitlines()[0] == message


def test_levelnms_refuses_scores_that_do_not_count_its_boxes():
    with pytest.raises(CnnDslError) as caught:
        cnndsl.parse(PROPOSALS.replace("levelnms(@s0, @s1,", "levelnms(@s0,"), file="proposals.cnn")
    assert str(caught.value).splitlines()[0] == "proposals.cnn:16:10: error: `levelnms` has 40 scores for 60 boxes"
