"""Ultralytics' TorchVision row: a torchvision ResNet by name, unwrapped and truncated as Ultralytics does,
imported with the library's arguments for that name; its outputs, given the Ultralytics model's state_dict
through `cnndsl import`, equal the model's own.

Counts and shapes of the shipped yolo11-cls-resnet18 at its one size are compared in
tests/test_import_ultralytics.py (IMPORTED); the references here are ClassificationModel and DetectionModel
built with torchvision's constructors (no weights fetched: ultralytics_model sets weights=None)."""

from __future__ import annotations

import pytest

import cnndsl
from cnndsl.check import check
from cnndsl.core.errors import CnnDslError

torch = pytest.importorskip("torch")
yaml = pytest.importorskip("yaml")
pytest.importorskip("ultralytics", reason="scripts/test installs ultralytics (pip --no-deps)")
from test_import_ultralytics import (  # noqa: E402
    MODELS,
    SIZE,
    cnn_shapes,
    imported_with_weights,
    randomised,
    row_shapes,
    ultralytics_model,
)


def _close(mine, reference):
    assert reference.abs().max() > 0.5  # not a trivially small output (7 logits of a 2x2 map)
    assert (reference[0] - reference[1]).abs().max() > 0.1  # the two images' outputs differ
    torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-4 * reference.abs().max().item())


def _randomised(model):
    """randomised(), with torchvision's norms (`bn1.weight`, `m.1.weight`) scaled around 1 like Ultralytics'."""
    generator = torch.Generator().manual_seed(2)
    model = randomised(model)
    with torch.no_grad():
        for norm in (module for module in model.modules() if isinstance(module, torch.nn.BatchNorm2d)):
            norm.weight.copy_(torch.rand(norm.weight.shape, generator=generator) + 0.5)
    return model


def test_yolo11_cls_resnet18_gives_ultralytics_logits(tmp_path):
    name = "11/yolo11-cls-resnet18.yaml"
    model = _randomised(ultralytics_model(yaml.safe_load((MODELS / name).read_text()), "", "cpu"))
    ours = imported_with_weights(tmp_path, name, model)
    images = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        probabilities, logits = model(images)
        _close(ours(images), logits)


CLASSIFY = """nc: 7
backbone:
  - [-1, 1, TorchVision, [ROW]]
head:
  - [-1, 1, Classify, [nc]]
"""


def _compared(tmp_path, row: str, block: str, shape: tuple) -> None:
    """A classifier on the TorchVision row: the import (with the block's first line) has Ultralytics' counts,
    every row's shape (`shape` the row's) and, with its randomised state_dict, its logits."""
    text = CLASSIFY.replace("ROW", row)
    path = tmp_path / "model.yaml"
    path.write_text(text)
    model = _randomised(ultralytics_model(yaml.safe_load(text), "", "cpu"))
    torch.save(model.state_dict(), tmp_path / "state.pt")
    cnn = cnndsl.import_file(path, weights=tmp_path / "state.pt", weights_out=tmp_path / "w.safetensors")
    assert block in cnn
    net = cnndsl.parse(cnn, network="model", input=(3, SIZE, SIZE))
    assert net.params == sum(p.numel() for p in model.parameters())
    assert cnn_shapes(net) == row_shapes(model) == {0: shape, 1: (7,)}
    ours = net.to_torch(weights=str(tmp_path / "w.safetensors")).eval()
    images = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _, logits = model.eval()(images)
        _close(ours(images), logits)


@pytest.mark.parametrize("name", ["resnet50", "resnext50_32x4d"])
def test_bottleneck_resnets_truncated_to_three_stages(tmp_path, name):
    """truncate 3 drops layer4 too: 1024 channels at 1/16; ResNeXt's grouped 3x3 from the library's groups and
    width for the name."""
    block = f"block {name}_features7 {{  # torchvision's {name} less its last 3 children"
    _compared(tmp_path, f"1024, {name}, DEFAULT, True, 3", block, (1024, 4, 4))


@pytest.mark.parametrize(("name", "width"), [("vgg11", 512), ("vgg11_bn", 512), ("mobilenet_v3_small", 576)])
def test_vgg_and_mobilenet_v3_features(tmp_path, name, width):
    """truncate 2 (the default) keeps a VGG's or a MobileNetV3's `features`: the library's arguments for the name
    (VGG's depths and norms; MobileNetV3's own block, its squeeze-excitation and hardswish)."""
    block = f"block {name}_features {{  # torchvision's {name} less its last 2 children"
    _compared(tmp_path, f"{width}, {name}", block, (width, 2, 2))


RESNETS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "wide_resnet50_2",
           "resnext101_32x8d", "resnext101_64x4d", "wide_resnet101_2"]  # fmt: skip
WIDTHS = {
    **{name: 512 if name in ("resnet18", "resnet34") else 2048 for name in RESNETS},
    **{f"vgg{depth}{bn}": 512 for depth in (11, 13, 16, 19) for bn in ("", "_bn")},
    "mobilenet_v3_large": 960,
    "mobilenet_v3_small": 576,
}


@pytest.mark.parametrize("name", sorted(WIDTHS))
def test_every_library_network_the_import_writes_has_ultralytics_counts_and_shapes(tmp_path, name):
    """Each name of the three families in a TorchVision row with its default truncate (2): the parameters and
    every row's shape of Ultralytics' model (meta device), the network passing `check --strict`."""
    text = CLASSIFY.replace("ROW", f"{WIDTHS[name]}, {name}")
    path = tmp_path / "model.yaml"
    path.write_text(text)
    cnn = cnndsl.import_file(path)
    (tmp_path / "model.cnn").write_text(cnn)
    assert not check([str(tmp_path / "model.cnn")]).failed(strict=True)
    model = ultralytics_model(yaml.safe_load(text), "")
    net = cnndsl.parse(cnn, network="model", input=(3, SIZE, SIZE))
    assert net.params == sum(p.numel() for p in model.parameters())
    assert cnn_shapes(net) == row_shapes(model) == {0: (WIDTHS[name], 2, 2), 1: (7,)}


DETECT = """nc: 3
backbone:
  - [-1, 1, TorchVision, [ROW]]
head:
  - [-1, 1, Conv, [64, 3, 2]]
  - [[0, 1], 1, Detect, [nc]]
"""


@pytest.mark.parametrize(
    ("row", "written"),
    [
        (
            "256, resnet34, DEFAULT, True, 3",
            "    conv7x7(64, s=2), bn(eps=0.001, momentum=0.03), relu, maxpool3x3(s=2, p=1)\n",
        ),
        ("576, mobilenet_v3_small", "    defaults bn(eps=0.001, momentum=0.03)\n"),
    ],
)
def test_torchvision_backbone_of_a_detection_model_takes_its_norms(tmp_path, row, written):
    """DetectionModel sets eps 0.001 and momentum 0.03 on every norm, the torchvision model's included."""
    text = DETECT.replace("ROW", row)
    path = tmp_path / "det.yaml"
    path.write_text(text)
    cnn = cnndsl.import_file(path)
    assert written in cnn
    model = ultralytics_model(yaml.safe_load(text), "")
    assert {(m.eps, m.momentum) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {(0.001, 0.03)}
    net = cnndsl.parse(cnn, network="det", input=(3, SIZE, SIZE))
    assert net.params == sum(p.numel() for p in model.parameters())
    assert cnn_shapes(net) == row_shapes(model)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("[1280, efficientnet_b0, DEFAULT, True, 2]", "loads torchvision's `efficientnet_b0`, which the import"),
        ("[1280, vit_b_16, DEFAULT, True, 2]", "loads torchvision's `vit_b_16`, which the import does not write"),
        ("[512, vgg16, DEFAULT, True, 3]", "keeps vgg16's features and more or less than them (truncate 3)"),
        ("[960, mobilenet_v3_small]", "declares 960 channels where mobilenet_v3_small's features give 576"),
        ("[512, resnet18, DEFAULT, True, 1]", "keeps 9 of resnet18's 10 children (truncate 1)"),
        ("[512, resnet18, DEFAULT, False]", "is imported once per row, unwrapped (unwrap True) and not split"),
        ("[256, resnet18]", "declares 256 channels where resnet18's first 8 children give 512"),
    ],
)
def test_torchvision_rows_the_import_cannot_write_are_refused_at_their_row(tmp_path, args, message):
    path = tmp_path / "model.yaml"
    path.write_text(f"nc: 5\nbackbone:\n  - [-1, 1, TorchVision, {args}]\nhead:\n  - [-1, 1, Classify, [nc]]\n")
    with pytest.raises(CnnDslError) as refused:
        cnndsl.import_file(path)
    assert str(refused.value.pos) == f"{path}:3:1"
    assert refused.value.message.startswith(f"TorchVision (module 0) {message}")


def test_shipped_file_writes_the_library_networks_stages(tmp_path):
    cnn = cnndsl.import_file(MODELS / "11/yolo11-cls-resnet18.yaml")
    assert "    stage layer { resnet_basic(512, 2 if i == 0 else 1) x 2 }\n" in cnn
    assert "import " not in cnn  # the blocks are written out: the library's own infer their projections
