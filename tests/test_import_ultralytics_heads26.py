"""YOLO26's segment and pose heads (Segment26 with Proto26 over every level, Pose26 with its keypoints centred
on the anchors), end to end: both heads' outputs equal Ultralytics' own at scale n, given its state_dict
through `cnndsl import`, within 1e-4; and its semantic head (SemanticSegment), its logits.

Counts and shapes at every scale are compared in tests/test_import_ultralytics.py (IMPORTED). The training-only
modules (Proto26's semantic head, Pose26's sigmas, SemanticSegment's aux_head) are imported as train outputs,
checked here against Ultralytics' training forward; Pose26's RealNVP flow model, which the loss runs on a tensor
it makes, reads the train input `keypoint_errors`, and is checked against Ultralytics' `flow_model.log_prob`."""

from __future__ import annotations

import pytest
from safetensors import safe_open

import cnndsl
from cnndsl.graph import ir

torch = pytest.importorskip("torch")
yaml = pytest.importorskip("yaml")
pytest.importorskip("ultralytics", reason="scripts/test installs ultralytics (pip --no-deps)")
from test_import_ultralytics import (  # noqa: E402
    MODELS,
    SIZE,
    network_name,
    randomised,
    ultralytics_and_imported,
    ultralytics_model,
)


def _close(mine, reference):
    assert reference.abs().max() > 1  # not a trivially small output
    torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-4 * reference.abs().max().item())


def _both_heads(tmp_path, name):
    return _outputs(*ultralytics_and_imported(tmp_path, name))


def _outputs(model, ours, images):
    """Ultralytics' eval outputs with its one-to-many head (end2end False) and end to end, and the import's."""
    with torch.no_grad():
        model.end2end = False
        many = model(images)[0]
        model.end2end = True
        end_to_end = model(images)[0]
        mine = ours(images)
    return model.model[-1], many, end_to_end, mine


def test_segment26_gives_both_heads_ultralytics_detections_and_protos(tmp_path):
    """Detections with each anchor's 32 mask coefficients after the scores, the one-to-one head's through
    Ultralytics' own top-k (Detect.postprocess); the prototypes from every level (Proto26)."""
    head, (many, protos), (end_to_end, protos_e2e), (detections, one2one, my_protos) = _both_heads(
        tmp_path, "26/yolo26-seg.yaml"
    )
    assert tuple(detections.shape) == tuple(one2one.shape) == (2, 4 + 80 + 32, 84)
    assert tuple(my_protos.shape) == (2, 32, 16, 16)
    _close(detections, many)
    _close(my_protos, protos)
    _close(my_protos, protos_e2e)
    with torch.no_grad():
        _close(head.postprocess(one2one.permute(0, 2, 1)), end_to_end)
    assert tuple(end_to_end.shape) == (2, 84, 6 + 32)


def test_segment26_exports_to_onnx_with_the_outputs_of_its_torch_module(tmp_path):
    """Both heads' detections and the prototypes through onnxruntime, with Ultralytics' randomised weights (the
    prototypes of a freshly initialised network are too small to tell apart)."""
    ort = pytest.importorskip("onnxruntime")
    _, ours, images = ultralytics_and_imported(tmp_path, "26/yolo26-seg.yaml", batch=1)
    net = cnndsl.load(str(tmp_path / "net.cnn"), network="yolo26n_seg", input=(3, SIZE, SIZE))
    net.to_onnx(tmp_path / "seg.onnx", weights=ours)
    session = ort.InferenceSession(str(tmp_path / "seg.onnx"))
    got = session.run(None, {session.get_inputs()[0].name: images.numpy()})
    with torch.no_grad():
        expected = ours(images)
    assert len(got) == len(expected) == 3
    for mine, reference in zip(got, expected, strict=True):
        _close(torch.from_numpy(mine), reference)


def test_pose26_gives_both_heads_ultralytics_detections_with_keypoints_in_pixels(tmp_path):
    head, many, end_to_end, (detections, one2one) = _both_heads(tmp_path, "26/yolo26-pose.yaml")
    assert tuple(detections.shape) == tuple(one2one.shape) == (2, 4 + head.nc + 17 * 3, 84)
    _close(detections, many)
    with torch.no_grad():
        _close(head.postprocess(one2one.permute(0, 2, 1)), end_to_end)


def test_semantic_segment_gives_ultralytics_logits(tmp_path):
    """SemanticSegment's classifier on the 1/8 level: 19 Cityscapes class logits per pixel."""
    model, ours, images = ultralytics_and_imported(tmp_path, "26/yolo26-sem.yaml")
    with torch.no_grad():
        expected, mine = model(images), ours(images)
    assert tuple(mine.shape) == tuple(expected.shape) == (2, 19, 8, 8)
    _close(mine, expected)


@pytest.mark.parametrize("name", ["v8/yolov8-seg.yaml", "11/yolo11-pose.yaml"])
def test_segment_and_pose_under_end2end_give_both_heads_ultralytics_outputs(tmp_path, name):
    """`end2end: True` gives any Segment or Pose a one-to-one copy of its paths: the same end as YOLO26's, with
    Pose's keypoints decoded as Pose does (2·offset + corner)."""
    text = (MODELS / name).read_text().replace("nc: 80", "nc: 80\nend2end: True", 1)
    (tmp_path / "model.yaml").write_text(text)
    model = randomised(ultralytics_model(yaml.safe_load(text), "n", "cpu"))
    assert hasattr(model.model[-1], "one2one_cv4")
    torch.save(model.state_dict(), tmp_path / "state.pt")
    weights = tmp_path / "w.safetensors"
    cnn = cnndsl.import_file(tmp_path / "model.yaml", weights=tmp_path / "state.pt", weights_out=weights)
    net = cnndsl.parse(cnn, network="model_n", input=(3, SIZE, SIZE))
    assert net.params == sum(p.numel() for p in model.parameters())
    ours = net.to_torch(weights=str(weights)).eval()
    images = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    head, many, end_to_end, mine = _outputs(model, ours, images)
    if "seg" in name:
        (many, protos), (end_to_end, _), (detections, one2one, my_protos) = many, end_to_end, mine
        _close(my_protos, protos)
    else:
        detections, one2one = mine
    _close(detections, many)
    with torch.no_grad():
        _close(head.postprocess(one2one.permute(0, 2, 1)), end_to_end)


TRAINING_MODULES = {  # each file's modules that only Ultralytics' training forward runs, by the import's train outputs
    "26/yolo26-seg.yaml": {"semantic": "proto.semseg"},
    "26/yolo26-pose.yaml": {
        **{f"sigma{level}": f"cv4_sigma.{level}" for level in range(3)},
        **{f"one2one_sigma{level}": f"one2one_cv4_sigma.{level}" for level in range(3)},
        "flow": "flow_model",  # its log_prob, which the loss calls on the keypoint errors it makes
    },
    "26/yolo26-sem.yaml": {"aux": "aux_head"},
}
# RealNVP's 6 scale and 6 translation MLPs, Linear 2-64, 64-64, 64-2 each (ultralytics/nn/modules/block.py), by hand
FLOW_PARAMS = 12 * ((2 * 64 + 64) + (64 * 64 + 64) + (64 * 2 + 2))


@pytest.mark.parametrize("name", sorted(TRAINING_MODULES))
def test_training_only_modules_are_train_outputs_equal_to_ultralytics_training_forward(tmp_path, name):
    """The modules Ultralytics' eval outputs give no gradient are the import's training-only layers (Pose26's flow
    model among them: FLOW_PARAMS); the full state_dict loads into them, and in train() mode each train output
    equals that module's output in Ultralytics' training forward; the flow's, given random keypoint errors as the
    train input, equals Ultralytics' `flow_model.log_prob` of them."""
    model, ours, images = ultralytics_and_imported(tmp_path, name)
    stem = name.split("/")[1][: -len(".yaml")]
    net = cnndsl.load(str(tmp_path / "net.cnn"), network=network_name(stem, "n"), input=(3, SIZE, SIZE))
    for end2end in (False, True) if "sem" not in name else (None,):
        if end2end is not None:
            model.end2end = end2end
        outputs = model(images)[0] if end2end is not None else model(images)
        sum(part.sum() for part in (outputs if isinstance(outputs, tuple) else (outputs,))).backward()
    unused = {key: p.numel() for key, p in model.named_parameters() if p.grad is None}
    flow = sum(size for key, size in unused.items() if ".flow_model." in key)
    assert flow == (FLOW_PARAMS if "pose" in name else 0)
    training = sum(ir.layer(net.graph, node).figures.params for node in ir.training_only(net.graph))
    assert training == sum(unused.values()) > flow
    assert net.params == sum(p.numel() for p in model.parameters())
    assert net.totals.eval_params == net.params - training
    written = safe_open(str(tmp_path / "w.safetensors"), "pt").keys()
    loaded = [key for key, value in model.state_dict().items() if value.is_floating_point()]
    assert len(written) == len(loaded)  # every tensor of the state_dict has its place, the flow model's too
    head, captured = model.model[-1], {}
    for output, path in TRAINING_MODULES[name].items():
        module = head.get_submodule(path)
        module.register_forward_hook(lambda m, args, out, output=output: captured.__setitem__(output, out))
    model.train()
    ours.train()
    errors = torch.randn(40, 2, generator=torch.Generator().manual_seed(3))  # (predicted - true) / sigma, by row
    given = (errors,) if "pose" in name else ()
    with torch.no_grad():
        model(images)
        mine = ours(images, *given)
        if given:  # the loss's call: flow_model.log_prob(errors), (N,)
            captured["flow"] = head.flow_model.log_prob(errors)[:, None]
            torch.testing.assert_close(ours.realnvp.log_prob(errors), captured["flow"][:, 0], rtol=1e-5, atol=1e-5)
    train_outputs = [tap for tap, _ in ir.network_info(net.graph).train_outputs]
    assert sorted(train_outputs) == sorted(TRAINING_MODULES[name])
    for tap, value in zip(train_outputs, mine[-len(train_outputs) :], strict=True):
        _close(value, captured[tap])
    if given:
        assert captured["flow"].std() > 0.1  # not a flat density
        torch.testing.assert_close(mine[-1], captured["flow"], rtol=1e-5, atol=1e-5)


def test_imported_heads_are_written_with_their_own_blocks_only():
    """Proto26's levels refined, summed and fused in one line; Pose26's path in place of Pose's extra_level; each
    training-only module one statement after the head, returned by `train output`."""
    seg = cnndsl.import_file(MODELS / "26/yolo26-seg.yaml")
    assert "    @l22, conv_bn_silu(c256), proto_level2: upsample(4)  # modules 23\n" in seg
    assert "@l16, protos: (summed: add(@proto_level1, @proto_level2), conv_bn_silu(c256, 3), proto(c256, 32))" in seg
    semseg = "    @summed, semantic: (conv_bn_silu(c256, 3), conv_bn_silu(c256, 3), conv(classes, k=1))  # modules 23\n"
    assert semseg in seg and "    train output @semantic\n" in seg
    pose = cnndsl.import_file(MODELS / "26/yolo26-pose.yaml")
    assert "block extra_level" not in pose and "    @l16, keypoint0: pose26_level(c256, 17, 3)  # modules 23\n" in pose
    assert "keypoints: kptdecode(@image, @level0, @level1, @level2, centred=true)" in pose
    assert "    @one2one_keypoint2.features, one2one_sigma2: conv(34, k=1)  # modules 23\n" in pose
    outputs = "@sigma0, @sigma1, @sigma2, @one2one_sigma0, @one2one_sigma1, @one2one_sigma2, @flow"
    assert f"    train output {outputs}\n" in pose
    assert (
        "    keypoint_errors: train input 2  # each matched keypoint's (predicted - true) / sigma\n    @image\n" in pose
    )
    assert "    @keypoint_errors, flow: realnvp(6, 64)  # modules 23\n" in pose
    assert "Not imported" not in pose
    assert cnndsl.import_file(MODELS / "26/yolo26-pose.yaml") == pose  # it re-imports identically
    sem = cnndsl.import_file(MODELS / "26/yolo26-sem.yaml")
    assert "    @l13, aux: (conv_bn_silu(c256, 3), conv(classes, k=1))  # modules 17\n    output @l17\n" in sem
    assert "    train output @aux\n}" in sem
