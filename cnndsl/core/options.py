"""Options declared once, as fields of a frozen dataclass with an `OptionSpec` in their metadata.

Every surface derives its own options from the declaration (the CLI's click options, the Sphinx directive's
option_spec, a Markdown block's attributes, serve's request fields, the API's keyword arguments), so a new
option is one field and cannot be forgotten in one of them; tests/test_options.py holds each surface to it.
"""

from __future__ import annotations

import dataclasses
import math
import typing

from .errors import ValueProblem
from .records import FrozenRecord

FLAGS = {"true": True, "yes": True, "": True, "false": False, "no": False}


class OptionSpec(FrozenRecord):
    """What the surfaces need to know about one option besides its name, type and default."""

    __slots__ = ("help", "brief", "formats", "choices", "minimum", "metavar", "per_figure")

    def __init__(
        self,
        help: str | None = None,  # the sentence `--help` shows (and the docs)
        brief: str | None = None,  # a shorter phrase, where the option is one among many (`compile --help`)
        formats: tuple[str, ...] = (),  # the output formats it changes; given with another, it is refused
        choices: tuple[str, ...] = (),  # the values it takes, when they are few
        minimum: int | float | None = None,  # a whole number from it, or a number above it (a float)
        metavar: str | None = None,  # what `--help` shows for its value
        per_figure: bool = True,  # False: a bound set by whoever runs the tool, never by a docs block or a page
    ) -> None:
        self._set(help, brief, formats, choices, minimum, metavar, per_figure)


def option(default, **spec) -> typing.Any:
    """A dataclass field that declares an option: `depth: int | None = option(None, help=...)`."""
    return dataclasses.field(default=default, metadata={"option": OptionSpec(**spec)})


class Declared(FrozenRecord):
    """One option as a surface reads it."""

    __slots__ = ("name", "kind", "default", "spec")

    def __init__(self, name: str, kind: type, default: typing.Any, spec: OptionSpec) -> None:
        self._set(name, kind, default, spec)  # kind: bool, int, float or str (or None where the default is None)

    @property
    def flag(self) -> str:
        """Its command-line spelling: `--fold-bn` for `fold_bn`."""
        return "--" + self.name.replace("_", "-")

    def from_text(self, text: str):
        """The value written as text (a Markdown block's `depth=1`); a bad one is a ValueProblem."""
        if self.kind is bool:
            if text.lower() not in FLAGS:
                raise ValueProblem(f"{self.name} must be true or false, got {text!r}")
            return FLAGS[text.lower()]
        if self.kind is int:
            whole = text.isascii() and text.isdigit() and len(text) <= 18  # int() refuses 4,300 digits with a traceback
            if not whole or int(text) < (self.spec.minimum or 0):
                raise ValueProblem(f"{self.name} must be a whole number from {self.spec.minimum or 0}, got {text!r}")
            return int(text)
        if self.kind is float:
            return self._number(_float(text), shown=repr(text))
        return self.checked(text, shown=repr(text))

    def from_json(self, value):
        """The value sent as JSON (serve's request): a missing one is the default, a wrong one a ValueProblem."""
        if value is None and self.default is None:
            return None
        if self.kind is bool:
            return value is True
        if self.kind is int and (
            isinstance(value, bool) or not isinstance(value, int) or value < (self.spec.minimum or 0)
        ):
            raise ValueProblem(f"{self.name} must be a whole number from {self.spec.minimum or 0}, or null")
        if self.kind is float:
            number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
            return self._number(number, shown=repr(value))
        if self.kind is str and not isinstance(value, str):
            raise ValueProblem(f"{self.name} must be a string, got {type(value).__name__}")
        return self.checked(value, shown=repr(value))

    def _number(self, value: float | None, shown: str) -> float:
        """A finite number above the minimum (a time, a scale)."""
        low = self.spec.minimum or 0
        if value is None or not math.isfinite(value) or value <= low:
            raise ValueProblem(f"{self.name} must be a number above {low:g}, got {shown}")
        return float(value)

    def checked(self, value, shown: str):
        if self.spec.choices and value not in self.spec.choices:
            raise ValueProblem(f"{self.name} must be one of {', '.join(self.spec.choices)}, got {shown}")
        return value


def declared(record: type) -> tuple[Declared, ...]:
    """The options a dataclass declares, in field order (fields without an OptionSpec are not options)."""
    hints = typing.get_type_hints(record)
    return tuple(
        Declared(field.name, _kind(hints[field.name]), field.default, field.metadata["option"])
        for field in dataclasses.fields(record)
        if "option" in field.metadata
    )


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _kind(hint) -> type:
    """`int | None` -> int."""
    kinds = [kind for kind in typing.get_args(hint) or (hint,) if kind is not type(None)]
    if len(kinds) != 1 or kinds[0] not in (bool, int, float, str):
        raise TypeError(f"an option is a bool, int, float or str, optionally None; not {hint}")
    return kinds[0]
