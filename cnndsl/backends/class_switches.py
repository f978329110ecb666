"""A block whose true/false parameter changes its code (Ultralytics' Bottleneck with and without `shortcut`, C3k2
holding C3k blocks or bottlenecks) is one class that takes the flag: the two classes its instances would
otherwise get become one, the lines they share written once and the rest under `if flag:` / `else:`.

Runs once the classes of a height are named (cnndsl.backends.class_templates.resolve), so that the classes
of the next height call the one class; each argument that has a default is passed as a keyword
(`Bottleneck(c, c, shortcut=False)`), so that callers' code has one form whatever the flag's value.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from .class_templates import ClassParts, Row, Template, class_text, indented, keyword_call
from .python_names import parameter_name

MOST_DIFFERING = 4  # lines each side of an `if` may hold: more, and two classes read better


def merge_switched(compact) -> None:
    """Each block with two named classes that one true/false argument tells apart becomes one class."""
    by_block = defaultdict(list)
    for key, template in compact.templates.items():
        call = compact.groups.info[template.instances[0].path].call
        if template.name and call is not None:
            by_block[call.block].append(key)
    for block, keys in by_block.items():
        if len(keys) == 1:
            _adopted(compact, block, compact.templates[keys[0]])
        if len(keys) != 2:
            continue
        merged = _merged(compact, *(compact.templates[key] for key in keys))
        if merged is not None:  # in the place of the first, so that the file's order stays
            compact.templates = {
                (("switched", merged.name) if key == keys[0] else key): (merged if key == keys[0] else template)
                for key, template in compact.templates.items()
                if key != keys[1]
            }


def _merged(compact, first: Template, second: Template) -> Template | None:
    flag = _flag(compact, first, second)
    if flag is None:
        return None
    name, on = flag
    if not on:
        first, second = second, first
    call = compact.groups.info[first.instances[0].path].call
    order = ["in_channels", *(parameter_name(parameter) for parameter in call.args)]
    wanted = set(first.params) | set(second.params) | {parameter_name(name)}
    if not wanted <= set(order):
        return None  # an argument of one class that is no parameter of the block: its callers could not pass it
    defaults = {parameter_name(key): value for key, value in call.defaults.items()}
    params = [parameter for parameter in order if parameter in wanted and parameter not in defaults]
    params += [parameter for parameter in order if parameter in wanted and parameter in defaults]
    parts = _switched_parts(first.parts, second.parts, parameter_name(name), params, defaults)
    if parts is None:
        return None
    merged = Template(first.base, first.init, first.forward, [*first.instances, *second.instances])
    parts.name, dropped = sorted([first.name, second.name], key=lambda name: (len(name), name))  # C3k2, not C3k22
    merged.name, merged.params, merged.parts = parts.name, params, parts
    merged.text, merged.uses = class_text(parts), first.uses | second.uses
    merged.switch = parameter_name(name)
    compact.classes.release(dropped)
    for instance in merged.instances:
        args = compact.groups.info[instance.path].call.args
        given = {**instance.candidates, **{parameter_name(key): value for key, value in args.items()}}
        values = [given[parameter] for parameter in params]
        compact.codes[instance.path] = keyword_call(
            merged.name, params, values, len(params) - len(set(params) & set(defaults)), defaults
        )
    return merged


def _adopted(compact, block: str, template: Template) -> None:
    """A block whose instances here all hold one side of a class that another build of the network (at another
    scale: YOLO11's m has only C3k2s of C3k blocks, n both kinds) merged: its callers call that class as there,
    with the flag, so that the network's code at both builds differs only in numbers."""
    for other in compact.evidence:
        merged = next(
            (
                theirs
                for theirs in other.templates.values()
                if theirs.switch
                and theirs.name == template.name
                and other.groups.info[theirs.instances[0].path].call.block == block
            ),
            None,
        )
        if merged is None or not set(template.params) <= set(merged.params):
            continue
        defaults = merged.parts.defaults
        optional = len(merged.params) - len(set(merged.params) & set(defaults))
        codes = {}
        for instance in template.instances:
            args = compact.groups.info[instance.path].call.args
            given = {**instance.candidates, **{parameter_name(key): value for key, value in args.items()}}
            if not all(parameter in given for parameter in merged.params):
                return
            values = [given[parameter] for parameter in merged.params]
            codes[instance.path] = keyword_call(merged.name, merged.params, values, optional, defaults)
        compact.codes.update(codes)
        return


def _flag(compact, first: Template, second: Template) -> tuple[str, bool] | None:
    """(the block parameter that is true in every instance of one class and false in every one of the other,
    its value in `first`), or None."""

    def values(template: Template, name: str) -> set:
        return {compact.groups.info[instance.path].call.args.get(name) for instance in template.instances}

    call = compact.groups.info[first.instances[0].path].call
    for name in call.args:
        ones, others = values(first, name), values(second, name)
        if len(ones) == len(others) == 1 and {*ones, *others} == {True, False}:
            return name, ones == {True}
    return None


def _switched_parts(on: ClassParts, off: ClassParts, flag: str, params: list, defaults: dict) -> ClassParts | None:
    """The class of both: each method's leading and trailing rows or steps that are the same records once, the
    others under the flag (the forward reads it as `self.<flag>`, kept by `__init__` where it does)."""
    forward = _switched(on.forward, off.forward, f"self.{flag}")
    init = _switched(on.init, off.init, flag)
    if forward is None or init is None:
        return None
    if flag in {row.key[1] if row.key[0] == "held" else row.key[2] for row in [*on.init, *off.init]}:
        return None  # the flag's name is a submodule's or an attribute's
    kept = [Row(("held", flag, flag), f"self.{flag} = {flag}")] if forward != on.forward else []
    return ClassParts(on.name, params, defaults, [*kept, *init], forward)


@dataclass(frozen=True)
class Switch:
    """Rows or steps under `if condition:`, the other ones under `else:` (either may be empty)."""

    condition: str
    on: tuple
    off: tuple

    def lines(self) -> list[str]:
        on, off = ([line for item in items for line in item.lines()] for items in (self.on, self.off))
        if not on:
            return [f"if not {self.condition}:", *indented(off, 1)]
        return [f"if {self.condition}:", *indented(on, 1), *(["else:", *indented(off, 1)] if off else [])]


def _switched(on: list, off: list, condition: str) -> list | None:
    """The items both lists start and end with, and between them a Switch of the one's and the other's; None
    where a differing part is long."""
    if on == off:
        return list(on)
    start = 0
    while start < min(len(on), len(off)) and on[start] == off[start]:
        start += 1
    end = 0
    while end < min(len(on), len(off)) - start and on[len(on) - 1 - end] == off[len(off) - 1 - end]:
        end += 1
    first, second = on[start : len(on) - end], off[start : len(off) - end]
    if max(_count(first), _count(second)) > MOST_DIFFERING:
        return None
    return [*on[:start], Switch(condition, tuple(first), tuple(second)), *on[len(on) - end :]]


def _count(items) -> int:
    return sum(len(item.lines()) for item in items)
