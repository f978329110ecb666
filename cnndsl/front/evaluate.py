"""Expressions: arithmetic on shapes and parameters, with located errors and bounded numbers."""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable
from typing import Any

from ..core.errors import CnnDslError, LimitProblem, NameProblem, ValueProblem, did_you_mean
from ..core.records import FrozenRecord
from . import syntax as ast

LARGEST = 2**53  # beyond this a size is a typo, and arithmetic on it could run away
LONGEST = 1_000_000  # elements in a value, nested lists counted in full: beyond this a loop would never end
WORK = 3_000_000  # values one Evaluator may touch in all: about half a second, and ~100 MB if it keeps them all
NODE_COST = 4  # an expression evaluated costs as much as this many elements built in a C loop (range, +, sum)
CHARACTERS_PER_VALUE = 100  # a string counts as one value per this many characters when it is compared


class Tap(FrozenRecord):
    """A value of the form `@name`, resolved by the expander to a graph node."""

    __slots__ = ("name", "pos", "index")

    def __init__(self, name: str, pos: Any, index: int | None = None) -> None:
        self._set(name, pos, index)  # index: `@t[i]`, turn i of the loop that labels `t`

    def __repr__(self) -> str:
        return f"@{self.name}" if self.index is None else f"@{self.name}[{self.index}]"


class Env:
    """A lexical scope: names bound by parameters, `let`, loops and repetitions."""

    def __init__(self, parent: Env | None = None, values: dict[str, Any] | None = None):
        self.parent = parent
        self.values = dict(values or {})

    def lookup(self, name: str) -> Any:
        env: Env | None = self
        while env is not None:
            if name in env.values:
                return env.values[name]
            env = env.parent
        raise KeyError(name)

    def names(self) -> set[str]:
        found: set[str] = set()
        env: Env | None = self
        while env is not None:
            found |= set(env.values)
            env = env.parent
        return found

    def child(self, **values: Any) -> Env:
        return Env(self, values)


def size(value: Any, limit: int) -> int:
    """The elements a value holds, nested lists counted in full (a shared one each time it appears);
    counting stops once past `limit`, so measuring costs no more than the limit."""
    if isinstance(value, str):
        return 1 + len(value) // CHARACTERS_PER_VALUE
    if not isinstance(value, (list, tuple)):
        return 1
    count, stack = 0, [value]
    while stack and count <= limit:
        items = stack.pop()
        count += len(items)
        if count <= limit:
            stack.extend(item for item in items if isinstance(item, (list, tuple)))
    return count


_SHORT = reprlib.Repr()
_SHORT.maxlist = _SHORT.maxtuple = 16
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 60, 60


def shown(value: Any) -> str:
    """A value as messages and labels print it, a few elements at most: printing a list of a million
    elements, or a million references to one, would cost more than the program that built it."""
    return _SHORT.repr(value)


WORDS = ("same", "valid", "nearest", "bilinear", "depthwise")  # words layers take, each its own value
CONSTANTS = {"true": True, "false": False, "none": None} | {word: word for word in WORDS}


def _range(*args):
    if not 1 <= len(args) <= 3 or not all(isinstance(a, int) and not isinstance(a, bool) for a in args):
        raise ValueProblem("range takes one to three whole numbers")
    result = range(*args)
    _bounded(len(result))
    return list(result)


def _one_of(value, *choices):
    """`one_of(postprocess, "raw", "nms")`: the value if it is one of the choices, else a located error."""
    if value not in choices:
        raise ValueProblem(
            f"{shown(value)} is not one of {', '.join(map(shown, choices))}",
            hint=f"choose {' or '.join(map(shown, choices))}",
        )
    return value


def _bounded(length: int) -> None:
    if length > LONGEST:
        raise LimitProblem(f"a list of {length:,} elements is longer than the limit of {LONGEST:,}")


_CONSTANT_TIME = {"len"}  # functions that do not walk their arguments


def _total(items):
    """`sum` of numbers only: Python's sum would also concatenate lists without bound."""
    return sum(_number(item, "sum") for item in items)


def _whole_number(value):
    if isinstance(value, float) and not value.is_integer():
        raise ValueProblem(f"int() of {value:g} would drop a fraction; use floor() or round()")
    return int(value)


def _whole(value, op: str) -> int:
    """A whole number (an integral float from `/` too) for a function of whole numbers, as `gcd`."""
    if _number(value, op) != int(value):
        raise ValueProblem(f"`{op}` needs whole numbers, got {value:g}")
    return int(value)


def _log(value, base=None):
    """Natural logarithm, or to a base: RegNet's widths are quantised in log space."""
    if _number(value, "log") <= 0:
        raise ValueProblem(f"log({value:g}) is not defined", hint="log needs a number above 0")
    if base is None:
        return math.log(value)
    if _number(base, "log") <= 0 or base == 1:
        raise ValueProblem(f"log to the base {base:g} is not defined", hint="a base is above 0 and not 1")
    return math.log(value) / math.log(base)


def _exp(value):
    try:
        return math.exp(_number(value, "exp"))
    except OverflowError:
        raise ValueProblem(f"exp({value:g}) is too large for a size or count") from None


def _sqrt(value):
    if _number(value, "sqrt") < 0:
        raise ValueProblem(f"sqrt({value:g}) is not a real number")
    return math.sqrt(value)


MOST_DIGITS = 30  # round(x, n): no number has more digits than this, and 10^n must stay small to compute


def _round(value, digits=None):
    """Python's round (half to even, as torch.round); the digits are bounded: round(5, -2^53) computes 10^2^53."""
    _number(value, "round")
    if digits is None:
        return round(value)
    if isinstance(digits, bool) or not isinstance(digits, int) or abs(digits) > MOST_DIGITS:
        raise ValueProblem(
            f"round(x, n) keeps n digits: n must be a whole number from {-MOST_DIGITS} to "
            f"{MOST_DIGITS}, got {_magnitude(digits) if isinstance(digits, (int, float)) else repr(digits)}"
        )
    return round(value, digits)


def _rounding(name: str, function):
    """floor and ceil of numbers only, with their own names in errors."""
    return lambda value: function(_number(value, name))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min,
    "max": max,
    "len": len,
    "range": _range,
    "sum": _total,
    "abs": abs,
    "gcd": lambda a, b: math.gcd(_whole(a, "gcd"), _whole(b, "gcd")),
    "int": _whole_number,
    "round": _round,
    "floor": _rounding("floor", math.floor),
    "ceil": _rounding("ceil", math.ceil),
    "log": _log,
    "exp": _exp,
    "sqrt": _sqrt,
    "pow": lambda base, exponent: _power(_number(base, "pow"), _number(exponent, "pow")),
    "enumerate": lambda items: [tuple(pair) for pair in enumerate(items)],
    "zip": lambda *lists: [tuple(items) for items in zip(*lists)],
    "one_of": _one_of,
}


def _checked(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueProblem("the result is not a finite number")
        if abs(value) > LARGEST:
            raise ValueProblem(f"{_magnitude(value)} is too large for a size or count")
    return value


def _magnitude(value) -> str:
    """A huge number in a few characters: 1e+300 as 1e+300, a 400-digit int as ~10^399."""
    try:
        return f"{value:.3g}"
    except OverflowError:
        return f"~10^{len(str(abs(value))) - 1}"


def _number(value: Any, op: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueProblem(f"`{op}` needs numbers, got {shown(value)}")
    return value


def _divide(op: str, left, right):
    if right == 0:
        raise ValueProblem("division by zero")
    return {"/": lambda: left / right, "//": lambda: left // right, "%": lambda: left % right}[op]()


def _power(base, exponent):
    if exponent < 0 and base == 0:
        raise ValueProblem("zero to a negative power")
    if base != 0 and exponent * math.log2(abs(base)) > 64:  # |result| > 2^64: refused before computing it
        raise ValueProblem(f"{_magnitude(base)}^{_magnitude(exponent)} is too large for a size or count")
    try:
        result = base**exponent
    except OverflowError:
        raise ValueProblem(f"{base}^{exponent} is too large for a size or count") from None
    if isinstance(result, complex):
        raise ValueProblem(f"({base})^{exponent} is not a real number", hint="a negative base needs a whole exponent")
    return result


_ARITHMETIC = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "^": _power,
}
_ORDER = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def no_incoming(attr: str, pos: Any) -> int:
    """`in.c` outside a network or block has no tensor to read."""
    raise NameProblem(f"`in.{attr}` is only defined inside a network or block", pos)


def _unpacked(names: list[str], item: Any, pos: Any) -> dict[str, Any]:
    if len(names) == 1:
        return {names[0]: item}
    if not isinstance(item, (list, tuple)) or len(item) != len(names):
        raise ValueProblem(f"cannot unpack {shown(item)} into {', '.join(names)}", pos)
    return dict(zip(names, item))


class Evaluator:
    """Evaluates expressions in an Env; `in.c` asks `incoming` for the current shape.

    Every element built, walked or compared spends one unit of a budget of WORK, and every expression
    evaluated NODE_COST: the steps limit counts statements, this bounds what each of them may do.
    """

    def __init__(self, incoming: Callable[[str, Any], int], work: int = WORK):
        self.incoming = incoming
        self.work = work
        self.work_left = work

    def charge(self, amount: int) -> None:
        self.work_left -= amount
        if self.work_left < 0:
            raise LimitProblem(
                f"the expressions touch more than {self.work:,} values in all (elements of the lists "
                "they build, walk or compare)",
                hint="a family rule needs far fewer: check the ranges and the loops around them",
            )

    def measure(self, value: Any) -> Any:
        """Charge for walking a value, and refuse one past LONGEST elements."""
        count = size(value, min(LONGEST, max(self.work_left, 0)))
        self.charge(count)
        if count > LONGEST:
            raise LimitProblem(
                f"a list of more than {LONGEST:,} elements, nested lists counted in full, is past the limit"
            )
        return value

    def same(self, left: Any, right: Any) -> bool:
        """`left == right`, charged for the elements it compares."""
        self.measure(left)
        self.measure(right)
        return left == right

    def __call__(self, expr: ast.Expr, env: Env) -> Any:
        try:
            self.charge(NODE_COST)
            return _checked(self._eval(expr, env))
        except CnnDslError as error:
            raise error.at(expr.pos)
        except (TypeError, ValueError, IndexError, OverflowError) as error:
            raise ValueProblem(f"cannot evaluate this expression: {error}", expr.pos) from None

    def _eval(self, expr: ast.Expr, env: Env) -> Any:
        method = getattr(self, "_" + type(expr).__name__)
        return method(expr, env)

    def _Number(self, expr, env):
        return expr.value

    def _String(self, expr, env):
        return expr.value

    def _Name(self, expr, env):
        try:
            return env.lookup(expr.name)
        except KeyError:
            if expr.name in CONSTANTS:
                return CONSTANTS[expr.name]
            raise NameProblem(
                f"unknown name `{expr.name}`", expr.pos, did_you_mean(expr.name, env.names() | set(CONSTANTS))
            ) from None

    def _InAttr(self, expr, env):
        return self.incoming(expr.attr, expr.pos)

    def _Attribute(self, expr, env):
        raise ValueProblem(f"`.{expr.attr}` is only defined on `in` (in.c, in.h, in.w)", expr.pos)

    def _Index(self, expr, env):
        target, index = self(expr.target, env), self(expr.index, env)
        if not isinstance(target, (list, tuple)):
            raise ValueProblem(f"only lists and tuples can be indexed, not {shown(target)}", expr.pos)
        if not isinstance(index, int) or isinstance(index, bool):
            raise ValueProblem(f"an index must be a whole number, got {shown(index)}", expr.index.pos)
        if not -len(target) <= index < len(target):
            raise ValueProblem(f"index {index!r} is outside a list of {len(target)}", expr.index.pos)
        return target[index]

    def _TapRef(self, expr, env):
        if expr.index is None:
            return Tap(expr.name, expr.pos)
        index = self(expr.index, env)
        if not isinstance(index, int) or isinstance(index, bool):
            raise ValueProblem(f"a tap's turn must be a whole number, got {shown(index)}", expr.index.pos)
        return Tap(expr.name, expr.pos, index)

    def _FunctionCall(self, expr, env):
        function = FUNCTIONS.get(expr.name)
        if function is None:
            raise NameProblem(f"unknown function `{expr.name}`", expr.pos, did_you_mean(expr.name, FUNCTIONS))
        if any(arg.keyword for arg in expr.args):
            raise ValueProblem(f"`{expr.name}` takes no keyword arguments", expr.pos)
        values = [self(arg.value, env) for arg in expr.args]
        if expr.name not in _CONSTANT_TIME:
            for value in values:
                self.measure(value)
        try:
            result = function(*values)
        except CnnDslError:
            raise
        except (TypeError, ValueError) as error:
            message = str(error).replace(f"{function.__name__}()", f"{expr.name}()")  # our helpers' own names
            raise ValueProblem(f"{expr.name}(): {message}", expr.pos) from None
        if expr.name == "range":
            self.charge(len(result))  # flat, and already bounded by LONGEST
            return result
        return self.measure(result) if isinstance(result, (list, tuple)) else result

    def _ListExpr(self, expr, env):
        return self.measure([self(item, env) for item in expr.items])

    def _Comprehension(self, expr, env):
        items = self(expr.iterable, env)
        if not isinstance(items, (list, tuple)):
            raise ValueProblem(f"`for` needs a list to walk over, got {shown(items)}", expr.iterable.pos)
        result = []
        for item in items:
            scope = env.child(**_unpacked(expr.names, item, expr.iterable.pos))
            if expr.condition is None or self._truth(expr.condition, scope):
                result.append(self(expr.item, scope))
        return self.measure(result)

    def _NumberList(self, expr, env):
        _bounded(len(expr.values))
        self.charge(len(expr.values))
        return list(expr.values)

    def _TupleExpr(self, expr, env):
        return self.measure(tuple(self(item, env) for item in expr.items))

    def _Negate(self, expr, env):
        return -_number(self(expr.operand, env), "-")

    def _Not(self, expr, env):
        return not self._truth(expr.operand, env)

    def _Conditional(self, expr, env):
        return self(expr.then, env) if self._truth(expr.condition, env) else self(expr.otherwise, env)

    def _Binary(self, expr, env):
        if expr.op == "and":
            return self._truth(expr.left, env) and self._truth(expr.right, env)
        if expr.op == "or":
            return self._truth(expr.left, env) or self._truth(expr.right, env)
        left, right = self(expr.left, env), self(expr.right, env)
        if expr.op in ("==", "!="):
            return self.same(left, right) == (expr.op == "==")
        if expr.op in _ORDER:
            if isinstance(left, str) and isinstance(right, str):
                self.measure(left)  # charged for the characters compared
                self.measure(right)
            else:
                left, right = _number(left, expr.op), _number(right, expr.op)
            return _ORDER[expr.op](left, right)
        if expr.op == "+" and isinstance(left, (list, tuple)) and type(left) is type(right):
            _bounded(len(left) + len(right))
            return self.measure(left + right)
        left, right = _number(left, expr.op), _number(right, expr.op)
        if expr.op in ("/", "//", "%"):
            return _divide(expr.op, left, right)
        return _ARITHMETIC[expr.op](left, right)

    def _truth(self, expr, env) -> bool:
        value = self(expr, env)
        if not isinstance(value, bool):
            raise ValueProblem(f"a condition must be true or false, got {shown(value)}", expr.pos)
        return value


class BlockRef(FrozenRecord):
    """A block as a value: callable like a layer, passable as a parameter (`unit=basic`)."""

    __slots__ = ("definition", "env")  # an ast.BlockDef, the Env it was defined in

    def __repr__(self) -> str:
        return self.definition.name


class NetworkRef(FrozenRecord):
    __slots__ = ("definition", "env")  # an ast.NetworkDef or ast.NetworkAlias, the Env it was defined in

    def __repr__(self) -> str:
        return self.definition.name
