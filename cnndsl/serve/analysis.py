"""The editor's text, analysed for the page: the diagram, the summary table, or the located errors.

Each keystroke is a new text, so it is parsed without the on-disk parse cache, and only in the definition
it changed (cnndsl/serve/parsing.py); imports resolve from the served file's folder, as they would when
the file is loaded from disk. A text seen again (a toggle of the diagram's options, an undo) reuses its
analysis, and Graphviz lays out the diagram in its own process while the table is made.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..api import Network, instantiate
from ..backends.diagram_options import FIGURE_OPTIONS, DiagramOptions
from ..backends.graphviz import to_digraph
from ..core.errors import CnnDslError
from ..embed import summary_table
from ..front import syntax as ast
from ..front.load import Loader
from ..graph import ir
from ..graph.expand import DEFAULT_MAX_NODES
from .explain import explain
from .layout import DotProcess
from .parsing import PieceParser

KEPT = 8  # analysed networks kept for the learner's view of their layers, and texts' parses kept
MAX_DRAWN = 3000  # DOT statements (boxes, arrows, clusters); the library's largest, GoogLeNet, has 781


@dataclass(frozen=True)
class Request:
    """What the page asks for: the text and the diagram's options (those a page may set: FIGURE_OPTIONS)."""

    text: str
    diagram: DiagramOptions = DiagramOptions()

    @classmethod
    def from_json(cls, body: dict) -> Request:
        """The request a page's JSON body makes (`{"text": ..., "depth": 1, "shapes": true}`); a bad option's
        value is a ValueProblem, the layout's time is the server's to set."""
        return cls(
            body["text"],
            DiagramOptions(**{item.name: item.from_json(body.get(item.name, item.default)) for item in FIGURE_OPTIONS}),
        )

    def to_message(self) -> dict:
        """As JSON for the worker process; `from_json` reads it back."""
        return {"text": self.text, **self.diagram.figure()}


class Analyser:
    """Analyses texts as the served file; keeps the last few networks for `explain`."""

    def __init__(self, path: Path, network: str | None, input_shape: tuple | None):
        self.path = path
        self.network = network
        self.input_shape = input_shape
        self.kept: OrderedDict[int, tuple[str | None, Network]] = OrderedDict()  # id -> (text if reusable, network)
        self.parsed: OrderedDict[str, ast.Program] = OrderedDict()
        self.pieces = PieceParser(str(path))
        self.layout = DotProcess()
        self.drawing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cnndsl-layout")
        self.last_drawn = ("", "")  # (DOT, SVG) of the last diagram laid out
        self._ids = itertools.count(1)
        self._keeping = threading.Lock()  # two pages (tabs) may analyse at once

    def close(self) -> None:
        """Stop the layout thread and the `dot` process (the server calls it as it shuts down)."""
        self.drawing.shutdown()
        self.layout.close()

    def analyse(self, request: Request) -> dict:
        started = time.perf_counter()
        try:
            network_id, network = self.analysed(request.text)
            dot = to_digraph(network, **request.diagram.figure())
            drawn = self.drawing.submit(self.diagram, dot)  # `dot` lays it out on the other core meanwhile
            try:
                table = summary_table(network.summary())
            finally:
                svg = drawn.result()
            result = {
                "ok": True,
                "svg": svg,
                "table": table,
                "id": network_id,
                "params": network.params,
                "macs": network.macs,
            }
        except CnnDslError as error:
            result = {"ok": False, "error": self.located(error, request.text)}
        result["ms"] = round((time.perf_counter() - started) * 1000, 1)
        return result

    def diagram(self, dot) -> str:
        """The laid-out SVG; a note instead when the diagram is too large to redraw at every keystroke
        (`relu x 20000` would take Graphviz 20 s and the page 20 MB)."""
        if len(dot.body) > MAX_DRAWN:
            return (
                f'<p class="too-large">This diagram has {len(dot.body):,} boxes and arrows, more than the page '
                f"redraws as you type ({MAX_DRAWN:,}): choose a smaller depth.</p>"
            )
        if dot.source != self.last_drawn[0]:  # an edit of a comment or of another network draws the same
            svg = self.layout.svg(dot.source)
            self.last_drawn = (dot.source, svg[svg.index("<svg") :])
        return self.last_drawn[1]

    def analysed(self, text: str) -> tuple[int, Network]:
        """The text's network and its id for `explain`: the one analysed before when the text was, unless it
        imports a file, which may have changed on disk since (the library's files do not)."""
        with self._keeping:
            for network_id, (seen, network) in self.kept.items():
                if seen == text:
                    self.kept.move_to_end(network_id)
                    return network_id, network
        network = self.load(text)
        reusable = not any(item.is_path for item in self.parse(text).imports)
        return self._keep(text if reusable else None, network), network

    def load(self, text: str) -> Network:
        # Not cnndsl.parse, which resolves imports from the current folder, nor Loader.load_text with a
        # path, which would cache every keystroke's tree on disk: the tree kept in memory, bound in the file's folder.
        file = str(self.path)
        module = Loader().bind(self.parse(text), self.path.parent)
        return instantiate(module, self.network, file, text, self.input_shape, DEFAULT_MAX_NODES, {})

    def parse(self, text: str) -> ast.Program:
        """The text's syntax tree, kept for the last few texts (nothing changes a tree once made); a new text
        is parsed only where it differs from the one before, a definition at a time."""
        with self._keeping:
            program = self.parsed.get(text)
            if program is not None:
                self.parsed.move_to_end(text)
                return program
        program = self.pieces.parse(text)
        with self._keeping:
            self.parsed[text] = program
            while len(self.parsed) > KEPT:
                self.parsed.popitem(last=False)
        return program

    def located(self, error: CnnDslError, text: str) -> dict:
        """The error as the page shows it; `here` when it points into the edited text."""
        here = error.pos is not None and error.pos.file == str(self.path)
        return {
            "message": error.message,
            "hint": error.hint,
            "here": here,
            "line": error.pos.line if error.pos else None,
            "column": error.pos.column if error.pos else None,
            "where": str(error.pos) if error.pos else None,
            "rendered": error.render(text if here else None),
        }

    def explain(self, network_id: int, layer: str) -> dict | None:
        """The learner's view of the named layer of a kept network; None when either is gone."""
        kept = self.kept.get(network_id)
        if kept is None:
            return None
        graph = kept[1].graph
        node = next((node for node, record in ir.layers(graph) if record.name == layer), None)
        return None if node is None else explain(graph, node)

    def _keep(self, text: str | None, network: Network) -> int:
        with self._keeping:
            network_id = next(self._ids)
            self.kept[network_id] = (text, network)
            while len(self.kept) > KEPT:
                self.kept.popitem(last=False)
        return network_id
