"""The abstract syntax tree: what the parser builds and the expander walks.

Every node carries the SourcePos it came from, so any later error can point at the text. The nodes are records
(cnndsl/core/records.py), not dataclasses, so that start-up compiles none of their methods. The annotations of
each `__init__` are evaluated here, not postponed: they are the types the parse cache checks an entry's fields by.
"""

from ..core.errors import SourcePos
from ..core.records import Record


class Node(Record):
    """A syntax node: its fields are its slots, the base class's first, in the order its `__init__` takes them."""

    __slots__ = ()


# ---- expressions -------------------------------------------------------------
class Expr(Node):
    __slots__ = ("pos",)

    def __init__(self, pos: SourcePos) -> None:
        self.pos = pos


class Number(Expr):
    __slots__ = ("value",)

    def __init__(self, pos: SourcePos, value: int | float) -> None:
        self.pos, self.value = pos, value


class String(Expr):
    __slots__ = ("value",)

    def __init__(self, pos: SourcePos, value: str) -> None:
        self.pos, self.value = pos, value


class Name(Expr):
    __slots__ = ("name",)

    def __init__(self, pos: SourcePos, name: str) -> None:
        self.pos, self.name = pos, name


class InAttr(Expr):
    """`in.c`, `in.h`, `in.w`: the shape of the tensor reaching this point."""

    __slots__ = ("attr",)

    def __init__(self, pos: SourcePos, attr: str) -> None:
        self.pos, self.attr = pos, attr


class Attribute(Expr):
    __slots__ = ("target", "attr")

    def __init__(self, pos: SourcePos, target: Expr, attr: str) -> None:
        self.pos, self.target, self.attr = pos, target, attr


class Index(Expr):
    __slots__ = ("target", "index")

    def __init__(self, pos: SourcePos, target: Expr, index: Expr) -> None:
        self.pos, self.target, self.index = pos, target, index


class TapRef(Expr):
    """`@name`, or `@in` (name "in", which no label can take): the input of the enclosing block."""

    __slots__ = ("name", "index")

    def __init__(self, pos: SourcePos, name: str, index: Expr | None = None) -> None:
        self.pos, self.name, self.index = pos, name, index  # index: `@t[i]`, the tap of a loop's turn i


class Argument(Node):
    __slots__ = ("keyword", "value", "pos")

    def __init__(self, keyword: str | None, value: Expr, pos: SourcePos) -> None:
        self.keyword, self.value, self.pos = keyword, value, pos


class FunctionCall(Expr):
    __slots__ = ("name", "args")

    def __init__(self, pos: SourcePos, name: str, args: list[Argument]) -> None:
        self.pos, self.name, self.args = pos, name, args


class ListExpr(Expr):
    __slots__ = ("items",)

    def __init__(self, pos: SourcePos, items: list[Expr]) -> None:
        self.pos, self.items = pos, items


class NumberList(Expr):
    """`[16, 32, 64]`: a literal list of numbers as one node, so a million of them stay small and fast."""

    __slots__ = ("values",)

    def __init__(self, pos: SourcePos, values: list[int | float]) -> None:
        self.pos, self.values = pos, values


class TupleExpr(Expr):
    __slots__ = ("items",)

    def __init__(self, pos: SourcePos, items: list[Expr]) -> None:
        self.pos, self.items = pos, items


class Binary(Expr):
    __slots__ = ("op", "left", "right")

    def __init__(self, pos: SourcePos, op: str, left: Expr, right: Expr) -> None:
        self.pos, self.op, self.left, self.right = pos, op, left, right


class Negate(Expr):
    __slots__ = ("operand",)

    def __init__(self, pos: SourcePos, operand: Expr) -> None:
        self.pos, self.operand = pos, operand


class Not(Expr):
    __slots__ = ("operand",)

    def __init__(self, pos: SourcePos, operand: Expr) -> None:
        self.pos, self.operand = pos, operand


class Conditional(Expr):
    __slots__ = ("then", "condition", "otherwise")

    def __init__(self, pos: SourcePos, then: Expr, condition: Expr, otherwise: Expr) -> None:
        self.pos, self.then, self.condition, self.otherwise = pos, then, condition, otherwise


class Comprehension(Expr):
    """`[item for names in iterable if condition]`: family rules (RegNet's stages) filter and map lists."""

    __slots__ = ("item", "names", "iterable", "condition")

    def __init__(self, pos: SourcePos, item: Expr, names: list[str], iterable: Expr, condition: Expr | None) -> None:
        self.pos, self.item, self.names, self.iterable, self.condition = pos, item, names, iterable, condition


# ---- statements and layers ---------------------------------------------------
class Stmt(Node):
    __slots__ = ("pos",)

    def __init__(self, pos: SourcePos) -> None:
        self.pos = pos


class Seq(Node):
    __slots__ = ("stmts",)

    def __init__(self, stmts: list[Stmt]) -> None:
        self.stmts = stmts


class Layer(Stmt):
    """A call of a built-in layer or a block: `conv3x3(64, s=2)`, `relu`, `basic(c)`."""

    __slots__ = ("name", "args", "has_parens")

    def __init__(self, pos: SourcePos, name: str, args: list[Argument], has_parens: bool = False) -> None:
        self.pos, self.name, self.args, self.has_parens = pos, name, args, has_parens


class Group(Stmt):
    __slots__ = ("body",)

    def __init__(self, pos: SourcePos, body: Seq) -> None:
        self.pos, self.body = pos, body


class Stage(Stmt):
    __slots__ = ("name", "body")

    def __init__(self, pos: SourcePos, name: str | None, body: Seq) -> None:
        self.pos, self.name, self.body = pos, name, body


class Residual(Stmt):
    __slots__ = ("body", "shortcut")

    def __init__(self, pos: SourcePos, body: Seq, shortcut: Seq | None) -> None:
        self.pos, self.body, self.shortcut = pos, body, shortcut


class Dense(Stmt):
    __slots__ = ("body",)

    def __init__(self, pos: SourcePos, body: Seq) -> None:
        self.pos, self.body = pos, body


class Branch(Stmt):
    __slots__ = ("paths",)

    def __init__(self, pos: SourcePos, paths: list[Seq]) -> None:
        self.pos, self.paths = pos, paths


class Scale(Stmt):
    __slots__ = ("body",)

    def __init__(self, pos: SourcePos, body: Seq) -> None:
        self.pos, self.body = pos, body


class Input(Stmt):
    """`input 3x224x224`; with `training`, `train input 2`: an input only the training forward takes."""

    __slots__ = ("dims", "training")

    def __init__(self, pos: SourcePos, dims: list[Expr], training: bool = False) -> None:
        self.pos, self.dims, self.training = pos, dims, training


class Jump(Stmt):
    __slots__ = ("tap", "index")

    def __init__(self, pos: SourcePos, tap: str, index: Expr | None = None) -> None:
        self.pos, self.tap, self.index = pos, tap, index


class Repeat(Stmt):
    """`item * n` repeats; `item x n` also binds the 0-based index `i` in each copy."""

    __slots__ = ("item", "count", "binds_index")

    def __init__(self, pos: SourcePos, item: Stmt, count: Expr, binds_index: bool = False) -> None:
        self.pos, self.item, self.count, self.binds_index = pos, item, count, binds_index


class Labeled(Stmt):
    __slots__ = ("label", "item")

    def __init__(self, pos: SourcePos, label: str, item: Stmt) -> None:
        self.pos, self.label, self.item = pos, label, item


class Let(Stmt):
    __slots__ = ("name", "value")

    def __init__(self, pos: SourcePos, name: str, value: Expr) -> None:
        self.pos, self.name, self.value = pos, name, value


class Defaults(Stmt):
    """`defaults conv(bias=false)`: keyword defaults for a layer kind until the closing brace."""

    __slots__ = ("name", "args")

    def __init__(self, pos: SourcePos, name: str, args: list[Argument]) -> None:
        self.pos, self.name, self.args = pos, name, args


class For(Stmt):
    __slots__ = ("names", "iterable", "body")

    def __init__(self, pos: SourcePos, names: list[str], iterable: Expr, body: Seq) -> None:
        self.pos, self.names, self.iterable, self.body = pos, names, iterable, body


class If(Stmt):
    __slots__ = ("branches", "otherwise")

    def __init__(self, pos: SourcePos, branches: list[tuple[Expr, Seq]], otherwise: Seq | None) -> None:
        self.pos, self.branches, self.otherwise = pos, branches, otherwise


class Output(Stmt):
    """`output @a, @b`; with `training`, `train output @c`: outputs only the training forward returns."""

    __slots__ = ("taps", "training")

    def __init__(self, pos: SourcePos, taps: list[TapRef], training: bool = False) -> None:
        self.pos, self.taps, self.training = pos, taps, training


# ---- top level ---------------------------------------------------------------
class Param(Node):
    __slots__ = ("name", "default", "pos")

    def __init__(self, name: str, default: Expr | None, pos: SourcePos) -> None:
        self.name, self.default, self.pos = name, default, pos


class BlockDef(Node):
    __slots__ = ("name", "params", "body", "pos")

    def __init__(self, name: str, params: list[Param], body: Seq, pos: SourcePos) -> None:
        self.name, self.params, self.body, self.pos = name, params, body, pos


class NetworkDef(Node):
    __slots__ = ("name", "params", "body", "pos")

    def __init__(self, name: str, params: list[Param], body: Seq, pos: SourcePos) -> None:
        self.name, self.params, self.body, self.pos = name, params, body, pos


class NetworkAlias(Node):
    """`network resnet18 = resnet([2, 2, 2, 2], basic)`."""

    __slots__ = ("name", "target", "args", "pos")

    def __init__(self, name: str, target: str, args: list[Argument], pos: SourcePos) -> None:
        self.name, self.target, self.args, self.pos = name, target, args, pos


class Import(Node):
    __slots__ = ("target", "is_path", "pos")

    def __init__(self, target: str, is_path: bool, pos: SourcePos) -> None:
        self.target, self.is_path, self.pos = target, is_path, pos


class Program(Node):
    __slots__ = ("file", "text", "imports", "definitions")

    def __init__(
        self,
        file: str,
        text: str,
        imports: list[Import] = (),
        definitions: list[BlockDef | NetworkDef | NetworkAlias | Let] = (),
    ) -> None:
        self.file, self.text, self.imports, self.definitions = file, text, list(imports), list(definitions)
