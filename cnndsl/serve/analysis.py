"""The editor's text, analysed for the page: the diagram, the summary table, or the located errors.

Each keystroke is a new text, so it is parsed without the on-disk parse cache; imports resolve from
the served file's folder, as they would when the file is loaded from disk.
"""
from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..api import Network, _instantiate
from ..backends.graphviz import to_digraph
from ..embed import summary_table
from ..errors import CnnDslError
from ..expand import DEFAULT_MAX_NODES
from ..load import Loader
from ..parse_cache import parse_text
from .explain import explain
from .layout import DotProcess

KEPT = 8  # analysed networks kept for the learner's view of their layers
MAX_DRAWN = 3000  # DOT statements (boxes, arrows, clusters); the library's largest, GoogLeNet, has 781


@dataclass(frozen=True)
class Request:
    """What the page asks for: the text and the diagram's toggles."""

    text: str
    depth: Optional[int] = None
    shapes: bool = False
    cost: bool = False


class Analyser:
    """Analyses texts as the served file; keeps the last few networks for `explain`."""

    def __init__(self, path: Path, network: Optional[str], input_shape: Optional[tuple]):
        self.path = path
        self.network = network
        self.input_shape = input_shape
        self.kept: OrderedDict[int, Network] = OrderedDict()
        self.layout = DotProcess()
        self.last_drawn = ("", "")  # (DOT, SVG) of the last diagram laid out
        self._ids = itertools.count(1)
        self._keeping = threading.Lock()  # two pages (tabs) may analyse at once

    def analyse(self, request: Request) -> dict:
        started = time.perf_counter()
        try:
            network = self.load(request.text)
            dot = to_digraph(network, depth=request.depth, shapes=request.shapes, cost=request.cost)
            result = {"ok": True, "svg": self.diagram(dot), "table": summary_table(network.summary()),
                      "id": self._keep(network), "params": network.params, "macs": network.macs}
        except CnnDslError as error:
            result = {"ok": False, "error": self.located(error, request.text)}
        result["ms"] = round((time.perf_counter() - started) * 1000, 1)
        return result

    def diagram(self, dot) -> str:
        """The laid-out SVG; a note instead when the diagram is too large to redraw at every keystroke
        (`relu x 20000` would take Graphviz 20 s and the page 20 MB)."""
        if len(dot.body) > MAX_DRAWN:
            return (f'<p class="too-large">This diagram has {len(dot.body):,} boxes and arrows, more than the page '
                    f"redraws as you type ({MAX_DRAWN:,}): choose a smaller depth.</p>")
        if dot.source != self.last_drawn[0]:  # an edit of a comment or of another network draws the same
            svg = self.layout.svg(dot.source)
            self.last_drawn = (dot.source, svg[svg.index("<svg"):])
        return self.last_drawn[1]

    def load(self, text: str) -> Network:
        # Not cnndsl.parse, which resolves imports from the current folder, nor Loader.load_text with a
        # path, which would cache every keystroke's tree on disk: the uncached tree, bound in the file's folder.
        file = str(self.path)
        program = parse_text(text, file)
        module = Loader()._bind(program, self.path.parent)
        return _instantiate(module, self.network, file, text, self.input_shape, DEFAULT_MAX_NODES, {})

    def located(self, error: CnnDslError, text: str) -> dict:
        """The error as the page shows it; `here` when it points into the edited text."""
        here = error.pos is not None and error.pos.file == str(self.path)
        return {"message": error.message, "hint": error.hint, "here": here,
                "line": error.pos.line if error.pos else None, "column": error.pos.column if error.pos else None,
                "where": str(error.pos) if error.pos else None, "rendered": error.render(text if here else None)}

    def explain(self, network_id: int, layer: str) -> Optional[dict]:
        """The learner's view of the named layer of a kept network; None when either is gone."""
        network = self.kept.get(network_id)
        if network is None:
            return None
        graph = network.graph
        node = next((node for node in graph.nodes if graph.nodes[node]["name"] == layer), None)
        return None if node is None else explain(graph, node)

    def _keep(self, network: Network) -> int:
        with self._keeping:
            network_id = next(self._ids)
            self.kept[network_id] = network
            while len(self.kept) > KEPT:
                self.kept.popitem(last=False)
        return network_id
