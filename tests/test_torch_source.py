"""`--to python`: the generated file is safe whatever the source's names, and reads like hand-written
PyTorch while holding the same function and state_dict as `to_torch()`."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import library_networks

import cnndsl
from cnndsl.backends.torch import standalone_source, write_python
from cnndsl.backends.torch_source import class_name, python_source
from cnndsl.core.errors import CnnDslError, NameProblem
from cnndsl.graph import ir


def _import(path, name="generated"):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- hostile names --------------------------------------------------------------------
def test_a_file_name_that_closes_the_docstring_runs_nothing_when_the_file_is_imported(cli, tmp_path):
    name = 'x"""\nimport os; os.system("touch MARKER")\n"""y.cnn'
    (tmp_path / name).write_text("network n { input 3x8x8\n conv3x3(4), relu }\n")
    assert cli("compile", tmp_path / name, "--to", "python", "-o", tmp_path / "net.py").exit_code == 0
    code = "import net; print(net.__doc__.splitlines()[0])"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert not (tmp_path / "MARKER").exists()
    assert done.stdout == 'n, compiled from x"""\n'  # the name, escaped in the file, reads back as it is


def test_labels_and_names_that_are_python_keywords_or_builtins_give_working_code(tmp_path):
    source = """block int(c) { conv3x3(c), relu }
network None { input 3x8x8
    class: conv3x3(4), relu
    stage print { int(4) }
    def: conv1x1(4)
    add(@class), None: relu
}"""
    network = cnndsl.parse(source, file="n.cnn")
    module = network.to_torch(seed=0).eval()
    written = _import(write_python(network, tmp_path / "net.py")).NoneNetwork()
    written.load_state_dict(module.state_dict())
    images = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(written.eval()(images), module(images))


def test_blocks_and_parameters_named_like_the_files_own_names_get_classes_that_shadow_none(tmp_path):
    """A block `f` would be class `F`, hiding torch.nn.functional; a parameter `torch` would hide torch in
    `__init__`: the names are changed and the compact classes still compute what to_torch() does."""
    source = """block f(torch) { conv3x3(torch), relu, upsample(2, mode=bilinear), pool }
block ordered_dict(c) { conv1x1(c), relu }
network net { input 3x16x16
    stage s { f(8), f(16), ordered_dict(16), ordered_dict(24) }
}"""
    network = cnndsl.parse(source, file="n.cnn")
    text = write_python(network, tmp_path / "net.py").read_text()
    assert "class FBlock(nn.Module):\n    def __init__(self, in_channels, torch_):" in text
    assert "class OrderedDictBlock(nn.Module):\n    def __init__(self, c):" in text
    module = network.to_torch(seed=0).eval()
    written = _import(tmp_path / "net.py").Net()
    assert list(written.state_dict()) == list(module.state_dict())
    written.load_state_dict(module.state_dict())
    images = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(written.eval()(images), module(images))


@pytest.mark.parametrize(
    "declaration, call", [("block def(c)", "def(4)"), ("block None(c)", "None(4)"), ("block double(c)", "double(4)")]
)
def test_a_block_named_like_a_python_keyword_or_a_module_method_is_a_located_error(tmp_path, declaration, call):
    source = f"{declaration} {{ conv3x3(c) }}\nnetwork n {{ input 3x8x8\n  {call}\n}}"
    with pytest.raises(NameProblem) as caught:
        write_python(cnndsl.parse(source, file="n.cnn"), tmp_path / "net.py")
    assert (caught.value.pos.line, caught.value.pos.column) == (3, 3)
    assert not (tmp_path / "net.py").exists()


# ---- every library network -----------------------------------------------------------
SIDES = (16, 24, 32, 64, 96, 188)


def _smallest(name: str):
    """The network at the smallest square input it accepts, for fast forward checks."""
    network = cnndsl.load(name)
    if len(network.input_shape) != 3:
        return network
    for side in SIDES:
        try:
            return cnndsl.load(name, input=(network.input_shape[0], side, side))
        except CnnDslError:
            continue
    return network


class LibraryFiles:
    """Every library network's `--to python` file at its smallest input, written when a test first asks for it.

    The files go to a folder both pytest-xdist workers share (the text is deterministic and written atomically,
    so a worker reuses a file the other wrote), which spreads the minute of CPU they cost over both workers
    instead of holding every test of this file on one."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._loaded: dict[str, tuple] = {}

    def __getitem__(self, name: str) -> tuple:
        """(the network at its smallest input, the generated module's namespace)."""
        if name not in self._loaded:
            network = _smallest(name)
            path = self.folder / f"{name}.py"
            if not path.exists():
                write_python(network, path)
            self._loaded[name] = (network, _import(path, name))
        return self._loaded[name]

    def text(self, name: str) -> str:
        self[name]
        return (self.folder / f"{name}.py").read_text()

    def every_file(self) -> Path:
        """The folder, holding every library network's file."""
        for name in library_networks():
            self.text(name)
        return self.folder


@pytest.fixture(scope="session")
def generated(tmp_path_factory):
    basetemp = tmp_path_factory.getbasetemp()  # under pytest-xdist, one folder per worker in a folder of the run
    shared = basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp
    folder = shared / "generated"
    folder.mkdir(exist_ok=True)
    return LibraryFiles(folder)


def _state_shapes(module) -> list:
    return [(key, tuple(tensor.shape)) for key, tensor in module.state_dict().items()]


def _written(generated, name):
    """The network, its to_torch() module (seeded) and the generated class built with the same weights."""
    network, namespace = generated[name]
    reference = network.to_torch(seed=0).eval()
    with torch.device("meta"):
        written = getattr(namespace, type(reference).__name__)()
    return network, reference, written


def _same_outputs(module, reference, images) -> None:
    with torch.no_grad():
        expected, ours = reference(images), module(images)
    expected, ours = ((value,) if torch.is_tensor(value) else value for value in (expected, ours))
    assert len(ours) == len(expected)
    for want, got in zip(expected, ours):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", library_networks())
def test_generated_module_holds_the_state_dict_and_computes_the_function_of_to_torch(generated, name):
    """Same keys in the same order with the same shapes, the analysed parameter count, the same outputs
    from the same weights."""
    network, reference, written = _written(generated, name)
    assert _state_shapes(written) == _state_shapes(reference)
    assert sum(parameter.numel() for parameter in written.parameters()) == network.params
    written.load_state_dict(reference.state_dict(), assign=True)
    _same_outputs(written.eval(), reference, torch.randn(2, *network.input_shape))


@pytest.mark.parametrize("name", ["resnet18", "densenet121", "convnext_tiny", "mobilenet_v2", "se_resnet50"])
def test_the_generated_module_trains_its_in_place_sums_overwrite_nothing_backward_needs(generated, name):
    """`out += identity` and the in-place activations: autograd refuses a backward through a tensor
    overwritten after it was saved (meta tensors keep the version counters)."""
    network, namespace = generated[name]
    with torch.device("meta"):
        written = getattr(namespace, class_name(network.name))().train()
        images = torch.zeros(2, *network.input_shape, requires_grad=True)
        written(images).sum().backward()
    assert images.grad.shape == images.shape
    assert all(parameter.grad is not None for parameter in written.parameters())


# torch.compile traces the code of `forward`; networks whose forward methods are the same text up to their numbers
# (ResNet-50 and ResNet-152, the eight VGGs) trace alike, the numbers being constants of the graph. So the smallest
# network of each such group is compiled (tracing all 83 takes 190 s of CPU), and a test below checks that every
# library network's forward code is among theirs: a network with code of its own must join this list.
COMPILED = [
    "alexnet",
    "alexnet_paper",
    "convnext_tiny",
    "deeplabv3_mobilenet_v3_large",
    "deeplabv3_resnet50",
    "densenet121",
    "efficientnet_b0",
    "efficientnet_v2_s",
    "fasterrcnn_mobilenet_v3_large_320_fpn",  # its shared RPN head: three modules called on each level
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_vgg16",
    "fcn8s",
    "fcn_resnet50",
    "googlenet",
    "googlenet_aux",
    "inception_v3",
    "lenet5",
    "lraspp_mobilenet_v3_large",
    "mnasnet0_5",
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "regnet_x_800mf",
    "regnet_x_8gf",
    "regnet_y_32gf",
    "regnet_y_800mf",
    "resnet18",
    "resnet50",
    "se_resnet50",
    "shufflenet_v2_x0_5",
    "squeezenet1_0",
    "unet",
    "vgg11",
    "xception",
    "yolo11n",  # its file holds every scale's classes: C3k2 with and without C3k blocks
    "yolov1",
    "yolov3",
    "yolov3_tiny",
    "yolov8n",
]


def _forward_code(text: str) -> frozenset:
    """The file's forward methods, their numbers blanked."""
    return frozenset(
        re.sub(r"\d+", "0", ast.unparse(node))
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef) and node.name == "forward"
    )


def test_every_library_networks_forward_code_is_compiled_by_one_network_of_the_list(generated):
    compiled = {_forward_code(_file(generated, name)) for name in COMPILED}
    missing = [name for name in library_networks() if _forward_code(_file(generated, name)) not in compiled]
    assert not missing, f"forward code that no network in COMPILED has: add one of {missing} to COMPILED"


@pytest.mark.parametrize("name", COMPILED)
def test_torch_compile_captures_the_generated_module_in_one_graph(generated, name):
    """fullgraph=True fails on any graph break; the eager backend checks the capture, where breaks happen,
    without inductor's code generation, which would take minutes on two cores."""
    network, reference, written = _written(generated, name)
    written.load_state_dict(reference.state_dict(), assign=True)
    # The selections whose count of boxes depends on the data (nms and Faster R-CNN's) take max_det fixed-shape
    # steps, which dynamo would trace one by one (test_detection exports them): here the network's own code is
    # one graph up to them, and they run eagerly
    namespace = generated[name][1]
    looping = any(layer.kind.data_dependent(layer.attrs) for _, layer in ir.layers(network.graph))
    with pytest.MonkeyPatch.context() as patch:
        for function in SELECTIONS & set(vars(namespace)):
            patch.setattr(namespace, function, torch._dynamo.disable(getattr(namespace, function)))
        compiled = torch.compile(written.eval(), fullgraph=not looping, backend="eager")
        _same_outputs(compiled, reference, torch.randn(2, *network.input_shape))


SELECTIONS = {"detections_nms", "level_nms", "roi_detections"}


def test_every_generated_file_passes_ruff_check_and_ruff_format(generated):
    folder = generated.every_file()
    for command in (["check", "--isolated"], ["format", "--isolated", "--check"]):
        done = subprocess.run([sys.executable, "-m", "ruff", *command, str(folder)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


# ---- compact: classes, loops, parameters --------------------------------------------------
def _file(generated, name: str) -> str:
    """The file written for a library network (at its smallest input)."""
    return generated.text(name)


def test_the_files_of_the_deepest_networks_stay_short(generated):
    """The .cnn file says "bottleneck, 36 times"; the Python says it too (each file also carries its
    .cnn source in the header)."""
    lines = {name: _file(generated, name).count("\n") for name in ("resnet18", "resnet152", "densenet201", "googlenet")}
    assert lines["resnet152"] <= min(200, lines["resnet18"] + 20)
    assert lines["densenet201"] <= 200
    assert lines["googlenet"] <= 250


def test_a_block_is_one_class_with_its_projection_shortcut_built_where_the_shape_changes():
    text = standalone_source(cnndsl.load("resnet50", input=(3, 32, 32)))
    assert text.count("class Bottleneck(nn.Module):") == 1
    assert "class Bottleneck(nn.Module):\n    def __init__(self, in_channels, c, s=1):" in text
    assert "        if in_channels != 4 * c:\n            self.downsample = nn.Sequential(" in text
    assert "        if self.downsample is not None:\n            identity = self.downsample(x)\n" in text


def test_forwards_write_residual_and_dense_joins_as_pytorch_users_do(generated):
    """torchvision's Bottleneck.forward and DenseNet's concatenation, and the branch names of the source."""
    bottleneck = """    def forward(self, x):
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu1(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu2(out)
        out = self.conv3(out)
        out = self.bn3(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu3(out)
        return out
"""
    assert bottleneck in _file(generated, "resnet50")
    assert "        out = self.conv2(out)\n        return torch.cat([x, out], 1)\n" in _file(generated, "densenet121")
    assert (
        "        branch4 = self.branch4(x)\n        return torch.cat([branch1, branch2, branch3, branch4], 1)\n"
        in _file(generated, "googlenet")
    )


def _is_the_member(written, params: int, member: str) -> None:
    """A generated class built with another library member's arguments has that member's published parameter
    count, its state_dict layout and, with its weights, its outputs (at 3×32×32)."""
    assert sum(parameter.numel() for parameter in written.parameters()) == params
    reference = cnndsl.load(member, input=(3, 32, 32)).to_torch(seed=0).eval()
    assert _state_shapes(written) == _state_shapes(reference)
    written.load_state_dict(reference.state_dict())
    _same_outputs(written.eval(), reference, torch.randn(2, 3, 32, 32))


def test_resnet50s_file_builds_resnet152_from_its_depths(tmp_path):
    """ResNet-152's 60,192,808 parameters (He et al. 2016, torchvision) from ResNet-50's class, and the
    function of the library's own ResNet-152 with its weights."""
    network = cnndsl.load("resnet50", input=(3, 32, 32))  # at 16×16 layer4's shortcut has stride 1, not s
    namespace = _import(write_python(network, tmp_path / "resnet50.py"))
    _is_the_member(namespace.Resnet50(depths=(3, 8, 36, 3)), 60_192_808, "resnet152")


def test_densenet121s_file_builds_densenet201_from_its_block_counts(generated):
    """DenseNet-201's 20,013,928 parameters (Huang et al. 2017, torchvision) from DenseNet-121's class: the
    widths that follow the block counts are written in them, and the function is the library's DenseNet-201."""
    network, namespace = generated["densenet121"]
    assert network.input_shape == (3, 32, 32)
    _is_the_member(namespace.Densenet121(blocks=(6, 12, 48, 32)), 20_013_928, "densenet201")


def test_a_parameter_that_changes_structure_is_fixed_and_the_header_says_so(generated):
    """`aux` adds layers: fixed. `classes` sets a width: an argument, unless a block's class would change
    with it (the auxiliary heads hold a `fc(classes)` of their own)."""
    assert "    def __init__(self, classes=1000):" in _file(generated, "googlenet")
    aux = _file(generated, "googlenet_aux")
    assert "Fixed at their values: classes=1000, aux=true." in aux
    assert "class GooglenetAux(nn.Module):\n    def __init__(self):" in aux


def test_the_same_file_compiled_from_two_folders_gives_the_same_bytes(cli, tmp_path):
    """No absolute path of the source or of the working folder reaches the file."""
    source = "block pair(c) { conv3x3(c), relu }\nnetwork n(width=8) { input 3x16x16\n pair(width) x2, gap, fc(10) }\n"
    outputs = []
    for folder in ("one", "two/deeper"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "n.cnn").write_text(source)
        assert (
            cli("compile", tmp_path / folder / "n.cnn", "--to", "python", "-o", tmp_path / folder / "n.py").exit_code
            == 0
        )
        outputs.append((tmp_path / folder / "n.py").read_bytes())
    assert outputs[0] == outputs[1]
    assert str(tmp_path).encode() not in outputs[0]
    assert b"compiled from n.cnn by cnndsl" in outputs[0]


def test_the_header_quotes_the_networks_own_definitions_not_the_rest_of_its_file(generated):
    """resnet18: the basic block, the family and its own line; not the bottleneck, not resnet50's line."""
    text = _file(generated, "resnet18")
    quoted = text[text.index("Its source, from library:resnet.cnn:") : text.index('"""', 3)]
    assert "    block basic(c, s=1, groups=1, width=64, d=1) {\n        residual {\n" in quoted
    assert "\n    network resnet(depths=[2, 2, 2, 2], unit=basic," in quoted
    assert quoted.rstrip().endswith("    network resnet18 = resnet([2, 2, 2, 2], basic)")
    assert "bottleneck" not in quoted and "resnet50" not in quoted and "He, Zhang" not in quoted


def test_a_block_from_an_imported_file_is_quoted_under_that_files_name(tmp_path):
    (tmp_path / "blocks.cnn").write_text("# shared\nblock pair(c) { conv3x3(c), relu }\nblock unused { relu }\n")
    (tmp_path / "net.cnn").write_text(
        'import "blocks.cnn"\nnetwork n { input 3x8x8\n  pair(4) }\nnetwork other { input 3x8x8\n  relu }\n'
    )
    text = standalone_source(cnndsl.load(tmp_path / "net.cnn", network="n"))
    assert (
        "Its source, from net.cnn:\n\n    # from blocks.cnn\n    block pair(c) { conv3x3(c), relu }\n\n"
        '    network n { input 3x8x8\n      pair(4) }\n"""'
    ) in text


def test_prelu_keeps_its_initial_slope_and_its_count_in_both_layouts(tmp_path):
    """nn.PReLU's repr leaves `init` out; the file writes it, so a fresh class starts where to_torch() does."""
    source = (
        "block b(c) { conv3x3(c), prelu(per_channel=true, init=0.1) }\n"
        "network n { input 3x8x8\n b(8), b(8), conv3x3(4), prelu(init=0.3), prelu }"
    )
    network = cnndsl.parse(source, file="n.cnn")
    written = _import(write_python(network, tmp_path / "net.py")).N()
    slopes = {key: value for key, value in written.state_dict().items() if "prelu" in key}
    expected = {
        "b1.prelu.weight": torch.full((8,), 0.1),
        "b2.prelu.weight": torch.full((8,), 0.1),
        "prelu1.weight": torch.full((1,), 0.3),
        "prelu2.weight": torch.full((1,), 0.25),
    }
    assert slopes.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(slopes[key], value), key
    with torch.device("meta"):
        unrolled = python_source(network, network.to_torch())
    assert "self.b1.prelu = nn.PReLU(num_parameters=8, init=0.1)" in unrolled
    assert "self.prelu1 = nn.PReLU(init=0.3)" in unrolled
