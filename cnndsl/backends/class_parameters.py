"""The network's own class in the compact source: which of the network's parameters it takes as
arguments (those that, changed, move exactly the numbers they name), and the file's text."""

from __future__ import annotations

from dataclasses import dataclass

from ..graph import ir
from .class_code import Code, filled, forward_lines, forward_uses, rendered
from .class_templates import indented
from .python_names import is_free
from .torch_classes import Compact
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
    forward: list[str]
    uses: frozenset  # the file's names its code needs: the imports, and `_numbered` defined


def draft(network, modules: dict) -> Draft:
    compact = Compact(network, modules)
    lines, parts = compact.init_code(())
    init_lines, init = filled(lines, parts)
    info = ir.network_info(network.graph)
    outputs = [node for _, node in info.outputs]
    steps = compact.forward_steps(compact.groups.items(()), info.input, outputs, False)
    templates = list(compact.templates.values())
    uses = init.uses.union(forward_uses(steps), {"nn"}, *(template.uses for template in templates))
    return Draft([template.text for template in templates], init_lines, init, forward_lines(steps), uses)


def kept_parameters(network, base: Draft, rebuild) -> tuple[dict, dict]:
    """The network parameters the code can take as arguments, with their values, and the expression of each
    slot of `__init__` that one of them names. `rebuild(overrides)` expands the network with parameters
    changed and returns (network, modules), or None where it cannot be expanded so."""
    kept, expressions = {}, {}
    for name, value in ir.network_info(network.graph).param_values.items():
        changed = changed_value(value)
        if changed is None or not is_free(name):
            continue
        rebuilt = rebuild({name: changed})
        if rebuilt is None:
            continue
        other = draft(*rebuilt)
        if not _same_structure(base, other):
            continue
        named = _named_slots(name, value, changed, base.init.values, other.init.values)
        if named is None and isinstance(value, (list, tuple)):
            named = _affine_slots(name, value, changed, base, other, rebuild)
        if named is not None and named and not set(named) & set(expressions):
            kept[name] = value
            expressions.update(named)
    return kept, expressions


def _same_structure(base: Draft, other: Draft) -> bool:
    return other.classes == base.classes and other.forward == base.forward and other.init.key() == base.init.key()


def _affine_slots(name: str, value, changed, base: Draft, other: Draft, rebuild) -> dict | None:
    """Slot -> `c + a * name[0] + ...` for every number that moves in whole steps with the list's entries
    (a DenseNet's widths follow its block counts), found by moving one entry at a time and checked
    against moving them all; None if a number moves otherwise or the structure changes."""
    slopes = []
    for index in range(len(value)):
        moved = [*value[:index], value[index] + 1, *value[index + 1 :]]
        rebuilt = rebuild({name: moved})
        if rebuilt is None:
            return None
        single = draft(*rebuilt)
        if not _same_structure(base, single):
            return None
        slopes.append(single.init.values)
    named = {}
    for slot, start in enumerate(base.init.values):
        steps = [values[slot] for values in slopes]
        if not all(type(step) is int for step in [start, *steps]):
            if any(step != start for step in steps) or other.init.values[slot] != start:
                return None
            continue
        steps = [step - start for step in steps]
        if other.init.values[slot] != start + sum(step * (new - old) for step, old, new in zip(steps, value, changed)):
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


def compact_source(network, modules: dict, rebuild) -> tuple[str, dict, frozenset]:
    """The file's text (before layout), the parameters its network class takes and the names it needs
    imported."""
    base = draft(network, modules)
    kept, expressions = kept_parameters(network, base, rebuild)
    signature = ", ".join(["self", *(f"{name}={_literal(value)}" for name, value in kept.items())])
    network_class = [
        f"class {class_name(network.name)}(nn.Module):",
        f"    def __init__({signature}):",
        "        super().__init__()",
        *indented(rendered(base.init_lines, base.init, expressions), 2),
        "",
        "    def forward(self, x):",
        *indented(base.forward, 2),
    ]
    helper = [NUMBERED] if "_numbered" in base.uses else []
    blocks = helper + base.classes + ["\n".join(network_class)]
    uses = base.uses | ({"nn", "OrderedDict"} if helper else set())
    return "\n\n\n".join(blocks), kept, uses


def _literal(value) -> str:
    return repr(tuple(value)) if isinstance(value, list) else repr(value)
