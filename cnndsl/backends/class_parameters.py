"""The network's own class in the compact source: which of the network's parameters it takes as
arguments (those that, changed, move exactly the numbers they name; cnndsl.backends.class_family writes it)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ..graph import ir
from .class_code import Code, filled, forward_lines, forward_uses, lifted_lengths
from .class_scales import SCALES, Clamp, Table, scale_table
from .python_names import is_free
from .torch_classes import Compact, together


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
    if scaled is not None and not alike_scales(network, rebuild, scaled):
        changes = [change for change in changes if scaled not in change]  # no table: not built at other scales
    builds = [(change, rebuild(change)) for change in changes]
    if any(build is None and scaled not in change for change, build in builds):
        return None, Evidence()
    builds = [(change, build) for change, build in builds if build is not None]
    compacts = together([(network, modules), *(build for _, build in builds)])
    evidence = Evidence(compacts[1:])
    evidence.drafts = {_changed(change): drafted(compact) for (change, _), compact in zip(builds, compacts[1:])}
    return drafted(compacts[0]), evidence


def alike_scales(network, rebuild, scaled: str) -> bool:
    """The network expanded at every scale holds nothing its first scale does not: a scale table may be found
    (the networks only, without their modules). YOLO11's n holds C3k2s of both kinds (bottlenecks, C3k blocks),
    its m, l, x only the second: one switched class serves them all."""
    values = ir.network_info(network.graph).param_values
    graphs = {values[scaled]: network.graph}
    for letter in SCALES[scaled]:
        if letter != values[scaled]:
            build = rebuild({scaled: letter}, modules=False)
            if build is not None:
                graphs[letter] = build[0].graph
    first = next((letter for letter in SCALES[scaled] if letter in graphs), values[scaled])
    shape = outline(graphs[first])
    return all(outline(graph) <= shape for graph in graphs.values())


def outline(graph) -> frozenset:
    """What each group holds, a run of one kind as one: equal for scales whose classes can be the same (YOLOv8's,
    its repeats loops); YOLO11's at m a part of n's (C3k2s of C3k blocks only, n's also of bottlenecks)."""
    groups = ir.network_info(graph).groups
    children = defaultdict(list)
    for path in groups:
        children[path[:-1]].append(path)

    def base(path: tuple) -> tuple:
        group = groups[path]  # a block's label is its call's text, numbers included: its name only
        return (group.kind, group.label) if group.call is None else (group.kind, group.call.block)

    def runs(paths: list) -> tuple:
        kinds = [base(path) for path in paths]
        return tuple(kind for index, kind in enumerate(kinds) if not index or kinds[index - 1] != kind)

    return frozenset((base(path), runs(children[path])) for path in groups)


def _changed(changes: dict) -> str:
    return repr(sorted(changes.items()))  # a list's value (depths) is no dict key


def kept_parameters(network, base: Draft, rebuild, evidence: tuple = (), only=None) -> tuple[dict, dict]:
    """The network parameters the code can take as arguments, with their values, and the expression of each
    slot of `__init__` that one of them names. `rebuild(overrides)` expands the network with parameters
    changed and returns (network, modules), or None where it cannot be expanded so (`modules=False`: the
    network only, modules None)."""
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


def _redrafted(base: Draft, rebuild, changes: dict, evidence: tuple, own_classes: bool = False) -> Draft | None:
    """The draft of the network with `changes`, where it expands and has the structure of `base`, else None; with
    `own_classes`, the network's class's only: a scale whose classes are a part of the first scale's (YOLO11's m,
    only C3k2s of C3k blocks) takes the first's, the file checked at every scale (cnndsl.backends.torch)."""
    other = getattr(evidence, "drafts", {}).get(_changed(changes))
    if other is None:
        rebuilt = rebuild(changes)
        if rebuilt is None:
            return None
        other = draft(*rebuilt, evidence)
    return other if _same_structure(base, other, own_classes) else None


def _same_structure(base: Draft, other: Draft, own_classes: bool = False) -> bool:
    classes = own_classes or other.classes == base.classes
    return classes and other.forward == base.forward and other.init.key() == base.init.key()


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


def parametrised(network, modules: dict, rebuild, scaled: str | None) -> Parametrised:
    """The parameters kept: those that, changed, move exactly the numbers they name. For a family with a scale,
    EVIDENCE's parameters found with the builds at their values and at every scale together, and the scale table;
    its other parameters (size, reg_max) are not tried, which would cost builds more. Where that keeps none, as
    any network's."""
    values = ir.network_info(network.graph).param_values
    evidence, table, found = Evidence(), None, None
    if scaled is not None:
        together_base, evidence = evidence_builds(network, modules, rebuild, scaled)
        if evidence:
            kept, expressions = kept_parameters(network, together_base, rebuild, evidence, set(EVIDENCE))
            table = _table(network, together_base, scaled, expressions, rebuild, evidence)
            if table is not None or kept:
                found = together_base, kept, expressions
            else:
                evidence = Evidence()
    if found is None:
        base = draft(network, modules)
        found = base, *kept_parameters(network, base, rebuild)
    base, kept, expressions = found
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
        other = _redrafted(base, rebuild, {scaled: letter}, evidence, own_classes=True)
        if other is None:
            return None
        drafts[letter] = other.values()
    if len(drafts) == 1:
        return None  # built at no other scale
    hints = [*base.init.hints, *(["width"] * len(base.numbers))]
    return scale_table(scaled, drafts, expressions, hints, values)


def _checked(name: str, value, evidence: tuple) -> list:
    """The values a kept parameter is built at to check the file: a step on (and EVIDENCE's), or the other scales."""
    if name in SCALES:
        return [letter for letter in SCALES[name] if letter != value]
    values = [changed_value(value)]
    return values + [other for other in (EVIDENCE.get(name, ()) if evidence else ()) if other not in values]


def free_parameters(network) -> list[str]:
    return [name for name in ir.network_info(network.graph).param_values if is_free(name)]
