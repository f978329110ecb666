"""The vocabulary a kind writes its torch forward in: a small expression tree, never text.

A kind's `torch_forward` returns one of these records over its inputs (`Arg(0)`) and its own module or
tensor (`OWN`). The backends read the one tree twice: `written` makes the `--to python` text, `evaluated`
applies the same Python operations to values (torch.fx proxies make the fx graph from it). Facts the
backends need are read off the tree, not off its text: `passes_through` (an `add` of one input hands its
input on) and `summed_in_place` (`x.add_(y)`, written `x += y`).
"""

from __future__ import annotations

import operator
from typing import Any, Union

from ..core.records import FrozenRecord


class Arg(FrozenRecord):
    """The layer's input at `index`."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self._set(index)


class Own(FrozenRecord):
    """The layer's own module (called) or tensor (a layer scale), `self.<its name>` in the source."""

    __slots__ = ()


OWN = Own()


class Call(FrozenRecord):
    """`namespace.function(args, name=value)`: namespace `torch` or `F` (torch.nn.functional); namespace "" is a
    function of cnndsl's written into the generated file (cnndsl/ops/torch_functions.py), called by its name."""

    __slots__ = ("namespace", "function", "args", "keywords")

    def __init__(
        self, namespace: str, function: str, args: tuple = (), keywords: tuple[tuple[str, Any], ...] = ()
    ) -> None:
        self._set(namespace, function, args, keywords)


class Apply(FrozenRecord):
    """`callee(args)`: the layer's own module called."""

    __slots__ = ("callee", "args")

    def __init__(self, callee: Expr, args: tuple = ()) -> None:
        self._set(callee, args)


class Method(FrozenRecord):
    """`owner.name(args)`: a tensor method (`reshape`, `permute`, `add_`)."""

    __slots__ = ("owner", "name", "args")

    def __init__(self, owner: Expr, name: str, args: tuple = ()) -> None:
        self._set(owner, name, args)


class Attribute(FrozenRecord):
    """`owner.name`, not called (`x.shape`)."""

    __slots__ = ("owner", "name")

    def __init__(self, owner: Expr, name: str) -> None:
        self._set(owner, name)


class Index(FrozenRecord):
    """`owner[index]`: an int, a slice, or a tuple of them (`x[:, 0:16]`)."""

    __slots__ = ("owner", "index")

    def __init__(self, owner: Expr, index: Any) -> None:
        self._set(owner, index)


class Operation(FrozenRecord):
    """`a + b + c`, `a - b`, `a * b` or `a / b`, left to right; one term is that term."""

    __slots__ = ("sign", "terms")

    def __init__(self, sign: str, terms: tuple) -> None:
        self._set(sign, terms)


class Listed(FrozenRecord):
    """`[a, b]`, a list argument (`torch.cat`'s tensors)."""

    __slots__ = ("items",)

    def __init__(self, items: tuple) -> None:
        self._set(items)


Expr = Union[Arg, Own, Call, Apply, Method, Attribute, Index, Operation, Listed]  # noqa: UP007  (a runtime alias)
OPERATORS = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "%": operator.mod,
    "//": operator.floordiv,
}


def applied(*args: Expr) -> Apply:
    """`self.<layer>(args)`: the layer's module on its inputs, the form most kinds have."""
    return Apply(OWN, args)


def passes_through(expression: Expr) -> bool:
    """The expression is its first input as it is (an `add` of one input): no new tensor."""
    return expression == Arg(0) or (isinstance(expression, Operation) and expression.terms == (Arg(0),))


def summed_in_place(expression: Expr) -> int | None:
    """The input added in place into the first, for `x.add_(y)` (written `x += y`); else None."""
    if (
        isinstance(expression, Method)
        and expression.name == "add_"
        and expression.owner == Arg(0)
        and len(expression.args) == 1
        and isinstance(expression.args[0], Arg)
    ):
        return expression.args[0].index
    return None


def calls_own_module(expression: Expr) -> bool:
    """The expression is `self.<layer>(x)`: the layer's module on its one input."""
    return expression == applied(Arg(0))


def leftmost(expression: Expr) -> Expr:
    """What the expression's text starts with: `OWN` for `self.norm(x.permute(...)).permute(...)`."""
    match expression:
        case Apply(callee, _):
            return leftmost(callee)
        case Method(owner, _, _) | Attribute(owner, _) | Index(owner, _):
            return leftmost(owner)
        case Operation(_, terms):
            return leftmost(terms[0])
    return expression


def namespaces(expression: Expr) -> set[str]:
    """The namespaces the expression calls into (`torch`, `F`) and cnndsl's functions it calls (`roi_align`): the
    imports and the functions its text needs."""
    match expression:
        case Call(namespace, function, args, keywords):  # a function of cnndsl's: its name, to write it
            return {namespace or function}.union(*map(namespaces, args), *(namespaces(value) for _, value in keywords))
        case Apply(callee, args):
            return namespaces(callee).union(*map(namespaces, args))
        case Method(owner, _, args):
            return namespaces(owner).union(*map(namespaces, args))
        case Attribute(owner, _) | Index(owner, _):
            return namespaces(owner)
        case Operation(_, items) | Listed(items):
            return set().union(*map(namespaces, items))
    return set()


# ---- as text ---------------------------------------------------------------------------------------
def written(expression: Expr, args: list[str], own: str | None) -> str:
    """The expression as Python source over the inputs' names and the layer's own `self.<name>`."""
    match expression:
        case Arg(index):
            return args[index]
        case Own():
            if own is None:
                raise ValueError("the expression uses the layer's own module, and it has none")
            return own
        case Call(namespace, function, call_args, keywords):
            texts = [_operand(arg, args, own) for arg in call_args]
            texts += [f"{name}={_operand(value, args, own)}" for name, value in keywords]
            return f"{namespace}{'.' if namespace else ''}{function}({', '.join(texts)})"
        case Apply(callee, call_args):
            return f"{_primary(callee, args, own)}({', '.join(_operand(arg, args, own) for arg in call_args)})"
        case Method(owner, name, call_args):
            return f"{_primary(owner, args, own)}.{name}({', '.join(_operand(arg, args, own) for arg in call_args)})"
        case Attribute(owner, name):
            return f"{_primary(owner, args, own)}.{name}"
        case Index(owner, index):
            return f"{_primary(owner, args, own)}[{_subscript(index)}]"
        case Operation(sign, terms):
            return f" {sign} ".join(_term(term, sign, args, own) for term in terms)
        case Listed(items):
            return f"[{', '.join(_operand(item, args, own) for item in items)}]"
    return repr(expression)  # a constant: a number, a string, a tuple of numbers


def _operand(value, args: list[str], own: str | None) -> str:
    return written(value, args, own)


def _primary(value, args: list[str], own: str | None) -> str:
    """An expression that a call, attribute or index follows: bracketed where it is an operation."""
    text = written(value, args, own)
    return f"({text})" if isinstance(value, Operation) and len(value.terms) > 1 else text


def _term(value, sign: str, args: list[str], own: str | None) -> str:
    text = written(value, args, own)
    nested = isinstance(value, Operation) and len(value.terms) > 1 and (value.sign != sign or sign not in "+*")
    return f"({text})" if nested else text


def _subscript(index) -> str:
    if isinstance(index, tuple):
        return ", ".join(_subscript(part) for part in index)
    if isinstance(index, slice):
        start = "" if index.start is None else str(index.start)
        stop = "" if index.stop is None else str(index.stop)
        if index.step is not None:
            return f"{start}:{stop}:{index.step}"
        if any(bound is not None and type(bound) is not int for bound in (index.start, index.stop)):
            return f"{start} :{f' {stop}' if stop else ''}" if start else f": {stop}"  # `x[-self.c :]`, as ruff
        return f"{start}:{stop}"
    return repr(index)


# ---- as values ------------------------------------------------------------------------------------
def evaluated(expression: Expr, args: list, own: Any, namespaces: dict[str, Any]) -> Any:
    """The expression applied to values: the same Python operations, in the same order, as running its text."""

    def value(item):
        return evaluated(item, args, own, namespaces)

    match expression:
        case Arg(index):
            return args[index]
        case Own():
            return own
        case Call(namespace, function, call_args, keywords):
            function_value = getattr(namespaces[namespace], function)
            return function_value(*map(value, call_args), **{name: value(item) for name, item in keywords})
        case Apply(callee, call_args):
            return value(callee)(*map(value, call_args))
        case Method(owner, name, call_args):
            return getattr(value(owner), name)(*map(value, call_args))
        case Attribute(owner, name):
            return getattr(value(owner), name)
        case Index(owner, index):
            return value(owner)[index]
        case Operation(sign, terms):
            result = value(terms[0])
            for term in terms[1:]:
                result = OPERATORS[sign](result, value(term))
            return result
        case Listed(items):
            return [value(item) for item in items]
    return expression
