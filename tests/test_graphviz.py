"""Diagrams: what is drawn (clusters, folded ×n runs, collapsed groups, edge kinds), checked on the
`Diagram` and on Graphviz's own parse of the DOT (`dot -Tjson0`), plus escaping, determinism, the
missing-`dot` error, the notebook hook, the committed gallery and docs/diagrams.md."""

from __future__ import annotations

import html
import json
import os
import re
import runpy
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from conftest import library_networks
from docs_pages import commands, fences, run_command, run_python

import cnndsl
from cnndsl.backends.diagram_structure import build_diagram
from cnndsl.backends.graphviz import dot_source, render
from cnndsl.core.errors import FileProblem, ValueProblem
from cnndsl.graph import ir

pytestmark = pytest.mark.needs_dot

ROOT = Path(__file__).resolve().parent.parent
SVG = "{http://www.w3.org/2000/svg}"

TINY_RESNET = """
block bottleneck(c, s=1) {
    residual {
        conv1x1(c), bn, relu
        conv3x3(c, s=s), bn, relu
        conv1x1(4 * c), bn
    }
    relu
}

network tiny {
    input 3x32x32
    stage stem { conv3x3(16), bn, relu }
    stage layer1 { bottleneck(8) x 3 }
    stage layer2 { bottleneck(16, 2) x 2 }
    gap, fc(10)
}
"""


@pytest.fixture(scope="module")
def resnet50():
    return cnndsl.load("resnet50")


@pytest.fixture(scope="module")
def tiny():
    return cnndsl.parse(TINY_RESNET)


def parsed(dot: str) -> dict:
    """Graphviz's own reading of the DOT: clusters by name with their nodes, node and edge attributes."""
    result = subprocess.run(["dot", "-Tjson0"], input=dot.encode("utf-8"), capture_output=True, check=True)
    assert result.stderr == b"", result.stderr.decode()
    data = json.loads(result.stdout)
    objects = data["objects"]
    subgraphs = data["_subgraph_cnt"]  # objects list the subgraphs first, then the nodes
    nodes = {item["_gvid"]: item for item in objects[subgraphs:]}
    clusters = {
        item["name"]: {
            "attrs": item,
            "nodes": {nodes[index]["name"] for index in item.get("nodes", [])},
            "clusters": {objects[index]["name"] for index in item.get("subgraphs", [])},
        }
        for item in objects[:subgraphs]
        if item["name"].startswith("cluster")
    }
    edges = [dict(edge, tail=nodes[edge["tail"]]["name"], head=nodes[edge["head"]]["name"]) for edge in data["edges"]]
    return {
        "clusters": clusters,
        "nodes": {node["name"]: node for node in nodes.values()},
        "edges": edges,
        "graph": data,
    }


def label_text(markup: str) -> str:
    """The words of an HTML-like label, tags dropped and entities decoded, lines joined by ' | '."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup.replace("<br/>", " | ")))


# ---- every library network draws ------------------------------------------------------
@pytest.mark.parametrize("name", library_networks())
def test_every_library_network_draws_at_full_depth_and_depth_1(name):
    network = cnndsl.load(name)
    for depth in (None, 1):
        layout = parsed(dot_source(network, depth=depth))  # Graphviz reads it without a warning
        drawn = {box.id for box in build_diagram(network.graph, depth).boxes()}
        shown = {name for name, node in layout["nodes"].items() if node.get("style") != "invis"}  # columns' hooks
        assert drawn == shown - {"legend"}
        seen = [edge for edge in layout["edges"] if edge.get("style") != "invis"]  # columns order their tops
        assert {edge["class"] for edge in seen} <= {"sequence", "branch", "skip", "concat"}


# ---- hierarchy: depth, folding, expand ----------------------------------------------
def test_depth_1_collapses_each_stage_into_one_summary_box(resnet50):
    layout = parsed(dot_source(resnet50, depth=1))
    assert layout["clusters"] == {}
    boxes = {name: label_text(node["label"]) for name, node in layout["nodes"].items() if name.startswith("g_")}
    assert list(boxes) == ["g_stem", "g_layer1", "g_layer2", "g_layer3", "g_layer4"]
    assert boxes["g_layer3"] == "layer3 | bottleneck ×6 | 1024×14×14 · 7.1M params"
    assert boxes["g_stem"] == "stem | conv 7×7, 64, /2 · maxpool 3×3, /2 | 64×56×56 · 9.54K params"
    assert [(edge["tail"], edge["head"]) for edge in layout["edges"]][:6] == [
        ("input", "g_stem"),
        ("g_stem", "g_layer1"),
        ("g_layer1", "g_layer2"),
        ("g_layer2", "g_layer3"),
        ("g_layer3", "g_layer4"),
        ("g_layer4", f"n{_named(resnet50, 'gap')}"),
    ]


def _named(network, name: str) -> int:
    return next(node for node in network.graph if ir.layer(network.graph, node).name == name)


def test_depth_2_draws_stages_as_clusters_and_folds_identical_blocks(tiny):
    diagram = build_diagram(tiny.graph, depth=2)
    assert [cluster.id for cluster in diagram.clusters()] == ["cluster_stem", "cluster_layer1", "cluster_layer2"]
    folded = {box.id: box.run.count for box in diagram.boxes() if box.role == "group"}
    # the first block of a stage differs (projection shortcut, stride), the rest fold into ×n
    assert folded == {
        "g_layer1.bottleneck1": 1,
        "g_layer1.bottleneck2": 2,
        "g_layer2.bottleneck1": 1,
        "g_layer2.bottleneck2": 1,
    }
    layout = parsed(dot_source(tiny, depth=2))
    assert layout["clusters"]["cluster_layer1"]["nodes"] == {"g_layer1.bottleneck1", "g_layer1.bottleneck2"}
    label = label_text(layout["nodes"]["g_layer1.bottleneck2"]["label"])
    assert label == "bottleneck(8) ×2 | conv 1×1, 8 · conv 3×3, 8 | conv 1×1, 32 | 32×32×32 · 2.46K params"
    assert layout["nodes"]["g_layer1.bottleneck2"]["peripheries"] == "2"


def test_resnet50_blocks_fold_to_the_papers_counts(resnet50):
    diagram = build_diagram(resnet50.graph, depth=2)
    runs = {}
    for box in diagram.boxes():
        if box.role == "group":
            runs.setdefault(box.run.first.path[0], []).append(box.run.count)
    assert runs == {"layer1": [1, 2], "layer2": [1, 3], "layer3": [1, 5], "layer4": [1, 2]}


def test_full_depth_draws_one_instance_of_a_run_open_with_its_count(tiny):
    diagram = build_diagram(tiny.graph)
    counts = {cluster.id: cluster.run.count for cluster in diagram.clusters()}
    assert counts == {
        "cluster_stem": 1,
        "cluster_layer1": 1,
        "cluster_layer1.bottleneck1": 1,
        "cluster_layer1.bottleneck1.downsample": 1,
        "cluster_layer1.bottleneck2": 2,
        "cluster_layer2": 1,
        "cluster_layer2.bottleneck1": 1,
        "cluster_layer2.bottleneck1.downsample": 1,
        "cluster_layer2.bottleneck2": 1,
        "cluster_layer2.bottleneck2.downsample": 1,
    }  # `x 2` repeats the stride, and so the projection
    layout = parsed(dot_source(tiny))
    assert layout["clusters"]["cluster_layer1"]["clusters"] == {
        "cluster_layer1.bottleneck1",
        "cluster_layer1.bottleneck2",
    }
    assert layout["clusters"]["cluster_layer1.bottleneck1"]["clusters"] == {"cluster_layer1.bottleneck1.downsample"}
    folded = layout["clusters"]["cluster_layer1.bottleneck2"]
    assert label_text(folded["attrs"]["label"]) == "bottleneck(8) ×2"
    assert folded["attrs"]["penwidth"] == "2"
    # the drawn instance holds its fork, 8 residual layers, the ⊕ and the relu; the third is not drawn
    assert len(folded["nodes"]) == 11
    drawn = {node for cluster in layout["clusters"].values() for node in cluster["nodes"]}
    third = [node for node in tiny.graph if ir.layer(tiny.graph, node).group[:2] == ("layer1", "bottleneck3")]
    assert third and not {f"n{node}" for node in third} & drawn


def test_expand_draws_every_block(tiny):
    folded, expanded = build_diagram(tiny.graph), build_diagram(tiny.graph, expand=True)
    blocks = [cluster.id for cluster in expanded.clusters() if cluster.run.first.kind == "block"]
    assert blocks == [
        f"cluster_layer{stage}.bottleneck{index}" for stage, count in ((1, 3), (2, 2)) for index in range(1, count + 1)
    ]
    assert all(cluster.run.count == 1 for cluster in expanded.clusters())
    # the third layer1 block: 8 residual layers, ⊕, relu, and the fork its skip leaves from
    assert len(expanded.boxes()) - len(folded.boxes()) == 11
    assert {link.kind for link in expanded.links} == {"sequence", "skip"}


def test_depth_0_is_one_box_for_the_whole_network(tiny):
    diagram = build_diagram(tiny.graph, depth=0)
    assert [box.id for box in diagram.boxes()] == ["input", "g_network", "output0"]
    assert [(link.tail, link.head) for link in diagram.links] == [("input", "g_network"), ("g_network", "output0")]


def test_depth_0_of_a_network_of_only_its_input_draws_the_input_and_output():
    """Found by the docs fuzz: there is no layer to fold, and group_box used to index an empty run."""
    only_input = cnndsl.parse("network n {\n    input 3x8x8\n}\n")
    diagram = build_diagram(only_input.graph, depth=0)
    assert [box.id for box in diagram.boxes()] == ["input", "output0"]
    assert [(link.tail, link.head) for link in diagram.links] == [("input", "output0")]


def test_dense_layers_fold_although_each_gets_more_channels():
    densenet = cnndsl.load("densenet121")
    counts = [box.run.count for box in build_diagram(densenet.graph, depth=3).boxes() if box.role == "group"]
    assert counts == [6, 12, 24, 16]


# ---- edges: kinds, styles, skips beside the main path ------------------------------
def test_skip_edges_are_dashed_and_routed_beside_the_main_path(resnet50):
    layout = parsed(dot_source(resnet50))
    skips = [edge for edge in layout["edges"] if edge["class"] == "skip"]
    identity = [edge for edge in skips if edge.get("constraint") == "false"]
    # 12 blocks drawn open (4 stages × first + folded), 4 of them with a projection shortcut
    assert len(skips) == 12 and len(identity) == 4
    assert all(edge["style"] == "dashed" and edge["color"] == "#d6604d" for edge in skips)
    for edge in identity:
        assert layout["nodes"][edge["head"]]["label"] == "⊕"
        tail_x = float(layout["nodes"][edge["tail"]]["pos"].split(",")[0])
        head_x = float(layout["nodes"][edge["head"]]["pos"].split(",")[0])
        points = [float(point.split(",")[0]) for point in edge["pos"].split()[1:]]
        # a curve that leaves the column it would otherwise share with the main path
        assert max(abs(x - head_x) for x in points) > 20 and abs(tail_x - head_x) < 20


def test_a_skip_from_outside_a_block_leaves_from_a_fork_inside_it(tiny):
    diagram = build_diagram(tiny.graph)
    block = next(cluster for cluster in diagram.clusters() if cluster.id == "cluster_layer1.bottleneck2")
    fork = block.members[0]
    assert (fork.id, fork.role) == ("fork_layer1.bottleneck2", "fork")
    leaving = sorted((link.head, link.kind, link.beside) for link in diagram.links if link.tail == fork.id)
    add = next(
        box.id for box in _boxes_of(block) if box.node is not None and ir.layer(tiny.graph, box.node).op == "add"
    )
    conv = next(
        box.id for box in _boxes_of(block) if box.node is not None and ir.layer(tiny.graph, box.node).op == "conv"
    )
    assert leaving == sorted([(conv, "sequence", False), (add, "skip", True)])
    entering = [(link.tail, link.kind) for link in diagram.links if link.head == fork.id]
    assert entering == [("n15", "sequence")]  # the relu that ends the block before
    assert ir.layer(tiny.graph, 15).name == "layer1.bottleneck1.relu3"
    # a block with a projection shortcut needs no fork: its shortcut starts inside it
    assert not [box for box in diagram.boxes() if box.role == "fork" and "bottleneck1" in box.id]


def _boxes_of(cluster):
    return [member for member in cluster.members if not hasattr(member, "members")]


def test_concat_edges_are_blue_dashed_into_a_small_parallel_node():
    layout = parsed(dot_source(cnndsl.load("unet"), depth=1, layout="flow"))
    concats = [edge for edge in layout["edges"] if edge["class"] == "concat"]
    assert len(concats) == 4
    for edge in concats:
        head = layout["nodes"][edge["head"]]
        assert (head["label"], head["shape"], edge["style"], edge["constraint"]) == ("∥", "circle", "dashed", "false")


def test_inception_branches_are_drawn_in_source_order():
    layout = parsed(dot_source(cnndsl.load("googlenet"), depth=2))
    branches = sorted(
        (name for name in layout["nodes"] if name.startswith("g_inception1.")),
        key=lambda name: float(layout["nodes"][name]["pos"].split(",")[0]),
    )
    assert branches == [f"g_inception1.branch{index}" for index in (1, 2, 3, 4)]


# ---- labels and legend --------------------------------------------------------------
def test_labels_read_like_a_papers_table_with_optional_shapes_and_costs(resnet50):
    plain = parsed(dot_source(resnet50))["nodes"]["n1"]
    assert label_text(plain["label"]) == "conv 7×7, 64, /2"
    nodes = parsed(dot_source(resnet50, shapes=True, cost=True))["nodes"]
    full = nodes["n1"]
    assert label_text(full["label"]) == "conv 7×7, 64, /2 | 64×112×112 · 9.41K params · 118M MACs"
    assert label_text(nodes["n3"]["label"]) == "relu | 64×112×112"  # no `0 params · 0 MACs`
    assert (full["fillcolor"], full["class"]) == ("#c6dbef", "conv")


def legend_rows(network, **options) -> list[str]:
    return re.findall(
        r'<td align="left">([^<]*)</td>', parsed(dot_source(network, **options))["nodes"]["legend"]["label"]
    )


def test_legend_names_the_families_and_joins_drawn(resnet50):
    assert legend_rows(resnet50) == [
        "convolution",
        "pooling",
        "normalisation",
        "activation",
        "fully connected",
        "merge",
        "skip (add, gate)",
    ]
    assert legend_rows(resnet50, depth=1) == ["convolution", "pooling", "fully connected"]
    assert legend_rows(cnndsl.load("unet"), depth=1)[-2:] == ["merge", "concatenated"]


def test_a_network_of_only_its_input_draws_without_a_legend(tmp_path):
    network = cnndsl.parse("network empty {\n    input 3x8x8\n}\n")
    assert set(parsed(dot_source(network))["nodes"]) == {"input", "output0"}
    assert render(network, tmp_path / "empty.svg", "svg").read_bytes().startswith(b"<?xml")


def test_rankdir_lr(tiny):
    assert parsed(dot_source(tiny, rankdir="LR"))["graph"]["rankdir"] == "LR"
    assert parsed(dot_source(tiny))["graph"]["rankdir"] == "TB"


def test_bad_options_from_python_are_value_problems_with_a_hint(tiny, tmp_path):
    with pytest.raises(ValueProblem, match="rankdir must be TB or LR, got 'BT'") as error:
        dot_source(tiny, rankdir="BT")
    assert error.value.hint == "TB draws top to bottom, LR left to right"
    with pytest.raises(ValueProblem, match="depth must be a whole number from 0, got -1"):
        dot_source(tiny, depth=-1)
    with pytest.raises(ValueProblem, match="cannot draw a diagram as 'jpg'") as error:
        render(tiny, tmp_path / "x.jpg", "jpg")
    assert error.value.hint == "choose one of svg, png, pdf, dot"
    assert list(tmp_path.iterdir()) == []


# ---- escaping and determinism -------------------------------------------------------
def test_quotes_and_angle_brackets_in_names_cannot_break_the_dot(tmp_path):
    source = TINY_RESNET.replace("network tiny {", "block odd(note) { conv3x3(8), relu }\nnetwork tiny {").replace(
        "gap, fc(10)", "odd(\"a<b> & 'c'\"), gap, fc(10)"
    )
    network = cnndsl.parse(source)
    nasty = 'x" ]; evil [label="<b>'
    ir.layer(network.graph, 1).tap = nasty
    ir.network_info(network.graph).name = "<net>"
    target = render(network, tmp_path / "odd.svg", "svg")
    texts = [element.text for element in ElementTree.parse(target).iter(f"{SVG}text")]
    assert f"{nasty}:" in texts
    assert "odd(\"a<b> & 'c'\")" in texts
    assert "<net>" in texts
    layout = parsed(dot_source(network))
    assert "evil" not in layout["nodes"]
    assert label_text(layout["nodes"]["n1"]["label"]) == f"{nasty}: conv 3×3, 16"


def test_same_input_gives_byte_identical_dot_across_processes(tmp_path):
    outputs = []
    for seed in ("1", "2"):
        target = tmp_path / f"net{seed}.dot"
        env = dict(os.environ, PYTHONHASHSEED=seed)
        subprocess.run(
            [
                sys.executable,
                "-c",
                "from cnndsl.cli import main; main()",
                "draw",
                "googlenet",
                "--depth",
                "2",
                "--cost",
                "-o",
                str(target),
            ],
            check=True,
            env=env,
            capture_output=True,
        )
        outputs.append(target.read_bytes())
    assert outputs[0] == outputs[1] and b"subgraph" in outputs[0]


# ---- files, the command line, a missing Graphviz -----------------------------------
@pytest.mark.parametrize(
    "suffix, magic", [("svg", b"<?xml"), ("png", b"\x89PNG"), ("pdf", b"%PDF"), ("dot", b"digraph")]
)
def test_draw_writes_each_format(cli, tmp_path, suffix, magic):
    target = tmp_path / f"net.{suffix}"
    result = cli("draw", "resnet18", "--depth", "1", "-o", target)
    assert (result.exit_code, result.stdout) == (0, f"wrote {target}\n")
    assert target.read_bytes().startswith(magic)


def test_compile_to_dot_matches_draw(cli, tmp_path):
    assert cli("compile", "resnet18", "--to", "dot", "--depth", "2", "-o", tmp_path / "a.dot").exit_code == 0
    assert cli("draw", "resnet18", "--depth", "2", "-o", tmp_path / "b.dot").exit_code == 0
    assert (tmp_path / "a.dot").read_bytes() == (tmp_path / "b.dot").read_bytes()


def test_draw_refuses_an_unknown_suffix(cli, tmp_path):
    result = cli("draw", "resnet18", "-o", tmp_path / "net.jpg")
    assert result.exit_code == 2
    assert "the output must end in .svg, .png, .pdf or .dot, not" in result.stderr


def test_without_graphviz_dot_still_works_and_svg_says_how_to_install(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = cli("draw", "resnet18", "-o", tmp_path / "net.svg")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: drawing SVG needs the Graphviz program `dot`, which is not installed",
        "hint: install Graphviz (apt install graphviz, brew install graphviz, conda install graphviz) "
        "or write the .dot file and render it elsewhere",
    ]
    assert list(tmp_path.iterdir()) == []
    assert cli("draw", "resnet18", "-o", tmp_path / "net.dot").exit_code == 0
    with pytest.raises(FileProblem, match="drawing PNG needs the Graphviz program `dot`"):
        render(cnndsl.load("resnet18"), tmp_path / "x.png", "png")


def test_a_network_shows_itself_as_svg_in_a_notebook(tiny, monkeypatch, tmp_path):
    root = ElementTree.fromstring(tiny._repr_svg_())
    assert root.tag == f"{SVG}svg"
    titles = {element.text for element in root.iter(f"{SVG}title")}
    assert {"cluster_layer1", "g_layer1.bottleneck2"} <= titles
    monkeypatch.setenv("PATH", str(tmp_path))
    assert tiny._repr_svg_() is None  # no Graphviz: Jupyter falls back to the text repr


# ---- size: ResNet-152 at depth 1 fits one screen ------------------------------------
def test_resnet152_at_full_depth_is_drawn_with_as_many_boxes_as_resnet50(resnet50):
    deep = build_diagram(cnndsl.load("resnet152").graph)
    assert [cluster.run.count for cluster in deep.clusters() if cluster.run.first.kind == "block"] == [
        1,
        2,
        1,
        7,
        1,
        35,
        1,
        2,
    ]
    assert len(deep.boxes()) == len(build_diagram(resnet50.graph).boxes()) == 100


def test_resnet152_at_depth_1_fits_one_screen(tmp_path):
    target = render(cnndsl.load("resnet152"), tmp_path / "r.svg", "svg", depth=1)
    root = ElementTree.parse(target).getroot()
    width, height = (float(root.get(side).removesuffix("pt")) * 96 / 72 for side in ("width", "height"))
    assert width < 1920 and height < 1080


# ---- the gallery and the docs --------------------------------------------------------
GALLERY = runpy.run_path(str(ROOT / "docs" / "gallery" / "make.py"), run_name="gallery")["GALLERY"]


def svg_titles(svg_text: str) -> set[str]:
    """Node, cluster and edge ids of an SVG drawn by Graphviz (its <title> elements)."""
    return {element.text for element in ElementTree.fromstring(svg_text).iter(f"{SVG}title")}


@pytest.mark.parametrize("file, name, options", [entry[:3] for entry in GALLERY], ids=[entry[0] for entry in GALLERY])
def test_committed_gallery_svg_is_current(file, name, options):
    from cnndsl.backends.graphviz import svg

    committed = (ROOT / "docs" / "gallery" / file).read_text(encoding="utf-8")
    fresh = svg(cnndsl.load(name), **options)
    assert svg_titles(committed) == svg_titles(fresh), "run python docs/gallery/make.py"
    assert re.findall(r"<text[^>]*>([^<]*)</text>", committed) == re.findall(r"<text[^>]*>([^<]*)</text>", fresh)


def test_readme_shows_every_gallery_image():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for file, *_ in GALLERY:
        assert f"docs/gallery/{file}" in readme


def _doc_commands() -> list[str]:
    return [line for fence in fences("diagrams.md", "console") for line, _ in commands(fence.body)]


@pytest.mark.parametrize("command", _doc_commands())
def test_every_command_in_the_diagrams_doc_runs(command, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    printed = run_command(cli, command, "", first_lines=True)
    written = Path(re.search(r"^wrote (\S+)$", printed, re.MULTILINE).group(1))  # a note may follow on stderr
    assert written.stat().st_size > 0


def test_every_python_example_in_the_diagrams_doc_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = fences("diagrams.md", "python")
    assert blocks
    for fence in blocks:
        run_python(fence.body, "diagrams.md", {})
