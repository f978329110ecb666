"""A family's scale as an argument of the compact source: where the network built at each of Ultralytics' scale
letters has the same classes and the same code but for numbers, the numbers that differ between scales go in
one table, a row per scale (the widths and repeats each scale resolves to), and the network's class reads the
row of its `scale`.

A number that follows `classes` through a clamp (the class branch, `max(64, min(classes, 100))`) keeps the
clamp; its lower bound, the scale's own width, becomes a column where it differs between scales.
"""

from __future__ import annotations

from dataclasses import dataclass

SCALES = {"scale": ("n", "s", "m", "l", "x")}  # Ultralytics' scale letters: a family's `scale` is tried at each
COUNTS = ("n", "count", "repeats", "depth")  # hints of a repetition's count: its column is a depth, `d1`


@dataclass(frozen=True)
class Clamp:
    """`max(low, min(name, high))`, either bound absent where it never binds; `low` a number or a column."""

    name: str
    low: int | str | None
    high: int | None

    def __str__(self) -> str:
        text = self.name if self.high is None else f"min({self.name}, {self.high})"
        return text if self.low is None else f"max({self.low}, {text})"


@dataclass
class Table:
    """The parameter, its values in row order, the columns' names and each row's numbers."""

    parameter: str
    values: tuple
    names: list
    rows: dict

    def text(self) -> str:
        """The module-level table."""
        lines = [
            f"# What each `{self.parameter}` resolves to (the numbers that differ between them): "
            f"{', '.join(self.names)}",
            "SCALES = {",
            *(f"    {value!r}: {_tuple(self.rows[value])}," for value in self.values),
            "}",
        ]
        return "\n".join(lines)

    def unpacking(self) -> list[str]:
        """`(w1, w2, ...) = SCALES[scale]`, laid out as ruff format keeps it (a magic trailing comma)."""
        return ["(", *(f"    {name}," for name in self.names), f") = SCALES[{self.parameter}]"]


def _tuple(row: tuple) -> str:
    return f"({row[0]!r},)" if len(row) == 1 else repr(row)


def scaled_parameter(values: dict) -> str | None:
    """The network parameter that is a scale letter, if any."""
    return next((name for name, letters in SCALES.items() if values.get(name) in letters), None)


def scale_table(parameter: str, drafts: dict, expressions: dict, hints: list, values: dict) -> Table | None:
    """The table of the numbers that differ between the drafts (scale value -> the draft's numbers, the network's
    own first), each slot of `expressions` that a column names set to it; None where a number that follows
    another parameter (`classes`, its value in `values`) cannot be told apart per scale."""
    order = list(drafts)
    columns: dict[tuple, str] = {}
    counters: dict[str, int] = {}

    def column(vector: tuple, hint: str):
        if len(set(vector)) == 1:
            return vector[0]
        if vector not in columns:
            prefix = "d" if hint in COUNTS else hint if type(vector[0]) is bool else "w"
            counters[prefix] = counters.get(prefix, 0) + 1
            columns[vector] = f"{prefix}{counters[prefix]}"
        return columns[vector]

    named = {}
    for slot, hint in enumerate(hints):
        vector = tuple(drafts[value][slot] for value in order)
        expression = expressions.get(slot)
        if isinstance(expression, Clamp):
            lows = _lows(expression, vector, values.get(expression.name))
            if lows is None:
                return None
            named[slot] = Clamp(expression.name, column(lows, hint), expression.high)
        elif expression is not None:
            if len(set(vector)) > 1:
                return None  # `classes` itself, and another number at another scale
        elif len(set(vector)) > 1:
            named[slot] = column(vector, hint)
    if not columns:
        return None
    expressions.update(named)
    names = list(columns.values())
    rows = {value: tuple(vector[index] for vector in columns) for index, value in enumerate(order)}
    return Table(parameter, tuple(value for value in SCALES[parameter] if value in rows), names, rows)


def _lows(clamp: Clamp, vector: tuple, default: int | None) -> tuple | None:
    """The clamp's lower bound at each scale: the network's own, or the number where it exceeds what the
    parameter's default gives without one (Ultralytics' branch width at s: 128 > 80 classes)."""
    if default is None or clamp.low is None or type(clamp.low) is not int:
        return None
    unbound = default if clamp.high is None else min(default, clamp.high)
    lows = [clamp.low]
    for number in vector[1:]:
        if number > unbound:
            lows.append(number)
        elif number == unbound and clamp.low <= unbound:
            lows.append(clamp.low)  # checked by building the file at the last scale with other classes
        else:
            return None
    return tuple(lows)
