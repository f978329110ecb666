"""The pieces the compact source (cnndsl.backends.torch_classes) is built from, held as records, never as
text to read back: code whose numbers are slots, `__init__` lines that say which attribute they set, and
forward steps that keep their expression tree and the names it reads.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..ops.torch_code import (
    Apply,
    Arg,
    Attribute,
    Call,
    Expr,
    Index,
    Listed,
    Method,
    Operation,
    calls_own_module,
    namespaces,
    written,
)
from .python_names import assignment_around, is_name
from .torch_source import constructor_call, signature_parameters


@dataclass(frozen=True)
class Slot:
    """A number that may differ between instances of a class: the code's value at `index`."""

    index: int


@dataclass(frozen=True)
class Keyword:
    """`, name=<slot>`: a keyword argument, left out where its value is its parameter's default."""

    name: str
    index: int


class _Hole:
    """Where `compose` puts the next part."""


HOLE = _Hole()
NN = frozenset({"nn"})
MASKED = object()  # a slot, in code compared for its form only


@dataclass
class Code:
    """Python code as fragments (text, `Slot`, `Keyword`), with the value, a naming hint and (for a keyword)
    the default of each slot."""

    parts: tuple = ()
    values: list = field(default_factory=list)
    hints: list = field(default_factory=list)
    defaults: dict = field(default_factory=dict)  # slot -> its keyword's default, where it has one
    callee: str = ""  # the class or function it calls, where it is one call (`Bottleneck`, `nn.Sequential`)
    uses: frozenset = frozenset()  # the file's names it needs: `torch`, `F`, `nn`, `OrderedDict`, `_numbered`

    @staticmethod
    def text(text: str, uses: frozenset = frozenset()) -> Code:
        return Code((text,), uses=uses)

    @staticmethod
    def slot(value, hint: str) -> Code:
        """One number, to be named `hint` where it becomes an argument."""
        return Code((Slot(0),), [value], [hint])

    def render(self, expressions: dict | None = None) -> str:
        """The text with each slot's expression, or its value written as Python; a keyword argument whose
        value is its parameter's default (`stride=1`) is left out."""
        expressions = expressions or {}
        return "".join(self._fragment(part, expressions) for part in self.parts)

    def _fragment(self, part, expressions: dict) -> str:
        if isinstance(part, Slot):
            return expressions.get(part.index) or _number(self.values[part.index])
        if isinstance(part, Keyword):
            if part.index not in expressions and matches(self.defaults.get(part.index), self.values[part.index]):
                return ""
            return f", {part.name}={expressions.get(part.index) or _number(self.values[part.index])}"
        return part

    def key(self) -> tuple:
        """The fragments, adjacent text joined: equal for equal code, whichever way it was put together."""
        return _normalised(self.parts)


def _normalised(parts: Sequence) -> tuple:
    result: list = []
    for part in parts:
        if isinstance(part, str) and result and isinstance(result[-1], str):
            result[-1] += part
        else:
            result.append(part)
    return tuple(result)


def _number(value) -> str:
    if isinstance(value, tuple):
        return str(value[0]) if len(set(value)) == 1 else f"({', '.join(map(str, value))})"
    return str(value)


def matches(candidate, value) -> bool:
    """The candidate stands for the value: of its type (no real for a width: `in_channels * se`), or for
    every entry of a tuple."""
    if isinstance(value, tuple):
        return type(candidate) is int and set(value) == {candidate}
    return type(candidate) is type(value) and candidate == value


def _renumbered(part, offset: int):
    if isinstance(part, Slot):
        return Slot(part.index + offset)
    if isinstance(part, Keyword):
        return Keyword(part.name, part.index + offset)
    return part


def compose(template: Sequence, parts: Sequence[Code]) -> Code:
    """`template` (text and `HOLE`s) with each hole filled by the next part, their slots renumbered in order."""
    fragments, values, hints, defaults, uses = [], [], [], {}, frozenset()
    remaining = iter(parts)
    for piece in template:
        if piece is not HOLE:
            fragments.append(piece)
            continue
        part = next(remaining)
        offset = len(values)
        fragments += [_renumbered(fragment, offset) for fragment in part.parts]
        values += part.values
        hints += part.hints
        defaults.update({slot + offset: default for slot, default in part.defaults.items()})
        uses |= part.uses
    return Code(tuple(fragments), values, hints, defaults, uses=uses)


def module_code(module, name: str, attrs: dict | None = None) -> Code:
    """A torch.nn layer's constructor call, its whole numbers as slots named `<layer>_<argument>`."""
    call = constructor_call(module, attrs)
    if call is None:
        return Code.text("nn.Module()", NN)
    parameters = signature_parameters(type(module))
    names = list(parameters)
    kernel = [argument for argument in call.keywords if argument.arg == "kernel_size"]
    if names[2:3] == ["kernel_size"] and len(call.args) == 2 and kernel:  # nn.Conv2d(64, 128, 3, ...)
        call.args.append(kernel[0].value)
        call.keywords.remove(kernel[0])
    values, hints, defaults, fragments = [], [], {}, [f"nn.{ast.unparse(call.func)}("]

    def slot(node, argument):
        value = _whole(node)
        if value is None:
            return None
        values.append(value)
        hints.append(f"{name}_{argument}")
        return len(values) - 1

    for index, node in enumerate(call.args):
        number = slot(node, names[index] if index < len(names) else f"arg{index}")
        fragments += [", "] if index else []
        fragments.append(ast.unparse(node) if number is None else Slot(number))
    for position, argument in enumerate(call.keywords):
        number = slot(argument.value, argument.arg)
        first = not call.args and not position
        if number is None:
            fragments.append(f"{'' if first else ', '}{argument.arg}={ast.unparse(argument.value)}")
            continue
        default = parameters[argument.arg].default if argument.arg in parameters else None
        if type(default) is int:
            defaults[number] = default
        fragments.append(f"{argument.arg}=" if first else Keyword(argument.arg, number))
        fragments += [Slot(number)] if first else []
    return Code((*fragments, ")"), values, hints, defaults, uses=NN)


def _whole(node) -> Any:
    """A number an instance may differ in: a whole number, a tuple of them, or a real (a dropout's `p`)."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if (
        isinstance(node, ast.Tuple)
        and node.elts
        and all(isinstance(e, ast.Constant) and type(e.value) is int for e in node.elts)
    ):
        return tuple(e.value for e in node.elts)
    return None


# ---- lines of __init__ -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Line:
    """One statement of `__init__`: its fragments (slots numbered in the whole `__init__`) and the attribute
    of `self` it sets, where it sets one by name (`self.downsample = ...`)."""

    parts: tuple
    sets: str | None = None


def assigned(owner: str, name: str) -> Line:
    """`owner.name = <hole>`: a line to fill with the value's code."""
    head, tail = assignment_around(owner, name)
    return Line((head, HOLE, *([tail] if tail else [])), name if owner == "self" and is_name(name) else None)


def filled(lines: Sequence[Line], values: Sequence[Code]) -> tuple[list[Line], Code]:
    """The lines with their holes filled in order, and the whole of them as one code (joined by newlines),
    composed in one pass: joining line by line copied the whole at each line (minutes for 10,000 layers)."""
    result, template, codes, offset, started, remaining = [], [], [], 0, False, iter(values)
    for line in lines:
        code = compose(line.parts, [next(remaining) for piece in line.parts if piece is HOLE])
        result.append(Line(tuple(_renumbered(part, offset) for part in code.parts), line.sets))
        template += ["\n", HOLE] if started else [HOLE]
        started = started or bool(code.parts)
        codes.append(code)
        offset += len(code.values)
    return result, compose(template, codes)


def lines_code(lines: Sequence[Line], code: Code) -> Code:
    """Filled lines as one code, over the values, hints and defaults of `code`."""
    parts = [piece for index, line in enumerate(lines) for piece in (["\n"] if index else []) + list(line.parts)]
    return Code(tuple(parts), code.values, code.hints, code.defaults, uses=code.uses)


def rendered(lines: Sequence[Line], code: Code, expressions: dict | None = None) -> list[str]:
    """Each line's text over the values of `code` (the whole of which the lines are)."""
    return [Code(line.parts, code.values, code.hints, code.defaults).render(expressions) for line in lines]


def line_form(line: Line) -> tuple:
    """The line with every slot masked: equal for lines that differ only in numbers."""
    return _normalised(MASKED if isinstance(part, (Slot, Keyword)) else part for part in line.parts)


def line_slots(line: Line) -> list[int]:
    return [part.index for part in line.parts if isinstance(part, (Slot, Keyword))]


# ---- steps of forward ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One statement of a forward: `target = tree` over the names `args` (and the layer's `own` module),
    `target += args[0]` where `summed`, or `return` (no target) of the tree or of the names."""

    target: str | None
    tree: Expr | None
    args: tuple[str, ...]
    own: str | None = None
    summed: bool = False
    opens_with_module: bool = False  # its text starts `self.`: a module's call, not returned as it is computed
    guard: str | None = None  # `if self.<guard> is not None:` around it (an optional submodule)

    def uses(self) -> frozenset:
        return frozenset() if self.tree is None else frozenset(namespaces(self.tree))

    def lines(self) -> list[str]:
        line = self._statement()
        return [f"if self.{self.guard} is not None:", f"    {line}"] if self.guard else [line]

    def _statement(self) -> str:
        value = ", ".join(self.args) if self.tree is None else written(self.tree, list(self.args), self.own)
        if self.target is None:
            return f"return {value}"
        return f"{self.target} {'+=' if self.summed else '='} {value}"

    def renamed(self, old: str, new: str) -> Step:
        """The step with the value `old` read and written as `new`."""
        rename = {old: new}.get
        target = None if self.target is None else rename(self.target, self.target)
        return replace(self, target=target, args=tuple(rename(arg, arg) for arg in self.args))

    def calls(self, own: str) -> bool:
        """The step is `target = <own>(name)`: the submodule `own` on one value."""
        return self.target is not None and not self.summed and self.own == own and calls_own_module(self.tree)


def alias(target: str, source: str) -> Step:
    """`identity = x`: a second name for a value."""
    return Step(target, Arg(0), (source,))


def forward_lines(steps: Sequence[Step]) -> list[str]:
    return [line for step in steps for line in step.lines()]


def forward_uses(steps: Sequence[Step]) -> frozenset:
    """The namespaces the steps call (`torch`, `F`)."""
    return frozenset().union(*(step.uses() for step in steps))


# ---- numbers of a forward ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Lifted:
    """A slice bound of a forward held out of its text (`x[:, -<0>:]`): the instance's number at `index`,
    negated where `negative`, so that instances whose forwards differ in it share one class."""

    index: int
    negative: bool = False

    def __str__(self) -> str:
        return f"{'-' if self.negative else ''}<{self.index}>"


@dataclass(frozen=True, repr=False)
class Shown:
    """What a lifted bound is written as in the class: a number, or the attribute that holds it (`-self.c`)."""

    text: str

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__  # a call's argument is written as its repr (cnndsl.ops.torch_code.written)


def lifted(steps: Sequence[Step], shapes: bool = False) -> tuple[list[Step], list[int]]:
    """The steps with every whole-number bound of a slice `Lifted`, and the numbers (their magnitudes); with
    `shapes`, also each size of a `torch.reshape` but -1 (YOLO11's attention, its heads and widths per scale)."""
    numbers: list[int] = []

    def sizes(call: Call) -> Call:
        if not shapes or (call.namespace, call.function) != ("torch", "reshape") or type(call.args[-1]) is not tuple:
            return call
        shape = tuple(size if size == -1 else bound(size) for size in call.args[-1])
        return Call(call.namespace, call.function, (*call.args[:-1], shape), call.keywords)

    def bound(value):
        if type(value) is not int:
            return value
        numbers.append(abs(value))
        return Lifted(len(numbers) - 1, value < 0)

    def lift(index):
        if isinstance(index, tuple):
            return tuple(lift(part) for part in index)
        if isinstance(index, slice):
            return slice(bound(index.start), bound(index.stop), index.step)
        return index

    result = [step if step.tree is None else replace(step, tree=_indexed(step.tree, lift, sizes)) for step in steps]
    return result, numbers


def shown(steps: Sequence[Step], texts: Sequence) -> list[Step]:
    """The steps with each lifted bound written as `texts[index]`: a number, or an attribute's text."""

    def show(index):
        if isinstance(index, tuple):
            return tuple(show(part) for part in index)
        if isinstance(index, slice):
            return slice(*(_shown(part, texts) for part in (index.start, index.stop)), index.step)
        return index

    def sizes(call: Call) -> Call:
        if not call.args or type(call.args[-1]) is not tuple:
            return call
        shape = tuple(_shown(size, texts) for size in call.args[-1])
        return Call(call.namespace, call.function, (*call.args[:-1], shape), call.keywords)

    return [step if step.tree is None else replace(step, tree=_indexed(step.tree, show, sizes)) for step in steps]


def _shown(part, texts: Sequence):
    """A lifted bound as its number (an int, the sign restored) or its attribute's text (`-self.c`)."""
    if not isinstance(part, Lifted):
        return part
    value = texts[part.index]
    if type(value) is int:
        return -value if part.negative else value
    return Shown(f"-{value}" if part.negative else value)


def lifted_lengths(steps: Sequence[Step]) -> tuple[list[Step], list[int]]:
    """The steps with the whole-number length of every `torch.narrow` `Lifted`, and the lengths: the network's
    class scores, `torch.narrow(x, 1, 64, self.classes)`, follow its `classes`."""
    numbers: list[int] = []

    def length(call: Call) -> Call:
        if (call.namespace, call.function) != ("torch", "narrow") or type(call.args[-1]) is not int:
            return call
        numbers.append(call.args[-1])
        return Call(call.namespace, call.function, (*call.args[:-1], Lifted(len(numbers) - 1)), call.keywords)

    return [_changed(step, _same, length) for step in steps], numbers


def shown_lengths(steps: Sequence[Step], texts: Sequence) -> list[Step]:
    """The steps with each lifted length written as `texts[index]`: a number, or an attribute's text."""

    def show(call: Call) -> Call:
        if not call.args or not isinstance(call.args[-1], Lifted):
            return call
        return Call(call.namespace, call.function, (*call.args[:-1], _shown(call.args[-1], texts)), call.keywords)

    return [_changed(step, _same, show) for step in steps]


def _same(index):
    return index


def _changed(step: Step, change, call) -> Step:
    return step if step.tree is None else replace(step, tree=_indexed(step.tree, change, call))


def _indexed(expression: Expr, change, call=_same) -> Expr:
    """The expression with the subscript of every `Index` in it mapped by `change`, and every call by `call`."""

    def each(item):
        return _indexed(item, change, call)

    match expression:
        case Index(owner, index):
            return Index(each(owner), change(index))
        case Call(namespace, function, args, keywords):
            return call(
                Call(
                    namespace, function, tuple(map(each, args)), tuple((name, each(value)) for name, value in keywords)
                )
            )
        case Apply(callee, args):
            return Apply(each(callee), tuple(map(each, args)))
        case Method(owner, name, args):
            return Method(each(owner), name, tuple(map(each, args)))
        case Attribute(owner, name):
            return Attribute(each(owner), name)
        case Operation(sign, terms):
            return Operation(sign, tuple(map(each, terms)))
        case Listed(items):
            return Listed(tuple(map(each, items)))
    return expression
