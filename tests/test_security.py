"""What a hostile file, cache, import or name cannot do: run code, read what it should not, or change a network.

Each test pins down one finding of issue 14 and fails on the code before its fix.
"""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys

import pytest
import torch

import cnndsl
from cnndsl.core.errors import CnnDslError, FileProblem, NameProblem
from cnndsl.graph import ir
from cnndsl.ops import REGISTRY

NET = "network tiny {\n  input 3x8x8\n  conv3x3(4), relu, gap, fc(2)\n}\n"


class _Opens:
    """Unpickling this calls open(path, "w"): a file appearing at `path` means a pickle ran code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


# Parse NET in a fresh interpreter whose temp folder is argv[1]; with argv[2] == "lark-cache", every Lark is
# built with cache=True, so Lark writes its cache file where cnndsl's parser would find it if it used one.
PARSE = """
import sys, lark
if sys.argv[2] == "lark-cache":
    build = lark.Lark.__init__
    lark.Lark.__init__ = lambda self, grammar, **options: build(self, grammar, **{**options, "cache": True})
import cnndsl
print(cnndsl.parse(sys.argv[3]).params)
"""


def _parse_with_temp(folder, mode: str = "plain") -> int:
    env = {**os.environ, "TMPDIR": str(folder), "CNNDSL_NO_CACHE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", PARSE, str(folder), mode, NET], env=env, capture_output=True, text=True, check=True
    )
    return int(result.stdout)


def test_parsing_writes_nothing_to_the_temp_folder_and_reads_no_grammar_pickle_from_it(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    params = 4 * 27 + 4 + 4 * 2 + 2
    assert _parse_with_temp(temp) == params
    assert list(temp.iterdir()) == []
    assert _parse_with_temp(temp, "lark-cache") == params  # Lark names its cache file after the grammar and options
    [planted] = list(temp.iterdir())
    marker = tmp_path / "ran"
    planted.write_bytes(b"any digest\n" + pickle.dumps(_Opens(marker)))
    assert _parse_with_temp(temp) == params
    assert not marker.exists()


# ---- finding 4: no two layers share a module name ---------------------------------------------
def _body(*lines: str) -> str:
    return "network n {\n  input 3x8x8\n" + "".join(f"  {line}\n" for line in lines) + "}\n"


def _python_params(network, tmp_path) -> int:
    """Parameters of the module that `--to python` writes, run as a standalone file."""
    from cnndsl.backends.torch import write_python
    from cnndsl.backends.torch_source import class_name

    path = write_python(network, tmp_path / "net.py")
    namespace: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return sum(p.numel() for p in namespace[class_name(network.name)]().parameters())


@pytest.mark.parametrize(
    "lines,names,params",
    [
        # conv3x3(8) from 3 channels: 3*9*8 + 8 = 224 weights; from 8 channels: 8*9*8 + 8 = 584
        (
            ("stage layer { conv3x3(8) }", "stage layer1 { conv3x3(8) }", "stage layer { conv3x3(8) }"),
            ["input", "layer2.conv", "layer1.conv", "layer3.conv"],
            224 + 584 + 584,
        ),
        (("stage conv1 { relu }", "conv3x3(8)", "conv3x3(8)"), ["input", "conv1.relu", "conv2", "conv3"], 224 + 584),
    ],
    ids=["stage-layer1-beside-two-layer-stages", "stage-conv1-beside-two-convs"],
)
def test_a_written_name_never_equals_a_numbered_sibling(tmp_path, lines, names, params):
    network = cnndsl.parse(_body(*lines))
    assert [data.name for _, data in ir.layers(network.graph)] == names
    assert network.params == params
    module = network.to_torch()
    assert sum(p.numel() for p in module.parameters()) == params
    assert module(torch.randn(1, 3, 8, 8)).shape == (1, 8, 8, 8)
    assert _python_params(network, tmp_path) == params


def test_numbered_names_of_two_repeated_bases_never_meet():
    # `a` eleven times would number `a11`, and `a1` twice would number `a11` and `a12`
    network = cnndsl.parse(_body("stage a1 { relu } x 2", "stage a { relu } x 11"))
    groups = [path[0] for path in ir.network_info(network.graph).groups]
    assert groups == ["a11", "a12", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "a10", "a13"]


# ---- finding 5: whatever a backend refuses, check refuses first, with a position -------------------
@pytest.mark.parametrize(
    "lines,expected,hint",
    [
        (
            ("reshape((3, 4, 2, 4, 2)), bn",),
            "n.cnn:3:29: error: `bn` takes a tensor of 1, 2, 3 or 4 axes, not 3×4×2×4×2 (the batch is not counted)",
            "reshape, permute or flatten it to such a tensor first",
        ),
        (
            ("stage double { relu }",),
            "n.cnn:3:3: error: `double` cannot name a PyTorch module: it is an attribute every PyTorch module has",
            "rename the stage or block, e.g. `double_`",
        ),
        (
            ("relu", "stage class { relu }"),
            "n.cnn:4:3: error: `class` cannot name a PyTorch module: it is a Python keyword",
            "rename the stage or block, e.g. `class_`",
        ),
        (
            ("stage _modules { relu }",),
            "n.cnn:3:3: error: `_modules` cannot name a PyTorch module: names that start with `_` are PyTorch's own",
            "rename the stage or block, e.g. `modules_`",
        ),
    ],
    ids=["reshape-to-5-dims-then-bn", "stage-double", "stage-class", "stage-_modules"],
)
def test_check_refuses_what_the_torch_backend_cannot_build(cli, tmp_path, lines, expected, hint):
    source = tmp_path / "n.cnn"
    source.write_text(_body(*lines))
    result = cli("check", str(source))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == expected.replace("n.cnn", str(source))
    assert f"hint: {hint}" in result.stderr.splitlines()


def test_a_block_named_like_a_module_attribute_is_refused_where_it_is_called():
    with pytest.raises(NameProblem) as caught:
        cnndsl.parse("block float { relu }\n" + _body("conv3x3(4)", "float"), file="n.cnn")
    assert str(caught.value.pos) == "n.cnn:5:3"
    assert caught.value.message == "`float` cannot name a PyTorch module: it is an attribute every PyTorch module has"


def test_the_reserved_names_cover_every_attribute_of_the_installed_torch():
    from torch import fx, nn

    from cnndsl.graph.module_names import MODULE_ATTRIBUTES, why_not_a_module_name

    public = {name for name in dir(fx.GraphModule(nn.Module(), fx.Graph())) if not name.startswith("_")}
    assert public <= MODULE_ATTRIBUTES
    assert all(why_not_a_module_name(name) is None for name in REGISTRY)  # a layer's own name always fits


# Every kind's example (OpKind.example), on its input and on a vector of as many values.
def test_every_kind_check_accepts_builds_and_runs_in_torch_with_the_shape_check_infers():
    examples = {name: kind.example for name, kind in REGISTRY.items() if kind.called_by_name}
    refused = {"as declared": set(), "vector": set()}
    for kind, example in examples.items():
        for form, shape in (("as declared", example.input), ("vector", (math.prod(example.input),))):
            try:
                network = cnndsl.parse(example.network(input=shape))
            except CnnDslError:
                refused[form].add(kind)
                continue
            with torch.no_grad():
                output = network.to_torch().eval()(torch.randn(2, *network.input_shape))
            assert tuple(output.shape) == (
                2,
                *ir.layer(network.graph, ir.network_info(network.graph).outputs[0][1]).shape,
            )
    assert refused == {
        "as declared": set(),
        "vector": {
            "conv",
            "deconv",
            "maxpool",
            "avgpool",
            "gap",
            "adaptiveavgpool",
            "lrn",
            "upsample",
            "resize",
            "pixelshuffle",
            "channelshuffle",
            "anchorcat",  # the detection head's end takes C×H×W maps
            "dfl",
            "dist2bbox",
            "kptdecode",
            "attend",  # attention over the pixels of a map
            "attendvalues",
            "permute",  # its example orders three axes
            "transpose",
            "split",  # its example's sizes add up to 4 channels
            "grid",  # its size comes from the last two axes
            "zeropad",  # pads the height and width of a map
            *("deformconv", "anchors", "roipool", "roialign", "msroialign", "boxdecode", "clipboxes", "topk", "boxfc"),
            "yolo",
            "nms",
            *("levelnms", "roidetections"),  # their examples start with anchors on a C×H×W map
            *("aifi", "rtdetrdecoder"),  # RT-DETR's transformer layers, over the pixels of maps
            "adaptivemaxpool",  # pools the height and width of a map, as adaptiveavgpool
            *("maxsigmoid", "contrast", "crossattend"),  # YOLO-World's: maps (and the class text) per pixel
            "promptpool",  # YOLOE's SAVPE: a prompt's mask over a map
            "realnvp",  # its example pools a map to one point first (gap, fc(2)); on a vector 2 it runs (test_realnvp)
        },
    }


# ---- finding 12: imports read only regular .cnn files, and a sandbox bounds where --------------------
CNNDSL = [sys.executable, "-c", "from cnndsl.cli import main; main()"]


def _importer(folder, target: str) -> os.PathLike:
    path = folder / "main.cnn"
    path.write_text(f'import "{target}"\nnetwork main {{\n  input 3x8x8\n  relu\n}}\n')
    return path


def test_an_import_of_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    os.mkfifo(tmp_path / "pipe.cnn")
    main = _importer(tmp_path, "pipe.cnn")
    result = subprocess.run([*CNNDSL, "check", str(main)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        f"{main}:1:1: error: cannot import 'pipe.cnn': {tmp_path / 'pipe.cnn'} is a FIFO, not a .cnn file"
    )


def test_an_error_in_a_file_read_from_a_fifo_is_shown_without_opening_it_again(tmp_path):
    fifo = tmp_path / "net.cnn"
    os.mkfifo(fifo)
    with subprocess.Popen([*CNNDSL, "check", str(fifo)], stderr=subprocess.PIPE, text=True) as process:
        try:
            with open(fifo, "w") as writer:
                writer.write(_body("fcc(10)"))
            _, stderr = process.communicate(timeout=60)
        finally:
            process.kill()
    assert process.returncode == 1
    assert stderr.startswith(f"{fifo}:3:3: error: unknown layer `fcc`\nhint: did you mean `fc`?\n")


@pytest.mark.parametrize(
    "make",
    [
        lambda folder: folder / "secret.txt",
        lambda folder: (folder / "secret.cnn").symlink_to(folder / "secret.txt") or folder / "secret.cnn",
    ],
    ids=["a-text-file", "a-cnn-link-to-it"],
)
def test_an_import_of_a_file_that_is_not_cnn_never_shows_its_text(cli, tmp_path, make):
    (tmp_path / "secret.txt").write_text("root:TOPSECRET:0:0\n")
    written = make(tmp_path).name
    main = _importer(tmp_path, written)
    result = cli("check", str(main))
    assert result.exit_code == 1
    assert "TOPSECRET" not in result.stderr + result.stdout
    assert (
        result.stderr.splitlines()[0]
        == f"{main}:1:1: error: cannot import '{written}': only .cnn files can be imported"
    )


def test_an_import_of_a_device_is_refused_by_its_name(tmp_path):
    with pytest.raises(FileProblem) as caught:
        cnndsl.load(_importer(tmp_path, "/dev/zero"))
    assert caught.value.message == "cannot import '/dev/zero': only .cnn files can be imported"


def test_an_import_of_a_folder_named_cnn_is_refused(tmp_path):
    (tmp_path / "blocks.cnn").mkdir()
    with pytest.raises(FileProblem) as caught:
        cnndsl.load(_importer(tmp_path, "blocks.cnn"))
    assert (
        caught.value.message == f"cannot import 'blocks.cnn': {tmp_path / 'blocks.cnn'} is a directory, not a .cnn file"
    )


@pytest.fixture
def app(tmp_path):
    """A service's upload folder `app` with a subfolder, and a .cnn file outside it."""
    (tmp_path / "app" / "sub").mkdir(parents=True)
    (tmp_path / "app" / "sub" / "inner.cnn").write_text("block inner { relu }\n")
    (tmp_path / "outside.cnn").write_text("block outer { relu }\n")
    (tmp_path / "app" / "link.cnn").symlink_to(tmp_path / "outside.cnn")
    return tmp_path / "app"


@pytest.mark.parametrize(
    "target,admitted",
    [
        ("sub/inner.cnn", True),
        ("../outside.cnn", False),
        ("link.cnn", False),
        ("sub/../sub/inner.cnn", True),
    ],
    ids=["below", "above", "a-link-out", "a-detour-that-stays-inside"],
)
def test_the_sandbox_admits_only_the_importing_files_folder_and_below(app, target, admitted):
    main = _importer(app, target)
    assert cnndsl.load(main).params == 0  # without the sandbox, every one of them loads
    if admitted:
        assert cnndsl.load(main, sandbox=True).params == 0
        return
    with pytest.raises(FileProblem) as caught:
        cnndsl.load(main, sandbox=True)
    assert caught.value.message == (
        f"cannot import '{target}': the sandbox admits only files in the importing file's "
        "folder (or below) and the library"
    )
    assert str(caught.value.pos) == f"{main}:1:1"


def test_the_sandbox_admits_the_library_by_name_and_by_path(app):
    from cnndsl.core.resources import library_dir

    (app / "by_name.cnn").write_text("import resnet\nnetwork by_name { input 3x8x8\n bottleneck(4) }\n")
    (app / "by_path.cnn").write_text(
        f'import "{library_dir() / "resnet.cnn"}"\nnetwork by_path {{ input 3x8x8\n bottleneck(4) }}\n'
    )
    assert (
        cnndsl.load(app / "by_name.cnn", sandbox=True).params == cnndsl.load(app / "by_path.cnn", sandbox=True).params
    )


def test_the_sandbox_applies_to_each_importing_file(app):
    (app / "sub" / "escape.cnn").write_text('import "../../outside.cnn"\n')
    main = _importer(app, "sub/escape.cnn")
    with pytest.raises(FileProblem) as caught:
        cnndsl.load(main, sandbox=True)
    assert str(caught.value.pos) == f"{app / 'sub' / 'escape.cnn'}:1:1"


def test_the_cli_sandbox_flag(cli, app):
    main = _importer(app, "../outside.cnn")
    assert cli("check", str(main)).exit_code == 0
    for command in (("check", "--sandbox", str(main)), ("summary", "--sandbox", str(main))):
        result = cli(*command)
        assert result.exit_code == 1
        assert result.stderr.splitlines()[0] == (
            f"{main}:1:1: error: cannot import '../outside.cnn': the sandbox "
            "admits only files in the importing file's folder (or below) and the "
            "library"
        )
