"""The network's class and the file's text in the compact source; a family with a scale (YOLOv8's n ... x) has its
code found once a process, at its first scale, and every network of the family written from it."""

from __future__ import annotations

from ..graph import ir
from .class_code import forward_lines, rendered, shown_lengths
from .class_parameters import Draft, Parametrised, alike_scales, free_parameters, parametrised
from .class_scales import SCALES, scaled_parameter
from .class_templates import indented
from .python_names import Namespace, is_name
from .torch_source import class_name

NUMBERED = '''def _numbered(name, *blocks):
    """Blocks in a Sequential, named as cnndsl names them: `name` alone, else name1, name2, ..."""
    if len(blocks) == 1:
        return nn.Sequential(OrderedDict([(name, blocks[0])]))
    return nn.Sequential(OrderedDict((f"{name}{i}", b) for i, b in enumerate(blocks, 1)))'''


# A family's parametrised code, built at its first scale (Ultralytics' n), by what it is built from but its scale
# (file, source, input, the other parameters): every network of the family takes it, its own scale the default, so
# that the family's other builds are paid once a process and each network's file is the same whichever came first.
FAMILIES: dict = {}
FAMILIES_HELD = 4


def compact_source(network, modules: dict, rebuild) -> tuple[str, dict, frozenset, list, Parametrised]:
    """The file's text (before layout), the parameters its network class takes, the names it needs imported,
    the values of each parameter the caller checks the file at, and what it is made of (for `remember`). A family
    with a scale (cnndsl.backends.class_scales) takes the family's code (`family_code`); any other network, the code
    of its own parameters."""
    values = ir.network_info(network.graph).param_values
    scaled = scaled_parameter({name: values[name] for name in free_parameters(network)})
    made = family_code(network, modules, rebuild, scaled) if scaled is not None else None
    if made is None or class_name(network.name) in made.base.names:  # the network's own class name a block's
        made = parametrised(network, modules, rebuild, None)
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


def family_code(network, modules: dict, rebuild, scaled: str) -> Parametrised:
    """The family's code (FAMILIES), made at its first scale where its scales are alike (YOLOv8's; YOLO11's, whose
    m, l, x hold only one of n's two kinds of C3k2) and not yet made, for this network with its own scale the
    default; checked at the family's first scale's values where made here, and remembered once that check passed
    (`remember`). Where a scale holds what the first does not, or no table was found, the network's own code: its
    scale fixed, its `classes` found."""
    values = ir.network_info(network.graph).param_values
    first = SCALES[scaled][0]
    made = FAMILIES.get(_family(network, scaled))
    fresh = made is None
    if fresh and alike_scales(network, rebuild, scaled):
        if values[scaled] == first:
            made = parametrised(network, modules, rebuild, scaled)
        else:
            rebuilt = rebuild({scaled: first})
            if rebuilt is not None:
                made = parametrised(*rebuilt, lambda changes, **how: rebuild({scaled: first, **changes}, **how), scaled)
    if made is None or made.table is None:
        return made if made is not None and values[scaled] == first else parametrised(network, modules, rebuild, scaled)
    checked = [{scaled: first, **arguments} for arguments in made.checked] if fresh else []
    return Parametrised(made.base, made.kept, made.expressions, made.table, checked)


def remember(network, made: Parametrised) -> None:
    """Keeps a family's code whose check passed (FAMILIES) for the family's other networks."""
    values = ir.network_info(network.graph).param_values
    scaled = scaled_parameter({name: values[name] for name in free_parameters(network)})
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
