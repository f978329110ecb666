"""`--to python` of YOLOv8 keeps the family's parameters: one file whose class takes `scale` (a SCALES table of
what each scale resolves to) and `classes`, and builds every scale with Ultralytics' parameter counts.

Ultralytics is the oracle for the counts: its layers built from its own YAMLs by parse_model, on the meta device.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch

import cnndsl
from cnndsl.backends.class_family import FAMILIES
from cnndsl.backends.torch import standalone_source, write_python

SIDE = 64  # the smallest input whose stride-32 map is 2×2
PUBLISHED = {"yolov8n": 3_157_200}  # yolov8.yaml's `scales` comment for n


def _import(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# One xdist group for the file: each family's fixture (its code found afresh, 3 to 4.5 s) is built once, not in each
# worker that runs one of its tests.
pytestmark = pytest.mark.xdist_group("yolo-family-files")


def _family_file(folder: Path, found_at: str, name: str) -> tuple:
    """(the network `name` at 64×64, its file's path, text and namespace): the family's code found afresh from
    `found_at` (the process's found families forgotten first), `name`'s file then written from it."""
    FAMILIES.clear()
    write_python(cnndsl.load(found_at, input=(3, SIDE, SIDE)), folder / f"{found_at}.py")
    network = cnndsl.load(name, input=(3, SIDE, SIDE))
    path = write_python(network, folder / f"{name}.py")
    return network, path, path.read_text(), _import(path)


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """yolov8n's file, the family's code found from yolov8s (built at n from there)."""
    return _family_file(tmp_path_factory.mktemp("yolo"), "yolov8s", "yolov8n")


def _shapes(module) -> list:
    return [(key, tuple(tensor.shape)) for key, tensor in module.state_dict().items()]


def _count(module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def test_the_class_takes_scale_and_classes_and_reads_its_row_of_the_table(family):
    _, _, text, namespace = family
    assert 'class Yolov8n(nn.Module):\n    def __init__(self, scale="n", classes=80):\n' in text
    assert "Yolov8n(scale, classes) takes the network's parameters" in text
    assert ") = SCALES[scale]\n" in text
    assert list(namespace.SCALES) == ["n", "s", "m", "l", "x"]
    # one C2f class, its shortcut an argument; its bottlenecks a loop over n
    assert text.count("\nclass C2f") == 1 and text.count("\nclass Bottleneck") == 1
    assert "class C2f(nn.Module):\n    def __init__(self, in_channels, c2, n=1, shortcut=False, e=0.5):\n" in text
    assert "for _ in range(n)" in text


def _ultralytics_layers(yaml_name: str, classes: int = 80):
    """Ultralytics' layers for its YAML at `classes`, as parse_model builds them, on the meta device."""
    tasks = pytest.importorskip("ultralytics.nn.tasks", reason="Ultralytics is not importable")
    description = tasks.yaml_model_load(yaml_name)
    description["nc"] = classes
    with torch.device("meta"):
        return tasks.parse_model(description, ch=3, verbose=False)[0]


@pytest.mark.parametrize("scale", "nsmlx")
def test_each_scale_has_ultralytics_parameter_count_and_cnndsls_state_dict(family, scale):
    theirs = _ultralytics_layers(f"yolov8{scale}.yaml")
    network, _, _, namespace = family
    with torch.device("meta"):
        written = namespace.Yolov8n(scale=scale)
        expected = network.with_params(scale=scale).to_torch()
    assert _count(written) == _count(theirs) == cnndsl.load(f"yolov8{scale}").params
    assert _shapes(written) == _shapes(expected)
    if scale == "n":
        assert _count(written) == PUBLISHED["yolov8n"]


@pytest.mark.parametrize("scale, classes", [("s", 3), ("x", 150)])
def test_a_scale_with_other_classes_is_that_network_and_computes_its_output(family, scale, classes):
    """The class branch's clamp at another scale: max(w3, min(classes, 100)), w3 that scale's width (128 at s,
    320 at x); Ultralytics' layers for `nc: classes` count the same, and with cnndsl's weights the file's class
    computes cnndsl's output."""
    theirs = _ultralytics_layers(f"yolov8{scale}.yaml", classes)
    network, _, _, namespace = family
    written = namespace.Yolov8n(scale=scale, classes=classes).eval()
    assert _count(written) == _count(theirs)
    expected = network.with_params(scale=scale, classes=classes).to_torch(seed=0).eval()
    assert _shapes(written) == _shapes(expected)
    written.load_state_dict(expected.state_dict())
    images = torch.randn(2, 3, SIDE, SIDE)
    with torch.no_grad():
        torch.testing.assert_close(written(images), expected(images), rtol=1e-5, atol=1e-5)


def test_the_family_file_passes_ruff_and_is_the_same_bytes_whichever_scale_came_first(family):
    """Written from the family's code found at yolov8s, or found afresh at yolov8n: the same bytes; yolov8s's file
    is that code with its own scale the default."""
    network, path, text, _ = family
    for command in (["check", "--isolated"], ["format", "--isolated", "--check"]):
        done = subprocess.run([sys.executable, "-m", "ruff", *command, str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    other = (path.parent / "yolov8s.py").read_text()
    assert 'class Yolov8s(nn.Module):\n    def __init__(self, scale="s", classes=80):\n' in other
    assert other.split("\nSCALES = ")[1].split("\n\n\nclass")[0] == text.split("\nSCALES = ")[1].split("\n\n\nclass")[0]
    FAMILIES.clear()
    assert standalone_source(cnndsl.load("yolov8n", input=(3, SIDE, SIDE))) == text


FLAGGED = """block unit(c, skip=true) {
    if skip { residual { conv3x3(c), bn, relu } } else { conv3x3(c), bn, relu }
}
network net { input 8x8x8
    stage s { unit(8), unit(8, false), unit(8), unit(8, false) }
}"""


def test_a_block_whose_flag_changes_its_forward_is_one_class_that_reads_the_flag(tmp_path):
    """The two forms of `unit` share their `__init__` rows (one copy) and differ in the forward's steps: one class,
    the steps of each form under `if self.skip:` / `else:`; built with to_torch()'s weights it computes its output."""
    network = cnndsl.parse(FLAGGED, file="n.cnn")
    path = write_python(network, tmp_path / "net.py")
    text = path.read_text()
    assert text.count("\nclass Unit") == 1
    assert "class Unit(nn.Module):\n    def __init__(self, skip=True):\n        super().__init__()\n" in text
    assert "        self.skip = skip\n        self.conv = nn.Conv2d(8, 8, 3, padding=1)\n" in text
    assert "        if self.skip:\n" in text and "            return out + x\n        else:\n" in text
    reference = network.to_torch(seed=0).eval()
    written = _import(path).Net().eval()
    written.load_state_dict(reference.state_dict())
    images = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(written(images), reference(images), rtol=0, atol=0)


@pytest.fixture(scope="module")
def family11(tmp_path_factory):
    """yolo11n's file, the family's code found from yolo11m, whose C3k2s all hold C3k blocks."""
    return _family_file(tmp_path_factory.mktemp("yolo11"), "yolo11m", "yolo11n")


def test_yolo11_file_takes_scale_and_one_c3k2_class_switches_its_inner_blocks(family11):
    """n and s hold bottlenecks in some C3k2s, m, l and x C3k blocks in every one (Ultralytics' parse_model sets
    c3k for m, l, x): one C3k2 class, `c3k_blocks` choosing the loop's block, a column of SCALES per scale."""
    _, path, text, namespace = family11
    assert 'class Yolo11n(nn.Module):\n    def __init__(self, scale="n", classes=80):\n' in text
    assert text.count("\nclass C3k2(") == 1 and text.count("\nclass C3k(") == 1
    assert "class C3k2(nn.Module):\n    def __init__(self, in_channels, c2, n=1, c3k_blocks=False, e=0.5):\n" in text
    switch = text.split("class C3k2(nn.Module):")[1].split("\n\n\n")[0]
    assert "        if c3k_blocks:\n" in switch and "        else:\n" in switch
    assert switch.count("for _ in range(n)") == 2
    names = text.split("SCALES[scale]")[0].rsplit("(", 1)[1].split()
    column = [name.rstrip(",") for name in names].index("c3k_blocks1")
    assert [namespace.SCALES[scale][column] for scale in "nsmlx"] == [False, False, True, True, True]
    assert "c3k_blocks=c3k_blocks1" in text
    (path.parent / "yolo11m.py").read_text().index('class Yolo11m(nn.Module):\n    def __init__(self, scale="m",')


@pytest.mark.parametrize("scale, classes", [(scale, 80) for scale in "nsmlx"] + [("x", 3)])
def test_yolo11_each_scale_has_ultralytics_parameter_count_and_cnndsls_state_dict(family11, scale, classes):
    theirs = _ultralytics_layers(f"yolo11{scale}.yaml", classes)
    network, _, _, namespace = family11
    with torch.device("meta"):
        written = namespace.Yolo11n(scale=scale, classes=classes)
        expected = network.with_params(scale=scale, classes=classes).to_torch()
    assert _count(written) == _count(theirs) == _count(expected)
    assert _shapes(written) == _shapes(expected)
    if (scale, classes) == ("n", 80):
        assert _count(written) == 2_624_080  # yolo11.yaml's `scales` comment for n


@pytest.mark.parametrize("scale, classes", [("s", 3), ("l", 80)])
def test_yolo11_a_scale_with_and_without_c3k_blocks_computes_cnndsls_output(family11, scale, classes):
    """s (bottlenecks in its first C3k2s) at 3 classes and l (C3k blocks, two per C3k2, two PSA blocks): with
    cnndsl's weights every convolution of the file's class computes what cnndsl's does, and so does the whole."""
    network, _, _, namespace = family11
    expected = network.with_params(scale=scale, classes=classes).to_torch(seed=0).eval()
    written = namespace.Yolo11n(scale=scale, classes=classes).eval()
    written.load_state_dict(expected.state_dict())
    ours, theirs = _conv_outputs(written), _conv_outputs(expected)
    images = torch.randn(1, 3, SIDE, SIDE)
    with torch.no_grad():
        torch.testing.assert_close(written(images), expected(images), rtol=1e-5, atol=1e-5)
    assert len(ours) == len(theirs) == sum(isinstance(layer, torch.nn.Conv2d) for layer in expected.modules())
    for name, out in theirs.items():
        torch.testing.assert_close(ours[name], out, rtol=1e-5, atol=1e-5)


def _conv_outputs(module) -> dict:
    """Each convolution's output by its name, kept as the module runs."""
    seen = {}
    for name, layer in module.named_modules():
        if isinstance(layer, torch.nn.Conv2d):
            layer.register_forward_hook(partial(_keep, seen, name))
    return seen


def _keep(seen: dict, name: str, _layer, _inputs, output) -> None:
    seen[name] = output


def test_yolo11_file_passes_ruff_and_is_the_same_bytes_whichever_scale_came_first(family11):
    _, path, text, _ = family11
    for command in (["check", "--isolated"], ["format", "--isolated", "--check"]):
        done = subprocess.run([sys.executable, "-m", "ruff", *command, str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    FAMILIES.clear()
    assert standalone_source(cnndsl.load("yolo11n", input=(3, SIDE, SIDE))) == text
