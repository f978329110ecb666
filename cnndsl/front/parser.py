"""Text -> AST, with Lark's LALR parser and positions on every node."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from ..core.errors import CnnDslError, LimitProblem, NameProblem, SourcePos, SyntaxProblem, ValueProblem
from ..core.resources import grammar_path
from . import syntax as ast
from .evaluate import LARGEST

MAX_NESTING = 100
MAX_DIGITS = 30  # a number literal longer than this is a typo, and Python refuses int() past 4,300 digits
_LIST_LAYOUT = "\t \f\n"
_LIST_ITEM = re.compile(r"[\t \f\n]*\d+(?:\.\d+)?[\t \f\n]*")  # one number between the commas of NUMBERS
_LIST_PIECE = re.compile(r"\d+(?:\.\d+)?|\S")
_OPENERS = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}
_CLOSERS = set(_OPENERS.values())
# Tokens that can stack one more level on the parse tree: operator chains (`1+1+...`,
# `- - 1`, `a if c else ...`), attribute and label chains (`a: b: relu`).
_DEEPENING = {
    "ADD_OP",
    "MINUS",
    "MUL_OP",
    "STAR",
    "CIRCUMFLEX",
    "COMPARE",
    "AND",
    "OR",
    "NOT",
    "IF",
    "ELSE",
    "DOT",
    "COLON",
}
_SEPARATORS = {"COMMA", "_NL", "VBAR"}
# A line that starts with one of these words continues the statement before it (`}` then `else {`):
# none of them can start a statement, so the line break before them is layout, not a separator
# (`shortcut` only before its `{`: a block may be called shortcut). Blank and comment lines between are
# skipped by an unambiguous pattern (a comment runs to its line's end), so the match is linear.
_LAYOUT = re.compile(r"(?:[\t \f\r\n]|#[^\n]*\n)*")
_CONTINUATION = re.compile(r"else\b|elif\b|shortcut[\t ]*\{")


class _Nesting:
    """Postlexer: drops newlines inside ( ) and [ ], and bounds how deep the parse tree can grow.

    The depth is over-estimated from the tokens (open brackets plus the operators chained at each
    bracket level), so an input can never make the recursive passes after parsing overflow.
    """

    always_accept = ("_NL",)

    def __init__(self) -> None:
        self.file = "<string>"
        self.text = ""
        self.code_at = -1  # where the code after the last line break starts, and whether it continues
        self.continues = False

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        stack: list[str] = []
        chains = [[0, 0]]  # per level (top, then each open bracket): [chain since the last separator, longest]
        depth = 0  # len(stack) + the sum of the current chains
        for token in stream:
            kind = token.type
            if kind in _OPENERS:
                stack.append(kind)
                chains.append([0, 0])
                depth += 1
                if depth > MAX_NESTING:
                    raise self._too_deep(token, "brackets nest", "flatten the expression or split it into a block")
            elif kind in _CLOSERS and stack:
                stack.pop()
                chain, longest = chains.pop()
                depth -= chain + 1
                chains[-1][0] += max(chain, longest) + 1
                depth += max(chain, longest) + 1
            elif kind in _DEEPENING:
                chains[-1][0] += 1
                depth += 1
                if depth > MAX_NESTING:
                    raise self._too_deep(token, "this expression nests", "split it into steps with `let`")
            elif kind == "_NL" and stack and stack[-1] != "LBRACE":
                continue  # a line break inside ( ) or [ ] is layout, not a separator
            elif kind == "_NL" and self._continued(token.end_pos):
                continue
            elif kind in _SEPARATORS:
                chain = chains[-1]
                depth -= chain[0]
                chain[:] = [0, max(chain)]
            yield token

    def _continued(self, position: int) -> bool:
        """Whether the code after this line break (past blank and comment lines) continues the statement; each
        stretch of layout is read once, however many line breaks its comments split it into."""
        if position > self.code_at:
            self.code_at = _LAYOUT.match(self.text, position).end()
            self.continues = _CONTINUATION.match(self.text, self.code_at) is not None
        return self.continues

    def _too_deep(self, token: Token, what: str, hint: str) -> LimitProblem:
        return LimitProblem(
            f"{what} more than {MAX_NESTING} deep", SourcePos(self.file, token.line, token.column), hint
        )


@lru_cache(maxsize=1)
def _parser() -> tuple[Lark, _Nesting]:
    nesting = _Nesting()
    parser = Lark(
        grammar_path().read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        postlex=nesting,
        propagate_positions=True,
        maybe_placeholders=False,
    )  # built in memory: Lark's `cache=True` would unpickle a file any local user can plant in the temp folder
    return parser, nesting


def parse(text: str, file: str = "<string>") -> ast.Program:
    """Parse .cnn source into a Program; syntax errors become located SyntaxProblems."""
    parser, nesting = _parser()
    text = text.removeprefix("\ufeff")  # a byte-order mark is no part of the program; editors hide it
    nesting.file, nesting.text, nesting.code_at = file, text, -1
    try:
        tree = parser.parse(text)
        return _ToAst(file, text).transform(tree)
    except UnexpectedInput as error:
        raise _syntax_error(error, file, text) from None
    except VisitError as error:
        if isinstance(error.orig_exc, CnnDslError):
            raise error.orig_exc from None
        raise


_TOKEN_WORDS = {
    "_NL": "end of line",
    "$END": "end of file",
    "COMMA": "`,`",
    "RPAR": "`)`",
    "LPAR": "`(`",
    "RBRACE": "`}`",
    "LBRACE": "`{`",
    "RSQB": "`]`",
    "LSQB": "`[`",
    "NAME": "a name",
    "NUMBER": "a number",
    "SHAPE": "a shape like 3x224x224",
    "STRING": "a string",
    "COLON": "`:`",
    "EQUAL": "`=`",
    "AT": "`@`",
    "VBAR": "`|`",
    "STAR": "`*`",
    "ADD_OP": "an operator",
    "MUL_OP": "an operator",
    "CIRCUMFLEX": "an operator",
    "COMPARE": "an operator",
    "AND": "an operator",
    "OR": "an operator",
    "MINUS": "`-`",
    "DOT": "`.`",
    "NUMBERS": "`[`",
}


def _describe(kind: str) -> str:
    if kind in _TOKEN_WORDS:
        return _TOKEN_WORDS[kind]
    return f"`{kind.lower()}`" if kind.isupper() else kind


def _syntax_error(error: UnexpectedInput, file: str, text: str) -> SyntaxProblem:
    pos = SourcePos(file, error.line if error.line > 0 else 1, error.column if error.column > 0 else 1)
    if isinstance(error, UnexpectedCharacters):
        char = text[error.pos_in_stream] if error.pos_in_stream < len(text) else "?"
        if char == "\r":
            return SyntaxProblem("a line ends in a lone carriage return", pos, "save the file with \\n line endings")
        return SyntaxProblem(f"unexpected character {char!r}", pos, "remove it, or check for a missing quote")
    if isinstance(error, UnexpectedEOF):
        return SyntaxProblem("the file ends in the middle of a statement", pos, "close every ( [ and {")
    assert isinstance(error, UnexpectedToken)
    token = error.token
    found = "end of file" if token.type == "$END" else f"`{token}`" if token.type != "_NL" else "end of line"
    expected = sorted({_describe(kind) for kind in error.expected if not kind.startswith("__")})
    shown = ", ".join(expected[:6]) + (", ..." if len(expected) > 6 else "")
    if token.type == "$END":
        pos = _end_position(file, text)
    return SyntaxProblem(f"unexpected {found}", pos, f"expected {shown}" if expected else None)


def _end_position(file: str, text: str) -> SourcePos:
    lines = text.split("\n")
    return SourcePos(file, len(lines), len(lines[-1]) + 1)


@v_args(meta=True, inline=True)
class _ToAst(Transformer):
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
