"""Grammar rules -> AST: one short method per rule, which the parser calls as it reduces the rule; a position
on every node, from the token that starts it; nothing else."""

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


@v_args(inline=True)
class ToAst(Transformer):
    """One short method per grammar rule; it only builds AST nodes."""

    def __init__(self, file: str = "<string>", text: str = ""):
        super().__init__()
        self.start_over(file, text)

    def start_over(self, file: str, text: str) -> None:
        """Ready for the next text: the parser applies one ToAst as it reduces each rule."""
        self.file = file
        self.text = text
        self._parenthesised: dict[int, SourcePos] = {}  # id of an expression written in ( ) -> where `(` is

    def _tok(self, token: Token) -> SourcePos:
        return SourcePos(self.file, token.line, token.column)

    def _start(self, node) -> SourcePos:
        """Where the text of a node starts: its `(` if it is written in brackets; a binary operation's left
        operand's start (its own position is its operator's); else the node's or the token's position."""
        if isinstance(node, Token):
            return self._tok(node)
        while isinstance(node, ast.Binary) and id(node) not in self._parenthesised:
            node = node.left
        return self._parenthesised.get(id(node)) or node.pos

    # top level
    def start(self, *definitions):
        program = ast.Program(self.file, self.text)
        for item in definitions:
            (program.imports if isinstance(item, ast.Import) else program.definitions).append(item)
        return program

    def import_stmt(self, keyword, target):
        is_path = target.type == "STRING"
        return ast.Import(target[1:-1] if is_path else str(target), is_path, self._tok(keyword))

    def block_def(self, name, *rest):
        params, body = rest if len(rest) == 2 else ([], rest[0])
        return ast.BlockDef(str(name), params, body, self._tok(name))

    def network_def(self, name, *rest):
        params, body = rest if len(rest) == 2 else ([], rest[0])
        return ast.NetworkDef(str(name), params, body, self._tok(name))

    def network_alias(self, name, target, args=None):
        return ast.NetworkAlias(str(name), str(target), args or [], self._tok(name))

    def params(self, *params):
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

    def param(self, name, default=None):
        return ast.Param(str(name), default, self._tok(name))

    def body(self, seq=None):
        return seq or ast.Seq([])

    # statements
    def seq(self, *stmts):
        return ast.Seq(list(stmts))

    def let_stmt(self, keyword, name, value):
        return ast.Let(self._tok(keyword), str(name), value)

    def defaults_stmt(self, name, args):
        return ast.Defaults(self._tok(name), str(name), args)

    def for_stmt(self, keyword, *parts):
        *names, iterable, body = parts
        return ast.For(self._tok(keyword), [str(n) for n in names], iterable, body)

    def if_stmt(self, keyword, *parts):
        pairs = [(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
        otherwise = parts[-1] if len(parts) % 2 else None
        return ast.If(self._tok(keyword), pairs, otherwise)

    def output_stmt(self, keyword, *taps):
        return ast.Output(self._tok(keyword), list(taps))

    def train_output_stmt(self, keyword, _output, *taps):
        return ast.Output(self._tok(keyword), list(taps), training=True)

    def labeled(self, label, item):
        return ast.Labeled(self._tok(label), str(label), item)

    def repeat(self, item, count):
        return ast.Repeat(self._start(item), item, count)

    def indexed_repeat(self, item, count):
        return ast.Repeat(self._start(item), item, count, binds_index=True)

    def layer(self, name, args=None):
        return ast.Layer(self._tok(name), str(name), args or [], args is not None)

    def group(self, bracket, seq):
        return ast.Group(self._tok(bracket), seq)

    def stage(self, keyword, *parts):
        name = str(parts[0]) if len(parts) == 2 else None
        return ast.Stage(self._tok(keyword), name, parts[-1])

    def residual(self, keyword, body, shortcut=None):
        return ast.Residual(self._tok(keyword), body, shortcut)

    def dense(self, keyword, body):
        return ast.Dense(self._tok(keyword), body)

    def branch(self, keyword, *paths):
        return ast.Branch(self._tok(keyword), list(paths))

    def scale(self, keyword, body):
        return ast.Scale(self._tok(keyword), body)

    def input_shape(self, keyword, shape):
        if isinstance(shape, Token):
            start = shape.column
            dims = []
            for part in str(shape).split("x"):
                where = SourcePos(self.file, shape.line, start)
                dims.append(ast.Number(where, self._whole(part, where)))
                start += len(part) + 1
            return ast.Input(self._tok(keyword), dims)
        return ast.Input(self._tok(keyword), [arg.value for arg in shape])

    def train_input_shape(self, keyword, _input, shape):
        made = self.input_shape(keyword, shape)
        return ast.Input(made.pos, made.dims, training=True)

    def jump(self, tap):
        return ast.Jump(tap.pos, tap.name, tap.index)

    def tap(self, at, name, *rest):  # `@t`; `@b.t`, in the call labelled b, as one dotted name; `@t[i]`
        index = rest[-1] if rest and not isinstance(rest[-1], Token) else None
        return ast.TapRef(self._tok(at), ".".join(str(part) for part in (name, *rest) if part is not index), index)

    def block_input(self, at):
        return ast.TapRef(self._tok(at), "in")

    # expressions
    def arguments(self, *args):
        return [a if isinstance(a, ast.Argument) else ast.Argument(None, a, a.pos) for a in args]

    def keyword(self, name, value):
        return ast.Argument(str(name), value, self._tok(name))

    def number(self, token):
        return self._number(str(token), self._tok(token))

    def _number(self, text: str, pos: SourcePos) -> ast.Number:
        if any(ch in text for ch in ".eE"):
            return ast.Number(pos, float(text))
        return ast.Number(pos, self._whole(text, pos))

    def numbers(self, token):
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

    def string(self, token):
        return ast.String(self._tok(token), str(token)[1:-1])

    def name(self, token):
        return ast.Name(self._tok(token), str(token))

    def in_attr(self, keyword, attr):
        return ast.InAttr(self._tok(keyword), str(attr))

    def attribute(self, target, attr):
        return ast.Attribute(self._start(target), target, str(attr))

    def index(self, target, index):
        return ast.Index(self._start(target), target, index)

    def function(self, name, args):
        return ast.FunctionCall(self._tok(name), str(name), args)

    def list(self, bracket, *items):
        return ast.ListExpr(self._tok(bracket), list(items))

    def comprehension(self, bracket, item, *parts):
        names = [str(part) for part in parts if isinstance(part, Token)]
        rest = parts[len(names) :]
        return ast.Comprehension(self._tok(bracket), item, names, rest[0], rest[1] if len(rest) == 2 else None)

    def paren(self, bracket, expr):
        """`(expr)`: the expression itself; a node it starts reads its position from the `(`."""
        self._parenthesised[id(expr)] = self._tok(bracket)
        return expr

    def tuple(self, bracket, *items):
        return ast.TupleExpr(self._tok(bracket), list(items))

    def conditional(self, then, condition, otherwise):
        return ast.Conditional(self._start(then), then, condition, otherwise)

    def any_of(self, left, right):
        return ast.Binary(self._start(left), "or", left, right)

    def all_of(self, left, right):
        return ast.Binary(self._start(left), "and", left, right)

    def negation(self, keyword, operand):
        return ast.Not(self._tok(keyword), operand)

    def compare(self, left, op, right):
        return ast.Binary(self._tok(op), str(op), left, right)

    def binary(self, left, op, right):
        return ast.Binary(self._tok(op), str(op), left, right)

    def power(self, base, exponent):
        return ast.Binary(self._start(base), "^", base, exponent)

    def negate(self, sign, operand):
        return ast.Negate(self._tok(sign), operand)
