"""Text -> AST, with Lark's LALR parser and positions on every node."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ..core.errors import LimitProblem, SourcePos, SyntaxProblem
from ..core.resources import grammar_path
from . import syntax as ast
from .to_ast import ToAst

MAX_NESTING = 100
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
def _parser() -> tuple[Lark, _Nesting, ToAst]:
    """The parser, its postlexer and the ToAst it applies as it reduces each rule: no parse tree is built.
    Nodes take their positions from the tokens that start them (cnndsl/front/to_ast.py), so Lark need not
    work out every tree node's span (`propagate_positions`, four-tenths of the parse)."""
    nesting, to_ast = _Nesting(), ToAst()
    parser = Lark(
        grammar_path().read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        postlex=nesting,
        transformer=to_ast,
        maybe_placeholders=False,
    )  # built in memory: Lark's `cache=True` would unpickle a file any local user can plant in the temp folder
    return parser, nesting, to_ast


def parse(text: str, file: str = "<string>") -> ast.Program:
    """Parse .cnn source into a Program; syntax errors become located SyntaxProblems."""
    parser, nesting, to_ast = _parser()
    text = text.removeprefix("\ufeff")  # a byte-order mark is no part of the program; editors hide it
    nesting.file, nesting.text, nesting.code_at = file, text, -1
    to_ast.start_over(file, text)
    try:
        return parser.parse(text)
    except UnexpectedInput as error:
        raise _syntax_error(error, file, text) from None
    finally:
        to_ast.start_over("<string>", "")  # holds no program's text or nodes after the parse


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
