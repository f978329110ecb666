"""Parameters bound to values: a block call's or a network's arguments, and `network a = b(...)` aliases
followed down to their definition."""

from __future__ import annotations

from typing import Any

from ..core.errors import CnnDslError, LimitProblem, NameProblem, Note, SourcePos, ValueProblem, did_you_mean
from ..front import syntax as ast
from ..front.evaluate import Env, Evaluator, NetworkRef, no_incoming, shown
from .frame import MAX_CALL_DEPTH


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


def show_value(value: Any) -> str:
    """A value in a block's label or the network's parameters: a few elements of a long list."""
    return f"{value:g}" if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else shown(value)
