"""A Pygments lexer for .cnn text, so Sphinx, MkDocs, Jupyter and `pygmentize -l cnn` highlight it.

The tokens follow grammar/cnn.lark; a name is a layer when the op registry knows it (`conv3x3`,
`bn`, `maxpool`), so a newly registered kind is highlighted without touching this file.
"""

from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Whitespace,
)

from .front.evaluate import CONSTANTS, FUNCTIONS
from .ops import lookup

KEYWORDS = (
    "import",
    "block",
    "network",
    "let",
    "defaults",
    "for",
    "in",
    "if",
    "elif",
    "else",
    "output",
    "train",
    "stage",
    "residual",
    "shortcut",
    "dense",
    "branch",
    "scale",
    "input",
)
WORD_OPERATORS = ("and", "or", "not")
NAME = r"[A-Za-z_][A-Za-z0-9_]*"


def _name(lexer, match):
    """A layer of the registry, a built-in function or constant, or a plain name."""
    text = match.group()
    if lookup(text) is not None:
        token = Name.Builtin
    elif text in FUNCTIONS:
        token = Name.Function
    elif text in CONSTANTS:
        token = Keyword.Constant
    else:
        token = Name
    yield match.start(), token, text


class CnnLexer(RegexLexer):
    """cnndsl's network description language."""

    name = "cnndsl"
    aliases = ["cnn", "cnndsl"]
    filenames = ["*.cnn"]
    mimetypes = ["text/x-cnndsl"]
    url = "https://github.com/cnndsl/cnndsl"

    tokens = {
        "root": [
            (r"[\t \f]+", Whitespace),
            (r"\r?\n", Whitespace),
            (r"#[^\n]*", Comment.Single),
            (r'"[^"\n]*"', String.Double),
            (rf"(block|network)(\s+)({NAME})", bygroups(Keyword.Declaration, Whitespace, Name.Class)),
            (rf"(@)({NAME})", bygroups(Operator, Name.Label)),
            (rf"({NAME})(\s*)(:)(?!:)", bygroups(Name.Label, Whitespace, Punctuation)),
            (r"\d+(x\d+)+\b", Number.Integer),  # an input shape: 3x224x224
            (r"\d+(\.\d+)?[eE][-+]?\d+", Number.Float),
            (r"\d+\.\d+", Number.Float),
            (r"\d+", Number.Integer),
            (r"([)}])(\s*)(x)(\d+)", bygroups(Punctuation, Whitespace, Operator.Word, Number.Integer)),  # `(...) x5`
            (r"x(?=[\s(]|$)", Operator.Word),  # `block(c) x n`: repeat with the index i
            (words(KEYWORDS, suffix=r"\b"), Keyword),
            (words(WORD_OPERATORS, suffix=r"\b"), Operator.Word),
            (NAME, _name),
            (r"==|!=|<=|>=|//|[<>+\-*/%^=|]", Operator),
            (r"[()\[\]{},.]", Punctuation),
        ],
    }
