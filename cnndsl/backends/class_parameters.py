"""The network's own class in the compact source: which of the network's parameters it takes as
arguments (those that, changed, move exactly the numbers they name), and the file's text."""

from __future__ import annotations

from dataclasses import dataclass

from ..graph import ir
from .class_code import Code, filled, forward_lines, forward_uses, lifted_lengths, rendered, shown_lengths
from .class_scales import SCALES, Clamp, Table, scale_table, scaled_parameter
from .class_templates import indented
from .python_names import Namespace, is_free, is_name
from .torch_classes import Compact, together
from .torch_source import class_name

NUMBERED = '''def _numbered(name, *blocks):
    """Blocks in a Sequential, named as cnndsl names them: `name` alone, else name1, name2, ..."""
    if len(blocks) == 1:
        return nn.Sequential(OrderedDict([(name, blocks[0])]))
    return nn.Sequential(OrderedDict((f"{name}{i}", b) for i, b in enumerate(blocks, 1)))'''


@dataclass
class Draft:
    """A network's compact code before its parameters are named: classes, `__init__` with slots, forward."""

    classes: list[str]
    init_lines: list
    init: Code
    forward: list[str]  # its text, each lifted length written as its placeholder
    uses: frozenset  # the file's names its code needs: the imports, and `_numbered` defined
    names: list  # the classes' names
    steps: list  # the forward's steps with their `torch.narrow` lengths lifted (cnndsl.backends.class_code)
    numbers: list  # those lengths

    def values(self) -> list:
        """The numbers a parameter may name: the `__init__` slots, then the forward's lengths."""
        return [*self.init.values, *self.numbers]


# The network parameters whose numbers inside a block are told apart by building the network at other values,
# with the values: few, below and above a cap (Ultralytics' class branch is max(w, min(classes, 100)) wide).
EVIDENCE = {"classes": (3, 81, 150)}


def draft(network, modules: dict, evidence: tuple = ()) -> Draft:
    return drafted(Compact(network, modules, evidence))


def drafted(compact: Compact) -> Draft:
    network = compact.network
    lines, parts = compact.init_code(())
    init_lines, init = filled(lines, parts)
    info = ir.network_info(network.graph)
    outputs = [node for _, node in info.outputs]
    steps, numbers = lifted_lengths(compact.forward_steps(compact.groups.items(()), info.input, outputs, False))
    templates = list(compact.templates.values())
    uses = init.uses.union(forward_uses(steps), {"nn"}, *(template.uses for template in templates))
    text = forward_lines(steps)
    texts, names = [template.text for template in templates], [template.name for template in templates]
    return Draft(texts, init_lines, init, text, uses, names, steps, numbers)


class Evidence(tuple):
    """The Compacts of the network's other builds, and the draft of each by its changes (`_changed`)."""

    drafts: dict


def evidence_builds(network, modules: dict, rebuild, scaled: str | None) -> tuple[Draft | None, Evidence]:
    """The network's draft and the Compacts of it built at each of EVIDENCE's other values of its parameters and
    at each other scale that expands, all built together (cnndsl.backends.torch_classes.together); (None, ())
    where a value of EVIDENCE does not expand."""
    values = ir.network_info(network.graph).param_values
    changes = [{name: other} for name, others in EVIDENCE.items() if name in values for other in others]
    changes = [change for change in changes if values[next(iter(change))] not in change.values()]
    if scaled is not None:
        changes += [{scaled: letter} for letter in SCALES[scaled] if letter != values[scaled]]
    builds = [(change, rebuild(change)) for change in changes]
    if any(build is None and scaled not in change for change, build in builds):
        return None, Evidence()
    builds = [(change, build) for change, build in builds if build is not None]
    compacts = together([(network, modules), *(build for _, build in builds)])
    evidence = Evidence(compacts[1:])
    evidence.drafts = {_changed(change): drafted(compact) for (change, _), compact in zip(builds, compacts[1:])}
    return drafted(compacts[0]), evidence


def _changed(changes: dict) -> str:
    return repr(sorted(changes.items()))  # a list's value (depths) is no dict key


def kept_parameters(network, base: Draft, rebuild, evidence: tuple = (), only=None) -> tuple[dict, dict]:
    """The network parameters the code can take as arguments, with their values, and the expression of each
    slot of `__init__` that one of them names. `rebuild(overrides)` expands the network with parameters
    changed and returns (network, modules), or None where it cannot be expanded so."""
    kept, expressions = {}, {}
    for name, value in ir.network_info(network.graph).param_values.items():
        changed = changed_value(value)
        if changed is None or not is_free(name) or (only is not None and name not in only):
            continue
        other = _redrafted(base, rebuild, {name: changed}, evidence)
        if other is None:
            continue
        if evidence and name in EVIDENCE:
            named = _fitted_slots(name, value, base, other, changed, rebuild, evidence)
        else:
            named = _named_slots(name, value, changed, base.values(), other.values())
        if named is None and isinstance(value, (list, tuple)):
            named = _affine_slots(name, value, changed, base, other, rebuild, evidence)
        if named and not set(named) & set(expressions):
            kept[name] = value
            expressions.update(named)
    return kept, expressions


def _fitted_slots(name: str, value: int, base: Draft, other: Draft, changed: int, rebuild, evidence) -> dict | None:
    """Slot -> expression in the parameter for every number that moves with it, fitted to the drafts at the
    parameter's value, one step on and EVIDENCE's values: the parameter itself, one less, or clamped between two
    bounds (Ultralytics' class branch, `max(64, min(classes, 100))`); None where a number moves otherwise."""
    points = [(value, base.values()), (changed, other.values())]
    for other_value in EVIDENCE[name]:
        if other_value in (value, changed):
            continue
        drafted = _redrafted(base, rebuild, {name: other_value}, evidence)
        if drafted is None:
            return None
        points.append((other_value, drafted.values()))
    named = {}
    for slot, start in enumerate(base.values()):
        column = [(point, values[slot]) for point, values in points]
        if all(number == start for _, number in column):
            continue
        expression = fitted(name, column)
        if expression is None:
            return None
        named[slot] = expression
    return named


def fitted(name: str, column: list) -> str | Clamp | None:
    """The expression in `name` that gives each number of the column ((parameter value, number) pairs)."""
    if not all(type(number) is int for _, number in column):
        return None
    if all(number == point for point, number in column):
        return name
    if all(number == point - 1 for point, number in column):
        return f"{name} - 1"
    (first, start), (second, end) = column[:2]
    slope, remainder = divmod(end - start, second - first)
    if slope > 1 and not remainder and all(number == start + slope * (point - first) for point, number in column):
        constant = start - slope * first  # YOLOv1's fc: 7 * 7 * (2 * 5 + classes) = 490 + 49 * classes
        return (
            f"{constant} + {slope} * {name}"
            if constant > 0
            else f"{slope} * {name}" + (f" - {-constant}" if constant else "")
        )
    low, high = min(number for _, number in column), max(number for _, number in column)
    if any(number != max(low, min(point, high)) for point, number in column):
        return None
    clamp = Clamp(
        name,
        None if all(point >= low for point, _ in column) else low,
        None if all(point <= high for point, _ in column) else high,
    )
    return clamp if clamp.low is not None or clamp.high is not None else name


def _redrafted(base: Draft, rebuild, changes: dict, evidence: tuple) -> Draft | None:
    """The draft of the network with `changes`, where it expands and has the structure of `base`, else None."""
    other = getattr(evidence, "drafts", {}).get(_changed(changes))
    if other is None:
        rebuilt = rebuild(changes)
        if rebuilt is None:
            return None
        other = draft(*rebuilt, evidence)
    return other if _same_structure(base, other) else None


def _same_structure(base: Draft, other: Draft) -> bool:
    return other.classes == base.classes and other.forward == base.forward and other.init.key() == base.init.key()


def _affine_slots(name: str, value, changed, base: Draft, other: Draft, rebuild, evidence: tuple) -> dict | None:
    """Slot -> `c + a * name[0] + ...` for every number that moves in whole steps with the list's entries
    (a DenseNet's widths follow its block counts), found by moving one entry at a time and checked
    against moving them all; None if a number moves otherwise or the structure changes."""
    slopes = []
    for index in range(len(value)):
        moved = [*value[:index], value[index] + 1, *value[index + 1 :]]
        single = _redrafted(base, rebuild, {name: moved}, evidence)
        if single is None:
            return None
        slopes.append(single.values())
    named = {}
    for slot, start in enumerate(base.values()):
        steps = [values[slot] for values in slopes]
        if not all(type(step) is int for step in [start, *steps]):
            if any(step != start for step in steps) or other.values()[slot] != start:
                return None
            continue
        steps = [step - start for step in steps]
        if other.values()[slot] != start + sum(step * (new - old) for step, old, new in zip(steps, value, changed)):
            return None
        if any(steps):
            named[slot] = _affine_text(name, start - sum(step * old for step, old in zip(steps, value)), steps)
    return named


def _affine_text(name: str, constant: int, steps: list[int]) -> str:
    """`64 + 32 * blocks[0]`, `depths[1] - 1`."""
    terms = [
        f"{name}[{index}]" if step == 1 else f"{step} * {name}[{index}]" for index, step in enumerate(steps) if step
    ]
    text = " + ".join(terms).replace("+ -", "- ")
    if constant > 0:
        return f"{constant} + {text}"
    return f"{text} - {-constant}" if constant < 0 else text


def changed_value(value):
    """The parameter moved to tell which numbers follow it: a count by one, each entry of a list by its own step."""
    if type(value) is int:
        return value + 1
    if isinstance(value, (list, tuple)) and value and all(type(item) is int for item in value):
        return [item + index + 1 for index, item in enumerate(value)]  # each entry moves by its own step
    return None


def _named_slots(name: str, value, changed, before: list, after: list) -> dict | None:
    """Slot -> expression in the parameter for every number that moved with it; None if one moved otherwise."""
    forms = (
        [(name, value, changed)]
        if type(value) is int
        else [(f"{name}[{index}]", old, new) for index, (old, new) in enumerate(zip(value, changed))]
    )
    forms += [(f"{expression} - 1", old - 1, new - 1) for expression, old, new in forms]
    named = {}
    for slot, (old, new) in enumerate(zip(before, after)):
        if old == new:
            continue
        matches = [expression for expression, a, b in forms if old == a and new == b]
        if len(matches) != 1:
            return None
        named[slot] = matches[0]
    return named


@dataclass
class Parametrised:
    """What the network's class is made of: the draft, the parameters it takes (by name), the expression of
    each slot one of them names, the scale table, and the arguments the file is checked at."""

    base: Draft
    kept: list
    expressions: dict
    table: Table | None
    checked: list


# A family's parametrised code, built at its first scale (Ultralytics' n), by what it is built from but its scale
# (file, source, input, the other parameters): every network of the family takes it, its own scale the default, so
# that the family's other builds are paid once a process and each network's file is the same whichever came first.
FAMILIES: dict = {}
FAMILIES_HELD = 4


def compact_source(network, modules: dict, rebuild) -> tuple[str, dict, frozenset, list, Parametrised]:
    """The file's text (before layout), the parameters its network class takes, the names it needs imported,
    the values of each parameter the caller checks the file at, and what it is made of (for `remember`). A family
    with a scale (cnndsl.backends.class_scales) takes the family's code (`family_code`) where it has a scale table
    (or where the network is at the family's first scale); else the code of its own parameters, as any network."""
    values = ir.network_info(network.graph).param_values
    scaled = scaled_parameter({name: values[name] for name in _free(network)})
    made = family_code(network, modules, rebuild, scaled) if scaled is not None else None
    if made is None or class_name(network.name) in made.base.names:
        made = _parametrised(network, modules, rebuild, None)
    kept = {name: values[name] for name in made.kept}
    base, table = made.base, made.table
    signature = ", ".join(["self", *(f"{name}={_literal(value)}" for name, value in kept.items())])
    held, lengths = _held_lengths(base, made.expressions)
    network_class = [
        f"class {class_name(network.name)}(nn.Module):",
        f"    def __init__({signature}):",
        "        super().__init__()",
        *indented(table.unpacking() if table is not None else [], 2),
        *indented([f"self.{attribute} = {expression}" for expression, attribute in held.items()], 2),
        *indented(rendered(base.init_lines, base.init, made.expressions), 2),
        "",
        "    def forward(self, x):",
        *indented(forward_lines(shown_lengths(base.steps, lengths)), 2),
    ]
    helper = [NUMBERED] if "_numbered" in base.uses else []
    blocks = helper + base.classes + ([table.text()] if table is not None else []) + ["\n".join(network_class)]
    uses = base.uses | ({"nn", "OrderedDict"} if helper else set())
    return "\n\n\n".join(blocks), kept, uses, made.checked, made


def family_code(network, modules: dict, rebuild, scaled: str) -> Parametrised | None:
    """The family's code (FAMILIES), made at its first scale where not yet made: for this network where it has
    the scale table or the network is at that scale (then checked at the family's first scale's values), else
    None. The code made here is remembered once its check passed (`remember`); made without a table, at once."""
    values = ir.network_info(network.graph).param_values
    first = SCALES[scaled][0]
    key = _family(network, scaled)
    made = FAMILIES.get(key)
    fresh = made is None
    if fresh:
        if values[scaled] == first:
            made = _parametrised(network, modules, rebuild, scaled)
        else:
            rebuilt = rebuild({scaled: first})
            if rebuilt is None:
                return None
            made = _parametrised(*rebuilt, lambda changes: rebuild({scaled: first, **changes}), scaled)
        if made.table is None:
            _held(key, made)
    if made.table is None:  # the code of the first scale only, checked as any network's
        return made if values[scaled] == first else None
    checked = [{scaled: first, **arguments} for arguments in made.checked] if fresh else []
    return Parametrised(made.base, made.kept, made.expressions, made.table, checked)


def remember(network, made: Parametrised) -> None:
    """Keeps a family's code whose check passed (FAMILIES) for the family's other networks."""
    values = ir.network_info(network.graph).param_values
    scaled = scaled_parameter({name: values[name] for name in _free(network)})
    if scaled is not None and made.table is not None and made.checked:
        _held(_family(network, scaled), made)


def _held(key: tuple, made: Parametrised) -> None:
    FAMILIES.pop(key, None)
    FAMILIES[key] = made
    while len(FAMILIES) > FAMILIES_HELD:
        del FAMILIES[next(iter(FAMILIES))]


def _family(network, scaled: str) -> tuple:
    values = ir.network_info(network.graph).param_values
    others = tuple((name, repr(value)) for name, value in values.items() if name != scaled)
    return network.file, network.source, tuple(network.input_shape), others


def _parametrised(network, modules: dict, rebuild, scaled: str | None) -> Parametrised:
    """The parameters kept: those that, changed, move exactly the numbers they name; for a family with a scale,
    found with the builds at EVIDENCE's values and at every scale together, and the scale table."""
    base = draft(network, modules)
    kept, expressions = kept_parameters(network, base, rebuild)
    values = ir.network_info(network.graph).param_values
    evidence, table = Evidence(), None
    if scaled is not None:
        together_base, evidence = evidence_builds(network, modules, rebuild, scaled)
        if evidence:
            # the parameters kept without the other builds, and EVIDENCE's: no build more for the rest (size)
            tried = {*kept, *EVIDENCE}
            more, more_expressions = kept_parameters(network, together_base, rebuild, evidence, tried)
            table = _table(network, together_base, scaled, more_expressions, rebuild, evidence)
            if table is not None or set(more) - set(kept):
                base, kept, expressions = together_base, more, more_expressions
            else:
                evidence = Evidence()
    if table is not None:
        kept = {name: value for name, value in values.items() if name in kept or name == scaled}
    checked = [{name: other} for name, value in kept.items() for other in _checked(name, value, evidence)]
    if table is not None and "classes" in kept:  # the clamp's bounds at the last scale
        checked += [
            {scaled: table.values[-1], "classes": other}
            for other in (min(EVIDENCE["classes"]), max(EVIDENCE["classes"]))
        ]
    expressions = {slot: str(expression) for slot, expression in expressions.items()}
    return Parametrised(base, list(kept), expressions, table, checked)


def _table(network, base: Draft, scaled: str, expressions: dict, rebuild, evidence: tuple) -> Table | None:
    """The scale table, where the network built at every other scale letter that expands has `base`'s structure."""
    values = ir.network_info(network.graph).param_values
    drafts = {values[scaled]: base.values()}
    for letter in SCALES[scaled]:
        if letter == values[scaled] or _changed({scaled: letter}) not in evidence.drafts:
            continue  # a scale the network does not expand at
        other = _redrafted(base, rebuild, {scaled: letter}, evidence)
        if other is None:
            return None
        drafts[letter] = other.values()
    hints = [*base.init.hints, *(["width"] * len(base.numbers))]
    return scale_table(scaled, drafts, expressions, hints, values)


def _checked(name: str, value, evidence: tuple) -> list:
    """The values a kept parameter is built at to check the file: a step on (and EVIDENCE's), or the other scales."""
    if name in SCALES:
        return [letter for letter in SCALES[name] if letter != value]
    values = [changed_value(value)]
    return values + [other for other in (EVIDENCE.get(name, ()) if evidence else ()) if other not in values]


def _free(network) -> list[str]:
    return [name for name in ir.network_info(network.graph).param_values if is_free(name)]


def _held_lengths(base: Draft, expressions: dict) -> tuple[dict, list]:
    """The forward's lengths that a kept parameter names, each kept on `self` under that parameter's name
    (expression -> attribute), and what each length is written as: its number, or `self.<attribute>`."""
    names = Namespace()
    for line in base.init_lines:
        names.fresh(line.sets or "")
    held, lengths = {}, []
    for index, number in enumerate(base.numbers):
        expression = expressions.get(len(base.init.values) + index)
        if expression is None:
            lengths.append(number)
            continue
        if expression not in held:
            held[expression] = names.fresh(expression if is_name(expression) else "length")
        lengths.append(f"self.{held[expression]}")
    return held, lengths


def _literal(value) -> str:
    return repr(tuple(value)) if isinstance(value, list) else repr(value)
