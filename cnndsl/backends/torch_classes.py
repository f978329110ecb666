"""Compact PyTorch source: a class per block, repeated blocks built in loops, count and width parameters
of the network kept as constructor arguments.

Everything is read from the IR and the modules `to_torch()` builds. Instances of a block share a class
where their code differs only in numbers; those numbers become the class's arguments, named after the
block's parameters (or the incoming channels) where their values match. Instances that differ in
structure get classes of their own. A network parameter is kept only where expanding the network again
with it changed changes exactly the numbers it names; the caller checks the result rebuilds the modules.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..graph.ir import inputs_of
from .python_names import Namespace, assignment, is_free, is_name, module_path, parameter_name, value_name
from .python_names import class_name as python_class_name
from .torch_source import _constructor, _initial_value, class_name, forward_expression, parameter_constructor

SLOT = re.compile("\x00(\\d+)\x00")
KEYWORD_SLOT = re.compile(", (\\w+)=\x00(\\d+)\x00")
NUMBERED = '''def _numbered(name, *blocks):
    """Blocks in a Sequential, named as cnndsl names them: `name` alone, else name1, name2, ..."""
    if len(blocks) == 1:
        return nn.Sequential(OrderedDict([(name, blocks[0])]))
    return nn.Sequential(OrderedDict((f"{name}{i}", b) for i, b in enumerate(blocks, 1)))'''


@dataclass
class Code:
    """Python text whose numbers that may differ between instances are slots `\\0<index>\\0`."""

    text: str
    values: list = field(default_factory=list)
    hints: list = field(default_factory=list)
    defaults: dict = field(default_factory=dict)  # slot -> its keyword's default, where it has one

    def render(self, expressions: dict | None = None) -> str:
        """The text with each slot's expression, or its value written as Python; a keyword argument whose
        value is its parameter's default (`stride=1`) is left out."""
        expressions = expressions or {}
        text = KEYWORD_SLOT.sub(
            lambda match: (
                ""
                if int(match.group(2)) not in expressions
                and _matches(self.defaults.get(int(match.group(2))), self.values[int(match.group(2))])
                else match.group(0)
            ),
            self.text,
        )
        return SLOT.sub(
            lambda match: expressions.get(int(match.group(1))) or _number(self.values[int(match.group(1))]), text
        )


def _number(value) -> str:
    if isinstance(value, tuple):
        return str(value[0]) if len(set(value)) == 1 else f"({', '.join(map(str, value))})"
    return str(value)


def compose(template: str, parts: list[Code]) -> Code:
    """`template` with `{}` filled by the parts, their slots renumbered in order."""
    values, hints, texts, defaults = [], [], [], {}
    for part in parts:
        offset = len(values)
        texts.append(SLOT.sub(lambda match: f"\x00{int(match.group(1)) + offset}\x00", part.text))  # noqa: B023
        values += part.values
        hints += part.hints
        defaults.update({slot + offset: default for slot, default in part.defaults.items()})
    return Code(template.format(*texts), values, hints, defaults)


def module_code(module, name: str, attrs: dict | None = None) -> Code:
    """A torch.nn layer's constructor call, its whole numbers as slots named `<layer>_<argument>`."""
    call = ast.parse(_constructor(module, attrs), mode="eval").body
    if not isinstance(call, ast.Call):
        return Code(ast.unparse(call))
    parameters = inspect.signature(type(module)).parameters
    names = list(parameters)
    kernel = [argument for argument in call.keywords if argument.arg == "kernel_size"]
    if names[2:3] == ["kernel_size"] and len(call.args) == 2 and kernel:  # nn.Conv2d(64, 128, 3, ...)
        call.args.append(kernel[0].value)
        call.keywords.remove(kernel[0])
    values, hints = [], []

    def slot(node, argument):
        value = _whole(node)
        if value is None:
            return node
        values.append(value)
        hints.append(f"{name}_{argument}")
        return ast.Name(id=f"SLOT{len(values) - 1}SLOT")

    call.args = [
        slot(arg, names[index] if index < len(names) else f"arg{index}") for index, arg in enumerate(call.args)
    ]
    defaults = {}
    for argument in call.keywords:
        argument.value = slot(argument.value, argument.arg)
        default = parameters[argument.arg].default if argument.arg in parameters else None
        if isinstance(argument.value, ast.Name) and type(default) is int:
            defaults[len(values) - 1] = default
    text = re.sub(r"SLOT(\d+)SLOT", lambda match: f"\x00{match.group(1)}\x00", ast.unparse(call))
    return Code(text, values, hints, defaults)


def _whole(node) -> Any:
    """A number an instance may differ in: a whole number, a tuple of them, or a real (a dropout's `p`)."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if (
        isinstance(node, ast.Tuple)
        and node.elts
        and all(isinstance(e, ast.Constant) and type(e.value) is int for e in node.elts)
    ):
        return tuple(e.value for e in node.elts)
    return None


@dataclass
class Item:
    """One step of a forward: a node, or the call of a group written as one module."""

    kind: str  # "node" | "group"
    key: Any  # node id | group path
    name: str  # dotted, relative to the scope
    inputs: list
    output: int


@dataclass
class Instance:
    path: tuple
    code: Code
    candidates: dict


@dataclass
class Template:
    base: str
    init: str
    forward: str
    instances: list = field(default_factory=list)
    name: str = ""
    params: list = field(default_factory=list)
    text: str = ""
    condition: str = ""  # when the optional submodule is built


class Compact:
    """Builds the compact source of one network; `modules` maps IR names to the modules to_torch builds."""

    def __init__(self, network, modules: dict):
        self.network, self.graph, self.modules = network, network.graph, modules
        self.parameters = dict(modules[""].named_parameters())  # the layers that are one tensor (layer scale)
        self.children: dict[tuple, list] = defaultdict(list)
        self.members: dict[tuple, set] = defaultdict(set)
        for node, data in self.graph.nodes(data=True):
            path = data["group"]
            for depth in range(len(path)):
                if ("group", path[: depth + 1]) not in self.children[path[:depth]]:
                    self.children[path[:depth]].append(("group", path[: depth + 1]))
                self.members[path[: depth + 1]].add(node)
            self.children[path].append(("node", node))
        self.ends = {path: self._ends(path) for path in self.graph.graph["groups"]}
        self.codes: dict[tuple, Code] = {}
        self.templates: dict[tuple, Template] = {}
        self.classes = Namespace()
        self.classes.fresh(class_name(network.name))  # the network's own class, written last
        by_height = defaultdict(list)
        heights = self._heights()
        for path in self.ends:
            if self.ends[path]:
                by_height[heights[path]].append(path)
        for height in sorted(by_height):  # a template's instances all have one height: name it once they are all seen
            for path in by_height[height]:
                self._write_group(path)
            self._merge_optional()
            for template in self.templates.values():
                if not template.name:
                    self._resolve(template)

    # ---- structure -------------------------------------------------------------------
    def _ends(self, path) -> tuple[int, int] | None:
        """(the one node feeding the group, its one output node), or None if it has more of either."""
        inside = self.members[path]
        sources = {source for node in inside for source in self.graph.pred[node] if source not in inside}
        outputs = {node for node in inside if any(target not in inside for target in self.graph.succ[node])}
        outputs |= {node for _, node in self.graph.graph["outputs"] if node in inside}
        if len(sources) != 1 or len(outputs) != 1 or self.graph.graph["input"] in inside:
            return None
        return next(iter(sources)), next(iter(outputs))

    def _heights(self) -> dict:
        """The order to write groups in: after every group inside them, and every instance of a block at
        the same height, so that a block's templates are all known when its classes are named."""
        groups = [path for path in self.ends if self.ends[path]]
        heights = dict.fromkeys(groups, 0)
        changed = True
        while changed:
            changed = False
            for path in groups:
                height = max((heights[child] + 1 for _, child in self._callable_below(path)), default=0)
                same = (
                    [
                        other
                        for other in groups
                        if self._base(other) == self._base(path) and "call" in self.graph.graph["groups"][other]
                    ]
                    if "call" in self.graph.graph["groups"][path]
                    else []
                )
                height = max([height, *(heights[other] for other in same)])
                if height != heights[path]:
                    heights[path], changed = height, True
        return heights

    def _callable_below(self, path):
        for kind, child in self.children[path]:
            if kind == "group":
                if self.ends.get(child):
                    yield kind, child
                else:
                    yield from self._callable_below(child)

    def items(self, scope: tuple, prefix: tuple = ()) -> list[Item]:
        result = []
        for kind, child in self.children[scope]:
            if kind == "node":
                if child == self.graph.graph["input"]:
                    continue
                leaf = self.graph.nodes[child]["name"].rsplit(".", 1)[-1]
                result.append(Item("node", child, ".".join(prefix + (leaf,)), inputs_of(self.graph, child), child))
            elif self.ends.get(child):
                source, output = self.ends[child]
                result.append(Item("group", child, ".".join(prefix + (child[-1],)), [source], output))
            else:
                result += self.items(child, prefix + (child[-1],))
        return result

    # ---- code of a group -----------------------------------------------------------------
    def init_code(self, scope: tuple, owner: str = "self") -> tuple[list[str], list[Code]]:
        """`owner.<child> = {}` lines for the scope's modules, and the code of each `{}`."""
        lines, parts = [], []
        for kind, child in self.children[scope]:
            if kind == "node":
                name = self.graph.nodes[child]["name"]
                leaf = name.rsplit(".", 1)[-1]
                if name in self.modules:
                    lines.append(_assign(owner, leaf))
                    parts.append(module_code(self.modules[name], leaf, self.graph.nodes[child]["attrs"]))
                elif name in self.parameters:
                    lines.append(_assign(owner, leaf))
                    parts.append(self._parameter_code(name, leaf))
            elif child in self.codes:
                lines.append(_assign(owner, child[-1]))
                parts.append(self.codes[child])
            elif child in self.members and any(
                self.graph.nodes[n]["name"] in self.modules for n in self.members[child]
            ):
                lines.append(_assign(owner, child[-1]).replace("{}", "nn.Module()"))
                more, more_parts = self.init_code(child, module_path(owner, child[-1]))
                lines += more
                parts += more_parts
        return lines, parts

    def _parameter_code(self, name: str, leaf: str) -> Code:
        """`nn.Parameter(torch.full((c, 1, 1), fill))`, its sizes as slots."""
        shape = tuple(self.parameters[name].shape)
        text = parameter_constructor(
            [f"\x00{index}\x00" for index in range(len(shape))], _initial_value(self.network, name)
        )
        return Code(text, list(shape), [f"{leaf}_channels"] * len(shape))

    def forward_lines(self, items: list[Item], first: int, outputs: list[int], in_class: bool) -> list[str]:
        """The forward's statements as PyTorch users write them: the running value in `x`, or in `out` once
        the input is still needed beside it (a residual, dense or scale join); a branch's value under its
        name, a shortcut's as `identity`, an in-place residual sum as `out += identity`. A block's output
        carries the label its caller gave it, which is no name inside the block's class."""
        uses = Counter(source for item in items for source in item.inputs) + Counter(outputs)
        names, live, lines = {first: "x"}, Namespace(), []
        live.fresh("x")
        for item in items:
            args = [names[source] for source in item.inputs]
            if item.kind == "group":
                expression = f"{module_path('self', item.name)}({args[0]})"
            else:
                owned = self.graph.nodes[item.key]["name"]
                module = module_path("self", item.name) if owned in self.modules or owned in self.parameters else None
                expression = forward_expression(self.graph, item.key, args, module)
            for source in item.inputs:
                uses[source] -= 1
                if uses[source] == 0:
                    live.release(names[source])
            name = live.fresh(self._value_name(item, args, live, in_class, item.output in outputs))
            if not uses[item.output]:
                live.release(name)
            names[item.output] = name
            summed = re.fullmatch(rf"{re.escape(name)}\.add_\((\w+)\)", expression)
            lines.append(f"{name} += {summed.group(1)}" if summed else f"{name} = {expression}")
        returned = [names[node] for node in outputs]
        last = re.fullmatch(r"(\w+) = (.*)", lines[-1]) if lines else None
        if last and returned == [last.group(1)] and not last.group(2).startswith("self."):
            return [*lines[:-1], f"return {last.group(2)}"]  # a join returned as it is computed
        return [*lines, f"return {', '.join(returned)}"]

    def _value_name(self, item: Item, args: list[str], live: Namespace, in_class: bool, returned: bool) -> str:
        """The name an item's value takes: the source's label; a branch's or scale's own name; `identity`
        for a shortcut; `out` where its input stays needed; else its input's running name."""
        tap = None if in_class and returned else self.graph.nodes[item.output]["tap"]
        if value_name(tap) != "x":
            return value_name(tap)
        if item.kind == "group":
            kind = self.graph.graph["groups"][item.key]["kind"]
            if kind == "downsample":
                return "identity"
            if kind in ("branch", "scale") and value_name(item.key[-1]) != "x":
                return item.key[-1]
        running = "out" if in_class else "x"
        if not args or args[0] in live:
            return running
        return args[0] if args[0] in ("x", "out") else running

    def _write_group(self, path: tuple) -> None:
        source, output = self.ends[path]
        items = self.items(path)
        direct = all(item.name.count(".") == 0 for item in items)
        chain = direct and all(
            item.inputs == [items[index - 1].output if index else source] for index, item in enumerate(items)
        )
        block = "call" in self.graph.graph["groups"][path]  # a block definition is always a class
        repeated = (
            self.graph.graph["groups"][path]["kind"] == "stage"
            and all(item.kind == "node" for item in items)
            and sum(self._base(other) == self._base(path) for other in self.ends if self.ends[other]) > 1
        )
        if (
            chain and not block and not repeated and all(self._plain_call(item) for item in items)
        ):  # a repeated stage of layers: a class
            self.codes[path] = self._sequential(items)
            return
        lines, parts = self.init_code(path)
        init = compose("\n".join(lines), parts) if lines else Code("")
        forward = "\n".join(self.forward_lines(items, source, [output], True))
        base = self._base(path)
        template = self.templates.setdefault((base, init.text, forward), Template(base, init.text, forward))
        template.instances.append(Instance(path, init, self._candidates(path, source)))
        self.codes[path] = None  # filled once every instance of the template is known

    def _plain_call(self, item: Item) -> bool:
        if item.kind == "group":
            return True
        name = self.graph.nodes[item.key]["name"]
        return name in self.modules and forward_expression(self.graph, item.key, ["x"], "m") == "m(x)"

    def _base(self, path: tuple) -> str:
        info = self.graph.graph["groups"][path]
        if "call" in info:
            return info["call"]["block"]
        return {"stage": info["label"], "downsample": "downsample"}.get(info["kind"], info["kind"])

    def _candidates(self, path: tuple, source: int) -> dict:
        """Names a number in a block's code may stand for, with their values in this instance."""
        info = self.graph.graph["groups"][path]
        base = {"in_channels": self.graph.nodes[source]["shape"][0]}
        for name, value in info.get("call", {}).get("args", {}).items():
            if type(value) in (int, float):
                base[parameter_name(name)] = value
        derived = dict(base)
        for name, value in base.items():
            derived.update({f"2 * {name}": 2 * value, f"4 * {name}": 4 * value, f"{name} // 2": value // 2})
        for first, a in base.items():
            for second, b in base.items():
                if first < second:
                    derived[f"{first} * {second}"] = a * b
        return derived

    def _sequential(self, items: list[Item]) -> Code:
        codes = [
            self.codes[item.key]
            if item.kind == "group"
            else module_code(
                self.modules[self.graph.nodes[item.key]["name"]], item.name, self.graph.nodes[item.key]["attrs"]
            )
            for item in items
        ]
        bases = {self._base(item.key) if item.kind == "group" else None for item in items}
        if all(item.kind == "group" for item in items) and len(bases) == 1:
            return self._loops(bases.pop(), codes)
        names = [item.name for item in items]
        if all(is_name(name) for name in names):
            entries = ", ".join(f"{name}={{}}" for name in names)
            return compose(f"nn.Sequential(OrderedDict({entries}))", codes)
        entries = ", ".join(f'("{name}", {{}})' for name in names)
        return compose(f"nn.Sequential(OrderedDict([{entries}]))", codes)

    def _loops(self, base: str, codes: list[Code]) -> Code:
        """Repeated blocks as list comprehensions over runs whose numbers are constant or step evenly."""
        runs, start = [], 0
        while start < len(codes):
            end = start + 1
            while (
                end < len(codes)
                and codes[end].text == codes[start].text
                and _steps_evenly([code.values for code in codes[start : end + 1]])
            ):
                end += 1
            if end - start == 2 and codes[start].values != codes[start + 1].values:
                end -= 1  # two that differ are two entries, not a progression
            runs.append(codes[start:end])
            start = end
        parts, pieces = [], []
        alike = len({code.text.split("(")[0] for code in codes}) == 1  # one class: every run after the first is a loop
        for number, run in enumerate(runs):
            if len(run) == 1 and not (alike and number):
                pieces.append("{}")
                parts.append(run[0])
                continue
            following = run[1].values if len(run) > 1 else run[0].values
            values, steps = run[0].values, [b - a if type(a) is int else 0 for a, b in zip(run[0].values, following)]
            listed = [
                index
                for index, value in enumerate(values)  # reals that differ (a dropout's p): iterated over
                if type(value) is float and len({code.values[index] for code in run}) > 1
            ]
            names = {index: parameter_name(run[0].hints[index]) for index in listed}
            slots = []
            for index, (value, step) in enumerate(zip(values, steps)):
                slots.append(
                    Code(names[index])
                    if index in listed
                    else Code("\x000\x00", [value], [run[0].hints[index]])
                    if not step
                    else Code("\x000\x00 + \x001\x00 * i", [value, step], [run[0].hints[index], "step"])
                )
            text = SLOT.sub(lambda match: "{}", run[0].text)
            if listed:
                columns = [f"({', '.join(repr(code.values[index]) for code in run)})" for index in listed]
                target = ", ".join(names.values())
                iterable = columns[0] if len(columns) == 1 else f"zip({', '.join(columns)})"
                loop = (
                    (
                        f"i, {target} in enumerate({iterable})"
                        if len(listed) == 1
                        else f"i, ({target}) in enumerate({iterable})"
                    )
                    if any(steps)
                    else f"{target} in {iterable}"
                )
                pieces.append("*({} for " + loop + ")")
                parts.append(compose(text, slots))
                continue
            counter = "i" if any(steps) else "_"
            pieces.append("*({} for " + counter + " in range({}))")
            parts += [compose(text, slots), Code("\x000\x00", [len(run)], ["count"])]
        return compose(f'_numbered("{base}", {", ".join(pieces)})', parts)

    # ---- classes ---------------------------------------------------------------------
    def _merge_optional(self) -> None:
        """Two templates of one block, one with a submodule more that maps a value to itself (a projection
        shortcut), become one class where a condition on its arguments tells them apart."""
        by_base = defaultdict(list)
        for key, template in self.templates.items():
            if not template.name:
                by_base[template.base].append(key)
        for keys in by_base.values():
            if len(keys) != 2:
                continue
            for without, extra in (keys, keys[::-1]):
                merged = _with_optional(self.templates[without], self.templates[extra])
                if merged is not None:
                    del self.templates[without], self.templates[extra]
                    self.templates[(merged.base, merged.init, merged.forward)] = merged
                    break

    def _resolve(self, template: Template) -> None:
        """The class's arguments: each number that differs between instances, named after what matches it."""
        first = next(instance for instance in template.instances if None not in instance.code.values)
        expressions, params, extra = {}, [], []
        for slot in range(len(first.code.values)):
            having = [
                (instance, instance.code.values[slot])
                for instance in template.instances
                if instance.code.values[slot] is not None
            ]  # an optional submodule's numbers: where it is
            if len({value for _, value in having}) == 1:
                continue
            name = next(
                (
                    name
                    for name in _preferred(first.candidates, first.code.hints[slot])
                    if all(
                        name in instance.candidates and _matches(instance.candidates[name], value)
                        for instance, value in having
                    )
                ),
                None,
            )
            if name is None:
                name = parameter_name(first.code.hints[slot])
                if name not in extra:
                    extra.append(name)
            expressions[slot] = name
        used = {
            word
            for expression in [*expressions.values(), template.condition]
            for word in re.findall(r"[A-Za-z_]\w*", expression)
        }
        for slot in range(len(first.code.values)):  # an optional submodule's constant, named by an argument
            having = [
                (instance, instance.code.values[slot])
                for instance in template.instances
                if instance.code.values[slot] is not None
            ]
            if slot in expressions or len(having) == len(template.instances):
                continue
            name = next(
                (
                    name
                    for name in first.candidates
                    if name in used
                    and " " not in name
                    and all(_matches(instance.candidates.get(name), value) for instance, value in having)
                ),
                None,
            )
            if name is not None:
                expressions[slot] = name  # a shortcut's stride is the block's `s`, not a 2 that happens to be so
        params = [name for name in first.candidates if " " not in name and name in used]
        absent = {
            name
            for slot, name in expressions.items()
            if name in extra
            and name not in params
            and any(instance.code.values[slot] is None for instance in template.instances)
        }
        template.params = (
            params + [name for name in extra if name not in params and name not in absent] + sorted(absent)
        )
        template.name = self.classes.counted(python_class_name(template.base, "Block"))
        call = self.graph.graph["groups"][first.path].get("call", {})
        defaults = {parameter_name(name): value for name, value in call.get("defaults", {}).items()}
        defaults.update(dict.fromkeys(absent))  # a number of the optional submodule only: None where it is not built
        optional = len(template.params)
        while optional and template.params[optional - 1] in defaults:
            optional -= 1  # the trailing parameters with a default: callers may leave them out
        signature = ", ".join(
            [
                "self",
                *template.params[:optional],
                *(f"{name}={defaults[name]!r}" for name in template.params[optional:]),
            ]
        )
        init = first.code.render(expressions)
        body = [
            f"class {template.name}(nn.Module):",
            f"    def __init__({signature}):",
            "        super().__init__()",
            *_indented(init, 2),
            "",
            "    def forward(self, x):",
            *_indented(template.forward, 2),
        ]
        template.text = "\n".join(body)
        for instance in template.instances:
            values = [self._argument(instance, name, expressions) for name in template.params]
            while len(values) > optional and values[-1] == defaults[template.params[len(values) - 1]]:
                values.pop()
            slots = ", ".join(f"\x00{index}\x00" for index in range(len(values)))
            self.codes[instance.path] = Code(f"{template.name}({slots})", values, list(template.params))

    @staticmethod
    def _argument(instance: Instance, name: str, expressions: dict):
        if name in instance.candidates:
            return instance.candidates[name]
        slot = next(slot for slot, expression in expressions.items() if expression == name)
        return instance.code.values[slot]


def _with_optional(without: Template, extra: Template) -> Template | None:
    """`extra` with its one additional submodule built under a condition, if `without` is `extra` less it."""
    a_lines, b_lines = without.init.split("\n"), extra.init.split("\n")
    plain = [SLOT.sub("#", line) for line in a_lines]
    position = next(
        (
            index
            for index in range(len(b_lines))
            if [SLOT.sub("#", line) for line in b_lines[:index] + b_lines[index + 1 :]] == plain
        ),
        None,
    )
    found = re.fullmatch(r"self\.(\w+) = (.*)", b_lines[position]) if position is not None else None
    if found is None:
        return None
    name = found.group(1)
    a_forward, b_forward = without.forward.split("\n"), extra.forward.split("\n")
    step, alias = None, None
    for index, line in enumerate(b_forward):  # `identity = self.downsample(x)`, absent where `x` is added as it is
        call = re.fullmatch(rf"(\w+) = self\.{name}\((\w+)\)", line)
        rest = b_forward[:index] + b_forward[index + 1 :]
        if call and [re.sub(rf"\b{call.group(1)}\b", call.group(2), other) for other in rest] == a_forward:
            step, alias = index, call.groups()
            break
    slots = [int(number) for number in SLOT.findall(b_lines[position])]
    if step is None or not slots:
        return None
    condition = _condition(
        [instance.candidates for instance in extra.instances], [instance.candidates for instance in without.instances]
    )
    if condition is None:
        return None
    init = "\n".join(
        [
            *b_lines[:position],
            f"self.{name} = None",
            f"if {condition}:",
            f"    {b_lines[position]}",
            *b_lines[position + 1 :],
        ]
    )
    aliased = [f"{alias[0]} = {alias[1]}"] if alias[0] != alias[1] else []  # torchvision's `identity = x`
    forward = "\n".join(
        [*aliased, *b_forward[:step], f"if self.{name} is not None:", f"    {b_forward[step]}", *b_forward[step + 1 :]]
    )
    merged = Template(extra.base, init, forward, condition=condition)
    merged.instances = list(extra.instances)
    start, count = min(slots), len(slots)
    for instance in without.instances:
        values = instance.code.values[:start] + [None] * count + instance.code.values[start:]
        merged.instances.append(Instance(instance.path, Code(init, values), instance.candidates))
    for instance in extra.instances:
        instance.code = Code(init, instance.code.values, instance.code.hints, instance.code.defaults)
    merged.instances[0].code.hints = extra.instances[0].code.hints
    return merged


def _condition(having: list[dict], lacking: list[dict]) -> str | None:
    """`a != b` over candidate names that holds for every instance with the submodule and none without."""
    names = list(having[0])
    for first in [name for name in names if " " not in name]:  # a plain name on the left: in_channels != 4 * c
        for second in names:
            if (
                first != second
                and all(c[first] != c[second] for c in having)
                and all(c[first] == c[second] for c in lacking)
            ):
                return f"{first} != {second}"
    return None


def _preferred(candidates: dict, hint: str) -> list[str]:
    """Candidate names in the order to try: the incoming channels first for a layer's input width,
    last for anything else (where they match only by coincidence)."""
    names = [name for name in candidates if name != "in_channels"]
    return ["in_channels", *names] if hint.endswith(("in_channels", "in_features")) else [*names, "in_channels"]


def _matches(candidate, value) -> bool:
    """The candidate stands for the value: of its type (no real for a width: `in_channels * se`), or for
    every entry of a tuple."""
    if isinstance(value, tuple):
        return type(candidate) is int and set(value) == {candidate}
    return type(candidate) is type(value) and candidate == value


def _steps_evenly(vectors: list[list]) -> bool:
    """Whole numbers step by one amount; reals may differ (they are listed); anything else is constant."""
    for column in zip(*vectors):
        if all(type(value) is float for value in column):
            continue
        if all(type(value) is int for value in column):
            steps = {b - a for a, b in zip(column, column[1:])}
            if len(steps) > 1:
                return False
        elif len(set(column)) > 1:
            return False
    return True


def _assign(owner: str, name: str) -> str:
    return assignment(owner, name, "{}")


def _indented(text: str, levels: int) -> list[str]:
    return ["    " * levels + line if line else "" for line in text.split("\n")] if text else []


# ---- the file ------------------------------------------------------------------------
@dataclass
class Draft:
    """A network's compact code before its parameters are named: classes, `__init__` with slots, forward."""

    classes: list[str]
    init: Code
    forward: list[str]


def draft(network, modules: dict) -> Draft:
    compact = Compact(network, modules)
    lines, parts = compact.init_code(())
    init = compose("\n".join(lines), parts)
    outputs = [node for _, node in network.graph.graph["outputs"]]
    forward = compact.forward_lines(compact.items(()), network.graph.graph["input"], outputs, False)
    return Draft([template.text for template in compact.templates.values()], init, forward)


def kept_parameters(network, base: Draft, rebuild) -> tuple[dict, dict]:
    """The network parameters the code can take as arguments, with their values, and the expression of each
    slot of `__init__` that one of them names. `rebuild(overrides)` expands the network with parameters
    changed and returns (network, modules), or None where it cannot be expanded so."""
    kept, expressions = {}, {}
    for name, value in network.graph.graph["param_values"].items():
        changed = _changed(value)
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
    return other.classes == base.classes and other.forward == base.forward and other.init.text == base.init.text


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


def _changed(value):
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


def compact_source(network, modules: dict, rebuild) -> tuple[str, dict]:
    """The file's text (before layout) and the parameters its network class takes."""
    base = draft(network, modules)
    kept, expressions = kept_parameters(network, base, rebuild)
    signature = ", ".join(["self", *(f"{name}={_literal(value)}" for name, value in kept.items())])
    init = base.init.render(expressions)
    network_class = [
        f"class {class_name(network.name)}(nn.Module):",
        f"    def __init__({signature}):",
        "        super().__init__()",
        *_indented(init, 2),
        "",
        "    def forward(self, x):",
        *_indented("\n".join(base.forward), 2),
    ]
    helper = [NUMBERED] if "_numbered(" in init or any("_numbered(" in text for text in base.classes) else []
    blocks = helper + base.classes + ["\n".join(network_class)]
    return "\n\n\n".join(blocks), kept


def _literal(value) -> str:
    return repr(tuple(value)) if isinstance(value, list) else repr(value)
