"""Architecture diagrams drawn the way a paper's figure is: Graphviz DOT from the graph IR.

`diagram_structure` decides what is drawn (clusters, folded repeats, collapsed groups); this module
decides how it looks: labels from each kind's `label`, colours from its `family`, edge styles by
kind. Every text from the source goes through `html.escape` into an HTML-like label.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import graphviz

from ..core.atomic import write_atomically
from ..core.errors import FileProblem, LimitProblem, ValueProblem
from ..core.source_map import source_name
from ..graph import ir
from ..ops import format_shape
from .blocks import blocks_svg
from .blocks_files import write_blocks
from .diagram_labels import (
    EDGE_STYLES,
    FAINT,
    FAMILIES,
    clear_of_the_column,
    contents,
    escaped,
    faint,
    html_label,
    main_family,
    network_title,
    quantity,
    title_of,
)
from .diagram_layouts import LAYOUTS, Arrangement, arrange, choose_layout
from .diagram_options import DIAGRAMS as FORMATS
from .diagram_options import RANKDIRS, STYLES
from .diagram_structure import Box, Cluster, Diagram, Run, build_diagram
from .layout_budget import STOPPED, LayoutBudget

FONT = "Helvetica,Arial,sans-serif"

BESIDE = {"constraint": "false"}  # a skip that another path parallels: laid out after, beside the main column
LAYOUT_HINT = "u: encoder down the left, decoder up the right; columns: one column per stage; flow: one column"
STYLE_HINT = "graph: boxes and arrows; blocks: the 3-D block figure"
EDGE_NAMES = {"skip": "skip (add, gate)", "concat": "concatenated"}

CLUSTER_STYLES = (  # by nesting level: stages, blocks, parts of blocks
    {"style": "rounded,filled", "fillcolor": "#f3f3f3", "color": "#bdbdbd"},
    {"style": "rounded,dashed,filled", "fillcolor": "#ffffff", "color": "#969696"},
    {"style": "rounded,dotted,filled", "fillcolor": "#fafafa", "color": "#969696"},
)


def to_digraph(
    network,
    depth: int | None = None,
    expand: bool = False,
    shapes: bool = False,
    cost: bool = False,
    rankdir: str = "TB",
    layout: str | None = None,
    style: str = "graph",
) -> graphviz.Digraph:
    """The network's diagram as a `graphviz.Digraph`; the same arguments give the same DOT. `layout`: flow, u
    or columns (diagram_layouts.py); None chooses one from the graph's structure."""
    if style not in STYLES:
        raise ValueProblem(f"style must be one of {', '.join(STYLES)}, got {style!r}", hint=STYLE_HINT)
    if style != "graph":
        raise ValueProblem("the block figure is no Graphviz graph", hint="draw it as .svg, .png or .pdf")
    if layout is not None and layout not in LAYOUTS:
        raise ValueProblem(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}", hint=LAYOUT_HINT)
    if rankdir not in RANKDIRS:
        raise ValueProblem(
            f"rankdir must be TB or LR, got {rankdir!r}", hint="TB draws top to bottom, LR left to right"
        )
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
        raise ValueProblem(
            f"depth must be a whole number from 0, got {depth!r}",
            hint="0 is one box for the network, 1 one box per stage; leave it out for every layer",
        )
    graph = network.graph
    diagram = build_diagram(graph, depth, expand)
    dot = graphviz.Digraph(
        "cnndsl",
        graph_attr={
            "comment": f"source: {source_name(network.file, network.file)}",  # a name, never the machine's path
            "rankdir": rankdir,
            "fontname": FONT,
            "fontsize": "12",
            "nodesep": "0.25",
            "ranksep": "0.22",
            "labelloc": "t",
            "label": html_label(network_title(network)),
            "newrank": "true",
            "ordering": "in",
        },
        node_attr={
            "fontname": FONT,
            "fontsize": "11",
            "shape": "box",
            "style": "rounded,filled",
            "margin": "0.1,0.03",
            "height": "0.3",
            "penwidth": "1.2",
        },
        edge_attr={"arrowsize": "0.6", "fontname": FONT, "fontsize": "9"},
    )
    painter = _Painter(graph, shapes, cost)
    painter.draw(dot, diagram.members, level=0)
    painter.legend(dot, diagram)
    _draw_links(dot, diagram, arrange(graph, diagram, layout or choose_layout(graph)))
    return dot


def _draw_links(dot: graphviz.Digraph, diagram: Diagram, arrangement: Arrangement) -> None:
    """The edges, skips last (`ordering=in`: right of the main path), as the layout places them."""
    for link in sorted(diagram.links, key=lambda link: link.beside):
        ends = (link.tail, link.head)
        unconstrained = (link.beside and ends not in arrangement.level) or ends in arrangement.free
        attributes = {"class": link.kind, **EDGE_STYLES[link.kind], **(BESIDE if unconstrained else {})}
        if ends in arrangement.climbing:  # laid out head first, so that the path climbs; the arrow still follows it
            dot.edge(link.head, link.tail, dir="back", **attributes)
        else:
            dot.edge(link.tail, link.head, **attributes)
    for boxes in arrangement.same_rank:
        with dot.subgraph() as row:
            row.attr(rank="same")
            for box in boxes:
                row.node(box)
    for tail, head in arrangement.unseen:
        dot.edge(tail, head, style="invis")
    hooks = [f"hook{index}" for index in range(len(arrangement.hung))]
    if hooks:
        with dot.subgraph() as top:
            top.attr(rank="min")
            for hook in hooks:
                top.node(hook, "", style="invis", shape="point", width="0")
    for tail, head in [*zip(hooks, hooks[1:]), *zip(hooks, arrangement.hung)]:
        dot.edge(tail, head, style="invis")


def dot_source(network, **options) -> str:
    """The DOT text of `to_digraph`; needs no Graphviz binary."""
    return to_digraph(network, **options).source


def render(
    network,
    target_path,
    fmt: str,
    depth: int | None = None,
    expand: bool = False,
    shapes: bool = False,
    cost: bool = False,
    rankdir: str = "TB",
    layout: str | None = None,
    style: str = "graph",
    timeout: float | None = None,
    budget: LayoutBudget | None = None,
) -> Path:
    """Write the diagram as dot, svg, png or pdf, atomically; laying it out may take `timeout` seconds, by
    default layout_budget.LAYOUT_CPU_S of CPU (or what is left of `budget`, a drawing's layout budget)."""
    if fmt not in FORMATS:
        raise ValueProblem(f"cannot draw a diagram as {fmt!r}", hint=f"choose one of {', '.join(FORMATS)}")
    if style == "blocks":
        return write_blocks(network, target_path, fmt, depth)
    dot = to_digraph(
        network, depth=depth, expand=expand, shapes=shapes, cost=cost, rankdir=rankdir, layout=layout, style=style
    )
    content = dot.source if fmt == "dot" else lay_out(network, dot, fmt, budget or LayoutBudget.of(timeout))
    return write_atomically(target_path, content)


def svg(network, timeout: float | None = None, **options) -> str:
    """The diagram as SVG text (what a notebook and a docs build show)."""
    if options.get("style") == "blocks":
        return blocks_svg(network, options.get("depth"))
    return lay_out(network, to_digraph(network, **options), "svg", LayoutBudget.of(timeout)).decode("utf-8")


def lay_out(network, dot: graphviz.Digraph, fmt: str, budget: LayoutBudget) -> bytes:
    """`dot` run on the whole source at once (it may stop reading early, and then says why on stderr), bounded
    by what is left of `budget` in CPU time and memory and killed when its wall clock runs out: graphviz.pipe,
    which this is otherwise, has no bound."""
    try:
        process = subprocess.Popen(
            [dot.engine, f"-T{fmt}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except FileNotFoundError:
        raise dot_missing(fmt) from None
    budget.bound(process)
    try:
        out, err = process.communicate(dot.source.encode("utf-8"), timeout=budget.wall_left())
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise layout_too_slow(network, budget) from None
    if process.returncode in STOPPED or (process.returncode and budget.spent()):
        raise layout_too_slow(network, budget)
    if process.returncode:
        detail = err.decode("utf-8", "replace").strip()
        raise FileProblem(f"Graphviz could not draw the diagram: {detail or f'`dot` exited with {process.returncode}'}")
    return out


def dot_missing(fmt: str) -> FileProblem:
    return FileProblem(
        f"drawing {fmt.upper()} needs the Graphviz program `dot`, which is not installed",
        hint="install Graphviz (apt install graphviz, brew install graphviz, conda install graphviz) "
        "or write the .dot file and render it elsewhere",
    )


def layout_too_slow(network, budget: LayoutBudget) -> LimitProblem:
    return LimitProblem(
        f"Graphviz took longer than {budget.described()} to lay out the diagram of `{network.name}` and was stopped",
        ir.layer(network.graph, ir.network_info(network.graph).input).pos,
        hint="draw fewer boxes with a smaller depth, or allow more time (cnndsl draw --timeout SECONDS)",
    )


class _Painter:
    """Turns boxes and clusters into styled DOT nodes and subgraphs."""

    def __init__(self, graph, shapes: bool, cost: bool):
        self.graph = graph
        self.shapes = shapes
        self.cost = cost
        self.families: set[str] = set()
        self.training = ir.training_only(graph)  # drawn dashed: only the training forward runs them

    def draw(self, dot: graphviz.Digraph, members: list, level: int, framed: bool = True) -> None:
        """Members as nodes and clusters; inside a branch path drawn open nothing is framed (`framed`), as papers
        draw Inception: `dot` orders sibling clusters by no rule we can set, loose nodes by `ordering=in`, so
        the paths read left to right in the order they are concatenated. A folded run keeps its frame and ×n."""
        for member in members:
            if (
                isinstance(member, Cluster)
                and member.run.count == 1
                and not (framed and member.run.first.kind != "branch")
            ):
                self.draw(dot, member.members, level, framed=False)
            elif isinstance(member, Cluster):
                self.cluster(dot, member, level)
            else:
                self.box(dot, member)

    def cluster(self, dot: graphviz.Digraph, cluster: Cluster, level: int) -> None:
        style = CLUSTER_STYLES[min(level, len(CLUSTER_STYLES) - 1)]
        with dot.subgraph(name=cluster.id) as sub:
            sub.attr(
                label=html_label(clear_of_the_column(self.cluster_label(cluster.run))),
                labeljust="r",
                fontsize="11",
                penwidth="2" if cluster.run.count > 1 else "1",
                margin="8",
                **style,
            )
            self.draw(sub, cluster.members, level + 1, framed=True)

    def cluster_label(self, run: Run) -> str:
        title = title_of(run)
        costs = self.costs(run.nodes) if self.cost else ""  # summed only when shown: a cluster holds every node
        # of its repeats, and 90 nested clusters around 10,000 nodes would sum 900,000 figures
        return title + faint(" · " + costs) if costs else title

    def box(self, dot: graphviz.Digraph, box: Box) -> None:
        if box.role == "group":
            self.group_box(dot, box)
            return
        if box.role == "fork":  # where a block's input splits into its main path and its skip
            dot.node(box.id, "", shape="point", width="0.07", color=FAINT)
            return
        layer = ir.layer(self.graph, box.node)
        kind = layer.kind
        family = kind.family if kind.family in FAMILIES else "other"
        self.families.add(family)
        fill, border, _ = FAMILIES[family]
        if box.role in ("output", "input"):  # a train output and a train input marked as the layers between them
            name = box.name if box.role == "output" else layer.tap or "input"
            training = box.training if box.role == "output" else box.node in self.training
            marked = faint(" (training only)") if training else ""
            dot.node(
                box.id,
                html_label(f"{escaped(name)} {escaped(format_shape(layer.shape))}{marked}"),
                shape="plain",
                style="",
                fillcolor=fill,
                color=border,
            )
            return
        tap = f"<i>{escaped(layer.tap)}:</i>" if layer.tap else ""
        head = escaped(ir.label(self.graph, box.node))
        details = self.details([box.node], layer.shape)
        attributes = {"fillcolor": fill, "color": border, "tooltip": graphviz.escape(layer.name), "class": family}
        if box.node in self.training:
            attributes.update(style="rounded,filled,dashed", tooltip=graphviz.escape(f"{layer.name} (training only)"))
        if kind.drawn_as_join and (tap or len(head) > 1):  # a named join (`d4:`) or a longer sign (`× 0.5`): a small
            # oval, the text inside where no edge crosses it
            dot.node(
                box.id,
                html_label(f"{tap} {head}" if tap else head),
                shape="ellipse",
                height="0.3",
                margin="0.04,0",
                xlabel=html_label(faint(details)) if details else None,
                **attributes,
            )
        elif kind.drawn_as_join:  # a small circle; what does not fit goes beside it
            dot.node(
                box.id,
                html_label(head),
                shape="circle",
                width="0.3",
                fixedsize="true",
                fontsize="14",
                margin="0",
                xlabel=html_label(faint(details)) if details else None,
                **attributes,
            )
        else:
            lines = [f"{tap} {head}" if tap else head] + ([faint(details)] if details else [])
            dot.node(box.id, html_label("<br/>".join(lines)), **attributes)

    def group_box(self, dot: graphviz.Digraph, box: Box) -> None:
        """A collapsed group: what it is, what it holds, its output shape and parameters."""
        run = box.run
        last = run.instances[-1].nodes[-1]
        # a U-Net's `enc1: double(64)` names the block's output; a stage keeps its own name, not its last tap's
        tap = ir.layer(self.graph, last).tap if run.first.kind == "block" else None
        title = f"<i>{escaped(tap)}:</i> {title_of(run)}" if tap else title_of(run)
        lines = [title, contents(self.graph, run.first)]
        figures = [format_shape(ir.layer(self.graph, last).shape), self.costs(run.nodes)]
        lines.append(faint(escaped(" · ".join(part for part in figures if part))))
        family = main_family(self.graph, run.nodes, FAMILIES)
        self.families.add(family)
        fill, border, _ = FAMILIES[family]
        dot.node(
            box.id,
            html_label("<br/>".join(lines)),
            fillcolor=fill,
            color=border,
            peripheries="2",
            tooltip=graphviz.escape(".".join(run.first.path) or ir.network_info(self.graph).name),
            **{"class": "group"},
        )

    def details(self, nodes: list[int], shape: tuple) -> str:
        parts = [format_shape(shape)] if self.shapes else []
        if self.cost:
            parts.append(self.costs(nodes))
        return escaped(" · ".join(part for part in parts if part))

    def costs(self, nodes: list[int]) -> str:
        """Parameters (and MACs with --cost), leaving out a zero: a relu is not `0 params · 0 MACs`."""
        params = sum(ir.layer(self.graph, node).figures.params for node in nodes)
        macs = sum(ir.layer(self.graph, node).figures.macs for node in nodes) if self.cost else 0
        return " · ".join(f"{quantity(count)} {unit}" for count, unit in ((params, "params"), (macs, "MACs")) if count)

    def legend(self, dot: graphviz.Digraph, diagram: Diagram) -> None:
        """Colour swatches for the families drawn and the styles of the joins drawn."""
        rows = [
            f'<tr><td width="14" height="10" bgcolor="{FAMILIES[family][0]}" border="1" color="{FAMILIES[family][1]}">'
            f'</td><td align="left">{FAMILIES[family][2]}</td></tr>'
            for family in FAMILIES
            if family in self.families - {"io"}
        ]
        kinds = {link.kind for link in diagram.links}
        rows += [
            f'<tr><td><font color="{EDGE_STYLES[kind]["color"]}"><b>- -</b></font></td>'
            f'<td align="left">{EDGE_NAMES[kind]}</td></tr>'
            for kind in EDGE_NAMES
            if kind in kinds
        ]
        if not rows:  # nothing but the input: Graphviz refuses an empty table
            return
        table = f'<table border="0" cellborder="0" cellspacing="2" cellpadding="1">{"".join(rows)}</table>'
        with dot.subgraph() as top:
            top.attr(rank="min")
            top.node("legend", html_label(table), shape="plain", style="", fontsize="9")
            for box in diagram.boxes():
                if box.role == "input":
                    top.node(box.id)  # every input at the top, beside the legend
