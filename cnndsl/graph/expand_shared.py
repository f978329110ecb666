"""Expanding `shared(@t)`: the layer labelled t used again, one module and one set of weights for both uses.

Sharing is written, never inferred: two layers with equal arguments are two modules. The new use is a node of
its own (its own name, shape and figures) whose `shares` names the labelled layer; it holds no weights, so the
parameters are counted once, torch calls the one module twice, ONNX reads one initializer and `--to python`
writes one attribute.
"""

from __future__ import annotations

from .. import ops
from ..core.errors import CnnDslError, NameProblem, ShapeProblem, ValueProblem
from ..front import syntax as ast
from ..front.evaluate import Tap
from .frame import Frame
from .ir import input_shapes

SHARED = "shared"  # the call that uses a labelled layer again


class Sharing:
    """The Expander's `shared(@t)`."""

    def _call_shared(self, stmt: ast.Layer, frame: Frame) -> None:
        positional, keywords, taps = self._arguments(stmt, frame)
        if len(taps) != 1 or positional or keywords:
            raise ValueProblem(
                "`shared` takes one @tap, the labelled layer to use again",
                stmt.pos,
                "label the layer, `head: conv3x3(64)`, then write `shared(@head)` where it is used again",
            )
        (tap,) = taps
        node = self._shareable(tap, frame)
        record = self.layers[node]
        kind, source = record.kind, self._require_cursor(stmt.pos)
        made_for, given = input_shapes(self.graph, node), [self.layers[source].shape]
        label = f"`{kind.name}` {tap!r}"
        try:
            kind.check_rank(given[0])
            same = len(given[0]) == len(made_for[0]) and kind.tensors(record.attrs, given) == kind.tensors(
                record.attrs, made_for
            )
            shape = ops.base.ranked(kind, kind.shape(record.attrs, given)) if same else None
        except CnnDslError:
            same = False
        if not same:
            raise ShapeProblem(
                f"`shared({tap!r})` cannot use {label}, made for {ops.format_shape(made_for[0])}, on "
                f"{ops.format_shape(given[0])}: its weights would differ",
                stmt.pos,
                "share a layer where its input has the channels (and axes) it was made for",
            )
        self.cursor = self.builder.add(kind, record.attrs, shape, stmt.pos, frame.group, [(source, self.pending_edge)])
        self.layers[self.cursor].shares = record.shares if record.shares is not None else node
        self.pending_edge = "sequence"

    def _shareable(self, tap: Tap, frame: Frame) -> int:
        """The node of a tap that labels one layer holding weights."""
        node = self._tap(tap, frame)
        if node not in self.single_layers:
            raise NameProblem(
                f"`{tap!r}` labels {'the input' if node in self.info.inputs else 'a group or block'}, not one layer",
                tap.pos,
                "`shared` uses one layer again: label that layer itself, e.g. `head: conv3x3(64)`",
            )
        record = self.layers[node]
        if not record.kind.tensors(record.attrs, input_shapes(self.graph, node)):
            raise ValueProblem(
                f"`{record.kind.name}` {tap!r} holds no weights: there is nothing to share",
                tap.pos,
                f"write `{record.kind.name}` again: without weights, two uses are the same layer",
            )
        return node
