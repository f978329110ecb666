"""YOLOE imported with text and visual prompts. Its visual-prompt encoder (Ultralytics' SAVPE) written in cnndsl
is a network of four inputs (three levels of features and the prompt masks) whose convolutions are ordinary
layers, shared across the prompts, and whose end is `promptpool`: with SAVPE's own weights its output equals
SAVPE's, in torch and onnxruntime. The imported YOLOE files (text prompts held as `txt_feats`, the masks as the
second input) have YOLOEModel's parameters and give YOLOEModel.predict(x, tpe=..., vpe=...)'s outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cnndsl

torch = pytest.importorskip("torch")
pytest.importorskip("ultralytics", reason="scripts/test installs ultralytics (pip --no-deps)")

# SAVPE(ch=[8, 16, 32], c3=8, embed=32) on 8×8, 4×4 and 2×2 levels and two prompts, its modules in the order it
# registers them (cv1, cv2, cv3, cv4, cv5, cv6), so that its state_dict lines up with the network's
SAVPE = """network savpe {
    p3: input 8x8x8
    p4: input 16x4x4
    p5: input 32x2x2
    prompts: input 2x8x8
    @p3, conv(8, k=3, bias=false), bn, silu, conv(8, k=3, bias=false), bn, silu, e0: identity
    @p4, conv(8, k=3, bias=false), bn, silu, conv(8, k=3, bias=false), bn, silu, e1: upsample(2)
    @p5, conv(8, k=3, bias=false), bn, silu, conv(8, k=3, bias=false), bn, silu, e2: upsample(4)
    @p3, conv(8, k=1, bias=false), bn, silu, s0: identity
    @p4, conv(8, k=1, bias=false), bn, silu, s1: upsample(2)
    @p5, conv(8, k=1, bias=false), bn, silu, s2: upsample(4)
    @e0, concat(@e1, @e2), embedding: conv1x1(32)
    @s0, concat(@s1, @s2), score: conv3x3(16)
    @prompts, m0: chunk(2, 0)
    v0: conv3x3(16)
    @score, concat(@v0), c6a: conv(16, k=3, bias=false), c6b: bn, silu, c6c: conv3x3(16)
    q0: promptpool(@embedding, @m0)
    @prompts, m1: chunk(2, 1), shared(@v0), v1: identity
    @score, concat(@v1), shared(@c6a), shared(@c6b), silu, shared(@c6c)
    q1: promptpool(@embedding, @m1)
    @q0, concat(@q1, axis=1)
}
"""


def _savpe_and_network():
    from ultralytics.nn.modules.block import SAVPE as UltralyticsSAVPE

    torch.manual_seed(0)
    reference = UltralyticsSAVPE([8, 16, 32], 8, 32).eval()
    for module in reference.modules():  # statistics away from the identity, so that each norm matters
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    network = cnndsl.parse(SAVPE)
    names = list(network.to_torch().state_dict())
    state = dict(zip(names, reference.state_dict().values(), strict=True))
    return reference, network, state


def _features_and_prompts():
    generator = torch.Generator().manual_seed(1)
    features = [torch.randn(2, c, s, s, generator=generator) for c, s in ((8, 8), (16, 4), (32, 2))]
    prompts = (torch.rand(2, 2, 8, 8, generator=generator) > 0.6).float()
    prompts[1, 1] = 0  # a prompt that marks nothing: every pixel left out alike
    return features, prompts


def test_savpe_params_and_output_equal_ultralytics():
    reference, network, state = _savpe_and_network()
    assert network.params == sum(p.numel() for p in reference.parameters())
    assert network.inputs == [("p3", (8, 8, 8)), ("p4", (16, 4, 4)), ("p5", (32, 2, 2)), ("prompts", (2, 8, 8))]
    module = network.to_torch(weights=state).eval()
    features, prompts = _features_and_prompts()
    with torch.no_grad():
        expected = reference(features, prompts)  # B × prompts × embed
        got = module(*features, prompts)  # B × embed × prompts × 1: the text's layout
    assert got.shape == (2, 32, 2, 1)
    torch.testing.assert_close(got[..., 0].transpose(1, 2), expected, rtol=0, atol=1e-5)


def test_savpe_in_onnxruntime_equals_ultralytics(tmp_path):
    import onnxruntime as ort

    reference, network, state = _savpe_and_network()
    path = tmp_path / "savpe.onnx"
    network.to_onnx(path, weights=state)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [each.name for each in session.get_inputs()] == ["p3", "p4", "p5", "prompts"]
    features, prompts = _features_and_prompts()
    feed = {name: value.numpy() for name, value in zip(("p3", "p4", "p5", "prompts"), (*features, prompts))}
    with torch.no_grad():
        expected = reference(features, prompts).numpy()
    got = session.run(None, feed)[0]
    np.testing.assert_allclose(got[..., 0].transpose(0, 2, 1), expected, rtol=0, atol=1e-5)


def _yoloe(name: str, scale: str = "n", seed: int = 0):
    """YOLOEModel of the shipped file at `scale`, randomised, and random text prompts (CLIP's, before reprta)."""
    import yaml
    from test_import_ultralytics import MODELS, randomised
    from ultralytics.nn.tasks import YOLOEModel

    config = dict(yaml.safe_load((MODELS / name).read_text()), scale=scale)
    torch.manual_seed(seed)
    model = randomised(YOLOEModel(config, verbose=False), seed)
    generator = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():  # similarities scaled by about e^2, as a trained head's are
        for key, tensor in model.state_dict().items():
            if key.endswith("logit_scale"):
                tensor.copy_(2 + torch.rand((), generator=generator))
    return model, torch.randn(1, 80, 512, generator=generator)


def _imported(tmp_path, name: str, state: dict, scale: str = "n"):
    from test_import_ultralytics import MODELS, SIZE, network_name

    torch.save(state, tmp_path / "state.pt")
    text = cnndsl.import_file(MODELS / name, weights=tmp_path / "state.pt", weights_out=tmp_path / "w.safetensors")
    (tmp_path / "net.cnn").write_text(text)
    shapes = {"image": (3, SIZE, SIZE), "prompts": (4, SIZE // 8, SIZE // 8)}
    net = cnndsl.load(str(tmp_path / "net.cnn"), network=network_name(Path(name).stem, scale), input=shapes)
    return net, net.to_torch(weights=str(tmp_path / "w.safetensors")).eval()


def _prompted(tmp_path, name: str, seed: int) -> tuple:
    """(Ultralytics' YOLOE model for the file, its text prompts, the import loaded with its weights, that import's
    module, two images, four visual prompt masks for each, drawn from `seed`); the import counts the model's
    params (reprta's and SAVPE's once)."""
    from test_import_ultralytics import SIZE

    model, text = _yoloe(name)
    net, ours = _imported(tmp_path, name, {**model.state_dict(), "txt_feats": text})
    assert net.params == sum(p.numel() for p in model.parameters())
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(2, 3, SIZE, SIZE, generator=generator)
    masks = (torch.rand(2, 4, SIZE // 8, SIZE // 8, generator=generator) > 0.7).float()
    return model, text, net, ours, images, masks


def test_yoloe_gives_yoloe_models_outputs_for_text_and_visual_prompts(tmp_path):
    """yoloe-v8: Detect's legacy class path; YOLOE-26 below has the depthwise one (as yoloe-11's)."""
    model, text, net, ours, images, masks = _prompted(tmp_path, "v8/yoloe-v8.yaml", 1)
    masks[1, 2] = 0  # a prompt that marks nothing
    with torch.no_grad():
        expected, _ = model.predict(images, tpe=text.expand(2, -1, -1), vpe=masks)  # the same text for both
        mine = ours(images, masks)
    assert tuple(mine.shape) == (2, 4 + 80 + 4, 64 + 16 + 4)  # boxes, the text's and the prompts' scores
    assert expected[:, 84:].std() > 0.05  # the prompts' scores differ between prompts and anchors
    torch.testing.assert_close(mine, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_a_state_dict_without_the_text_prompts_is_refused_with_how_to_add_them(tmp_path):
    from cnndsl.core.errors import CnnDslError

    state = {"model.0.conv.weight": torch.zeros(16, 3, 3, 3)}  # refused before any tensor is matched
    with pytest.raises(CnnDslError) as refused:
        _imported(tmp_path, "v8/yoloe-v8.yaml", state)
    assert refused.value.message == (
        f"{tmp_path / 'state.pt'} holds no `txt_feats`: YOLOE's text prompts are given to each call, not held in "
        "its state_dict; save those of the nc classes, before reprta, with it: "
        "state['txt_feats'] = model.get_text_pe(names, without_reprta=True)"
    )


def test_yoloe_seg_gives_yoloe_models_detections_and_prototypes(tmp_path):
    model, text, net, ours, images, masks = _prompted(tmp_path, "v8/yoloe-v8-seg.yaml", 2)
    with torch.no_grad():
        (expected, protos), _ = model.predict(images, tpe=text.expand(2, -1, -1), vpe=masks)
        mine, my_protos = ours(images, masks)
    assert tuple(mine.shape) == (2, 4 + 80 + 4 + 32, 64 + 16 + 4)  # boxes, scores, each anchor's mask coefficients
    torch.testing.assert_close(mine, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    torch.testing.assert_close(my_protos, protos, rtol=1e-4, atol=1e-4 * protos.abs().max().item())


def test_yoloe26_gives_both_heads_outputs(tmp_path):
    """YOLOE-26 is end-to-end: the first output is the one-to-many head's decoded boxes, the second the
    one-to-one head's corners and scores, which Ultralytics' own top-k turns into its end-to-end detections."""
    model, text, net, ours, images, masks = _prompted(tmp_path, "26/yoloe-26.yaml", 3)
    prompts = {"tpe": text.expand(2, -1, -1), "vpe": masks}
    with torch.no_grad():
        many, one = ours(images, masks)
        model.end2end = False
        expected_many, _ = model.predict(images, **prompts)
        model.end2end = True
        expected_e2e, _ = model.predict(images, **prompts)
        mine_e2e = model.model[-1].postprocess(one.permute(0, 2, 1))
    assert tuple(many.shape) == tuple(one.shape) == (2, 4 + 80 + 4, 64 + 16 + 4)
    torch.testing.assert_close(many, expected_many, rtol=1e-4, atol=1e-4 * expected_many.abs().max().item())
    assert tuple(expected_e2e.shape) == (2, 84, 6)  # max_det 300 > 84 anchors: every anchor, best first
    torch.testing.assert_close(mine_e2e, expected_e2e, rtol=1e-4, atol=1e-4 * expected_e2e.abs().max().item())


def test_yoloe26_seg_gives_both_heads_detections_and_prototypes(tmp_path):
    """YOLOESegment26: each head's detections carry the anchors' 32 mask coefficients after the scores; the
    prototypes come from every level (Proto26), whose semantic head is a training output."""
    model, text, net, ours, images, masks = _prompted(tmp_path, "26/yoloe-26-seg.yaml", 4)
    semantic = sum(p.numel() for key, p in model.named_parameters() if ".proto.semseg." in key)
    assert semantic > 0 and net.totals.eval_params == net.params - semantic  # Proto26's semseg: a train output
    prompts = {"tpe": text.expand(2, -1, -1), "vpe": masks}
    with torch.no_grad():
        detections, one2one, my_protos = ours(images, masks)
        model.end2end = False
        (many, protos), _ = model.predict(images, **prompts)
        model.end2end = True
        (end_to_end, _), _ = model.predict(images, **prompts)
        mine_e2e = model.model[-1].postprocess(one2one.permute(0, 2, 1))
    assert tuple(detections.shape) == tuple(one2one.shape) == (2, 4 + 80 + 4 + 32, 64 + 16 + 4)
    for mine, expected in ((detections, many), (my_protos, protos), (mine_e2e, end_to_end)):
        torch.testing.assert_close(mine, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
