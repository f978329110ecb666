"""Expanding calls: a layer written by name, a block instance (its arguments, group and label), and
`defaults` that later layers of a kind take."""

from __future__ import annotations

from .. import ops
from ..core.errors import CnnDslError, LimitProblem, NameProblem, ValueProblem, did_you_mean
from ..core.spellings import unknown_layer_hint
from ..front import syntax as ast
from ..front.evaluate import BlockRef, Env, Tap, shown
from .bind import bind_parameters, show_value
from .expand_shared import SHARED
from .frame import MAX_CALL_DEPTH, Frame
from .ir import BlockCall

MAX_TAP_LIST = 64  # the longest list argument checked for taps (`concat([@a, @b])`)


class Calls:
    """The Expander's statements that call a layer kind or a block, and set a kind's defaults."""

    def _Layer(self, stmt: ast.Layer, frame: Frame) -> None:
        try:
            target = frame.env.lookup(stmt.name)
        except KeyError:
            target = None
        if isinstance(target, BlockRef):
            return self._call_block(target, stmt, frame)
        if target is not None:
            raise ValueProblem(f"`{stmt.name}` is {shown(target)}, not a layer or block", stmt.pos)
        if stmt.name == SHARED:
            return self._call_shared(stmt, frame)
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
            raise ValueProblem(
                f"`{kind.name}` takes no @tap inputs",
                taps[0].pos,
                "only add, sub, mul, div, maximum and concat join taps",
            )
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
            elif (
                isinstance(value, list | tuple)
                and len(value) <= MAX_TAP_LIST
                and any(isinstance(i, Tap) for i in value)
            ):
                # a list of taps is a few written out; a long computed list (range(10**6)) is never scanned
                raise _tap_list(stmt.name, value, arg.pos)
            else:
                positional.append(value)
        return positional, keywords, taps

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
        group.call = BlockCall(
            definition.name,
            {param.name: env.values[param.name] for param in definition.params},
            {param.name: _literal(param.default) for param in definition.params if _literal(param.default) is not None},
        )
        inner = Frame(env, group, {}, frame.defaults, frame.depth + 1, self.cursor)
        self.seq(definition.body, inner)
        self.called_block = inner  # a label on this call (`b: name(...)`) makes its taps `@b.t`

    def _call_label(self, definition: ast.BlockDef, env: Env) -> str:
        """`bottleneck(128, s=2)`: required arguments, then only those that differ from their defaults,
        so a diagram's block titles read like the source rather than a dump of every parameter."""
        parts = []
        for param in definition.params:
            value = env.values[param.name]
            if param.default is None:
                parts.append(show_value(value))
                continue
            try:
                default = self.evaluate(param.default, env)
            except CnnDslError:
                default = None
            if not self.evaluate.same(value, default):
                parts.append(f"{param.name}={show_value(value)}")
        return f"{definition.name}({', '.join(parts)})"

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


def _tap_list(name: str, items: list | tuple, pos) -> ValueProblem:
    """`concat([@a, @b])`: taps are separate arguments, after the current tensor, never a list."""
    taps = [f"@{item.name}" for item in items if isinstance(item, Tap)]
    hint = f"write `{name}({', '.join(taps)})`: it joins the current tensor, then each tap in order"
    if len(taps) > 1:
        hint += f"; to join only the taps, continue from the first: `{taps[0]}, {name}({', '.join(taps[1:])})`"
    return ValueProblem(f"`{name}` takes its @tap inputs as separate arguments, not a list", pos, hint)


def _literal(default) -> int | float | bool | None:
    """A parameter's default where the definition writes it as a number or `true`/`false`, else None."""
    if isinstance(default, ast.Number):
        return default.value
    if isinstance(default, ast.Name) and default.name in ("true", "false"):
        return default.name == "true"
    return None
