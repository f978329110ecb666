"""Generated Python laid out as `ruff format` (Black's style) lays it out, so the file passes
`ruff format --check` unchanged: double quotes, and lines over 88 columns split at their last bracket.

It covers the statements the source generator writes: one call or expression per line.
"""

from __future__ import annotations

import io
import tokenize

LINE_LENGTH = 88
INDENT = "    "
OPENING, CLOSING = "([{", ")]}"


def laid_out(line: str) -> list[str]:
    """One generated line (with its indentation) as the lines ruff format makes of it."""
    if line.lstrip().startswith("#"):
        return [line]  # ruff format leaves comments as they are
    line = double_quoted(line)
    indent = line[: len(line) - len(line.lstrip(" "))]
    return [indent + part for part in _split(line.strip(), indent)]


def double_quoted(line: str) -> str:
    """Single-quoted string literals as double-quoted ones, where that needs no new escapes."""
    if "'" not in line:
        return line  # no literal to requote: tokenizing every line was a tenth of --to python's time
    parts, last = [], 0
    offsets = _line_offsets(line)
    for token in tokenize.generate_tokens(io.StringIO(line).readline):
        text = token.string
        if token.type == tokenize.STRING and text.startswith("'") and '"' not in text and "\\" not in text:
            start = offsets[token.start[0] - 1] + token.start[1]
            parts += [line[last:start], '"' + text[1:-1] + '"']
            last = start + len(text)
    return "".join(parts) + line[last:]


def _line_offsets(text: str) -> list[int]:
    offsets, total = [], 0
    for row in text.splitlines(keepends=True) or [""]:
        offsets.append(total)
        total += len(row)
    return offsets


def _split(text: str, indent: str, inside: bool = False) -> list[str]:
    """Black's right-hand split: the last bracket pair's contents on their own line, or one item a line
    with a trailing comma where they do not fit; inside brackets, a sum first splits before each `+`."""
    if len(indent) + len(text) <= LINE_LENGTH:
        return [text]
    terms = _terms(text) if inside else []
    if len(terms) > 1:
        return terms
    wrapped = None if inside else _parenthesized_value(text, indent)
    if wrapped is not None:
        return wrapped
    brackets = _last_bracket_pair(text)
    if brackets is None:
        return [text]
    opening, closing = brackets
    head, body, tail = text[: opening + 1], text[opening + 1 : closing], text[closing:]
    if not body.strip():
        return [text]
    inner = indent + INDENT
    clause = _comprehension(body)
    if clause is not None and len(inner) + len(body.strip()) > LINE_LENGTH:  # the element, then its `for`
        element = body[:clause].strip()
        return [
            head,
            *[INDENT + part for part in _split(element, inner, True)],
            *[INDENT + part for part in _split(body[clause:].strip(), inner, True)],
            tail,
        ]
    items = _top_level_items(body)
    before = head[-2:-1]
    literal = head[-1] in "[{" or not (before.isalnum() or before in "_)]")  # a tuple, list, set or dict
    if len(items) == 1 or (len(inner) + len(body) <= LINE_LENGTH and not literal):  # a literal: one item a line
        lines = (
            [INDENT + part for part in _split(body.strip(), inner, True)]
            if len(items) == 1
            else [INDENT + body.strip()]
        )
    else:
        lines = [INDENT + part for item in items for part in _split(item + ",", inner, True)]
    return [head, *lines, tail]


def _parenthesized_value(text: str, indent: str) -> list[str] | None:
    """`target = value` where the line up to the value's last opening bracket does not fit (a long attribute
    path), or that bracket is empty: ruff format puts the value in parentheses on a line of its own where
    `target = (` and the value each fit."""
    equals = next((index for index, _ in _top_level(text) if text[index - 1 : index + 2] == " = "), None)
    if equals is None:
        return None
    value = text[equals + 2 :]
    brackets = _last_bracket_pair(text)
    usual = brackets is not None and brackets[0] > equals and text[brackets[0] + 1 : brackets[1]].strip()
    if usual and len(indent) + brackets[0] + 1 <= LINE_LENGTH:
        return None  # the usual split at the last bracket fits
    if len(indent) + equals + 3 > LINE_LENGTH or len(indent) + len(INDENT) + len(value) > LINE_LENGTH:
        return None  # the target itself or the value does not fit: ruff leaves the parentheses out
    return [text[: equals + 2] + "(", INDENT + value, ")"]


def _terms(text: str) -> list[str]:
    """A sum's terms, each after the first with its `+` or `-`, split outside brackets and strings."""
    terms, start = [], 0
    for index, _ in _top_level(text):
        if text[index - 1 : index + 2] in (" + ", " - "):
            terms.append(text[start : index - 1])
            start = index
    return [*terms, text[start:]]


def _last_bracket_pair(text: str) -> tuple[int, int] | None:
    """Positions of the last closing bracket outside strings and of the bracket it closes."""
    depth_stack: list[int] = []
    pairs: list[tuple[int, int]] = []
    for index, char in _code_characters(text):
        if char in OPENING:
            depth_stack.append(index)
        elif char in CLOSING and depth_stack:
            pairs.append((depth_stack.pop(), index))
    outermost = [pair for pair in pairs if not any(o < pair[0] and pair[1] < c for o, c in pairs)]
    return outermost[-1] if outermost else None


def _comprehension(body: str) -> int | None:
    """Where a comprehension's first ` for ` stands in a bracket's contents, outside nested brackets."""
    return next((index for index, _ in _top_level(body) if body.startswith(" for ", index)), None)


def _top_level_items(body: str) -> list[str]:
    """The comma-separated items of a bracket's contents, brackets and strings kept whole."""
    commas = [index for index, char in _top_level(body) if char == ","]
    items = [body[start + 1 : end].strip() for start, end in zip([-1, *commas], [*commas, len(body)])]
    return [item for item in items if item]


def _top_level(text: str):
    """(index, character) of every character outside brackets and string literals."""
    depth = 0
    for index, char in _code_characters(text):
        if char in OPENING:
            depth += 1
        elif char in CLOSING:
            depth -= 1
        elif depth == 0:
            yield index, char


def _code_characters(text: str):
    """(index, character) of every character outside string literals."""
    quote = None
    escaped = False
    for index, char in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
            continue
        if char in "\"'":
            quote = char
            continue
        yield index, char
