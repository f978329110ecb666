"""The Python API: `parse(text)` and `load(path_or_name)` return a Network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx

from .backends.diagram_options import DiagramOptions, target_format
from .core.errors import FileProblem, LimitProblem, NameProblem, ShapeProblem, ValueProblem, did_you_mean
from .core.resources import memory_bytes
from .figures import costs as analysis
from .figures.costs import DTYPE_BYTES
from .figures.report import Summary
from .front.load import Loader, Module, library_index
from .graph import ir
from .graph.expand import DEFAULT_MAX_NODES, NetworkRef, expand_network


class Network:
    """One expanded network: its graph IR, its source, and what can be made from it."""

    def __init__(self, graph: nx.DiGraph, source: str):
        self.graph = graph
        self.source = source
        self.totals = analysis.totals(graph)

    @property
    def name(self) -> str:
        """The network's name (`resnet50`)."""
        return ir.network_info(self.graph).name

    @property
    def file(self) -> str:
        """The source file it was read from, or `<string>`."""
        return ir.network_info(self.graph).file

    @property
    def input_shape(self) -> tuple:
        """The input without the batch: (C, H, W) or (N,)."""
        return ir.layer(self.graph, ir.network_info(self.graph).input).shape

    @property
    def input_name(self) -> str:
        """The input's tap name, or `input`: the name of the ONNX graph input."""
        return ir.layer(self.graph, ir.network_info(self.graph).input).tap or "input"

    @property
    def inputs(self) -> list[tuple[str, tuple]]:
        """(name, shape without the batch) of each input, in the order the forward takes them (the `train input`s
        last); most have one."""
        return self._named(ir.forward_inputs(self.graph))

    @property
    def eval_inputs(self) -> list[tuple[str, tuple]]:
        """(name, shape) of each input the eval forward takes (ONNX's, pt2's): every one but the `train input`s."""
        return self._named(ir.eval_inputs(self.graph))

    def _named(self, nodes: list[int]) -> list[tuple[str, tuple]]:
        return [(ir.layer(self.graph, node).tap or "input", ir.layer(self.graph, node).shape) for node in nodes]

    def require_one_input(self, command: str) -> None:
        """Refuse, at the second input, a command that feeds a network one tensor (train, predict, serve); a
        `train input` is optional, so not counted."""
        nodes = ir.eval_inputs(self.graph)
        if len(nodes) > 1:
            raise ShapeProblem(
                f"{command} feeds a network one input, and `{self.name}` has {len(nodes)} "
                f"({', '.join(name for name, _ in self.eval_inputs)})",
                ir.layer(self.graph, nodes[1]).pos,
                "compile it (--to python, onnx or pt2) and feed its inputs from your own code",
            )

    @property
    def outputs(self) -> list[tuple[str, int]]:
        """(name, graph node) of each output, in order."""
        return list(ir.network_info(self.graph).outputs)

    @property
    def params(self) -> int:
        """Learnable parameters, exactly (batch-norm running statistics are buffers, not counted)."""
        return self.totals.params

    @property
    def macs(self) -> int:
        """Multiply-accumulates of convolutions and fully connected layers for one image."""
        return self.totals.macs

    @property
    def flops(self) -> int:
        """2 x MACs, as FLOPs are usually counted."""
        return self.totals.flops

    def summary(self, depth: int | None = None, batch: int = 1, dtype: str = "float32"):
        """Per-layer and total figures (`str()` is the table); `depth` folds deeper groups, `batch` and `dtype`
        scale the memory figures."""

        if dtype not in DTYPE_BYTES:
            raise ValueProblem(f"unknown dtype `{dtype}`", hint=f"choose one of {', '.join(DTYPE_BYTES)}")
        return Summary.of(self, depth=depth, batch=batch, dtype=dtype)

    def draw(
        self,
        path: str | Path,
        depth: int | None = None,
        expand: bool = False,
        shapes: bool = False,
        cost: bool = False,
        rankdir: str = "TB",
        layout: str | None = None,
        style: str = "graph",
        timeout: float | None = None,
    ) -> Path:
        """Write the diagram to `path` (.svg, .png, .pdf or .dot, by its suffix), as `cnndsl draw` does; the
        options are backends/diagram_options.py's DiagramOptions (`timeout`: seconds Graphviz may take, by default
        2 s of CPU in all, layout_budget.py; without `depth`, SVG, PNG and PDF are drawn at the deepest level that
        fits a page, diagram_fit.py)."""
        from .backends.diagram_fit import draw

        target = Path(path)
        drawn = DiagramOptions(
            depth=depth,
            expand=expand,
            shapes=shapes,
            cost=cost,
            rankdir=rankdir,
            layout=layout,
            style=style,
            timeout=timeout,
        )
        draw(self, target, target_format(target), drawn)
        return target

    def require_weights_fit(self) -> None:
        """Refuse before allocating torch weights that cannot be built, such as those of a typo like conv(10^9):
        at most half of this machine's memory. (The ONNX backend checks its model's own size.)"""
        limit, holder = memory_bytes() // 2, "half of this machine's memory"
        if self.totals.param_bytes > limit:
            largest = max((layer for _, layer in ir.layers(self.graph)), key=lambda layer: layer.figures.params)
            raise LimitProblem(
                f"`{self.name}` has {self.params:,} parameters ({self.totals.param_bytes / 2**30:,.1f} "
                f"GiB as float32), more than {holder} holds ({limit / 2**30:,.1f} GiB)",
                largest.pos,
                "the largest layer is here: check its width",
            )

    def with_params(self, **changes: Any) -> Network:
        """The same network expanded again with some of its parameters changed (`--to python` checks that its
        classes, given those parameters, build what the network expands to)."""
        overrides = {**ir.network_info(self.graph).param_values, **changes}
        if Path(self.file).is_file():
            return load(self.file, network=self.name, input=self.input_shapes, **overrides)
        return parse(self.source, file=self.file, network=self.name, input=self.input_shapes, **overrides)

    @property
    def input_shapes(self) -> tuple | dict:
        """The inputs as `input=` takes them: the shape of the only one, or {label: shape} of several."""
        inputs = self.inputs
        return inputs[0][1] if len(inputs) == 1 else dict(inputs)

    @property
    def warnings(self) -> list:
        """What builds but is likely not what was meant (a channels-last input, an inferred projection), located."""
        return list(ir.network_info(self.graph).warnings)

    def to_torch(self, weights: Any = None, strict: bool = True, **options):
        """An nn.Module with generated forward code (options: init, zero_init_residual, seed; see docs/torch.md);
        `weights`: a module, a state_dict, a .pt/.pth/.safetensors file or "torchvision" (docs/weights.md),
        all of it matched unless strict=False."""
        from .backends.torch import build_module

        return build_module(self, weights=weights, strict=strict, **options)

    def to_onnx(
        self,
        path: str | Path | None = None,
        weights: Any = None,
        opset: int | None = None,
        fold_bn: bool = False,
        strict: bool = True,
        external_data: bool | None = None,
    ):
        """The ONNX model (weights as for `to_torch`, else fresh); written to `path` if given, returning the files
        written. `external_data`: True puts the tensors in `<file>.data`; None does where one file cannot hold
        them (see docs/onnx.md)."""
        from .backends.onnx import build_model, export_onnx

        if path is None:
            return build_model(
                self, weights=weights, opset=opset, fold_bn=fold_bn, strict=strict, external_data=external_data
            )
        return export_onnx(
            self, path, weights=weights, opset=opset, fold_bn=fold_bn, strict=strict, external_data=external_data
        )

    def _repr_svg_(self) -> str | None:
        """Jupyter shows a network as its diagram, stages open and blocks collapsed (`depth=2`);
        without Graphviz's `dot` it returns None and Jupyter falls back to the text repr."""
        from .backends.graphviz import svg

        try:
            return svg(self, depth=2)
        except FileProblem:
            return None

    def __repr__(self) -> str:
        return f"<Network {self.name}: input {self.input_shape}, {self.params:,} params, {self.macs:,} MACs>"


def parse(
    text: str,
    file: str = "<string>",
    network: str | None = None,
    input: tuple | dict | None = None,
    max_nodes: int = DEFAULT_MAX_NODES,
    sandbox: bool = False,
    **params: Any,
) -> Network:
    """Parse .cnn text and expand one of its networks (the only one, or the one named).

    `sandbox=True` limits its imports to the current folder (and below) and the library.
    """
    module = Loader(sandbox=sandbox).load_text(text, file)
    return instantiate(module, network, file, text, input, max_nodes, params)


def load(
    source: str | Path,
    network: str | None = None,
    input: tuple | dict | None = None,
    max_nodes: int = DEFAULT_MAX_NODES,
    sandbox: bool = False,
    **params: Any,
) -> Network:
    """Load a .cnn file, or a network of the shipped library by name (`resnet50`).

    `sandbox=True` limits every import to the importing file's folder (and below) and the library.
    """
    path = Path(source)
    if not path.exists() and not path.is_symlink() and not str(source).endswith(".cnn") and "/" not in str(source):
        index = library_index()
        if str(source) not in index:
            raise NameProblem(
                f"`{source}` is neither a file nor a library network",
                hint=did_you_mean(str(source), index) or "run `cnndsl list` to see the library",
            )
        path, network = index[str(source)], network or str(source)
    module = Loader(sandbox=sandbox).load_path(path)
    return instantiate(module, network, str(path), module.program.text, input, max_nodes, params)


def instantiate(
    module: Module, network: str | None, file: str, text: str, input: tuple | dict | None, max_nodes: int, params: dict
) -> Network:
    """The network of a bound module that `parse` and `load` would choose, expanded and analysed; `file` and
    `text` are the names and source its errors and `Network.source` show. For callers that bind a text themselves."""
    ref = _choose(module, network, file)
    given = {name: tuple(shape) for name, shape in input.items()} if isinstance(input, dict) else input
    graph = expand_network(ref, params, tuple(given) if isinstance(given, (list, tuple)) else given or None, max_nodes)
    analysis.annotate(graph)
    return Network(graph, text)


def _choose(module: Module, network: str | None, file: str) -> NetworkRef:
    """The network asked for; else the one named like the file; else the file's only one."""
    defined = module.networks
    if network is not None:
        try:
            ref = module.env.lookup(network)
        except KeyError:
            ref = None
        if not isinstance(ref, NetworkRef):
            raise NameProblem(
                f"{file} defines no network `{network}`",
                hint=did_you_mean(network, defined) or f"it defines: {', '.join(defined) or 'none'}",
            )
        return ref
    stem = Path(file).stem
    if stem in defined:
        return module.env.lookup(stem)
    if len(defined) == 1:
        return module.env.lookup(defined[0])
    if not defined:
        raise NameProblem(f"{file} defines no network", hint="add `network name { input 3x224x224 ... }`")
    raise NameProblem(
        f"{file} defines several networks ({', '.join(defined)})",
        hint="choose one with --network NAME (or network= in Python)",
    )
