"""What every importer shares: statements folded into `x n` runs and written as .cnn text."""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass

LINE_WIDTH = 96


@dataclass
class Statement:
    """One item of the network body, with the source lines it came from and an optional tap label."""

    text: str
    first: int
    last: int
    label: str | None = None
    starts_line: bool = False


def identifier(stem: str) -> str:
    """A network name from a file name: letters, digits and underscores, not starting with a digit."""
    name = re.sub(r"\W+", "_", stem).strip("_").lower() or "imported"
    if name[0].isdigit() or keyword.iskeyword(name):
        name = "net_" + name
    return name


def fold(statements: list[Statement], longest: int = 4) -> list[Statement]:
    """Runs of identical statements become `item x n` and `(a, b) x n`; a label may only end a run."""
    folded: list[Statement] = []
    at = 0
    while at < len(statements):
        best_period, best_count = 1, 1
        for period in range(1, longest + 1):
            count = _repeats(statements, at, period)
            if count >= 2 and period * count > best_period * best_count:
                best_period, best_count = period, count
        run = statements[at : at + best_period * best_count]
        if best_count == 1:
            folded.append(run[0])
        else:
            unit = [s.text for s in run[:best_period]]
            body = unit[0] if best_period == 1 and not several_items(unit[0]) else f"({', '.join(unit)})"
            folded.append(
                Statement(f"{body} x{best_count}", run[0].first, run[-1].last, run[-1].label, run[0].starts_line)
            )
        at += len(run)
    return folded


def _repeats(statements: list[Statement], at: int, period: int) -> int:
    """How many times statements[at:at+period] repeats from `at`; labels and line starts may only come last/first."""
    unit = statements[at : at + period]
    if len(unit) < period or any(s.label for s in unit) or any(s.starts_line for s in unit[1:]):
        return 1
    count = 1
    while True:
        nxt = statements[at + count * period : at + (count + 1) * period]
        if len(nxt) < period or [s.text for s in nxt] != [s.text for s in unit]:
            return count
        if nxt[0].starts_line or any(s.label for s in nxt[:-1]) or any(s.starts_line for s in nxt[1:]):
            return count
        count += 1
        if nxt[-1].label:
            return count


def labelled(statement: Statement) -> str:
    """`label: item`; a statement of several items is grouped, since a label names the point after one item."""
    if not statement.label:
        return statement.text
    text = f"({statement.text})" if several_items(statement.text) else statement.text
    return f"{statement.label}: {text}"


def several_items(text: str) -> bool:
    """Whether the text holds a comma outside any brackets: several items, not one."""
    depth = 0
    for char in text:
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            return True
    return False


def body_lines(statements: list[Statement], what: str = "lines") -> list[str]:
    """Statements packed into lines of at most LINE_WIDTH, each ending with the source lines it came from."""
    lines: list[str] = []
    current: list[Statement] = []

    def flush():
        if current:
            text = ", ".join(labelled(s) for s in current)
            first, last = current[0].first, current[-1].last
            where = f"{first}" if first == last else f"{first}-{last}"
            lines.append(f"    {text}  # {what} {where}")
            current.clear()

    for statement in statements:
        candidate = current + [statement]
        width = 4 + sum(len(labelled(s)) + 2 for s in candidate)
        if current and (statement.starts_line or width > LINE_WIDTH):
            flush()
        current.append(statement)
    flush()
    return lines
