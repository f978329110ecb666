"""A block whose true/false parameter changes its code (Ultralytics' Bottleneck with and without `shortcut`, C3k2
holding C3k blocks or bottlenecks) is one class that takes the flag: the two classes its instances would
otherwise get become one, the lines they share written once and the rest under `if flag:` / `else:`.

Runs once the classes of a height are named (cnndsl.backends.class_templates.resolve), so that the classes
of the next height call the one class; each argument that has a default is passed as a keyword
(`Bottleneck(c, c, shortcut=False)`), so that callers' code has one form whatever the flag's value.
"""

from __future__ import annotations

from collections import defaultdict

from .class_templates import Template, indented, keyword_call
from .python_names import parameter_name

INIT, FORWARD = "        super().__init__()\n", "\n\n    def forward(self, x):\n"
MOST_DIFFERING = 4  # lines each side of an `if` may hold: more, and two classes read better


def merge_switched(compact) -> None:
    """Each block with two named classes that one true/false argument tells apart becomes one class."""
    by_block = defaultdict(list)
    for key, template in compact.templates.items():
        call = compact.groups.info[template.instances[0].path].call
        if template.name and call is not None:
            by_block[call.block].append(key)
    for keys in by_block.values():
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
    text = _text(first, second, parameter_name(name), params, defaults)
    if text is None:
        return None
    merged = Template(first.base, first.init, first.forward, [*first.instances, *second.instances])
    merged.name, dropped = sorted([first.name, second.name], key=lambda name: (len(name), name))  # C3k2, not C3k22
    merged.params, merged.text, merged.uses = params, text.replace(first.name, merged.name, 1), first.uses | second.uses
    compact.classes.release(dropped)
    for instance in merged.instances:
        args = compact.groups.info[instance.path].call.args
        given = {**instance.candidates, **{parameter_name(key): value for key, value in args.items()}}
        values = [given[parameter] for parameter in params]
        compact.codes[instance.path] = keyword_call(
            merged.name, params, values, len(params) - len(set(params) & set(defaults)), defaults
        )
    return merged


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


def _text(on: Template, off: Template, flag: str, params: list, defaults: dict) -> str | None:
    """The class's text: each method's shared leading and trailing lines once, the others under the flag."""
    heads = [template.text.split(INIT, 1) for template in (on, off)]
    if any(len(head) != 2 for head in heads):
        return None
    bodies = [head[1].split(FORWARD, 1) for head in heads]
    if any(len(body) != 2 for body in bodies):
        return None
    (on_init, on_forward), (off_init, off_forward) = bodies
    forward = _switched(on_forward.split("\n"), off_forward.split("\n"), f"self.{flag}")
    init = _switched(on_init.split("\n"), off_init.split("\n"), flag)
    if forward is None or init is None:
        return None
    if any(f"self.{flag} =" in line for line in init):
        return None  # the flag's name is a submodule's
    kept = [f"        self.{flag} = {flag}"] if forward != on_forward.split("\n") else []
    written = [f"{parameter}={defaults[parameter]!r}" if parameter in defaults else parameter for parameter in params]
    signature = ", ".join(["self", *written])
    header = [f"class {on.name}(nn.Module):", f"    def __init__({signature}):", INIT.rstrip("\n")]
    return "\n".join([*header, *kept, *init, "", "    def forward(self, x):", *forward])


def _switched(on: list[str], off: list[str], condition: str) -> list[str] | None:
    """The lines both lists start and end with, and between them `if condition:` the one's, `else:` the
    other's (8 spaces in); None where a differing part is long."""
    if on == off:
        return on
    start = 0
    while start < min(len(on), len(off)) and on[start] == off[start]:
        start += 1
    end = 0
    while end < min(len(on), len(off)) - start and on[len(on) - 1 - end] == off[len(off) - 1 - end]:
        end += 1
    first, second = on[start : len(on) - end], off[start : len(off) - end]
    if max(len(first), len(second)) > MOST_DIFFERING:
        return None
    lines = on[:start]
    if first:
        lines += [f"        if {condition}:", *indented(first, 1)]
        if second:
            lines += ["        else:", *indented(second, 1)]
    else:
        lines += [f"        if not {condition}:", *indented(second, 1)]
    return lines + on[len(on) - end :]
