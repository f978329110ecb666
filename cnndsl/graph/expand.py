"""AST -> graph IR: blocks, parameters, repetitions, loops, residuals, dense, branches, taps.

Shapes are inferred as each node is added, because the language reads them while expanding
(`in.c`, a conv that keeps its input's width, the projection a residual needs).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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
    did_you_mean,
)
from ..core.spellings import unknown_layer_hint
from ..front import syntax as ast
from ..front.evaluate import BlockRef, Env, Evaluator, NetworkRef, Tap, no_incoming, shown
from .ir import GraphBuilder, GroupScope

DEFAULT_MAX_NODES = 100_000
MAX_CALL_DEPTH = 64
MAX_DEPTH = 100  # bodies inside bodies, across block calls: keeps the recursive expansion off Python's limit
STEPS_PER_NODE = 4  # statements and loop turns allowed per node of the limit: loops that add nothing still end


@dataclass
class Frame:
    """What a block instance (or the network body) expands within."""

    env: Env
    group: GroupScope
    taps: dict[str, tuple[int, SourcePos]]
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    depth: int = 0
    entry: int | None = None  # the block instance's input (`@in`); None in the network body: its input


class Expander:
    def __init__(self, builder: GraphBuilder):
        self.builder = builder
        self.graph = builder.graph
        self.cursor: int | None = None
        self.pending_edge = "sequence"
        self.evaluate = Evaluator(self._incoming)
        self.depth = 0
        self.steps = STEPS_PER_NODE * builder.max_nodes + 10_000
        self.steps_left = self.steps
        self.errors: list[CnnDslError] | None = None  # a list: record each statement's error and go on (check)
        self.warnings: list[SourceWarning] = []

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
        return self.graph.nodes[self.cursor]["shape"]

    def add_node(
        self, kind: ops.OpKind, attrs: dict, pos: SourcePos, frame: Frame, inputs: list[tuple[int, str]]
    ) -> int:
        sources = [source for source, _ in inputs]
        if len(set(sources)) != len(sources):
            raise ShapeProblem(f"`{kind.name}` joins the same tensor with itself", pos, "join two different points")
        shapes = [self.graph.nodes[source]["shape"] for source in sources]
        try:
            attrs = kind.resolve(attrs, shapes)
            shape = kind.shape(attrs, shapes)
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

    def _turns(self, count: int, pos: SourcePos, what: str):
        """A loop's turn indexes; after the first turn, refuse at once if the rest would pass a limit."""
        for index in range(count):
            nodes, steps = self.graph.number_of_nodes(), self.steps_left
            self._step(pos)
            yield index
            if index == 0:
                self._refuse_rest(self.graph.number_of_nodes() - nodes, steps - self.steps_left, count, pos, what)

    def _refuse_rest(self, nodes: int, steps: int, count: int, pos: SourcePos, what: str) -> None:
        limit = self.builder.max_nodes
        if nodes * (count - 1) > limit - self.graph.number_of_nodes():
            raise LimitProblem(
                f"{count:,} {what} of {nodes:,} node{'s' * (nodes != 1)} each exceed the limit of {limit:,} nodes",
                pos,
                "check the count, or raise the limit with --max-nodes",
            )
        if steps * (count - 1) > self.steps_left:
            raise self._too_many_steps(pos)

    def _Layer(self, stmt: ast.Layer, frame: Frame) -> None:
        try:
            target = frame.env.lookup(stmt.name)
        except KeyError:
            target = None
        if isinstance(target, BlockRef):
            return self._call_block(target, stmt, frame)
        if target is not None:
            raise ValueProblem(f"`{stmt.name}` is {shown(target)}, not a layer or block", stmt.pos)
        found = ops.lookup(stmt.name)
        if found is None or not found[0].called_by_name:
            candidates = set(ops.known_names()) | {
                n for n in frame.env.names() if isinstance(frame.env.lookup(n), BlockRef)
            }
            raise NameProblem(
                f"unknown layer `{stmt.name}`",
                stmt.pos,
                unknown_layer_hint(stmt.name) or did_you_mean(stmt.name, candidates),
            )
        self._call_op(*found, stmt, frame)

    def _call_op(self, kind: ops.OpKind, preset: dict, stmt: ast.Layer, frame: Frame) -> None:
        positional, keywords, taps = self._arguments(stmt, frame)
        if taps and not kind.takes_taps:
            raise ValueProblem(f"`{kind.name}` takes no @tap inputs", taps[0].pos, "only add, concat and mul join taps")
        inputs = [(self._require_cursor(stmt.pos), self.pending_edge)]
        inputs += [(self._tap(tap, frame), kind.tap_edge) for tap in taps]
        try:
            attrs = kind.bind(positional, {**frame.defaults.get(kind.name, {}), **keywords}, preset)
        except CnnDslError as error:
            raise error.at(stmt.pos)
        self.add_node(kind, attrs, stmt.pos, frame, inputs)

    def _arguments(self, stmt: ast.Layer, frame: Frame) -> tuple[list, dict, list[Tap]]:
        positional, keywords, taps = [], {}, []
        for arg in stmt.args:
            value = self.evaluate(arg.value, frame.env)
            if arg.keyword is not None:
                if arg.keyword in keywords:
                    raise NameProblem(f"argument `{arg.keyword}` is given twice", arg.pos)
                keywords[arg.keyword] = value
            elif isinstance(value, Tap):
                taps.append(value)
            else:
                positional.append(value)
        return positional, keywords, taps

    def _require_cursor(self, pos: SourcePos) -> int:
        self._current_shape(pos)
        return self.cursor

    def _tap(self, tap: Tap, frame: Frame) -> int:
        if tap.name == "in":
            entry = self.graph.graph["input"] if frame.entry is None else frame.entry
            if entry is None:
                raise ShapeProblem(
                    "`@in` is the input, which is not declared yet", tap.pos, "start the network with `input 3x224x224`"
                )
            return entry
        if tap.name not in frame.taps:
            raise NameProblem(
                f"undefined tap `@{tap.name}`",
                tap.pos,
                did_you_mean(tap.name, frame.taps) or "label a point first, e.g. `enc1: conv3x3(64)`",
            )
        return frame.taps[tap.name][0]

    def _call_block(self, block: BlockRef, stmt: ast.Layer, frame: Frame) -> None:
        if frame.depth >= MAX_CALL_DEPTH:
            raise LimitProblem(
                f"blocks call each other more than {MAX_CALL_DEPTH} deep",
                stmt.pos,
                "a block that calls itself needs a condition that stops it",
            )
        positional, keywords, taps = self._arguments(stmt, frame)
        if taps:
            raise ValueProblem("a block takes no @tap arguments", taps[0].pos)
        definition = block.definition
        env = bind_parameters(
            definition.name, definition.params, positional, keywords, block.env, self.evaluate, stmt.pos
        )
        group = frame.group.open(definition.name, "block", self._call_label(definition, env), stmt.pos)
        group.call = {
            "block": definition.name,
            "args": {param.name: env.values[param.name] for param in definition.params},
            "defaults": {
                param.name: param.default.value for param in definition.params if isinstance(param.default, ast.Number)
            },
        }
        inner = Frame(env, group, {}, frame.defaults, frame.depth + 1, self.cursor)
        self.seq(definition.body, inner)

    def _call_label(self, definition: ast.BlockDef, env: Env) -> str:
        """`bottleneck(128, s=2)`: required arguments, then only those that differ from their defaults,
        so a diagram's block titles read like the source rather than a dump of every parameter."""
        parts = []
        for param in definition.params:
            value = env.values[param.name]
            if param.default is None:
                parts.append(_show(value))
                continue
            try:
                default = self.evaluate(param.default, env)
            except CnnDslError:
                default = None
            if not self.evaluate.same(value, default):
                parts.append(f"{param.name}={_show(value)}")
        return f"{definition.name}({', '.join(parts)})"

    def _Group(self, stmt: ast.Group, frame: Frame) -> None:
        self.seq(stmt.body, replace(frame, env=frame.env.child()))

    def _Stage(self, stmt: ast.Stage, frame: Frame) -> None:
        group = frame.group.open(stmt.name or "stage", "stage", stmt.name or "stage", stmt.pos)
        self.seq(stmt.body, replace(frame, env=frame.env.child(), group=group))

    def _Residual(self, stmt: ast.Residual, frame: Frame) -> None:
        fork = self._require_cursor(stmt.pos)
        body_out = self._path(stmt.body, frame, "sequence", stmt.pos, "residual")
        self.cursor, self.pending_edge = fork, "skip"
        shortcut_frame = replace(
            frame, env=frame.env.child(), group=frame.group.open("downsample", "downsample", "shortcut", stmt.pos)
        )
        if stmt.shortcut is not None:
            self.seq(stmt.shortcut, shortcut_frame)
        elif self.graph.nodes[fork]["shape"] != self.graph.nodes[body_out]["shape"]:
            self._project(fork, body_out, stmt.pos, shortcut_frame)
        else:
            frame.group.children.pop()  # identity: no downsample group
        shortcut_out = self.cursor
        self.cursor, self.pending_edge = body_out, "sequence"
        self.add_layer("add", stmt.pos, frame, [(shortcut_out, "skip")])

    def _project(self, fork: int, body_out: int, pos: SourcePos, frame: Frame) -> None:
        """The projection shortcut of ResNet: conv1x1 with the body's stride, then bn."""
        source, target = self.graph.nodes[fork]["shape"], self.graph.nodes[body_out]["shape"]
        if len(source) != 3 or len(target) != 3:
            raise ShapeProblem(
                f"a residual cannot project {ops.format_shape(source)} to {ops.format_shape(target)}", pos
            )
        stride = max(1, round(source[1] / target[1]))
        conv = self.add_layer("conv", pos, frame, c=target[0], k=1, s=stride, p=0, bias=False)
        norm = self.add_layer("bn", pos, frame)
        if self.graph.nodes[self.cursor]["shape"] != target:
            raise ShapeProblem(
                f"a residual's body turns {ops.format_shape(source)} into {ops.format_shape(target)}, "
                "which no conv1x1 projection matches",
                pos,
                "write the shortcut explicitly: residual { ... } shortcut { ... }",
            )
        added = sum(self._params_of(node) for node in (conv, norm))
        self.warnings.append(
            SourceWarning(
                f"this residual's shortcut is a projection (conv1x1 with stride {stride} + bn, {added:,} parameters), "
                f"inferred because the body turns {ops.format_shape(source)} into {ops.format_shape(target)}",
                pos,
                "write `shortcut { ... }` to state it, or keep the shape for an identity shortcut",
            )
        )

    def _params_of(self, node: int) -> int:
        data = self.graph.nodes[node]
        sources = [source for source in self.graph.pred[node]]
        return ops.REGISTRY[data["op"]].params(data["attrs"], [self.graph.nodes[s]["shape"] for s in sources])

    def _path(self, body: ast.Seq, frame: Frame, edge: str, pos: SourcePos, what: str) -> int:
        """Expand a sub-sequence from the cursor; it must add at least one layer."""
        start = self.cursor
        self.pending_edge = edge
        self.seq(body, replace(frame, env=frame.env.child()))
        if self.cursor == start:
            raise ValueProblem(f"the {what} body is empty", pos, "give it at least one layer")
        return self.cursor

    def _Dense(self, stmt: ast.Dense, frame: Frame) -> None:
        fork = self._require_cursor(stmt.pos)
        group = frame.group.open("dense", "dense", "dense", stmt.pos)
        inner = replace(frame, group=group)
        new_features = self._path(stmt.body, inner, "sequence", stmt.pos, "dense")
        self.cursor, self.pending_edge = fork, "concat"
        self.add_layer("concat", stmt.pos, inner, [(new_features, "concat")])

    def _Branch(self, stmt: ast.Branch, frame: Frame) -> None:
        fork = self._require_cursor(stmt.pos)
        ends = []
        for path in stmt.paths:
            self.cursor = fork
            group = frame.group.open("branch", "branch", "branch", stmt.pos)
            ends.append(self._path(path, replace(frame, group=group), "branch", stmt.pos, "branch path"))
        self.cursor, self.pending_edge = ends[0], "concat"
        self.add_layer("concat", stmt.pos, frame, [(end, "concat") for end in ends[1:]])

    def _Scale(self, stmt: ast.Scale, frame: Frame) -> None:
        fork = self._require_cursor(stmt.pos)
        group = frame.group.open("scale", "scale", "scale", stmt.pos)
        gate = self._path(stmt.body, replace(frame, group=group), "sequence", stmt.pos, "scale")
        self.cursor, self.pending_edge = fork, "skip"
        self.add_layer("mul", stmt.pos, frame, [(gate, "sequence")])

    def _Input(self, stmt: ast.Input, frame: Frame) -> None:
        if self.cursor is not None:
            raise ShapeProblem("a network has one input, declared before its first layer", stmt.pos)
        dims = tuple(self._dimension(dim, frame) for dim in stmt.dims)
        dims = self.graph.graph.get("input_override") or dims
        if len(dims) not in (1, 3):
            raise ShapeProblem(f"an input is C×H×W or a vector of N, not {ops.format_shape(dims)}", stmt.pos)
        kind = ops.REGISTRY["input"]
        self.cursor = self.builder.add(kind, {}, dims, stmt.pos, frame.group, [])
        self.graph.graph["input"] = self.cursor
        if len(dims) == 3 and dims[2] in (1, 3, 4) and min(dims[0], dims[1]) >= 16:
            self.warnings.append(
                SourceWarning(
                    f"the input {ops.format_shape(dims)} looks channels-last (H×W×C); cnndsl reads C×H×W",
                    stmt.pos,
                    f"for {dims[2]} channels of {dims[0]}×{dims[1]}, write input {dims[2]}x{dims[0]}x{dims[1]}",
                )
            )

    def _dimension(self, dim: ast.Expr, frame: Frame) -> int:
        try:
            return ops.base.whole(self.evaluate(dim, frame.env), "an input dimension")
        except CnnDslError as error:
            raise error.at(dim.pos)

    def _Jump(self, stmt: ast.Jump, frame: Frame) -> None:
        self.cursor = self._tap(Tap(stmt.tap, stmt.pos), frame)
        self.pending_edge = "branch"

    def _Repeat(self, stmt: ast.Repeat, frame: Frame) -> None:
        count = self.evaluate(stmt.count, frame.env)
        try:
            count = ops.base.whole(count, "a repetition count")
        except CnnDslError as error:
            raise error.at(stmt.count.pos)
        if count > self.builder.max_nodes:
            raise LimitProblem(
                f"{count:,} repetitions exceed the limit of {self.builder.max_nodes:,} nodes",
                stmt.count.pos,
                "check the count, or raise the limit with --max-nodes",
            )
        body = ast.Seq([stmt.item])
        for index in self._turns(count, stmt.count.pos, "repetitions"):
            env = frame.env.child(i=index) if stmt.binds_index else frame.env.child()
            self.seq(body, replace(frame, env=env))

    def _Labeled(self, stmt: ast.Labeled, frame: Frame) -> None:
        if stmt.label == "in":
            raise NameProblem(
                "`in` cannot label a point: `@in` is the input of the block", stmt.pos, "choose another label"
            )
        self.statement(stmt.item, frame)
        if stmt.label in frame.taps:
            first = frame.taps[stmt.label][1]
            raise NameProblem(
                f"duplicate tap `{stmt.label}` (first defined at {first})",
                stmt.pos,
                "give each labelled point its own name",
            )
        frame.taps[stmt.label] = (self.cursor, stmt.pos)
        self.graph.nodes[self.cursor]["tap"] = stmt.label

    def _Let(self, stmt: ast.Let, frame: Frame) -> None:
        frame.env.values[stmt.name] = self.evaluate(stmt.value, frame.env)

    def _Defaults(self, stmt: ast.Defaults, frame: Frame) -> None:
        found = ops.lookup(stmt.name)
        if found is None:
            raise NameProblem(
                f"unknown layer `{stmt.name}`",
                stmt.pos,
                unknown_layer_hint(stmt.name) or did_you_mean(stmt.name, ops.known_names()),
            )
        kind = found[0]
        positional, keywords, _ = self._arguments(ast.Layer(stmt.pos, stmt.name, stmt.args), frame)
        if positional:
            raise ValueProblem("`defaults` takes keyword arguments only, e.g. defaults conv(bias=false)", stmt.pos)
        try:
            kind.bind([], keywords, {name: None for name, _ in kind.signature if name not in keywords})
        except CnnDslError as error:
            raise error.at(stmt.pos)
        merged = {**frame.defaults.get(kind.name, {}), **keywords}
        frame.defaults = {**frame.defaults, kind.name: merged}

    def _For(self, stmt: ast.For, frame: Frame) -> None:
        items = self.evaluate(stmt.iterable, frame.env)
        if not isinstance(items, (list, tuple)):
            raise ValueProblem(f"`for` needs a list to walk over, got {shown(items)}", stmt.iterable.pos)
        for index in self._turns(len(items), stmt.iterable.pos, "loop turns"):
            values = self._unpack(stmt, items[index])
            self.seq(stmt.body, replace(frame, env=frame.env.child(**values)))

    def _unpack(self, stmt: ast.For, item: Any) -> dict[str, Any]:
        if len(stmt.names) == 1:
            return {stmt.names[0]: item}
        if not isinstance(item, (list, tuple)) or len(item) != len(stmt.names):
            raise ValueProblem(f"cannot unpack {shown(item)} into {', '.join(stmt.names)}", stmt.iterable.pos)
        return dict(zip(stmt.names, item))

    def _If(self, stmt: ast.If, frame: Frame) -> None:
        for condition, body in stmt.branches:
            if self.evaluate._truth(condition, frame.env):
                return self.seq(body, replace(frame, env=frame.env.child()))
        if stmt.otherwise is not None:
            self.seq(stmt.otherwise, replace(frame, env=frame.env.child()))

    def _Output(self, stmt: ast.Output, frame: Frame) -> None:
        outputs = self.graph.graph["outputs"]
        for tap in stmt.taps:
            if any(name == tap.name for name, _ in outputs):
                raise NameProblem(f"`@{tap.name}` is already an output", tap.pos)
            outputs.append((tap.name, self._tap(Tap(tap.name, tap.pos), frame)))


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


def bind_parameters(
    owner: str, params: list[ast.Param], positional: list, keywords: dict, env: Env, evaluate: Evaluator, pos: SourcePos
) -> Env:
    """Bind call arguments to declared parameters; defaults may use earlier parameters."""
    names = [param.name for param in params]
    if len(positional) > len(params):
        raise ValueProblem(
            f"`{owner}` takes {len(params)} argument(s), got {len(positional)}",
            pos,
            f"its parameters are ({', '.join(names)})",
        )
    for key in keywords:
        if key not in names:
            raise NameProblem(
                f"`{owner}` has no parameter `{key}`",
                pos,
                did_you_mean(key, names) or f"its parameters are ({', '.join(names)})",
            )
    scope = env.child()
    for index, param in enumerate(params):
        if index < len(positional):
            scope.values[param.name] = positional[index]
        elif param.name in keywords:
            scope.values[param.name] = keywords[param.name]
        elif param.default is not None:
            scope.values[param.name] = evaluate(param.default, scope)
        else:
            raise ValueProblem(f"`{owner}` needs the argument `{param.name}`", pos)
    return scope


def _show(value: Any) -> str:
    """A value in a block's label or the network's parameters: a few elements of a long list."""
    return f"{value:g}" if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else shown(value)


def expand_network(
    ref: NetworkRef,
    overrides: dict[str, Any],
    input_override: tuple | None,
    max_nodes: int,
    errors: list[CnnDslError] | None = None,
) -> nx.DiGraph | None:
    """Instantiate a network with its parameters and build its graph; its warnings go to graph["warnings"].

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
    input_override: tuple | None,
    max_nodes: int,
    errors: list[CnnDslError] | None,
) -> nx.DiGraph | None:
    definition, env, bound = resolve_network(ref, overrides)
    builder = GraphBuilder(
        definition.name if not isinstance(ref.definition, ast.NetworkAlias) else ref.definition.name,
        definition.pos.file,
        max_nodes,
    )
    builder.graph.graph["input_override"] = input_override
    builder.graph.graph["params"] = {name: _show(value) for name, value in bound.values.items()}
    builder.graph.graph["param_values"] = dict(bound.values)
    expander = Expander(builder)
    expander.errors = errors
    frame = Frame(bound, builder.root, {})
    if input_override is not None and not _declares_input(definition.body):
        expander._Input(ast.Input(definition.pos, [ast.Number(definition.pos, d) for d in input_override]), frame)
    try:
        expander.seq(definition.body, frame)
    except Exception:
        if not errors:
            raise
        return None  # a state that follows an error already recorded: what was found is reported
    if errors:
        return None
    graph = builder.graph
    graph.graph["warnings"] = expander.warnings
    if graph.graph["input"] is None:
        raise ShapeProblem(
            f"network `{definition.name}` declares no input",
            definition.pos,
            "add `input 3x224x224` as its first line, or pass --input",
        )
    if not graph.graph["outputs"]:
        graph.graph["outputs"] = [("output", expander.cursor)]
    del graph.graph["input_override"]
    return builder.finish()


def _declares_input(body: ast.Seq) -> bool:
    for stmt in body.stmts:
        while isinstance(stmt, ast.Labeled):
            stmt = stmt.item
        if isinstance(stmt, ast.Input):
            return True
    return False


def resolve_network(
    ref: NetworkRef,
    overrides: dict[str, Any],
    depth: int = 0,
    evaluate: Evaluator | None = None,
    call: SourcePos | None = None,
):
    """Follow `network a = b(...)` aliases down to a definition, binding parameters on the way
    (one evaluator for the whole chain, so its work budget bounds the chain, not each alias).

    An error in the arguments points at the call (`call`, the first alias), the definition as a note."""
    definition = ref.definition
    evaluate = evaluate or Evaluator(no_incoming)
    if isinstance(definition, ast.NetworkDef):
        try:
            bound = bind_parameters(
                definition.name, definition.params, [], overrides, ref.env, evaluate, call or definition.pos
            )
        except CnnDslError as error:
            if call is not None:
                error.notes.append(Note(definition.pos, f"`{definition.name}` is defined here"))
            raise
        return definition, ref.env, bound
    if depth > MAX_CALL_DEPTH:
        raise LimitProblem(f"network `{definition.name}` is defined through too many aliases", definition.pos)
    try:
        target = ref.env.lookup(definition.target)
    except KeyError:
        target = None
    if not isinstance(target, NetworkRef):
        raise NameProblem(f"`{definition.target}` is not a network", definition.pos)
    positional, keywords = [], {}
    for arg in definition.args:
        value = evaluate(arg.value, ref.env)
        if arg.keyword:
            keywords[arg.keyword] = value
        else:
            positional.append(value)
    if positional:
        if not isinstance(target.definition, ast.NetworkDef):
            raise ValueProblem(f"`{definition.target}` is itself an alias: pass its parameters by name", definition.pos)
        params = target.definition.params
        if len(positional) > len(params):
            raise ValueProblem(
                f"`{definition.target}` takes {len(params)} argument(s), got {len(positional)}", definition.pos
            )
        keywords.update(zip([param.name for param in params], positional))
    return resolve_network(target, {**keywords, **overrides}, depth + 1, evaluate, call or definition.pos)
