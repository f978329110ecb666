"""Costs per node, written into each layer's Figures (cnndsl/graph/ir.py): params, MACs, activation memory, receptive field.

Only C×H×W tensors and vectors have a receptive field; a layer that makes another shape, or moves values
between the spatial axes and the others (`keeps_positions`), has none (None, shown "—"), nor has what follows.

MACs count convolutions and fully connected layers (the torchvision convention); FLOPs are
reported as 2·MACs and labelled as such. Receptive field over a DAG takes the largest over
all paths into a node.
"""

from __future__ import annotations

import networkx as nx

from ..core.errors import LimitProblem
from ..core.records import FrozenRecord
from ..graph import ir
from ..graph.ir import Figures, walk
from ..ops import numel
from .receptive_field import IDENTITY, Budget, axis_after

BYTES_PER_VALUE = 4  # float32


class Totals(FrozenRecord):
    """`params` counts every layer; `eval_params`, `macs` and `memory_bytes` the eval forward's, which leaves out
    the layers only a `train output` needs (as Ultralytics' `model.info()` and thop count the eval forward)."""

    __slots__ = ("params", "macs", "memory_bytes", "param_bytes", "eval_params")

    def __init__(self, params: int, macs: int, memory_bytes: int, param_bytes: int, eval_params: int) -> None:
        self._set(params, macs, memory_bytes, param_bytes, eval_params)

    @property
    def flops(self) -> int:
        return 2 * self.macs


def annotate(graph: nx.DiGraph) -> nx.DiGraph:
    """Write each layer's Figures (params, macs, memory_bytes, rf, jump), in topological order."""
    axes: dict = {}  # node -> its receptive_field.Axis per spatial axis, while annotating
    done: dict[int, Figures] = {}
    budget = Budget()
    for node, layer, kind, sources, shapes in walk(graph):
        attrs, shape = layer.attrs, layer.shape
        params = kind.params(attrs, shapes) if shapes and layer.shares is None else 0  # `shared`: counted once
        macs = kind.macs(attrs, shapes, shape) if shapes else 0
        memory = numel(shape) * BYTES_PER_VALUE
        read = sources if kind.tap_values else sources[:1]
        window = kind.window(attrs, shapes) if shapes else None
        if not _has_positions(read, done, shape) or (shapes and not kind.keeps_positions(attrs, shapes)):
            # no receptive field: a tensor that is neither C×H×W nor a vector, or one made from such a tensor
            layer.figures = done[node] = Figures(params, macs, memory, None, None)
            continue
        if window is None and len(read) == 1 and shapes[0][1:] == shape[1:]:
            # a pointwise layer (most of a network) reads position o at o: its input's maps, rf and jump
            axes[node] = axes[read[0]]
            before = done[read[0]]
            layer.figures = done[node] = Figures(params, macs, memory, before.rf, before.jump)
            continue
        try:
            axes[node] = height, width = _axes(read, shapes, shape, window, kind.offsets(attrs, shapes), axes, budget)
            rf = (height.field(budget),) * 2 if height is width else (height.field(budget), width.field(budget))
        except LimitProblem as error:
            raise error.at(layer.pos) from None
        jump = (height.jump, width.jump)
        layer.figures = done[node] = Figures(params, macs, memory, rf, jump)
    return graph


def _has_positions(sources, done: dict, shape) -> bool:
    """Whether a layer's output has a receptive field: it is C×H×W or a vector, and every input it reads
    values of has one."""
    return len(shape) in (1, 3) and all(done[source].rf is not None for source in sources)


def _axes(sources, source_shapes, shape, window, offsets, axes, budget):
    """The node's index maps per axis (cnndsl/receptive_field.py) from those of the inputs it reads values of;
    where every input and the window are the same along both axes (a square network), the map is worked out once."""
    if not sources:
        return (IDENTITY, IDENTITY)

    def size(shape, axis):
        return shape[axis + 1] if len(shape) == 3 else 1  # a vector is one position

    def along(axis):
        return axis_after(
            [
                (axes[source][axis], size(source_shapes[index], axis), offsets[index][axis])
                for index, source in enumerate(sources)
            ],
            window,
            size(shape, axis),
            axis,
            budget,
        )

    first = along(0)
    square = (
        size(shape, 0) == size(shape, 1)
        and _symmetric(window)
        and all(
            axes[source][0] is axes[source][1]
            and offsets[index][0] == offsets[index][1]
            and size(source_shapes[index], 0) == size(source_shapes[index], 1)
            for index, source in enumerate(sources)
        )
    )
    return (first, first if square else along(1))


def _symmetric(window) -> bool:
    """The window reads alike along both axes."""
    return window is None or all(
        pair[0] == pair[1] for pair in (window.kernel, window.stride, window.dilation, window.upsample, window.padding)
    )


DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
OPTIMIZER_STATES = {"sgd": 0, "sgd-momentum": 1, "adam": 2}  # values kept per parameter beside its gradient


def saved_activations(graph: nx.DiGraph) -> int:
    """Values backward keeps per image (an estimate): what each layer's kind says it keeps (`backward_keeps`
    outputs), except for layers the torch backend runs in place over an input nothing else reads."""
    info = ir.network_info(graph)
    outputs = {output for _, output in info.outputs + info.train_outputs}
    total = 0
    for _, layer, kind, sources, _ in walk(graph):
        in_place = (
            kind.torch_in_place
            and bool(sources)
            and ir.layer(graph, sources[0]).kind.torch_overwritable
            and graph.out_degree(sources[0]) == 1
            and sources[0] not in outputs
        )
        if not in_place:
            total += numel(layer.shape) * kind.backward_keeps
    return total


def training_bytes(saved: int, params: int, batch: int, dtype: str, optimizer: str) -> int:
    """Estimated memory of one training step: the `saved_activations` kept for backward, weights, gradients and
    optimizer state (the count of saved values is taken once, as it is the same for every optimizer)."""
    return DTYPE_BYTES[dtype] * (batch * saved + params * (2 + OPTIMIZER_STATES[optimizer]))


def totals(graph: nx.DiGraph) -> Totals:
    training = ir.training_only(graph)
    figures = [layer.figures for node, layer in ir.layers(graph) if node not in training]
    eval_params = sum(each.params for each in figures)
    params = eval_params + sum(ir.layer(graph, node).figures.params for node in training)
    macs = sum(each.macs for each in figures)
    inputs = ir.network_info(graph).inputs
    memory = sum(each.memory_bytes for each in figures) - sum(ir.layer(graph, n).figures.memory_bytes for n in inputs)
    return Totals(params, macs, memory, params * BYTES_PER_VALUE, eval_params)


def scalar(value) -> int | float | list | None:
    """rf/jump for reports: one number when both axes agree, else [h, w]; whole numbers as int; None where the
    layer has none (a tensor that is neither C×H×W nor a vector)."""
    if value is None:
        return None
    values = [int(v) if float(v).is_integer() else float(v) for v in value]
    return values[0] if values[0] == values[1] else values
