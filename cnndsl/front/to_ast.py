"""Parse tree -> AST: one short method per grammar rule, positions on every node, nothing else."""

from __future__ import annotations

import re

from lark import Token, Transformer, v_args

from ..core.errors import NameProblem, SourcePos, SyntaxProblem, ValueProblem
from . import syntax as ast
from .evaluate import LARGEST

MAX_DIGITS = 30  # a number literal longer than this is a typo, and Python refuses int() past 4,300 digits
_LIST_LAYOUT = "\t \f\n"
_LIST_ITEM = re.compile(r"[\t \f\n]*\d+(?:\.\d+)?[\t \f\n]*")  # one number between the commas of NUMBERS
_LIST_PIECE = re.compile(r"\d+(?:\.\d+)?|\S")


@v_args(meta=True, inline=True)
class ToAst(Transformer):
    """One short method per grammar rule; it only builds AST nodes."""

    def __init__(self, file: str, text: str):
        super().__init__()
        self.file = file
        self.text = text

    def _pos(self, meta) -> SourcePos:
        return SourcePos(self.file, getattr(meta, "line", 1), getattr(meta, "column", 1))

    def _tok(self, token: Token) -> SourcePos:
        return SourcePos(self.file, token.line, token.column)

    # top level
    def start(self, meta, *definitions):
        program = ast.Program(self.file, self.text)
        for item in definitions:
            (program.imports if isinstance(item, ast.Import) else program.definitions).append(item)
        return program

    def import_stmt(self, meta, target):
        is_path = target.type == "STRING"
        return ast.Import(target[1:-1] if is_path else str(target), is_path, self._pos(meta))

    def block_def(self, meta, name, *rest):
        params, body = rest if len(rest) == 2 else ([], rest[0])
        return ast.BlockDef(str(name), params, body, self._tok(name))

    def network_def(self, meta, name, *rest):
        params, body = rest if len(rest) == 2 else ([], rest[0])
        return ast.NetworkDef(str(name), params, body, self._tok(name))

    def network_alias(self, meta, name, target, args=None):
        return ast.NetworkAlias(str(name), str(target), args or [], self._tok(name))

    def params(self, meta, *params):
        seen: dict[str, SourcePos] = {}
        for param in params:
            if param.name in seen:
                raise NameProblem(
                    f"parameter `{param.name}` is declared twice (first at {seen[param.name]})",
                    param.pos,
                    "give each parameter its own name",
                )
            seen[param.name] = param.pos
        return list(params)

    def param(self, meta, name, default=None):
        return ast.Param(str(name), default, self._tok(name))

    def body(self, meta, seq=None):
        return seq or ast.Seq([])

    # statements
    def seq(self, meta, *stmts):
        return ast.Seq(list(stmts))

    def let_stmt(self, meta, name, value):
        return ast.Let(self._pos(meta), str(name), value)

    def defaults_stmt(self, meta, name, args):
        return ast.Defaults(self._tok(name), str(name), args)

    def for_stmt(self, meta, *parts):
        *names, iterable, body = parts
        return ast.For(self._pos(meta), [str(n) for n in names], iterable, body)

    def if_stmt(self, meta, *parts):
        pairs = [(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
        otherwise = parts[-1] if len(parts) % 2 else None
        return ast.If(self._pos(meta), pairs, otherwise)

    def output_stmt(self, meta, *taps):
        return ast.Output(self._pos(meta), list(taps))

    def labeled(self, meta, label, item):
        return ast.Labeled(self._tok(label), str(label), item)

    def repeat(self, meta, item, count):
        return ast.Repeat(self._pos(meta), item, count)

    def indexed_repeat(self, meta, item, count):
        return ast.Repeat(self._pos(meta), item, count, binds_index=True)

    def layer(self, meta, name, args=None):
        return ast.Layer(self._tok(name), str(name), args or [], args is not None)

    def group(self, meta, seq):
        return ast.Group(self._pos(meta), seq)

    def stage(self, meta, *parts):
        name = str(parts[0]) if len(parts) == 2 else None
        return ast.Stage(self._pos(meta), name, parts[-1])

    def residual(self, meta, body, shortcut=None):
        return ast.Residual(self._pos(meta), body, shortcut)

    def dense(self, meta, body):
        return ast.Dense(self._pos(meta), body)

    def branch(self, meta, *paths):
        return ast.Branch(self._pos(meta), list(paths))

    def scale(self, meta, body):
        return ast.Scale(self._pos(meta), body)

    def input_shape(self, meta, shape):
        if isinstance(shape, Token):
            start = shape.column
            dims = []
            for part in str(shape).split("x"):
                where = SourcePos(self.file, shape.line, start)
                dims.append(ast.Number(where, self._whole(part, where)))
                start += len(part) + 1
            return ast.Input(self._pos(meta), dims)
        return ast.Input(self._pos(meta), [arg.value for arg in shape])

    def jump(self, meta, tap):
        return ast.Jump(tap.pos, tap.name, tap.index)

    def tap(self, meta, name, *rest):  # `@t`; `@b.t`, in the call labelled b, as one dotted name; `@t[i]`
        index = rest[-1] if rest and not isinstance(rest[-1], Token) else None
        return ast.TapRef(self._pos(meta), ".".join(str(part) for part in (name, *rest) if part is not index), index)

    def block_input(self, meta):
        return ast.TapRef(self._pos(meta), "in")

    # expressions
    def arguments(self, meta, *args):
        return [a if isinstance(a, ast.Argument) else ast.Argument(None, a, a.pos) for a in args]

    def keyword(self, meta, name, value):
        return ast.Argument(str(name), value, self._tok(name))

    def number(self, meta, token):
        return self._number(str(token), self._tok(token))

    def _number(self, text: str, pos: SourcePos) -> ast.Number:
        if any(ch in text for ch in ".eE"):
            return ast.Number(pos, float(text))
        return ast.Number(pos, self._whole(text, pos))

    def numbers(self, meta, token):
        """`[16, 32, 64]`: one NumberList node. A list holding a number that is an error, or will be one when
        evaluated (too many digits, above 2^53), is built number by number, for the errors' positions."""
        parts = token[1:-1].split(",")
        if not all(map(_LIST_ITEM.fullmatch, parts)):
            raise self._list_error(token)
        literals = parts if max(map(len, parts)) <= MAX_DIGITS else [part.strip(_LIST_LAYOUT) for part in parts]
        if max(map(len, literals)) > MAX_DIGITS:
            return self._number_by_number(token)
        # int() and float() skip the layout around each number themselves
        values = (
            [float(text) if "." in text else int(text) for text in literals]
            if "." in token
            else list(map(int, literals))
        )
        if max(map(abs, values)) > LARGEST:
            return self._number_by_number(token)
        return ast.NumberList(self._tok(token), values)

    def _number_by_number(self, token: Token) -> ast.ListExpr:
        pieces = _LIST_PIECE.finditer(token, 1)
        return ast.ListExpr(
            self._tok(token),
            [
                self._number(piece.group(), self._inside(token, piece.start()))
                for piece in pieces
                if piece.group() not in ",]"
            ],
        )

    def _list_error(self, token: Token) -> SyntaxProblem:
        """The first piece that breaks `[number, number, ...]`, as the grammar would have found it."""
        want_number = True
        for piece in _LIST_PIECE.finditer(token, 1):
            text = piece.group()
            if want_number != (text[0].isdigit()) or (not want_number and text not in ",]"):
                return SyntaxProblem(
                    f"unexpected `{text}`",
                    self._inside(token, piece.start()),
                    "expected a number" if want_number else "expected `,` or `]`",
                )
            want_number = text == ","
        raise AssertionError(f"{token!r} is a valid list")  # unreachable: parts did not all match

    def _inside(self, token: Token, offset: int) -> SourcePos:
        """The position of a character of a multi-line token."""
        newline = token.rfind("\n", 0, offset)
        if newline < 0:
            return SourcePos(self.file, token.line, token.column + offset)
        return SourcePos(self.file, token.line + token.count("\n", 0, offset), offset - newline)

    def _whole(self, digits: str, pos: SourcePos) -> int:
        if len(digits.lstrip("0")) > MAX_DIGITS:
            raise ValueProblem(f"a number of {len(digits):,} digits is too large for a size or count", pos)
        return int(digits)

    def string(self, meta, token):
        return ast.String(self._tok(token), str(token)[1:-1])

    def name(self, meta, token):
        return ast.Name(self._tok(token), str(token))

    def in_attr(self, meta, attr):
        return ast.InAttr(self._pos(meta), str(attr))

    def attribute(self, meta, target, attr):
        return ast.Attribute(self._pos(meta), target, str(attr))

    def index(self, meta, target, index):
        return ast.Index(self._pos(meta), target, index)

    def function(self, meta, name, args):
        return ast.FunctionCall(self._tok(name), str(name), args)

    def list(self, meta, *items):
        return ast.ListExpr(self._pos(meta), list(items))

    def comprehension(self, meta, item, *parts):
        names = [str(part) for part in parts if isinstance(part, Token)]
        rest = parts[len(names) :]
        return ast.Comprehension(self._pos(meta), item, names, rest[0], rest[1] if len(rest) == 2 else None)

    def tuple(self, meta, *items):
        return ast.TupleExpr(self._pos(meta), list(items))

    def conditional(self, meta, then, condition, otherwise):
        return ast.Conditional(self._pos(meta), then, condition, otherwise)

    def any_of(self, meta, left, right):
        return ast.Binary(self._pos(meta), "or", left, right)

    def all_of(self, meta, left, right):
        return ast.Binary(self._pos(meta), "and", left, right)

    def negation(self, meta, operand):
        return ast.Not(self._pos(meta), operand)

    def compare(self, meta, left, op, right):
        return ast.Binary(self._tok(op), str(op), left, right)

    def binary(self, meta, left, op, right):
        return ast.Binary(self._tok(op), str(op), left, right)

    def power(self, meta, base, exponent):
        return ast.Binary(self._pos(meta), "^", base, exponent)

    def negate(self, meta, operand):
        return ast.Negate(self._pos(meta), operand)
