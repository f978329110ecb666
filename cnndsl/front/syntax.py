"""The abstract syntax tree: what the parser builds and the expander walks.

Every node carries the SourcePos it came from, so any later error can point at the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.errors import SourcePos


# ---- expressions -------------------------------------------------------------
@dataclass
class Expr:
    pos: SourcePos


@dataclass
class Number(Expr):
    value: int | float


@dataclass
class String(Expr):
    value: str


@dataclass
class Name(Expr):
    name: str


@dataclass
class InAttr(Expr):
    """`in.c`, `in.h`, `in.w`: the shape of the tensor reaching this point."""

    attr: str


@dataclass
class Attribute(Expr):
    target: Expr
    attr: str


@dataclass
class Index(Expr):
    target: Expr
    index: Expr


@dataclass
class TapRef(Expr):
    """`@name`, or `@in` (name "in", which no label can take): the input of the enclosing block."""

    name: str
    index: Expr | None = None  # `@t[i]`: the tap of a loop's turn i


@dataclass
class Argument:
    keyword: str | None
    value: Expr
    pos: SourcePos


@dataclass
class FunctionCall(Expr):
    name: str
    args: list[Argument]


@dataclass
class ListExpr(Expr):
    items: list[Expr]


@dataclass
class NumberList(Expr):
    """`[16, 32, 64]`: a literal list of numbers as one node, so a million of them stay small and fast."""

    values: list[int | float]


@dataclass
class TupleExpr(Expr):
    items: list[Expr]


@dataclass
class Binary(Expr):
    op: str
    left: Expr
    right: Expr


@dataclass
class Negate(Expr):
    operand: Expr


@dataclass
class Not(Expr):
    operand: Expr


@dataclass
class Conditional(Expr):
    then: Expr
    condition: Expr
    otherwise: Expr


@dataclass
class Comprehension(Expr):
    """`[item for names in iterable if condition]`: family rules (RegNet's stages) filter and map lists."""

    item: Expr
    names: list[str]
    iterable: Expr
    condition: Expr | None


# ---- statements and layers ---------------------------------------------------
@dataclass
class Stmt:
    pos: SourcePos


@dataclass
class Seq:
    stmts: list[Stmt]


@dataclass
class Layer(Stmt):
    """A call of a built-in layer or a block: `conv3x3(64, s=2)`, `relu`, `basic(c)`."""

    name: str
    args: list[Argument]
    has_parens: bool = False


@dataclass
class Group(Stmt):
    body: Seq


@dataclass
class Stage(Stmt):
    name: str | None
    body: Seq


@dataclass
class Residual(Stmt):
    body: Seq
    shortcut: Seq | None


@dataclass
class Dense(Stmt):
    body: Seq


@dataclass
class Branch(Stmt):
    paths: list[Seq]


@dataclass
class Scale(Stmt):
    body: Seq


@dataclass
class Input(Stmt):
    dims: list[Expr]


@dataclass
class Jump(Stmt):
    tap: str
    index: Expr | None = None


@dataclass
class Repeat(Stmt):
    """`item * n` repeats; `item x n` also binds the 0-based index `i` in each copy."""

    item: Stmt
    count: Expr
    binds_index: bool = False


@dataclass
class Labeled(Stmt):
    label: str
    item: Stmt


@dataclass
class Let(Stmt):
    name: str
    value: Expr


@dataclass
class Defaults(Stmt):
    """`defaults conv(bias=false)`: keyword defaults for a layer kind until the closing brace."""

    name: str
    args: list[Argument]


@dataclass
class For(Stmt):
    names: list[str]
    iterable: Expr
    body: Seq


@dataclass
class If(Stmt):
    branches: list[tuple[Expr, Seq]]
    otherwise: Seq | None


@dataclass
class Output(Stmt):
    taps: list[TapRef]


# ---- top level ---------------------------------------------------------------
@dataclass
class Param:
    name: str
    default: Expr | None
    pos: SourcePos


@dataclass
class BlockDef:
    name: str
    params: list[Param]
    body: Seq
    pos: SourcePos


@dataclass
class NetworkDef:
    name: str
    params: list[Param]
    body: Seq
    pos: SourcePos


@dataclass
class NetworkAlias:
    """`network resnet18 = resnet([2, 2, 2, 2], basic)`."""

    name: str
    target: str
    args: list[Argument]
    pos: SourcePos


@dataclass
class Import:
    target: str
    is_path: bool
    pos: SourcePos


@dataclass
class Program:
    file: str
    text: str
    imports: list[Import] = field(default_factory=list)
    definitions: list[BlockDef | NetworkDef | NetworkAlias | Let] = field(default_factory=list)
