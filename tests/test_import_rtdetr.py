"""RT-DETR as `cnndsl import` writes it: the `aifi` kind, DWConv's groups and the whole of RT-DETR-l (PP-HGNetV2,
the hybrid encoder, the `rtdetrdecoder` kind) against Ultralytics' own modules (installed with --no-deps by
scripts/test), outputs on the CPU; test_import_ultralytics compares every RT-DETR file's parameters and layer
shapes."""

from __future__ import annotations

import numpy as np
import pytest

import cnndsl
from cnndsl.graph import ir

torch = pytest.importorskip("torch")
yaml = pytest.importorskip("yaml")
pytest.importorskip("ultralytics", reason="scripts/test installs ultralytics (pip --no-deps)")
from test_import_ultralytics import MODELS, SIZE, randomised, ultralytics_model  # noqa: E402
from ultralytics.nn.modules.head import RTDETRDecoder  # noqa: E402
from ultralytics.nn.modules.transformer import AIFI  # noqa: E402


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


def test_the_kinds_macs_are_torch_flop_counters_count():
    """torch's FlopCounterMode counts the matrix products (2 FLOPs a multiply-add) of both modules' forward; the
    decoder's weighted sum of its samples (a product and a sum, not a matrix product) is added by hand: 2 decoder
    layers run (eval_idx 1) x 30 queries x 2 heads x 6 samples (3 levels x 2 points) x 8 channels per head."""
    from torch.utils.flop_counter import FlopCounterMode

    decoder = "rtdetrdecoder(5, @mid, @small, hidden=16, queries=30, points=2, heads=2, layers=3, ffn=32, eval_idx=1)"
    cases = [
        ("input 16x3x5\n    aifi(32, 4)", (16, 3, 5), 0),
        (
            f"input 8x8x8\n    big: identity, mid: maxpool, small: maxpool\n    @big, {decoder}",
            (8, 8, 8),
            2 * 30 * 2 * 6 * 8,
        ),
    ]
    for body, shape, sampled in cases:
        net = cnndsl.parse(f"network t {{\n    {body}\n}}\n")
        module = net.to_torch().eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            module(torch.randn(1, *shape))
        assert net.macs == counter.get_total_flops() // 2 + sampled, body


def test_aifi_refuses_channels_the_positions_cannot_split():
    with pytest.raises(cnndsl.CnnDslError) as refused:
        cnndsl.parse("network t {\n    input 18x3x5\n    aifi(32, 3)\n}\n")
    assert refused.value.message == (
        "`aifi` needs channels divisible by 4 (the sine-cosine positions) and by its 3 heads, not 18"
    )
    assert str(refused.value.pos) == "<string>:3:5"


def test_rtdetr_l_gives_ultralytics_eval_output(tmp_path):
    """RT-DETR-l with random non-trivial weights, imported through its state_dict, on 128 x 128 images: its 300
    queries, chosen among 16x16 + 8x8 + 4x4 = 336 pixels, equal Ultralytics' eval-mode boxes and sigmoid
    scores, and Ultralytics' own top-k of ours is its eval output."""
    name = "rt-detr/rtdetr-l.yaml"
    model = randomised(ultralytics_model(yaml.safe_load((MODELS / name).read_text()), "l", "cpu"))
    torch.save(model.state_dict(), tmp_path / "state.pt")
    text = cnndsl.import_file(MODELS / name, weights=tmp_path / "state.pt", weights_out=tmp_path / "w.safetensors")
    (tmp_path / "net.cnn").write_text(text)
    net = cnndsl.load(str(tmp_path / "net.cnn"), network="rtdetr_l", input=(3, 128, 128))
    ours = net.to_torch(weights=str(tmp_path / "w.safetensors")).eval()
    images = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        selected, (boxes, scores, *_) = model(images)
        mine = ours(images)
    expected = torch.cat([boxes.squeeze(0), scores.squeeze(0).sigmoid()], -1)
    assert tuple(mine.shape) == (2, 300, 4 + 80)
    assert expected[..., :4].std() > 0.1 and expected[..., 4:].std() > 0.05  # not saturated
    torch.testing.assert_close(mine, expected, rtol=1e-4, atol=1e-4)
    head = model.model[-1]
    torch.testing.assert_close(head.postprocess(mine[..., :4], mine[..., 4:]), selected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("opset", [16, None])  # GridSample's bilinear mode; "linear" from opset 20
def test_rtdetrdecoder_in_torch_and_onnx_computes_ultralytics_decoder(opset):
    """Three levels (8x8, 4x4, 2x2: 84 pixels, 30 queries), 2 heads of 2 points, the second of 3 decoder layers
    as eval_idx, random weights loaded by their state_dict names: cnndsl's module and its ONNX graph
    (onnxruntime) against Ultralytics' RTDETRDecoder in eval mode."""
    import onnxruntime

    reference = RTDETRDecoder(nc=5, ch=(8, 8, 8), hd=16, nq=30, ndp=2, nh=2, ndl=3, d_ffn=32, eval_idx=1).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for key, tensor in reference.state_dict().items():
            if key.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * (0.5 if tensor.dim() == 1 else 0.3))
    text = """network t {
    input 8x8x8
    big: identity, mid: maxpool, small: maxpool
    @big, rtdetrdecoder(5, @mid, @small, hidden=16, queries=30, points=2, heads=2, layers=3, ffn=32, eval_idx=1)
}
"""
    net = cnndsl.parse(text)
    assert net.params == sum(p.numel() for p in reference.parameters())
    ours = net.to_torch().eval()
    ours.load_state_dict({f"rtdetrdecoder.{key}": value for key, value in reference.state_dict().items()})
    images = torch.randn(2, 8, 8, 8, generator=generator)
    levels = [images, torch.nn.functional.max_pool2d(images, 2), torch.nn.functional.max_pool2d(images, 4)]
    with torch.no_grad():
        _, (boxes, scores, *_) = reference(levels)
        mine = ours(images)
    expected = torch.cat([boxes.squeeze(0), scores.squeeze(0).sigmoid()], -1)
    assert tuple(mine.shape) == (2, 30, 9) and expected.std() > 0.1
    torch.testing.assert_close(mine, expected, rtol=1e-4, atol=1e-5)
    model = net.to_onnx(weights=ours, opset=opset)
    assert opset is None or model.opset_import[0].version == opset
    assert {node.op_type for node in model.graph.node} >= {"GridSample", "TopK", "GatherND"}
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: images.numpy()})
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_decoder_below_opset_16_is_refused():
    net = cnndsl.parse("network t {\n    input 8x4x4\n    rtdetrdecoder(3, hidden=8, heads=2)\n}\n", "t.cnn")
    with pytest.raises(cnndsl.CnnDslError) as refused:
        net.to_onnx(opset=15)
    assert refused.value.message == "`rtdetrdecoder` (GridSample) needs ONNX opset 16 or newer, not 15"
    assert str(refused.value.pos) == "t.cnn:3:5"


LEARNT = "[nc, 256, 300, 4, 8, 6, 1024, 0.0, None, -1, 100, 0.5, 1.0, True]"  # learnt_init_query, the last


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            f"[[16, 19, 22], 1, RTDETRDecoder, {LEARNT}]",
            "with an activation of its own or learnt initial queries is not imported",
        ),
        ("[[16, 19, 22], 2, RTDETRDecoder, [nc]]", "is imported once per row, not repeated"),
    ],
)
def test_decoder_rows_cnndsl_does_not_import_are_refused_at_their_line(tmp_path, row, message):
    text = (MODELS / "rt-detr/rtdetr-resnet50.yaml").read_text()
    written = "[[16, 19, 22], 1, RTDETRDecoder, [nc]]"
    assert text.endswith(f"  - {written} # RTDETRDecoder(P3, P4, P5)\n")
    (tmp_path / "model.yaml").write_text(text.replace(written, row))
    with pytest.raises(cnndsl.CnnDslError) as refused:
        cnndsl.import_file(tmp_path / "model.yaml")
    assert str(refused.value.pos) == f"{tmp_path / 'model.yaml'}:45:1"
    assert refused.value.message == f"RTDETRDecoder (module 23) {message}"


def test_pp_hgnetv2_macs_are_thops_less_four_per_batch_norm_output(tmp_path):
    """RT-DETR-l's backbone (HGStem, HGBlocks, DWConvs) and the head's first Conv, at 128 x 128: thop, which
    Ultralytics' GFLOPs come from, counts each batch norm 4 x its outputs, which cnndsl counts as nothing
    (as test_yolo_ultralytics says); every other layer agrees."""
    import copy
    import math

    thop = pytest.importorskip("thop", reason="ultralytics-thop, which Ultralytics counts FLOPs with")
    config = yaml.safe_load((MODELS / "rt-detr/rtdetr-l.yaml").read_text())
    config["head"] = config["head"][:1]
    path = tmp_path / "backbone.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    model = ultralytics_model(config, "l", "cpu").eval()
    net = cnndsl.parse(cnndsl.import_file(path), str(path), network="backbone_l", input=(3, 128, 128))
    counted, _ = thop.profile(copy.deepcopy(model), inputs=[torch.zeros(1, 3, 128, 128)], verbose=False)
    norms = sum(4 * math.prod(layer.shape) for _, layer in ir.layers(net.graph) if layer.op == "bn")
    assert net.macs + norms == int(counted) > 0


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


def test_to_python_refuses_the_rtdetr_kinds_at_their_layer(tmp_path):
    """Their torch modules are cnndsl's own classes, which a file that needs only torch cannot build."""
    from cnndsl.backends.torch import write_python

    net = cnndsl.parse("network t {\n    input 16x3x5\n    conv(16, k=1), aifi(32, 4)\n}\n", "t.cnn")
    with pytest.raises(cnndsl.CnnDslError) as refused:
        write_python(net, tmp_path / "t.py")
    assert str(refused.value.pos) == "t.cnn:3:20"
    assert refused.value.message == "`aifi` has no --to python form: its torch module is cnndsl's own EncoderLayer"
    assert not (tmp_path / "t.py").exists()
