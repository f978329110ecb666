"""library/fasterrcnn_vgg16.cnn, the seeds' Faster R-CNN (Ren et al. 2015, py-faster-rcnn's VGG16 test.prototxt):
its parameters counted by hand from the layer shapes, its shapes worked out by hand, and its detections against
torchvision's generic FasterRCNN assembled the same way (VGG-16 to conv5_3, a two-class softmax RPN head, RoI max
pooling, fc6/fc7): in torch and in onnxruntime.

torchvision's compiled nms and roi_pool do not load on the CPU build: the reference runs with onnxruntime's
NonMaxSuppression and MaxRoiPool kernels in their place (tests/rcnn_reference.py).
"""

from __future__ import annotations

import ast
from collections import OrderedDict

import pytest
import torch
from docs_pages import page_text
from oracles import torchvision_models
from rcnn_reference import ort_roi_pool, patch_torchvision
from test_fasterrcnn import _assert_same, _onnx_rows
from torch import fx

import cnndsl
from cnndsl.core.resources import library_dir
from cnndsl.graph import ir

NAME = "fasterrcnn_vgg16"
ANCHORS = 9  # 3 scales (128, 256, 512) × 3 ratios (0.5, 1, 2) at every conv5_3 pixel
# VGG-16's thirteen 3×3 convolutions, conv1_1 to conv5_3 (Simonyan & Zisserman 2015, configuration D)
VGG16_CONVS = (
    [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256)] + [(256, 512)] + [(512, 512)] * 5
)


def _conv(c_in: int, c_out: int, k: int) -> int:
    return c_out * c_in * k * k + c_out


def _fc(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def test_the_parameters_are_the_hand_derivation_from_the_prototxt_layers():
    """conv1_1..conv5_3, rpn_conv/3x3 512, rpn_cls_score 2·9, rpn_bbox_pred 4·9, fc6 from the 512×7×7 RoI grid,
    fc7, cls_score 21 and bbox_pred 4·21: each layer's weights and bias."""
    by_tap = {layer.tap: layer.figures.params for _, layer in ir.layers(cnndsl.load(NAME).graph) if layer.tap}
    features = sum(_conv(c_in, c_out, 3) for c_in, c_out in VGG16_CONVS)
    assert features == 14_714_688
    rpn = {"rpn_conv": _conv(512, 512, 3), "rpn_cls_score": _conv(512, 2 * ANCHORS, 1)}
    rpn["rpn_bbox_pred"] = _conv(512, 4 * ANCHORS, 1)
    head = {"fc6": _fc(512 * 7 * 7, 4096), "fc7": _fc(4096, 4096), "cls_score": _fc(4096, 21)}
    head["bbox_pred"] = _fc(4096, 4 * 21)
    assert {tap: by_tap[tap] for tap in (*rpn, *head)} == rpn | head
    assert rpn == {"rpn_conv": 2_359_808, "rpn_cls_score": 9_234, "rpn_bbox_pred": 18_468}
    assert head == {"fc6": 102_764_544, "fc7": 16_781_312, "cls_score": 86_037, "bbox_pred": 344_148}
    total = features + sum(rpn.values()) + sum(head.values())
    assert cnndsl.load(NAME).params == total == 137_078_239
    # one logit an anchor (torchvision's RPNHead) has 9 channels fewer: the 137,073,622 docs/two-stage.md gave before
    assert total - (_conv(512, 2 * ANCHORS, 1) - _conv(512, ANCHORS, 1)) == 137_073_622


def _shapes(network) -> dict[str, tuple[int, ...]]:
    """Each tapped layer's shape, and the RoI pooling's and the detections'."""
    return {
        layer.tap or layer.op: layer.shape
        for _, layer in ir.layers(network.graph)
        if layer.tap or layer.op in ("roipool", "roidetections")
    }


@pytest.mark.parametrize(
    ("size", "conv5", "options"),
    [
        (600, 37, {}),  # 600 -> 300 -> 150 -> 75 -> 37: four 2×2 pools, each rounding down
        (224, 14, {"num_classes": 5}),  # 14·14·9 = 1,764 anchors, fewer than the 6,000 kept before NMS
    ],
)
def test_each_layer_has_the_hand_worked_shape(size, conv5, options):
    classes = options.get("num_classes", 21)
    anchors = conv5 * conv5 * ANCHORS
    before_nms = min(6000, anchors)  # RPN_PRE_NMS_TOP_N, at most every anchor
    proposals = min(300, before_nms)  # RPN_POST_NMS_TOP_N
    assert _shapes(cnndsl.load(NAME, size=size, **options)) == {
        "image": (3, size, size),
        "conv5_3": (512, conv5, conv5),
        "rpn_conv": (512, conv5, conv5),
        "rpn_relu": (512, conv5, conv5),
        "rpn_cls_score": (2 * ANCHORS, conv5, conv5),
        "background": (ANCHORS, conv5, conv5),
        "objectness": (ANCHORS, conv5, conv5),
        "rpn_bbox_pred": (4 * ANCHORS, conv5, conv5),
        "anchors": (anchors, 4),
        "best": (before_nms, 4),
        "scores": (before_nms,),
        "proposals": (proposals, 4),
        "roipool": (proposals, 512, 7, 7),
        "fc6": (proposals, 4096),
        "fc7": (proposals, 4096),
        "drop7": (proposals, 4096),
        "cls_score": (proposals, classes),
        "bbox_pred": (proposals, 4 * classes),
        "roidetections": (100, 6),  # x1, y1, x2, y2, score, label
    }


def test_check_strict_passes(cli):
    result = cli("check", "--strict", library_dir() / "fasterrcnn_vgg16.cnn")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "0 errors, 0 warnings in 1 network of 1 file\n", "")


class _Kept(fx.Interpreter):
    """Runs the compiled module, keeping each cnndsl layer's output by its node."""

    def __init__(self, module: fx.GraphModule):
        super().__init__(module)
        self.kept: dict[int, torch.Tensor] = {}

    def run_node(self, node):
        value = super().run_node(node)
        if "cnndsl_node" in node.meta:
            self.kept[node.meta["cnndsl_node"]] = value
        return value


def test_the_objectness_is_the_prototxts_softmax_of_rpn_cls_score_reshaped():
    """rpn_cls_score_reshape (2 × 9·H × W), rpn_cls_prob (a softmax over the two) and rpn_cls_prob_reshape back to
    18 × H × W, whose last 9 channels the proposal layer reads as P(object)."""
    network = cnndsl.load(NAME, size=96, representation_size=16)
    module = network.to_torch(seed=3).eval()
    (score_layer,) = [layer for layer in module.modules() if getattr(layer, "out_channels", 0) == 2 * ANCHORS]
    score_layer.weight.data.mul_(1000.0)  # logits that spread: PyTorch's initialisation leaves them near 0
    run = _Kept(module)
    with torch.no_grad():
        run.run(torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(0)))
    nodes = {layer.tap: node for node, layer in ir.layers(network.graph) if layer.tap}
    logits, objectness = run.kept[nodes["rpn_cls_score"]], run.kept[nodes["objectness"]]
    assert logits.shape == (2, 18, 6, 6) and logits.std() > 1
    probabilities = torch.softmax(logits.reshape(2, 2, 9 * 6, 6), dim=1).reshape(2, 18, 6, 6)
    torch.testing.assert_close(objectness, probabilities[:, 9:], rtol=0, atol=1e-6)


def test_torchvisions_faster_rcnn_assembled_as_the_seeds_has_the_same_parameters():
    with torch.device("meta"):
        reference = _torchvision_vgg16_faster_rcnn(600)
    assert sum(parameter.numel() for parameter in reference.parameters()) == cnndsl.load(NAME).params


# ---- torchvision's FasterRCNN, assembled as the seeds' model ---------------------------------------------------
class SoftmaxRPNHead(torch.nn.Module):
    """py-faster-rcnn's RPN head: rpn_conv/3x3 and ReLU, rpn_cls_score (2·A: A not-object logits, then A object
    logits, as its reshape to 2 × A·H × W reads them) and rpn_bbox_pred (4·A). torchvision's RPN takes one logit an
    anchor and applies a sigmoid: the two-class softmax's P(object) is sigmoid(object − not-object)."""

    def __init__(self, channels: int = 512, anchors: int = ANCHORS):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
        self.cls_logits = torch.nn.Conv2d(channels, 2 * anchors, 1)
        self.bbox_pred = torch.nn.Conv2d(channels, 4 * anchors, 1)

    def forward(self, levels):
        logits, deltas = [], []
        for level in levels:
            hidden = torch.relu(self.conv(level))
            background, foreground = self.cls_logits(hidden).chunk(2, dim=1)
            logits.append(foreground - background)
            deltas.append(self.bbox_pred(hidden))
        return logits, deltas


class OrtRoIPool(torch.nn.Module):
    """The RoI head's pooler: Fast R-CNN's RoI max pooling 7×7 of conv5_3 at 1/16 (torchvision's RoIPool, whose
    compiled op the CPU build lacks), by onnxruntime's MaxRoiPool kernel."""

    def forward(self, features: OrderedDict, proposals: list[torch.Tensor], image_shapes) -> torch.Tensor:
        rois = torch.cat([torch.nn.functional.pad(boxes, (1, 0), value=index) for index, boxes in enumerate(proposals)])
        return ort_roi_pool(features["0"], rois, 7, 1 / 16)


def _torchvision_vgg16_faster_rcnn(size: int, representation_size: int = 4096, **options):
    """torchvision's FasterRCNN with VGG-16's features to conv5_3 (no pool5), anchors of 128, 256 and 512 pixels
    at ratios 0.5, 1, 2, the softmax RPN head, RoI max pooling, TwoMLPHead (fc6, fc7: 4096) and FastRCNNPredictor
    (21 classes), py-faster-rcnn's test settings; its transform the identity on `size` × `size` images."""
    models = torchvision_models()
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead

    backbone = models.vgg.make_layers(models.vgg.cfgs["D"])[:-1]  # conv1_1 .. relu5_3: pool5 left out
    backbone.out_channels = 512
    settings = {
        "rpn_pre_nms_top_n_test": 6000,
        "rpn_post_nms_top_n_test": 300,
        "rpn_nms_thresh": 0.7,
        "box_score_thresh": 0.05,
        "box_nms_thresh": 0.3,
        "box_detections_per_img": 100,
    }
    model = FasterRCNN(
        backbone, min_size=size, max_size=size, image_mean=[0.0] * 3, image_std=[1.0] * 3,
        rpn_anchor_generator=AnchorGenerator(((128, 256, 512),), ((0.5, 1.0, 2.0),)), rpn_head=SoftmaxRPNHead(),
        box_head=TwoMLPHead(512 * 7 * 7, representation_size),
        box_predictor=FastRCNNPredictor(representation_size, 21),
        bbox_reg_weights=(1.0, 1.0, 1.0, 1.0), **(settings | options),
    )  # fmt: skip
    model.rpn.min_size = 16.0  # RPN_MIN_SIZE (torchvision fixes 1e-3)
    model.roi_heads.box_roi_pool = OrtRoIPool()  # FasterRCNN takes only a MultiScaleRoIAlign, which averages
    return model.eval()


def _randomised(model, size: int, seed: int = 0):
    """Every tensor drawn around its own scale (He's for weights, biases about 0.1), then the heads scaled on one
    random image so that the RPN's object-minus-not-object logits spread by about 2 and its deltas by 0.2, the box
    head's class logits by 2 and its deltas by 0.3: varied scores, boxes that move without exploding."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if key.endswith(".bias"):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * (2.0 / tensor[0].numel()) ** 0.5)
        image = torch.rand(1, 3, size, size, generator=generator)
        features = model.backbone(image)
        rpn, box_head, predictor = model.rpn.head, model.roi_heads.box_head, model.roi_heads.box_predictor
        rpn.conv.weight.div_(features.std())
        box_head.fc6.weight.div_(features.std())
        (objectness,), (deltas,) = rpn([features])
        rpn.cls_logits.weight.mul_(2.0 / objectness.std())
        rpn.bbox_pred.weight.mul_(0.2 / deltas.std())
        corners = torch.rand(64, 2, generator=generator) * size / 2
        boxes = torch.cat([corners, corners + size / 4 + torch.rand(64, 2, generator=generator) * size / 2], 1)
        pooled = box_head(model.roi_heads.box_roi_pool({"0": features}, [boxes], [(size, size)]))
        for layer, target in ((predictor.cls_score, 2.0), (predictor.bbox_pred, 0.3)):
            layer.weight.mul_(target / layer(pooled).std())
    return model


def test_the_network_detects_what_torchvision_assembled_as_the_seeds_detects_in_torch_and_onnxruntime(
    monkeypatch, tmp_path
):
    """Random weights loaded through the weights API; box_score_thresh 0 (every class of every proposal a
    candidate); the same labels, scores within 1e-4 and boxes within 1e-3 pixels for every detection, in torch and
    in onnxruntime (the exported graph run as written)."""
    patch_torchvision(monkeypatch)
    size, options = 128, {"rpn_post_nms_top_n_test": 100, "box_score_thresh": 0.0, "representation_size": 512}
    model = _randomised(_torchvision_vgg16_faster_rcnn(size, **options), size)
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    network = cnndsl.load(NAME, size=size, **options)
    proposals = []
    model.rpn.register_forward_hook(lambda rpn, inputs, outputs: proposals.extend(outputs[0]))
    with torch.no_grad():
        images, _ = model.transform(list(image))
        assert torch.equal(images.tensors, image)  # the transform hands the image through
        expected = model(list(image))[0]
        got = network.to_torch(weights=model.state_dict()).eval()(image)[0].numpy()
    assert 0 < len(proposals[0]) < 100  # NMS leaves fewer than 100 proposals: padding reaches the RoI head
    assert len(expected["boxes"]) == 100 and len(expected["labels"].unique()) > 10
    _assert_same(got, expected, boxes_within=1e-3)
    network.to_onnx(tmp_path / "vgg16.onnx", weights=model.state_dict())
    _assert_same(_onnx_rows(tmp_path / "vgg16.onnx", image), expected, boxes_within=1e-3)  # the graph as exported


def _arithmetic(node: ast.expr) -> int:
    """A sum of products of whole numbers, as the table writes them (nothing else is evaluated)."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    assert isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)), ast.dump(node)
    left, right = _arithmetic(node.left), _arithmetic(node.right)
    return left + right if isinstance(node.op, ast.Add) else left * right


def test_the_docs_derivation_adds_up_row_by_row_to_the_count():
    """docs/two-stage.md's table: each row's product equals the figure it shows, and the rows add up to the total,
    which is the network's count and this file's derivation."""
    page = page_text("two-stage.md")
    table = page[page.index("| layer | shape | parameters |") : page.index("| **total** |")]
    rows = [line.split("|")[3].strip() for line in table.splitlines()[2:]]
    figures = []
    for row in rows:
        product, shown = row.split(" = ")
        arithmetic = product.replace("·", "*").replace("×", "*").replace(",", "")
        assert _arithmetic(ast.parse(arithmetic, mode="eval").body) == int(shown.replace(",", "")), row
        figures.append(int(shown.replace(",", "")))
    assert len(rows) == 15 and sum(figures) == cnndsl.load(NAME).params == 137_078_239
    assert "| **total** | | **137,078,239** |" in page


def test_a_checkpoint_under_the_prototxts_layer_names_loads_by_structure():
    """A caffemodel's blobs as a flat state_dict (conv1_1 ... conv5_3, rpn_conv/3x3, rpn_cls_score, rpn_bbox_pred,
    fc6, fc7, cls_score, bbox_pred: weights of the prototxt's shapes, then biases) load through the weights API,
    each tensor into its layer."""
    width = 32  # fc6 and fc7 narrower than 4,096, to keep the test small
    convs = [f"conv{block}_{index}" for block, depth in enumerate((2, 2, 3, 3, 3), 1) for index in range(1, depth + 1)]
    shapes = {name: (c_out, c_in, 3, 3) for name, (c_in, c_out) in zip(convs, VGG16_CONVS)}
    shapes |= {"rpn_conv/3x3": (512, 512, 3, 3), "rpn_cls_score": (18, 512, 1, 1), "rpn_bbox_pred": (36, 512, 1, 1)}
    shapes |= {"fc6": (width, 512 * 7 * 7), "fc7": (width, width), "cls_score": (21, width), "bbox_pred": (84, width)}
    generator = torch.Generator().manual_seed(4)
    checkpoint = {}
    for name, shape in shapes.items():
        checkpoint[f"{name}.weight"] = torch.randn(shape, generator=generator)
        checkpoint[f"{name}.bias"] = torch.randn(shape[0], generator=generator)
    network = cnndsl.load(NAME, size=64, representation_size=width)
    loaded = network.to_torch(weights=checkpoint).state_dict()
    assert len(loaded) == len(checkpoint) == 40
    for (key, tensor), (name, expected) in zip(loaded.items(), checkpoint.items()):
        assert torch.equal(tensor, expected), (key, name)
    assert torch.equal(loaded["head.boxfc1.weight"], checkpoint["fc6.weight"])
    assert torch.equal(loaded["rpn.conv2.weight"], checkpoint["rpn_cls_score.weight"])
