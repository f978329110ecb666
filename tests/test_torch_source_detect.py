"""`--to python` of the YOLO detectors: the generated file is the detector `to_torch()` builds (state_dict,
function), its DFL starts at Ultralytics' fixed bins, and its classes are few and take the counts."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import cnndsl
from cnndsl.backends.torch import write_python
from cnndsl.backends.torch_source import class_name, python_source

SIDE = 64  # the smallest input whose stride-32 map is 2×2: 64 + 16 + 4 = 84 anchors


def _import(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# One xdist group per detector: its module fixture (a --to python file and a seeded module: 3 to 4.5 s) is built
# once, not in each worker that runs one of its tests.
@pytest.fixture(
    scope="module",
    params=[pytest.param(name, marks=pytest.mark.xdist_group(f"detector-{name}")) for name in ("yolov8n", "yolo11n")],
)
def detector(request, tmp_path_factory):
    """(network at 64×64, its to_torch() module seeded, the generated file's text and namespace)."""
    network = cnndsl.load(request.param, input=(3, SIDE, SIDE))
    path = write_python(network, tmp_path_factory.mktemp("detect") / f"{request.param}.py")
    return network, network.to_torch(seed=0).eval(), path.read_text(), _import(path), path


def _state_shapes(module) -> list:
    return [(key, tuple(tensor.shape)) for key, tensor in module.state_dict().items()]


def test_the_generated_detector_holds_the_state_dict_and_computes_to_torchs_output(detector):
    network, reference, _, namespace, _ = detector
    written = getattr(namespace, class_name(network.name))().eval()
    assert _state_shapes(written) == _state_shapes(reference)
    assert sum(parameter.numel() for parameter in written.parameters()) == network.params
    written.load_state_dict(reference.state_dict())
    images = torch.randn(2, 3, SIDE, SIDE)
    with torch.no_grad():
        expected, ours = reference(images), written(images)
    assert ours.shape == (2, 300, 6)  # by default the rows of nms: x1, y1, x2, y2, score, label
    assert (expected[..., 5] >= 0).sum() > 10  # boxes kept: the rows compared are detections
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_a_fresh_generated_detector_starts_its_dfl_at_the_fixed_bins_0_to_15(detector):
    """Ultralytics' DFL: `conv.weight = arange(16)`, `requires_grad_(False)`. Loaded with every other tensor of
    to_torch()'s state_dict, the fresh class computes its output: the bins come from the file, not a checkpoint."""
    network, reference, _, namespace, _ = detector
    torch.manual_seed(1)
    written = getattr(namespace, class_name(network.name))().eval()
    assert torch.equal(written.detect.dfl.weight, torch.arange(16.0).view(1, 16, 1, 1))
    assert not written.detect.dfl.weight.requires_grad
    others = {key: value for key, value in reference.state_dict().items() if key != "detect.dfl.weight"}
    assert written.load_state_dict(others, strict=False).missing_keys == ["detect.dfl.weight"]
    images = torch.randn(1, 3, SIDE, SIDE)
    with torch.no_grad():
        torch.testing.assert_close(written(images), reference(images), rtol=1e-5, atol=1e-5)


def test_the_unrolled_layout_sets_the_dfl_bins_too(detector, tmp_path):
    network = detector[0]
    with torch.device("meta"):
        text = python_source(network, network.to_torch())
    (tmp_path / "unrolled.py").write_text(text)
    written = getattr(_import(tmp_path / "unrolled.py"), class_name(network.name))()
    assert torch.equal(written.detect.dfl.weight, torch.arange(16.0).view(1, 16, 1, 1))
    assert not written.detect.dfl.weight.requires_grad


CLASSES = {"yolov8n": 10, "yolo11n": 20}  # the network's own class included


def test_each_block_is_one_class_and_a_repetition_is_a_loop_over_its_count(detector):
    """C2f (yolov8n) and C3k2 (yolo11n): one class, with or without the bottlenecks' shortcut, with bottlenecks
    or C3k blocks (a flag of the class), not one per width, per flag or per turn; `n` is the loop's count."""
    network, _, text, _, _ = detector
    assert text.count("\nclass ") == CLASSES[network.name]
    block, flag = ("C2f", "shortcut") if network.name == "yolov8n" else ("C3k2", "c3k_blocks")
    assert text.count(f"\nclass {block}") == 1
    assert f"class {block}(nn.Module):\n    def __init__(self, in_channels, c2, n=1, {flag}=False, e=0.5):\n" in text
    assert "        self.cv2 = Cv2((2 + n) * int(c2 * e), c2)\n" in text
    assert text.count("\nclass Bottleneck") == 1
    if network.name == "yolov8n":  # the pool turn of SPPF and the bottleneck turn of C2f
        assert text.count("\nclass Dense") == 2
        assert "class Bottleneck(nn.Module):\n    def __init__(self, in_channels, c, shortcut=True):\n" in text
        assert "C2f(w2, w2, n=d1, shortcut=True)" in text and "C2f(w6, w4, n=d1)" in text  # the scale's widths


@pytest.mark.parametrize("shortcut, n", [(True, 3), (False, 2)])
def test_the_generated_c2f_built_with_another_n_is_ultralytics_c2f(tmp_path, shortcut, n):
    """yolov8n's one C2f class (used only with n=1 or 2, with and without the shortcut), built with another count,
    holds Ultralytics' C2f(64, 64, n, shortcut) parameters and computes its output from its weights (m.0 is
    dense1.bottleneck, ...)."""
    blocks = pytest.importorskip("ultralytics.nn.modules.block", reason="Ultralytics is not importable")
    network = cnndsl.load("yolov8n", input=(3, SIDE, SIDE))
    namespace = _import(write_python(network, tmp_path / "yolov8n.py"))
    written = namespace.C2f(64, 64, n=n, shortcut=shortcut).eval()
    theirs = blocks.C2f(64, 64, n=n, shortcut=shortcut).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in theirs.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eps = 1e-3  # as DetectionModel's initialize_weights sets it
        for key, tensor in theirs.state_dict().items():
            if key.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.5 + 0.5)
            elif key.endswith(("running_mean", "bias")):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.2)
            elif key.endswith("bn.weight"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.5 + 0.75)
            elif key.endswith("conv.weight"):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) / tensor[0].numel() ** 0.5)
    renamed = {}
    for key, tensor in theirs.state_dict().items():
        parts = key.split(".")
        if parts[0] == "m":
            parts = ["m", f"dense{int(parts[1]) + 1}", "bottleneck", *parts[2:]]
        renamed[".".join(parts)] = tensor
    assert sorted(renamed) == sorted(written.state_dict())
    written.load_state_dict(renamed)
    images = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(written(images), theirs(images), rtol=1e-5, atol=1e-5)


def test_the_generated_detector_passes_ruff_check_and_ruff_format(detector):
    """The held slice widths read `x[:, -self.c :]`, as ruff format spaces a slice of an attribute."""
    path = detector[4]
    for command in (["check", "--isolated"], ["format", "--isolated", "--check"]):
        done = subprocess.run([sys.executable, "-m", "ruff", *command, str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("classes", [3, 150])
def test_the_class_branch_takes_its_width_and_classes_and_builds_other_class_counts(detector, classes):
    """Detect's class branch is `max(ch[0], min(nc, 100))` wide (Ultralytics' Detect.__init__, c3): the generated
    class takes that width and `classes` as arguments, both 80 at the default, and built with the values of another
    class count holds that network's branch (yolov8n: Conv 3x3, Conv 3x3, Conv2d 1x1, computed here with
    torch.nn.functional from the branch's tensors)."""
    network, _, text, namespace, _ = detector
    branch = "ClassBranch" if network.name == "yolov8n" else "LightClassBranch"
    assert f"class {branch}(nn.Module):\n    def __init__(self, in_channels, c, classes):\n" in text
    other = cnndsl.load(network.name, classes=classes, input=(3, SIDE, SIDE)).to_torch(seed=0).eval()
    expected = next(other.detect.cv3.children()).state_dict()
    written = getattr(namespace, branch)(64, max(64, min(classes, 100)), classes).eval()
    assert _state_shapes(written) == [(key, tuple(tensor.shape)) for key, tensor in expected.items()]
    if network.name != "yolov8n":
        return
    written.load_state_dict(expected)
    features = torch.randn(2, 64, 8, 8)

    def cv(x, name):
        x = F.conv2d(x, expected[f"{name}.conv.weight"], padding=1)
        norm = [expected[f"{name}.bn.{key}"] for key in ("running_mean", "running_var", "weight", "bias")]
        return F.silu(F.batch_norm(x, *norm, eps=1e-3))

    with torch.no_grad():
        reference = F.conv2d(cv(cv(features, "cv1"), "cv2"), expected["conv.weight"], expected["conv.bias"])
        assert reference.shape == (2, classes, 8, 8)
        torch.testing.assert_close(written(features), reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("classes", [3, 80, 150])
def test_the_detector_class_takes_classes_and_is_the_network_of_that_many_classes(detector, classes):
    """The class branch is `max(64, min(classes, 100))` wide at scale n (Ultralytics' Detect: c3 = max(ch[0],
    min(nc, 100))): the network's class takes `classes` and passes the branch that clamp, found from builds at 3,
    81 and 150 classes. Built with 3, 80 or 150 it holds what cnndsl builds with that count and, given those
    weights, computes its output."""
    network, _, text, namespace, _ = detector
    assert f'class {class_name(network.name)}(nn.Module):\n    def __init__(self, scale="n", classes=80):\n' in text
    assert "max(w3, min(classes, 100))" in text  # w3: the scale's first level width, 64 at n
    assert "Fixed at their values: postprocess='nms'," in text
    written = getattr(namespace, class_name(network.name))(classes=classes).eval()
    expected = cnndsl.load(network.name, classes=classes, input=(3, SIDE, SIDE)).to_torch(seed=0).eval()
    assert _state_shapes(written) == _state_shapes(expected)
    width = max(64, min(classes, 100))
    assert (
        "detect.cv3.class_branch1.conv.weight"
        if network.name == "yolov8n"
        else "detect.cv3.light_class_branch1.conv.weight",
        (classes, width, 1, 1),
    ) in _state_shapes(written)
    written.load_state_dict(expected.state_dict())
    images = torch.randn(2, 3, SIDE, SIDE)
    with torch.no_grad():
        ours, reference = written(images), expected(images)
    assert (reference[..., 5] >= 0).sum() > 10 and reference[..., 5].max() < classes
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("classes", [3, 150])
def test_the_detector_class_at_other_classes_has_ultralytics_parameter_count(detector, classes):
    """Ultralytics' layers for `nc: classes` (parse_model, on the meta device) are the count's oracle."""
    tasks = pytest.importorskip("ultralytics.nn.tasks", reason="Ultralytics is not importable")
    network, _, _, namespace, _ = detector
    description = tasks.yaml_model_load(f"{network.name}.yaml")
    description["nc"] = classes
    with torch.device("meta"):
        theirs, _ = tasks.parse_model(description, ch=3, verbose=False)  # DetectionModel's layers
        written = getattr(namespace, class_name(network.name))(classes=classes)
    count = sum(parameter.numel() for parameter in written.parameters())
    assert count == sum(parameter.numel() for parameter in theirs.parameters())
