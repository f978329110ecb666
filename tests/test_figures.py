"""Figures for papers, checked from the SVG Graphviz draws (tests/svg_geometry.py), not by eye: the default
depth fits a page and is the deepest that does, no edge runs through a box or a title it does not join,
branches are drawn in the order they are concatenated, and collapsed stages keep their own name."""

from __future__ import annotations

import functools
import re

import pytest
import svg_geometry
from conftest import library_networks

import cnndsl
from cnndsl.backends.diagram_fit import PAGE_PX, fitting_depth, levels
from cnndsl.backends.graphviz import dot_source, svg

pytestmark = pytest.mark.needs_dot

BOUND_PX = 1600  # the bound the issue states: a figure's long side at 96 dpi


@functools.cache
def default_figure(name: str) -> tuple[int, int, str]:
    """The depth `draw` chooses for a library network, how many levels it has, and the SVG at that depth:
    laid out once and shared by the tests below."""
    network = cnndsl.load(name)
    fit = fitting_depth(network, 30)
    return fit.depth, levels(network.graph), svg(network, depth=fit.depth)


def test_the_bound_is_the_stated_one():
    assert PAGE_PX == BOUND_PX


@pytest.mark.parametrize("name", library_networks())
def test_the_default_figure_fits_the_page_and_is_the_deepest_that_does(name):
    depth, deepest, text = default_figure(name)
    assert max(svg_geometry.read(text).pixels) <= BOUND_PX
    if depth < deepest:
        deeper = svg_geometry.read(svg(cnndsl.load(name), depth=depth + 1))
        assert max(deeper.pixels) > BOUND_PX


# an edge from a parallel column (the segmentation heads' low-level features) enters the classifier from the
# side, through the strip at its top that holds the title: not solved yet, said so in the report
TITLE_CROSSED = {"deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason="an edge enters a cluster through its title"))
        if name in TITLE_CROSSED
        else name
        for name in library_networks()
    ],
)
def test_no_edge_runs_through_a_box_or_a_title_at_the_default_depth(name):
    _, _, text = default_figure(name)
    assert svg_geometry.crossings(svg_geometry.read(text)) == []


def test_the_crossing_check_sees_an_edge_through_a_node_and_through_a_title():
    drawn = svg_geometry.read(
        svg(cnndsl.parse("network t { input 3x8x8\n stage s { conv3x3(4), relu }\n fc(2) }"), depth=2)
    )
    assert svg_geometry.crossings(drawn) == []
    conv, relu, fc = (name for name in drawn.nodes if re.fullmatch(r"n\d+", name))
    # edges laid by hand: one through the relu's box, one through the stage's title
    drawn.edges.append(svg_geometry.Edge(conv, fc, [], [drawn.nodes[relu].box.centre]))
    assert svg_geometry.crossings(drawn) == [f"{conv}->{fc} through {relu}"]
    title = drawn.labels[0]
    drawn.edges[-1] = svg_geometry.Edge("x", "y", [], [title.centre])
    assert svg_geometry.crossings(drawn) == ["x->y through a cluster's title"]


def test_draw_without_depth_says_which_depth_it_chose(cli, tmp_path):
    target = tmp_path / "r.svg"
    result = cli("draw", "resnet152", "-o", target)
    assert (result.exit_code, result.stdout) == (0, f"wrote {target}\n")
    width, height = (round(side) for side in svg_geometry.read(target.read_text(encoding="utf-8")).pixels)
    assert result.stderr == (
        f"cnndsl: note: drawn at --depth 2, {width}×{height} px: the deepest level that fits 1600 px; "
        "--depth N to choose\n"
    )
    explicit = tmp_path / "explicit.svg"
    assert cli("draw", "resnet152", "--depth", "2", "-o", explicit).stderr == ""
    assert explicit.read_bytes() == target.read_bytes()


def test_a_dot_file_without_depth_keeps_every_level(cli, tmp_path):
    """A .dot file is the text before layout: nothing to measure, so it draws every level, as before."""
    result = cli("draw", "resnet50", "-o", tmp_path / "r.dot")
    assert result.stderr == ""
    assert (tmp_path / "r.dot").read_text(encoding="utf-8") == dot_source(cnndsl.load("resnet50"), depth=None)


def test_the_api_draws_at_the_same_default_depth(tmp_path):
    network = cnndsl.load("resnet50")
    assert network.draw(tmp_path / "a.svg").read_bytes() == network.draw(tmp_path / "b.svg", depth=2).read_bytes()
