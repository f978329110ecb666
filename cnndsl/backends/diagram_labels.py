"""The look of a diagram shared by its styles: colours by layer family and edge kind, and its text: titles,
a collapsed group's summary line, quantities, and the escaping that every text from the source goes through
on its way into an HTML-like label or an SVG."""

from __future__ import annotations

import html
import re

from ..graph import ir
from ..graph.ir import input_shapes
from .diagram_structure import Run

# fill, border and legend name per layer family (ColorBrewer pastels; print in grey too)
FAMILIES = {
    "conv": ("#c6dbef", "#4a7fb5", "convolution"),
    "pool": ("#fdd0a2", "#c7762b", "pooling"),
    "norm": ("#fff2ae", "#b8a42b", "normalisation"),
    "act": ("#c7e9c0", "#4b9a4b", "activation"),
    "fc": ("#dadaeb", "#7a6fb0", "fully connected"),
    "merge": ("#ffffff", "#555555", "merge"),
    "reshape": ("#eeeeee", "#888888", "reshape"),
    "reg": ("#f2f2f2", "#999999", "regularisation"),
    "io": ("#ffffff", "#333333", "input / output"),
    "other": ("#f7f7f7", "#999999", "other"),
}

EDGE_STYLES = {
    "sequence": {"color": "#333333", "weight": "8"},
    "branch": {"color": "#333333", "weight": "2"},
    "skip": {"color": "#d6604d", "style": "dashed", "penwidth": "1.6", "weight": "2"},
    "concat": {"color": "#2171b5", "style": "dashed", "penwidth": "1.6", "weight": "2"},
}

FAINT = "#555555"
TITLE_EM = 0.62  # the widest a bold Helvetica character averages, in em: how wide a cluster's title may be
CORNER_PT = 6  # how far a cluster's title keeps from its right border, off the rounded corner an edge may cut
LONGEST_TEXT = 200  # characters of one source text (a name, a label) in a diagram; longer ones end in …


def network_title(network) -> str:
    return f"<b>{escaped(network.name)}</b>" + faint(
        escaped(f"  {quantity(network.params)} params · {quantity(network.macs)} MACs")
    )


def title_of(run: Run) -> str:
    """A block by its call (`bottleneck(64, 1)`), any other group by its name (`layer3`, or
    `dense` for a run of them)."""
    group = run.first
    name = group.label if group.kind == "block" or not group.path else group.base if run.count > 1 else group.path[-1]
    title = f"<b>{escaped(name)}</b>"
    return title + (f" <b>×{run.count}</b>" if run.count > 1 else "")


def contents(graph, group) -> str:
    """What a group holds, as a paper's table row: `bottleneck ×6`, `conv 3×3, 64 ×2 · maxpool 2×2, /2`.

    Layers by label, leaving out pointwise ones (bn, relu: no window); a block of one windowed
    layer as that layer; other groups by name; parallel branches as `4 branches`.
    """
    items: list[list] = []
    for child in group.children:
        layers = windowed(graph, [child] if isinstance(child, int) else child.nodes)
        if isinstance(child, int) and not layers:
            continue
        if isinstance(child, int) or (child.kind == "block" and len(layers) == 1):
            layer = ir.layer(graph, layers[0])
            name = layer.kind.label(layer.attrs)
        else:
            name = child.base
        parallel = not isinstance(child, int) and child.kind == "branch"
        if items and items[-1][0] == name:
            items[-1][1] += 1
        else:
            items.append([name, 1, parallel])
    words = [
        f"{count} {name}es" if parallel and count > 1 else name if count == 1 else f"{name} ×{count}"
        for name, count, parallel in items
    ]
    return wrap(words)


def windowed(graph, nodes: list[int]) -> list[int]:
    """The layers that slide a window (convolutions, pooling, fc): what a paper's table lists."""
    return [
        node
        for node in nodes
        if ir.layer(graph, node).kind.window(ir.layer(graph, node).attrs, input_shapes(graph, node))
    ]


def wrap(words: list[str], width: int = 36) -> str:
    """Words joined by ` · `, escaped, broken into lines of about `width` characters."""
    lines: list[str] = []
    for word in words:
        if lines and len(lines[-1]) + 3 + len(word) <= width:
            lines[-1] += " · " + word
        else:
            lines.append(word)
    return "<br/>".join(escaped(line) for line in lines)


def main_family(graph, nodes: list[int], families) -> str:
    """The family holding most parameters (most layers when none has any): the group's colour."""
    weight: dict[str, list[int]] = {}
    for node in nodes:
        layer = ir.layer(graph, node)
        family = layer.kind.family
        entry = weight.setdefault(family if family in families else "other", [0, 0])
        entry[0] += layer.figures.params
        entry[1] += 1
    return max(sorted(weight), key=lambda family: tuple(weight[family]))


def quantity(count: int) -> str:
    """Three significant digits: 25,557,032 -> 25.6M; 7,978,856 -> 7.98M; 216,320 -> 216K."""
    for factor, unit in ((10**9, "G"), (10**6, "M"), (10**3, "K")):
        if count >= factor * 0.9995:
            return f"{count / factor:.3g}{unit}"
    return str(count)


def escaped(value: str) -> str:
    """Source text made safe inside an HTML-like label, and cut short: `dot` refuses a label over 16,384 characters."""
    value = str(value)
    if len(value) > LONGEST_TEXT:
        value = value[: LONGEST_TEXT - 1] + "…"
    return html.escape(value, quote=True)


def clear_of_the_column(markup: str) -> str:
    """A cluster's title with an empty cell of its own width to its left, at the cluster's right: the cluster
    is then at least twice as wide as the title, so the edge entering its middle passes left of the title.
    A narrow cell to its right keeps it off the rounded corner, which an edge passing outside may cut on its
    way round (DeepLabV3's resize to the input's size, beside the classifier)."""
    words = html.unescape(re.sub(r"<[^>]+>", "", markup))
    spacer = round(len(words) * TITLE_EM * 11)
    return (
        f'<table border="0" cellborder="0" cellpadding="0" cellspacing="0"><tr><td width="{spacer}"></td>'
        f'<td>{markup}</td><td width="{CORNER_PT}"></td></tr></table>'
    )


def faint(markup: str) -> str:
    return f'<font color="{FAINT}" point-size="9">{markup}</font>'


def html_label(markup: str) -> str:
    return f"<{markup}>"
