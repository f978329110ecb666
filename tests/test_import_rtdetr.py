"""RT-DETR's modules as `cnndsl import` writes them: PP-HGNetV2's HGStem, HGBlock and DWConv, the hybrid
encoder's RepC3 and AIFI (the `aifi` kind), against Ultralytics' own modules (installed with --no-deps by
scripts/test): parameters and every layer's shape on the meta device, outputs on the CPU."""

from __future__ import annotations

import pytest

import cnndsl

torch = pytest.importorskip("torch")
yaml = pytest.importorskip("yaml")
pytest.importorskip("ultralytics", reason="scripts/test installs ultralytics (pip --no-deps)")
from test_import_ultralytics import MODELS, SIZE, cnn_shapes, row_shapes, ultralytics_model  # noqa: E402
from ultralytics.nn.modules.transformer import AIFI  # noqa: E402

RTDETR = sorted(str(path.relative_to(MODELS)) for path in MODELS.glob("rt-detr/*.yaml"))


def test_aifi_computes_what_ultralytics_aifi_computes():
    """16 channels, 4 heads, a 32-wide feed-forward on a 3 x 5 map (not square: rows and columns differ in the
    positions), with random weights loaded into both by their state_dict names."""
    reference = AIFI(16, 32, 4).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tensor in reference.state_dict().values():
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.5)
    net = cnndsl.parse("network t {\n    input 16x3x5\n    aifi(32, 4)\n}\n")
    assert net.params == sum(p.numel() for p in reference.parameters()) == 3 * 272 + 272 + 2 * 16 * 32 + 48 + 64
    ours = net.to_torch().eval()
    ours.load_state_dict({f"aifi.{key}": value for key, value in reference.state_dict().items()})
    images = torch.randn(2, 16, 3, 5, generator=generator)
    with torch.no_grad():
        expected, mine = reference(images), ours(images)
    assert expected.std() > 0.5
    torch.testing.assert_close(mine, expected, rtol=1e-4, atol=1e-5)


def test_aifi_refuses_channels_the_positions_cannot_split():
    with pytest.raises(cnndsl.CnnDslError) as refused:
        cnndsl.parse("network t {\n    input 18x3x5\n    aifi(32, 3)\n}\n")
    assert refused.value.message == (
        "`aifi` needs channels divisible by 4 (the sine-cosine positions) and by its 3 heads, not 18"
    )
    assert str(refused.value.pos) == "<string>:3:5"


@pytest.mark.parametrize("name", RTDETR)
def test_rtdetr_backbone_and_encoder_have_ultralytics_params_and_layer_shapes(tmp_path, name):
    """Every module before the decoder, at the file's one scale: the decoder's row taken off the file."""
    config = yaml.safe_load((MODELS / name).read_text())
    assert config["head"][-1][2] == "RTDETRDecoder"
    config["head"] = config["head"][:-1]
    path = tmp_path / "rtdetr.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    (scale,) = config["scales"]
    model = ultralytics_model(config, scale)
    net = cnndsl.parse(cnndsl.import_file(path), str(path), network=f"rtdetr_{scale}", input=(3, SIZE, SIZE))
    assert net.params == sum(p.numel() for p in model.parameters())
    assert cnn_shapes(net) == row_shapes(model)


def test_dwconv_groups_are_the_gcd_of_its_widths(tmp_path):
    """DWConv 48 -> 64 channels: groups = gcd(48, 64) = 16, as Ultralytics builds it."""
    path = tmp_path / "model.yaml"
    path.write_text(
        "nc: 10\nscales:\n  n: [1.0, 1.0, 1024]\nbackbone:\n  - [-1, 1, Conv, [48, 3, 2]]\n"
        "  - [-1, 1, DWConv, [64, 3, 2]]\nhead:\n  - [-1, 1, Classify, [nc]]\n"
    )
    model = ultralytics_model(yaml.safe_load(path.read_text()), "n")
    assert model.model[1].conv.groups == 16
    net = cnndsl.parse(cnndsl.import_file(path), str(path), network="model_n", input=(3, SIZE, SIZE))
    assert net.params == sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in model.model[1].parameters()) == 64 * 48 // 16 * 9 + 2 * 64
