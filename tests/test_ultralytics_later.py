"""YOLOv10, YOLO26 (and the later modules' files) imported from Ultralytics' own YAMLs: the outputs of both
heads of an end-to-end model equal Ultralytics' own, given its state_dict through `cnndsl import`.

Counts and shapes at every scale are compared in tests/test_import_ultralytics.py (IMPORTED); here the outputs
at scale n, with random weights and norm statistics, within 1e-4."""

from __future__ import annotations

import pytest

import cnndsl

torch = pytest.importorskip("torch")
yaml = pytest.importorskip("yaml")
pytest.importorskip("ultralytics", reason="scripts/test installs ultralytics (pip --no-deps)")
from test_import_ultralytics import (  # noqa: E402
    MODELS,
    SIZE,
    randomised,
    ultralytics_and_imported,
    ultralytics_model,
)


def _close(mine, reference):
    assert reference.abs().max() > 1  # not a trivially small output
    torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-4 * reference.abs().max().item())


@pytest.mark.parametrize("name", ["v10/yolov10n.yaml", "26/yolo26.yaml"])
def test_end_to_end_models_give_both_heads_ultralytics_outputs(tmp_path, name):
    """The first output is the one-to-many head's decoded boxes (Ultralytics' default, end2end=False); the
    second the one-to-one head's corners and scores, which Ultralytics' own top-k (Detect.postprocess) turns
    into the end-to-end detections exactly as it does its own."""
    model, ours, images = ultralytics_and_imported(tmp_path, name)
    head = model.model[-1]
    with torch.no_grad():
        many, one = ours(images)
        model.end2end = False
        expected_many, _ = model(images)
        model.end2end = True
        expected_e2e, _ = model(images)
        mine_e2e = head.postprocess(one.permute(0, 2, 1))
    assert tuple(many.shape) == tuple(one.shape) == (2, 84, 64 + 16 + 4)
    _close(many, expected_many)
    assert tuple(expected_e2e.shape) == (2, 84, 6)  # max_det 300 > 84 anchors: every anchor, best first
    _close(mine_e2e, expected_e2e)


@pytest.mark.parametrize("name", ["12/yolo12.yaml", "12/yolo12-cls.yaml"])
def test_yolo12_gives_ultralytics_outputs(tmp_path, name):
    """A2C2f's area attention (area 4 on the 4x4 map of a 64x64 input: one row per area) and its C3k form."""
    model, ours, images = ultralytics_and_imported(tmp_path, name)
    with torch.no_grad():
        expected = model(images)
        mine = ours(images)
    if "cls" in name:
        probabilities, logits = expected
        _close(mine, logits)
    else:
        _close(mine, expected[0])


LARGE = """nc: 5
scales:
  l: [0.5, 0.125, 1024]
backbone:
  - [-1, 1, Conv, [256, 3, 2]]
  - [-1, 1, Conv, [512, 3, 2]]
  - [-1, 2, A2C2f, [512, True, 4]]
  - [-1, 2, A2C2f, [512, False, -1]]
head:
  - [-1, 1, Classify, [nc]]
"""


def test_a2c2f_at_scale_l_has_its_residual_gamma_and_wider_mlp(tmp_path):
    """At scales l and x parse_model appends residual=True and mlp_ratio=1.2 to every A2C2f: the output is the
    input plus gamma (a learned per-channel scale) times the block's."""
    path = tmp_path / "large.yaml"
    path.write_text(LARGE)
    model = randomised(ultralytics_model(yaml.safe_load(LARGE), "l", "cpu"))
    assert model.model[2].gamma is not None and model.model[3].gamma is None
    torch.save(model.state_dict(), tmp_path / "state.pt")
    text = cnndsl.import_file(path, weights=tmp_path / "state.pt", weights_out=tmp_path / "w.safetensors")
    assert "network large_l = large(0.5, 0.125, 1024, large=true)" in text
    net = cnndsl.parse(text, network="large_l", input=(3, SIZE, SIZE))
    assert net.params == sum(p.numel() for p in model.parameters())
    ours = net.to_torch(weights=str(tmp_path / "w.safetensors")).eval()
    images = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _, logits = model(images)
        _close(ours(images), logits)


def test_yolov9e_gives_ultralytics_outputs(tmp_path):
    """CBLinear's convolutions cut into parts of different sizes, each part resized (nearest) and summed by
    CBFuse: the whole of YOLOv9-E (no scales: its one size)."""
    name = "v9/yolov9e.yaml"
    model, ours, images = ultralytics_and_imported(tmp_path, name, "", batch=1)
    with torch.no_grad():
        expected, _ = model(images)
        _close(ours(images), expected)


def test_yolov3_tiny_gives_ultralytics_outputs(tmp_path):
    """nn.ZeroPad2d before the stride-1 max pool: zeros, not -inf, on the bottom and right edges."""
    name = "v3/yolov3-tiny.yaml"
    model, ours, images = ultralytics_and_imported(tmp_path, name, "")
    padded = []
    hook = model.model[11].register_forward_hook(lambda m, args, out: padded.append(args[0]))
    with torch.no_grad():
        expected, _ = model(images)
        _close(ours(images), expected)
    hook.remove()
    assert (padded[0] < 0).any()  # SiLU maps go negative: -inf padding would give another maximum there


def _run_both(tmp_path, name: str):
    """Ultralytics' model at scale n with random weights, the imported network with them, and both outputs on
    the same images; the head's input maps too."""
    model, ours, images = ultralytics_and_imported(tmp_path, name)
    head, features = model.model[-1], []
    hook = head.register_forward_pre_hook(lambda m, args: features.extend(args[0]))
    with torch.no_grad():
        expected, mine = model(images), ours(images)
    hook.remove()
    return head, features, expected, mine


def test_segment_gives_ultralytics_detections_with_mask_coefficients_and_protos(tmp_path):
    _, _, ((detections, protos), _), (mine, my_protos) = _run_both(tmp_path, "v8/yolov8-seg.yaml")
    assert tuple(mine.shape) == (2, 4 + 80 + 32, 84) and tuple(my_protos.shape) == (2, 32, 16, 16)
    _close(mine, detections)
    _close(my_protos, protos)


@pytest.mark.parametrize("name", ["11/yolo11-pose.yaml", "v8/yolov8-pose-p6.yaml"])
def test_pose_gives_ultralytics_detections_with_keypoints_in_pixels(tmp_path, name):
    """Boxes, scores, then each anchor's 17 keypoints decoded by kptdecode as Pose.kpts_decode does."""
    head, _, (decoded, _), mine = _run_both(tmp_path, name)
    assert tuple(mine.shape) == tuple(decoded.shape) == (2, 4 + head.nc + 17 * 3, mine.shape[2])
    _close(mine, decoded)


@pytest.mark.parametrize("name", ["v8/yolov8-obb.yaml", "26/yolo26-obb.yaml"])
def test_obb_gives_ultralytics_raw_maps_and_angle_logits(tmp_path, name):
    """Every level's box and class maps, then its angle logits (cv4, before OBB's sigmoid); YOLO26's
    end-to-end OBB26 has both heads, the one-to-one after the one-to-many."""
    head, features, _, mine = _run_both(tmp_path, name)
    paths = [("cv2", "cv3", "cv4")] + [("one2one_cv2", "one2one_cv3", "one2one_cv4")] * ("26" in name)
    with torch.no_grad():
        levels = [
            torch.cat([getattr(head, b)[i](x), getattr(head, c)[i](x)], 1)
            for b, c, _ in paths
            for i, x in enumerate(features)
        ]
        angles = [getattr(head, a)[i](x) for _, _, a in paths for i, x in enumerate(features)]
    assert len(mine) == 6 * len(paths)
    for got, reference in zip(mine, levels + angles, strict=True):
        torch.testing.assert_close(got, reference, rtol=1e-4, atol=1e-4 * reference.abs().max().item())


@pytest.mark.parametrize(
    ("name", "network", "outputs"),
    [
        ("26/yolo26.yaml", "yolo26n", 2),
        ("12/yolo12.yaml", "yolo12n", 1),
        ("26/yolo26-pose.yaml", "yolo26n_pose", 2),
    ],
)
def test_imported_later_models_export_to_onnx_with_torch_outputs(tmp_path, name, network, outputs):
    """The end-to-end head's two decodings (with Pose26's centred keypoints) and the area attention, through ONNX
    and onnxruntime (Segment26's: tests/test_import_ultralytics_heads26.py)."""
    ort = pytest.importorskip("onnxruntime")
    net = cnndsl.parse(cnndsl.import_file(MODELS / name), network=network, input=(3, SIZE, SIZE))
    module = net.to_torch(seed=0).eval()
    images = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = module(images)
    expected = list(expected) if isinstance(expected, (tuple, list)) else [expected]
    net.to_onnx(tmp_path / "net.onnx", weights=module)
    session = ort.InferenceSession(str(tmp_path / "net.onnx"))
    got = session.run(None, {session.get_inputs()[0].name: images.numpy()})
    assert len(got) == len(expected) == outputs
    for mine, reference in zip(got, expected, strict=True):
        _close(torch.from_numpy(mine), reference)
