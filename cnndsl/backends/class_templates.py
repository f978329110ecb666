"""The classes of the compact source: a block's instances that differ only in numbers share one class,
whose arguments are named after the block's parameters where their values match; one instance with a
submodule more (a projection shortcut) joins them under a condition on those arguments."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace

from ..graph import ir
from .class_code import (
    Code,
    Keyword,
    Line,
    Slot,
    Step,
    alias,
    forward_lines,
    forward_uses,
    line_form,
    line_slots,
    lines_code,
    matches,
    rendered,
    shown,
)
from .class_evidence import name_there, observed_instances
from .python_names import Namespace, class_name, is_free, parameter_name


@dataclass
class Instance:
    """One group written as a template's class: its `__init__` code's numbers and the names they may stand for."""

    path: tuple
    code: Code
    candidates: dict
    numbers: list = field(default_factory=list)  # the forward's lifted slice bounds (cnndsl.backends.class_code)


@dataclass
class Template:
    """One class: the `__init__` lines and forward steps its instances share, and once named, its text."""

    base: str
    init: list[Line]
    forward: list[Step]
    instances: list = field(default_factory=list)
    name: str = ""
    params: list = field(default_factory=list)
    text: str = ""
    condition: str = ""  # when the optional submodule is built
    condition_words: tuple = ()  # the argument names the condition reads
    uses: frozenset = frozenset()  # the file's names its code needs
    parts: ClassParts | None = None  # once named: what its text is written from
    switch: str = ""  # the flag of a class merged from two (cnndsl.backends.class_switches)

    def key(self) -> tuple:
        """Equal for templates whose code is the same: the same class."""
        return (self.base, lines_code(self.init, Code()).key(), tuple(forward_lines(self.forward)))


@dataclass(frozen=True)
class Row:
    """A line of a class's `__init__`: what it is made of (its form, the numbers or expressions in its slots, the
    attribute it sets), equal for lines written alike, and its text."""

    key: tuple
    text: str

    def lines(self) -> list[str]:
        return [self.text]


@dataclass
class ClassParts:
    """A named class before its text: its name, arguments and their defaults, `__init__`'s rows and the forward's
    steps (each a Row or Step, or a Switch of them: cnndsl.backends.class_switches)."""

    name: str
    params: list
    defaults: dict
    init: list
    forward: list


def class_text(parts: ClassParts) -> str:
    """The class's text; the arguments from the first of the trailing ones with a default on written with it."""
    optional = len(parts.params)
    while optional and parts.params[optional - 1] in parts.defaults:
        optional -= 1
    written = [*parts.params[:optional], *(f"{name}={parts.defaults[name]!r}" for name in parts.params[optional:])]
    return "\n".join(
        [
            f"class {parts.name}(nn.Module):",
            f"    def __init__({', '.join(['self', *written])}):",
            "        super().__init__()",
            *indented([line for row in parts.init for line in row.lines()], 2),
            "",
            "    def forward(self, x):",
            *indented([line for step in parts.forward for line in step.lines()], 2),
        ]
    )


def merge_optional(compact) -> None:
    """Two templates of one block, one with a submodule more that maps a value to itself (a projection
    shortcut), become one class where a condition on its arguments tells them apart."""
    templates = compact.templates
    by_base = defaultdict(list)
    for key, template in templates.items():
        if not template.name:
            by_base[template.base].append(key)
    for keys in by_base.values():
        if len(keys) != 2:
            continue
        for without, extra in (keys, keys[::-1]):
            merged = _with_optional(templates[without], templates[extra], compact)
            if merged is not None:
                del templates[without], templates[extra]
                templates[merged.key()] = merged
                break


def _with_optional(without: Template, extra: Template, compact) -> Template | None:
    """`extra` with its one additional submodule built under a condition, if `without` is `extra` less it."""
    if not without.init:
        return None  # a class without submodules gains none
    plain = [line_form(line) for line in without.init]
    position = next(
        (
            index
            for index in range(len(extra.init))
            if [line_form(line) for line in extra.init[:index] + extra.init[index + 1 :]] == plain
        ),
        None,
    )
    name = extra.init[position].sets if position is not None else None
    if name is None:
        return None
    step, aliased = None, None
    wanted = forward_lines(without.forward)
    for index, candidate in enumerate(extra.forward):  # `identity = self.downsample(x)`, absent where `x` is added
        if candidate.calls(f"self.{name}"):
            rest = extra.forward[:index] + extra.forward[index + 1 :]
            if forward_lines(other.renamed(candidate.target, candidate.args[0]) for other in rest) == wanted:
                step, aliased = index, (candidate.target, candidate.args[0])
                break
    slots = line_slots(extra.init[position])
    if step is None or not slots:
        return None
    found = _condition(
        [instance.candidates for instance in extra.instances],
        [instance.candidates for instance in without.instances],
        compact,
    )
    if found is None:
        return None
    condition, words = found
    optional = extra.init[position]
    init = [
        *extra.init[:position],
        Line((f"self.{name} = None",)),
        Line((f"if {condition}:",)),
        Line(("    ", *optional.parts), optional.sets),
        *extra.init[position + 1 :],
    ]
    second = [alias(*aliased)] if aliased[0] != aliased[1] else []  # torchvision's `identity = x`
    forward = [*second, *extra.forward[:step], replace(extra.forward[step], guard=name), *extra.forward[step + 1 :]]
    merged = Template(extra.base, init, forward, condition=condition, condition_words=words)
    merged.instances = list(extra.instances)
    start, count = min(slots), len(slots)
    for instance in without.instances:
        values = instance.code.values[:start] + [None] * count + instance.code.values[start:]
        merged.instances.append(
            Instance(instance.path, lines_code(init, Code(values=values)), instance.candidates, instance.numbers)
        )
    for instance in extra.instances:
        instance.code = lines_code(init, instance.code)
    merged.instances[0].code.hints = extra.instances[0].code.hints
    return merged


def _condition(having: list[dict], lacking: list[dict], compact) -> tuple[str, tuple] | None:
    """`a != b` over candidate names that holds for every instance with the submodule and none without,
    and the argument names it reads."""
    names = list(having[0])
    for first in [name for name in names if compact.plain(name)]:  # a plain name on the left: in_channels != 4 * c
        for second in names:
            if (
                first != second
                and all(c[first] != c[second] for c in having)
                and all(c[first] == c[second] for c in lacking)
            ):
                return f"{first} != {second}", (first, *compact.words.get(second, (second,)))
    return None


def _preferred(candidates: dict, hint: str, words: dict) -> list[str]:
    """Candidate names in the order to try: the incoming channels first for a layer's input width,
    last for anything else (where they match only by coincidence), and the forms made of them after
    the block's own parameters' forms (`c2 // 2` before `in_channels // 2`)."""
    names = [name for name in candidates if name != "in_channels"]
    if hint.endswith(("in_channels", "in_features")):
        return ["in_channels", *names]
    own = [name for name in names if "in_channels" not in words.get(name, (name,))]
    return [*own, *(name for name in names if name not in own), "in_channels"]


def resolve(compact, template: Template) -> None:
    """The class's arguments: each number that differs between instances, named after what matches it."""
    first = next(instance for instance in template.instances if None not in instance.code.values)
    expressions, extra = {}, []
    observed = observed_instances(compact, template)
    for slot in range(len(first.code.values)):
        having = [
            (instance, instance.code.values[slot]) for instance in observed if instance.code.values[slot] is not None
        ]  # an optional submodule's numbers: where it is
        if len({value for _, value in having}) == 1:
            continue
        name = next(
            (
                name
                for name in _preferred(first.candidates, first.code.hints[slot], compact.words)
                if all(
                    name in instance.candidates and matches(instance.candidates[name], value)
                    for instance, value in having
                )
            ),
            None,
        )
        if name is None:
            name = _followed(compact, template, first, slot) or _unmatched(template, first, slot)
            if name not in extra:
                extra.append(name)
        expressions[slot] = name
    numbers = _forward_numbers(compact, template, observed, first, expressions, extra)
    used = {word for expression in expressions.values() for word in compact.words.get(expression, (expression,))}
    used |= set(template.condition_words)
    used |= {
        word for held in numbers if type(held) is tuple for word in compact.words.get(held[1], (held[1],))
    }  # what the forward's attributes are set from
    for slot in range(len(first.code.values)):  # an optional submodule's constant, named by an argument
        having = [
            (instance, instance.code.values[slot])
            for instance in template.instances
            if instance.code.values[slot] is not None
        ]
        counted = first.code.hints[slot] == "count"  # a loop's count, where the class reads its `n` elsewhere
        if slot in expressions or (len(having) == len(template.instances) and not counted):
            continue
        name = next(
            (
                name
                for name in first.candidates
                if name in used
                and compact.plain(name)
                and all(matches(instance.candidates.get(name), value) for instance, value in having)
            ),
            None,
        )
        if name is not None:
            expressions[slot] = name  # a shortcut's stride is the block's `s`, not a 2 that happens to be so
    params = [name for name in first.candidates if compact.plain(name) and name in used]
    absent = {
        name
        for slot, name in expressions.items()
        if name in extra
        and name not in params
        and any(instance.code.values[slot] is None for instance in template.instances)
    }
    template.params = params + [name for name in extra if name not in params and name not in absent] + sorted(absent)
    template.name = name_there(compact, template) or compact.classes.counted(class_name(template.base, "Block"))
    call = compact.groups.info[first.path].call
    defaults = {parameter_name(name): value for name, value in (call.defaults if call is not None else {}).items()}
    defaults.update(dict.fromkeys(absent))  # a number of the optional submodule only: None where it is not built
    optional = len(template.params)
    while optional and template.params[optional - 1] in defaults:
        optional -= 1  # the trailing parameters with a default: callers may leave them out
    template.uses = first.code.uses | forward_uses(template.forward) | {"nn"}
    held = Namespace()
    for line in template.init:
        held.fresh(line.sets or "")
    attributes = {
        entry: held.fresh(entry[0]) for entry in dict.fromkeys(entry for entry in numbers if type(entry) is tuple)
    }
    rows = [
        Row(("held", attribute, entry[1]), f"self.{attribute} = {entry[1]}") for entry, attribute in attributes.items()
    ]
    for line, text in zip(template.init, rendered(template.init, first.code, expressions)):
        given = tuple(expressions.get(slot, first.code.values[slot]) for slot in line_slots(line))
        rows.append(Row((line_form(line), given, line.sets), text))
    steps = shown(
        template.forward, [f"self.{attributes[entry]}" if type(entry) is tuple else entry for entry in numbers]
    )
    template.parts = ClassParts(template.name, template.params, defaults, rows, steps)
    template.text = class_text(template.parts)
    flagged = any(type(defaults[name]) is bool for name in template.params[optional:])
    for instance in template.instances:
        values = [_argument(instance, name, expressions, numbers) for name in template.params]
        if flagged:  # `C2f(64, 64, n=2, shortcut=True)`: one form of code for every caller, a flag read by name
            compact.codes[instance.path] = _keyword_call(template, values, optional, defaults)
            continue
        while len(values) > optional and values[-1] == defaults[template.params[len(values) - 1]]:
            values.pop()
        parts = [piece for index in range(len(values)) for piece in ([", "] if index else []) + [Slot(index)]]
        compact.codes[instance.path] = Code(
            (f"{template.name}(", *parts, ")"), values, list(template.params), callee=template.name
        )


def keyword_call(name: str, params: list, values: list, optional: int, defaults: dict) -> Code:
    """`Name(a, b, n=2, flag=True)`: the arguments from `optional` on by keyword, each left out at its default."""
    parts: list = [f"{name}("]
    optional = max(optional, min(1, len(params)))  # a keyword after nothing would write `Name(, a=1)`
    for index in range(optional):
        parts += [", "] * bool(index) + [Slot(index)]
    parts += [Keyword(params[index], index) for index in range(optional, len(params))]
    keyword_defaults = {index: defaults[params[index]] for index in range(optional, len(params))}
    return Code((*parts, ")"), values, list(params), keyword_defaults, callee=name)


def _keyword_call(template: Template, values: list, optional: int, defaults: dict) -> Code:
    return keyword_call(template.name, template.params, values, optional, defaults)


def _followed(compact, template: Template, first: Instance, slot: int) -> str | None:
    """The network parameter the number equals in every build of `compact.evidence` and in this one (a classifier
    stage's `fc(classes)`), where the block has no candidate of that name."""
    builds = [(compact, template.instances)]
    builds += [
        (other, [other.instances.get(instance.path) for instance in template.instances]) for other in compact.evidence
    ]
    for name in compact.evidence_names:
        if name in first.candidates or not is_free(name):
            continue
        if all(
            instance is not None and matches(_parameter(build, name), instance.code.values[slot])
            for build, instances in builds
            for instance in instances
        ):
            return name
    return None


def _parameter(compact, name: str):
    return ir.network_info(compact.graph).param_values.get(name)


def _unmatched(template: Template, first: Instance, slot: int) -> str:
    """A new argument for a number no candidate stands for: named after its hint, or the hint of another
    number equal to it in every instance (`Bottleneck(c, c)`: both `c`), never a candidate's name, which
    callers pass the candidate's value for (a dense turn's `in_channels` is its input's, not the number's)."""
    same = [
        other
        for other in range(len(first.code.values))
        if all(instance.code.values[other] == instance.code.values[slot] for instance in template.instances)
    ]
    names = [parameter_name(first.code.hints[other]) for other in [slot, *same]]
    name = next((name for name in names if name not in first.candidates), names[0])
    while name in first.candidates:
        name += "_"
    return name


def _argument(instance: Instance, name: str, expressions: dict, numbers: list):
    if name in instance.candidates:
        return instance.candidates[name]
    slot = next((slot for slot, expression in expressions.items() if expression == name), None)
    if slot is None:  # an argument only the forward reads (a slice's width)
        return instance.numbers[numbers.index((name, name))]
    return instance.code.values[slot]


def _forward_numbers(
    compact, template: Template, observed: list, first: Instance, expressions: dict, extra: list
) -> list:
    """For each lifted bound of the forward, its number where every instance has the same, else (attribute,
    expression): the `__init__` code's expression for a number equal to it in every instance (kept on `self`
    under that number's hint), else a name the block's call gives it, else a new argument (`width`, added to
    `extra`). `observed` adds the same groups in other builds (compact.evidence)."""
    result = []
    for index, value in enumerate(first.numbers):
        if len({instance.numbers[index] for instance in observed}) == 1:
            result.append(value)
            continue
        found = [
            (expression if compact.plain(expression) else parameter_name(first.code.hints[slot]), expression)
            for slot, expression in expressions.items()
            if all(instance.code.values[slot] == instance.numbers[index] for instance in observed)
        ]
        found += [
            (name, name)
            for name in first.candidates
            if compact.plain(name)
            and all(matches(instance.candidates.get(name), instance.numbers[index]) for instance in observed)
        ]
        if not found:
            name = parameter_name(f"width{index + 1}" if index else "width")
            extra.append(name)
            found = [(name, name)]
        plain = [entry for entry in found if entry[0] not in first.candidates or entry[0] == entry[1]]
        result.append((plain or found)[0])  # `self.c = in_channels // 2`, not `self.in_channels = in_channels // 2`
    return result


def indented(lines: list[str], levels: int) -> list[str]:
    return ["    " * levels + line if line else "" for line in lines]
