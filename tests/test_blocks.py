"""The 3-D block figure (`--style blocks`, backends/blocks.py), checked from its SVG: each block's drawn width,
height and depth grow with its channels, height and width, skips are arcs, the same network gives the same
bytes in each format, and a .dot of it is refused."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree

import pytest

import cnndsl
from cnndsl.backends.blocks import blocks_svg
from cnndsl.backends.diagram_structure import build_diagram
from cnndsl.backends.graphviz import render
from cnndsl.core.errors import ValueProblem
from cnndsl.graph import ir

SVG = "{http://www.w3.org/2000/svg}"


def drawn_blocks(svg_text: str) -> dict[str, tuple[float, float, float]]:
    """Each block's (width, height, depth) as drawn: the front face's width and height, the top face's rise."""
    found = {}
    for group in ElementTree.fromstring(svg_text).iter(f"{SVG}g"):
        if "block" not in group.get("class", "").split():
            continue
        faces = {
            polygon.get("class"): [tuple(map(float, pair.split(","))) for pair in polygon.get("points").split()]
            for polygon in group.iter(f"{SVG}polygon")
        }
        xs, ys = [x for x, _ in faces["front"]], [y for _, y in faces["front"]]
        rise = min(ys) - min(y for _, y in faces["top"])
        found[group.findtext(f"{SVG}title")] = (max(xs) - min(xs), max(ys) - min(ys), rise)
    return found


def shapes_of(network, depth) -> dict[str, tuple]:
    """Each drawn box's output shape, from the IR."""
    shapes = {}
    for box in build_diagram(network.graph, depth).boxes():
        node = box.node if box.node is not None else box.run.instances[-1].nodes[-1] if box.run else None
        if node is not None:
            shapes[box.id] = ir.layer(network.graph, node).shape
    return shapes


ROUNDING_PX = 0.1  # the SVG writes coordinates to a tenth of a px


def assert_monotone(pairs: list[tuple[int, float]]) -> None:
    """Drawn sizes never shrink as the dimension grows (within the SVG's rounding), and grow visibly where it
    grows by a tenth or more."""
    ordered = sorted(pairs)
    for index, (size, drawn) in enumerate(ordered):
        for next_size, next_drawn in ordered[index + 1 :]:
            assert next_drawn >= drawn - ROUNDING_PX, (size, drawn, next_size, next_drawn)
            if next_size >= size * 1.1:
                assert next_drawn > drawn + ROUNDING_PX, (size, drawn, next_size, next_drawn)


@pytest.mark.parametrize("name, depth", [("vgg16", 2), ("alexnet", 2), ("resnet50", 1), ("unet", 2)])
def test_drawn_sizes_follow_channels_height_and_width(name, depth):
    network = cnndsl.load(name)
    drawn = drawn_blocks(blocks_svg(network, depth))
    shapes = shapes_of(network, depth)
    solid = {box: shapes[box] for box in drawn if len(shapes[box]) == 3}
    assert len(solid) >= 5
    for axis in range(3):  # width <- channels, height <- H, depth <- W
        assert_monotone([(shapes[box][axis], drawn[box][axis]) for box in solid])


def test_the_figure_states_its_scale_and_writes_each_shape():
    text = blocks_svg(cnndsl.load("vgg16"), 2)
    assert "box width ∝ log₂ channels · height ∝ log₂ H · depth ∝ log₂ W" in text
    words = re.findall(r"<text[^>]*>([^<]*)</text>", text)
    assert {"3×224×224", "64×224×224", "512×7×7", "4096", "1000"} <= set(words)
    assert "conv 3×3, 64 ×2" in words and "conv 3×3, 512 ×3" in words  # repeats stacked and counted


def test_skips_are_arcs():
    text = blocks_svg(cnndsl.load("unet"), 1)
    assert len(re.findall(r'<g class="arc concat">', text)) == 4


def test_each_format_is_deterministic_and_a_dot_is_refused(tmp_path):
    pytest.importorskip("matplotlib")  # draws PNG and PDF (the `figures` extra)
    network = cnndsl.load("lenet5")
    magic = {"svg": b"<svg", "png": b"\x89PNG", "pdf": b"%PDF"}
    for fmt, start in magic.items():
        first = render(network, tmp_path / f"a.{fmt}", fmt, depth=2, style="blocks").read_bytes()
        second = render(network, tmp_path / f"b.{fmt}", fmt, depth=2, style="blocks").read_bytes()
        assert first.startswith(start) and first == second
    with pytest.raises(ValueProblem, match="the block figure has no DOT text"):
        render(network, tmp_path / "c.dot", "dot", style="blocks")
    assert not (tmp_path / "c.dot").exists()


def test_draw_without_depth_fits_the_row_to_the_page(cli, tmp_path):
    target = tmp_path / "v.svg"
    result = cli("draw", "vgg16", "--style", "blocks", "-o", target)
    assert result.exit_code == 0, result.stderr
    root = ElementTree.parse(target).getroot()
    width = float(root.get("width").removesuffix("px"))
    assert width <= 1600
    assert result.stderr.startswith(f"cnndsl: note: drawn at --depth 2 (every level), {round(width)}×")


def test_an_unknown_style_is_a_value_problem_with_a_hint(tmp_path):
    network = cnndsl.load("lenet5")
    with pytest.raises(ValueProblem) as caught:
        render(network, tmp_path / "x.svg", "svg", style="Blocks")
    assert str(caught.value).splitlines() == [
        "error: style must be one of graph, blocks, got 'Blocks'",
        "hint: graph: boxes and arrows; blocks: the 3-D block figure",
    ]
    assert list(tmp_path.iterdir()) == []
