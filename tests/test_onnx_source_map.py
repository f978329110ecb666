"""The source map: every ONNX node names the `.cnn` line, column and stage/block path that wrote it, and no
output (ONNX, DOT, pt2) holds a path of the machine that compiled it, so the same file compiled from two
folders gives the same bytes."""

from __future__ import annotations

import re
from pathlib import Path

import onnx
import pytest
from safetensors.torch import save_file

import cnndsl
from cnndsl.backends.onnx import build_model
from cnndsl.backends.torch import write_pt2
from cnndsl.core.resources import library_dir
from cnndsl.graph import ir
from cnndsl.ops import lookup

COMMON = """block twice(c) {
    conv3x3(c), bn, relu
    conv3x3(c), bn, relu
}
"""

NET = """import "blocks/common.cnn"
import resnet

network net {
    input 3x16x16
    stage stem { twice(8) }
    stage body { basic(8) x 2 }
    gap, fc(10)
}
"""

ORIGIN = re.compile(r"(?P<file>.+):(?P<line>\d+):(?P<column>\d+)(?: in (?P<group>\S+))?")


@pytest.fixture
def project(tmp_path):
    """project/net.cnn importing project/blocks/common.cnn and the library's resnet.cnn."""
    (tmp_path / "project" / "blocks").mkdir(parents=True)
    (tmp_path / "project" / "net.cnn").write_text(NET)
    (tmp_path / "project" / "blocks" / "common.cnn").write_text(COMMON)
    return tmp_path / "project"


def _compile_everything(cli, source: str, out: Path, checkpoint: Path) -> dict[str, bytes]:
    """ONNX (given weights, so that both runs agree on them), DOT, and pt2 of the same seeded module."""
    out.mkdir()
    for args in (["--to", "onnx", "--weights", checkpoint], ["--to", "dot"]):
        result = cli("compile", source, *args, "-o", out / f"net.{args[1]}")
        assert result.exit_code == 0, result.stderr
    network = cnndsl.load(source)
    write_pt2(network, out / "net.pt2", module=network.to_torch(seed=0))
    return {path.name: path.read_bytes() for path in sorted(out.iterdir())}


def test_the_same_file_compiled_from_two_folders_gives_the_same_bytes_naming_no_folder(
    cli, project, tmp_path, monkeypatch
):
    checkpoint = tmp_path / "net.safetensors"
    save_file(cnndsl.load(project / "net.cnn").to_torch(seed=0).state_dict(), checkpoint)
    monkeypatch.chdir(project)
    inside = _compile_everything(cli, "net.cnn", tmp_path / "inside", checkpoint)
    elsewhere = tmp_path / "elsewhere" / "deeper"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    outside = _compile_everything(cli, str(project / "net.cnn"), tmp_path / "outside", checkpoint)
    assert sorted(inside) == ["net.dot", "net.onnx", "net.pt2"]
    for name, content in inside.items():
        assert content == outside[name], name
        for folder in (tmp_path, project, elsewhere, library_dir(), Path.cwd()):
            assert str(folder).encode() not in content, (name, folder)
    assert b'comment="source: net.cnn"' in inside["net.dot"]
    model = onnx.load_from_string(inside["net.onnx"])
    assert {prop.key: prop.value for prop in model.metadata_props}["source"] == "net.cnn"


def test_each_onnx_node_names_the_line_and_column_that_wrote_it_and_its_stage_and_block(project):
    network = cnndsl.load(project / "net.cnn")
    model = build_model(network)
    files = {
        "net.cnn": project / "net.cnn",
        "blocks/common.cnn": project / "blocks" / "common.cnn",
        "library:resnet.cnn": library_dir() / "resnet.cnn",
    }
    layers = {layer.name: layer for _, layer in ir.layers(network.graph)}
    layers.update({name: ir.layer(network.graph, node) for name, node in network.outputs})
    seen = set()
    for node in model.graph.node:
        match = ORIGIN.fullmatch(node.doc_string)
        assert match, (node.name, node.doc_string)
        line = files[match["file"]].read_text().splitlines()[int(match["line"]) - 1]
        written = re.match(r"[A-Za-z_][A-Za-z0-9_]*", line[int(match["column"]) - 1 :]).group()
        layer = layers[node.name.split("/")[0]]  # `<layer>` or `<layer>/<operator>`
        if written == "residual":  # the merge a residual block implies is written by the keyword
            assert layer.op == "add"
        else:
            assert lookup(written)[0] is layer.kind, (node.name, written)
        assert (match["group"] or "") == ".".join(layer.group)
        seen.add((match["file"], written))
    assert seen >= {("blocks/common.cnn", "conv3x3"), ("library:resnet.cnn", "conv3x3"), ("net.cnn", "fc")}
    lines = (library_dir() / "resnet.cnn").read_text().splitlines()
    block = next(number for number, line in enumerate(lines) if line.startswith("block basic("))
    second = [number for number, line in enumerate(lines) if number > block and "conv3x3(" in line][1]
    conv = next(node for node in model.graph.node if node.name == "body.basic2.conv2")
    assert conv.doc_string == f"library:resnet.cnn:{second + 1}:{lines[second].index('conv3x3') + 1} in body.basic2"


def test_a_library_network_names_its_source_by_library_name():
    model = build_model(cnndsl.load("resnet18", input=(3, 32, 32)))
    assert {prop.key: prop.value for prop in model.metadata_props}["source"] == "library:resnet.cnn"
    assert model.graph.node[0].doc_string.startswith("library:resnet.cnn:")
