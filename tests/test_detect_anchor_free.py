"""The anchor-free head's kinds (anchorcat, dfl, dist2bbox) and the pixel attention (attend, attendvalues), each
against a computation written here from the papers' and Ultralytics' formulas, or torch's own attention; and
their located errors. Ultralytics itself is the oracle of tests/test_yolo_ultralytics.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cnndsl
from cnndsl.core.errors import CnnDslError
from cnndsl.graph import ir

HEAD = """network head {{
    image: input 3x32x32
    conv3x3(8, s=4), p3: conv3x3(10, s=2)
    p4: conv3x3(10, s=2)
    @p3, anchorcat(@p4)
    {end}
}}
"""


def _run(text: str, images: torch.Tensor):
    network = cnndsl.parse(text)
    with torch.no_grad():
        return network, network.to_torch(seed=0).eval()(images)


def test_anchorcat_lays_each_levels_cells_side_by_side_row_by_row():
    images = torch.randn(2, 3, 32, 32)
    _, (p3, p4) = _run(HEAD.format(end="output @p3, @p4"), images)
    network, cells = _run(HEAD.format(end="identity"), images)
    assert cells.shape == (2, 10, 16 + 4)
    assert ir.layer(network.graph, network.outputs[0][1]).shape == (10, 20)
    assert torch.equal(cells, torch.cat([p3.reshape(2, 10, 16), p4.reshape(2, 10, 4)], 2))


def test_dfl_is_the_expected_bin_of_each_sides_softmax_and_passes_the_classes_on():
    images = torch.randn(2, 3, 32, 32)
    _, cells = _run(HEAD.format(end="identity"), images)
    _, decoded = _run(HEAD.format(end="dfl(2)"), images)
    bins = cells[:, :8].reshape(2, 4, 2, 20).softmax(2)  # side, bin, anchor
    expected = (bins * torch.tensor([0.0, 1.0]).view(1, 1, 2, 1)).sum(2)  # Σ k · p_k (Li et al. 2020, eq. 5)
    assert decoded.shape == (2, 4 + 2, 20)
    torch.testing.assert_close(decoded[:, :4], expected)
    assert torch.equal(decoded[:, 4:], cells[:, 8:])


def test_dist2bbox_decodes_distances_from_cell_centres_into_pixels_and_sigmoid_scores():
    images = torch.randn(2, 3, 32, 32)
    _, cells = _run(HEAD.format(end="identity"), images)
    _, decoded = _run(HEAD.format(end="dist2bbox(@image, @p3, @p4)"), images)
    d = cells.numpy()
    # cell centres: level p3 is 4×4 at stride 8, p4 2×2 at stride 16, row by row, x first
    centres = [((x + 0.5), (y + 0.5), 8) for y in range(4) for x in range(4)]
    centres += [((x + 0.5), (y + 0.5), 16) for y in range(2) for x in range(2)]
    expected = np.empty_like(d)
    for a, (cx, cy, stride) in enumerate(centres):
        left, top, right, bottom = d[:, 0, a], d[:, 1, a], d[:, 2, a], d[:, 3, a]
        x1, y1, x2, y2 = cx - left, cy - top, cx + right, cy + bottom
        expected[:, 0:4, a] = np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], 1) * stride
    expected[:, 4:] = 1 / (1 + np.exp(-d[:, 4:]))
    np.testing.assert_allclose(decoded.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_attend_is_scaled_dot_product_attention_over_the_pixels_of_each_head():
    text = "network a {\n    input 12x3x5\n    attend(2, 1)\n}\n"
    network = cnndsl.parse(text)
    images = torch.randn(2, 12, 3, 5)
    with torch.no_grad():
        got = network.to_torch().eval()(images)
    heads = images.view(2, 2, 6, 15)  # per head: 1 query, 1 key, 4 value channels; 15 pixels
    q, k, v = heads[:, :, 0:1], heads[:, :, 1:2], heads[:, :, 2:6]
    expected = F.scaled_dot_product_attention(q.transpose(-2, -1), k.transpose(-2, -1), v.transpose(-2, -1))
    torch.testing.assert_close(got, expected.transpose(-2, -1).reshape(2, 8, 3, 5))
    assert network.macs == 2 * 15 * 15 * (1 + 4)  # qᵀk and v·attnᵀ, per head
    values = cnndsl.parse(text.replace("attend(2, 1)", "attendvalues(2, 1)")).to_torch()(images)
    assert torch.equal(values, v.reshape(2, 8, 3, 5))


@pytest.mark.parametrize(
    ("end", "line", "column", "message"),
    [
        ("dfl(8)", 6, 5, "`dfl` needs at least 4 × reg_max = 32 rows of box bins, got 10"),
        ("dist2bbox(@image)", 6, 5, "`dist2bbox` needs the input image and at least one level as taps"),
        ("dist2bbox(@image, @p3)", 6, 5, "the levels have 16 cells, the input 20 anchors"),
    ],
)
def test_misused_head_kinds_are_located_errors(end, line, column, message):
    with pytest.raises(CnnDslError) as error:
        cnndsl.parse(HEAD.format(end=end), "head.cnn")
    assert error.value.pos.line == line and error.value.pos.column == column
    assert message in str(error.value)


def test_dfl_before_anchorcat_and_levels_of_other_channels_are_located_errors():
    before = "network n {\n    input 3x32x32\n    conv3x3(8, s=4)\n    dfl\n}\n"
    with pytest.raises(CnnDslError, match=r"^head.cnn:4:5: error: `dfl` takes rows × anchors, got 8×8×8"):
        cnndsl.parse(before, "head.cnn")
    mixed = (
        "network n {\n    input 3x32x32\n    a: conv3x3(8, s=4)\n    b: conv3x3(10, s=4)\n    @a, anchorcat(@b)\n}\n"
    )
    with pytest.raises(CnnDslError, match=r"^head.cnn:5:9: error: cannot lay 10×2×2 beside 8×8×8: the channels differ"):
        cnndsl.parse(mixed, "head.cnn")
    uneven = "network n {\n    image: input 3x30x30\n    p: conv3x3(8, s=4)\n    anchorcat, dist2bbox(@image, @p)\n}\n"
    with pytest.raises(
        CnnDslError, match=r"^head.cnn:4:16: error: a 8×8 level has no whole stride over the 30×30 input"
    ):
        cnndsl.parse(uneven, "head.cnn")
    with pytest.raises(CnnDslError, match=r"^head.cnn:3:5: error: `attend` cannot cut 12 channels into 5 heads"):
        cnndsl.parse("network a {\n    input 12x3x5\n    attend(5, 1)\n}\n", "head.cnn")
