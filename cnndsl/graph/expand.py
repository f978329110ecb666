"""AST -> graph IR: the Expander walks a network's statements and adds layers to a GraphBuilder.

Shapes are inferred as each node is added, because the language reads them while expanding (`in.c`, a conv that
keeps its input's width, the projection a residual needs). The statements are expanded by handlers grouped by
what they do: expand_calls (layers, blocks, defaults), expand_joins (residual, dense, branch, scale),
expand_flow (stages, repetitions, for, if, let) and expand_taps (input, taps, outputs); bind.py binds arguments.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from .. import ops
from ..core.errors import (
    CnnDslError,
    LimitProblem,
    NameProblem,
    Note,
    ShapeProblem,
    SourcePos,
    SourceWarning,
    ValueProblem,
)
from ..front import syntax as ast
from ..front.evaluate import BlockRef, Evaluator, NetworkRef
from .bind import bind_parameters, resolve_network, show_value
from .dead_paths import dead_path_warnings
from .expand_calls import Calls
from .expand_flow import ControlFlow
from .expand_joins import Joins
from .expand_shared import Sharing
from .expand_taps import Points, check_bare_override, check_inputs
from .frame import DEFAULT_MAX_NODES, MAX_DEPTH, STEPS_PER_NODE, Frame
from .ir import GraphBuilder, NetworkInfo, computed_from, layer

__all__ = ["DEFAULT_MAX_NODES", "STATEMENTS", "BlockRef", "Expander", "NetworkRef", "bind_parameters", "expand_network"]


class Expander(Calls, Joins, ControlFlow, Points, Sharing):
    """Expands statements at a cursor (the tensor being built) into the builder's graph."""

    def __init__(self, builder: GraphBuilder, input_override: tuple | dict | None = None):
        self.builder = builder
        self.graph = builder.graph
        self.info = builder.info
        self.layers = builder.layers
        self.input_override = input_override  # `--input`: a shape for the first input, or {label: shape}
        self.cursor: int | None = None
        self.pending_edge = "sequence"
        self.called_block: Frame | None = None  # the frame of the block call just expanded, for `@b.t`
        self.evaluate = Evaluator(self._incoming)
        self.depth = 0
        self.steps = STEPS_PER_NODE * builder.max_nodes + 10_000
        self.steps_left = self.steps
        self.errors: list[CnnDslError] | None = None  # a list: record each statement's error and go on (check)
        self.warnings: list[SourceWarning] = builder.info.warnings
        self.train_output_at: SourcePos | None = None  # the first `train output`, for an error about it
        self.single_layers: set[int] = set()  # nodes labelled as one layer (`head: conv3x3(64)`): `shared` may use them

    # ---- the tensor being built -------------------------------------------------
    def _incoming(self, attr: str, pos: SourcePos) -> int:
        shape = self._current_shape(pos)
        axes = {"c": 0, "h": 1, "w": 2} if len(shape) == 3 else {"c": 0}
        if attr not in axes:
            raise NameProblem(
                f"`in.{attr}` is not defined for a {ops.format_shape(shape)} tensor", pos, "use in.c, in.h or in.w"
            )
        return shape[axes[attr]]

    def _current_shape(self, pos: SourcePos) -> tuple:
        if self.cursor is None:
            raise ShapeProblem("there is no tensor here yet", pos, "start the network with `input 3x224x224`")
        return self.layers[self.cursor].shape

    def add_node(
        self, kind: ops.OpKind, attrs: dict, pos: SourcePos, frame: Frame, inputs: list[tuple[int, str]]
    ) -> int:
        sources = [source for source, _ in inputs]
        if len(sources) > 1 and len(set(sources)) != len(sources):
            raise ShapeProblem(f"`{kind.name}` joins the same tensor with itself", pos, "join two different points")
        shapes = [self.layers[source].shape for source in sources]
        try:
            kind.check_rank(shapes[0])
            attrs = kind.resolve(attrs, shapes)
            shape = ops.base.ranked(kind, kind.shape(attrs, shapes))
        except CnnDslError as error:
            raise error.at(pos)
        self.cursor = self.builder.add(kind, attrs, shape, pos, frame.group, inputs)
        self.pending_edge = "sequence"
        return self.cursor

    def add_layer(self, name: str, pos: SourcePos, frame: Frame, extra: list[tuple[int, str]] = (), **attrs) -> int:
        """A node the structure adds by itself: an add, a concat, a projection conv."""
        kind, preset = ops.lookup(name)
        bound = kind.bind([], attrs, preset)
        return self.add_node(kind, bound, pos, frame, [(self.cursor, self.pending_edge), *extra])

    # ---- statements -----------------------------------------------------------------
    def seq(self, seq: ast.Seq, frame: Frame) -> None:
        self.depth += 1
        try:
            for stmt in seq.stmts:
                if self.depth > MAX_DEPTH:
                    raise LimitProblem(
                        f"bodies and block calls nest more than {MAX_DEPTH} deep",
                        stmt.pos,
                        "flatten the structure, or give a recursive block a condition that stops it",
                    )
                self._step(stmt.pos)
                try:
                    self.statement(stmt, frame)
                except CnnDslError as error:
                    if self.errors is None or isinstance(error, LimitProblem):
                        raise
                    self._record(error)
        finally:
            self.depth -= 1

    def statement(self, stmt: ast.Stmt, frame: Frame) -> None:
        """Expand one statement by the handler its syntax class has in STATEMENTS."""
        handler = STATEMENTS.get(type(stmt))
        if handler is None:  # a syntax class with no handler is a bug of cnndsl, said with its place
            raise ValueProblem(
                f"cnndsl cannot expand a `{type(stmt).__name__}` statement yet",
                stmt.pos,
                "please report this with the file",
            )
        handler(self, stmt, frame)

    def _record(self, error: CnnDslError) -> None:
        """Keep a statement's error and go on with the next one. After a first error, shape errors are left
        out, since a skipped layer changes every shape after it; each place is reported once."""
        if self.errors and isinstance(error, ShapeProblem):
            return
        if not any(seen.pos == error.pos and seen.message == error.message for seen in self.errors):
            self.errors.append(error)

    def _step(self, pos: SourcePos) -> None:
        """Count a statement or loop turn; loops that add no nodes must end too."""
        self.steps_left -= 1
        if self.steps_left < 0:
            raise self._too_many_steps(pos)

    def _too_many_steps(self, pos: SourcePos) -> LimitProblem:
        return LimitProblem(
            f"expanding takes more than {self.steps:,} steps ({STEPS_PER_NODE} per node of the "
            f"limit of {self.builder.max_nodes:,})",
            pos,
            "check the loop bounds, or raise the limit with --max-nodes",
        )


STATEMENTS = {
    ast.Layer: Expander._Layer,
    ast.Group: Expander._Group,
    ast.Stage: Expander._Stage,
    ast.Residual: Expander._Residual,
    ast.Dense: Expander._Dense,
    ast.Branch: Expander._Branch,
    ast.Scale: Expander._Scale,
    ast.Input: Expander._Input,
    ast.Jump: Expander._Jump,
    ast.Repeat: Expander._Repeat,
    ast.Labeled: Expander._Labeled,
    ast.Let: Expander._Let,
    ast.Defaults: Expander._Defaults,
    ast.For: Expander._For,
    ast.If: Expander._If,
    ast.Output: Expander._Output,
}


def expand_network(
    ref: NetworkRef,
    overrides: dict[str, Any],
    input_override: tuple | dict | None,
    max_nodes: int,
    errors: list[CnnDslError] | None = None,
) -> nx.DiGraph | None:
    """Instantiate a network with its parameters and build its graph; its warnings go to its NetworkInfo.

    With an `errors` list (check), each statement's error is recorded there and expansion goes on; the graph
    is then None when any was recorded."""
    try:
        return _expand(ref, overrides, input_override, max_nodes, errors)
    except CnnDslError as error:
        if isinstance(ref.definition, ast.NetworkAlias) and error.pos != ref.definition.pos:
            error.notes.append(
                Note(
                    ref.definition.pos, f"in network `{ref.definition.name}`, an instance of `{ref.definition.target}`"
                )
            )
        raise


def _expand(
    ref: NetworkRef,
    overrides: dict[str, Any],
    input_override: tuple | dict | None,
    max_nodes: int,
    errors: list[CnnDslError] | None,
) -> nx.DiGraph | None:
    definition, env, bound = resolve_network(ref, overrides)
    info = NetworkInfo(
        definition.name if not isinstance(ref.definition, ast.NetworkAlias) else ref.definition.name,
        definition.pos.file,
        params={name: show_value(value) for name, value in bound.values.items()},
        param_values=dict(bound.values),
    )
    builder = GraphBuilder(info, max_nodes)
    expander = Expander(builder, input_override)
    expander.errors = errors
    frame = Frame(bound, builder.root, {})
    declared = _declared_inputs(definition.body)
    check_bare_override(declared, input_override, definition.pos)
    if isinstance(input_override, tuple) and not declared:
        expander._Input(ast.Input(definition.pos, [ast.Number(definition.pos, d) for d in input_override]), frame)
    try:
        expander.seq(definition.body, frame)
    except Exception:
        if not errors:
            raise
        return None  # a state that follows an error already recorded: what was found is reported
    if errors:
        return None
    if info.input is None:
        raise ShapeProblem(
            f"network `{definition.name}` declares no input",
            definition.pos,
            "add `input 3x224x224` as its first line, or pass --input",
        )
    check_inputs(info, builder.layers, input_override, definition.pos)
    if not info.outputs:
        if info.train_outputs:
            raise NameProblem(
                "a network with a `train output` names its eval outputs too",
                expander.train_output_at,
                "add `output @a` for what the network returns in eval mode",
            )
        info.outputs.append(("output", expander.cursor))
    graph = builder.finish()
    _check_train_inputs(graph, info)
    info.warnings.extend(dead_path_warnings(graph, info))
    return graph


def _check_train_inputs(graph: nx.DiGraph, info: NetworkInfo) -> None:
    """A `train input` is what the training forward alone takes: no layer the eval forward runs may read it."""
    evaluated = computed_from({node for _, node in info.outputs}, graph)
    for node in info.train_inputs:
        reader = next((after for after in sorted(graph.successors(node)) if after in evaluated), None)
        if reader is not None:
            read = layer(graph, reader)
            raise ValueProblem(
                f"`{layer(graph, node).tap or 'input'}` is a `train input`, yet `{read.name}` reads it in the eval "
                "forward",
                read.pos,
                "read a train input only on the way to a `train output`, or declare it `input`",
            )


def _declared_inputs(body: ast.Seq) -> list[str]:
    """The labels (`input` where none) of the inputs the network's body declares at its top, `train input`s
    left out."""
    names = []
    for stmt in body.stmts:
        label = stmt.label if isinstance(stmt, ast.Labeled) else None
        while isinstance(stmt, ast.Labeled):
            stmt = stmt.item
        if isinstance(stmt, ast.Input) and not stmt.training:  # a bare --input is never a `train input`'s
            names.append(label or "input")
    return names
