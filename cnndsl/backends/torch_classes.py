"""Compact PyTorch source: a class per block, repeated blocks built in loops, count and width parameters
of the network kept as constructor arguments.

Everything is read from the IR, the block calls its groups record and the modules `to_torch()` builds,
and held as records (cnndsl.backends.class_code) until the text is written. Instances of a block share a
class where their code differs only in numbers; those numbers become the class's arguments, named after
the block's parameters (or the incoming channels) where their values match (cnndsl.backends.class_templates).
Instances that differ in structure get classes of their own. A network parameter is kept only where
expanding the network again with it changed changes exactly the numbers it names
(cnndsl.backends.class_parameters, class_family); the caller checks the result rebuilds the modules.
"""

from __future__ import annotations

from collections import Counter

from ..graph import ir
from ..ops.torch_code import OWN, Arg, applied, calls_own_module, leftmost, summed_in_place
from .class_code import HOLE, Code, Keyword, Line, Slot, Step, assigned, compose, filled, lifted, module_code
from .class_structure import Groups, Item
from .class_switches import merge_switched
from .class_templates import Instance, Template, merge_optional, resolve
from .python_names import Namespace, attribute, is_name, module_path, parameter_name, value_name
from .torch_source import FROZEN, class_name, fixed_tensors, forward_tree, initial_value, parameter_parts


class Compact:
    """Builds the compact source of one network; `modules` maps IR names to the modules to_torch builds;
    `evidence`, the Compacts of the network built with some parameter at other values (its `classes`),
    tells a block's number that follows that parameter from one that only happens to be equal everywhere."""

    def __init__(self, network, modules: dict, evidence: tuple = (), lockstep: bool = False):
        self.network, self.graph, self.modules = network, network.graph, modules
        self.evidence = evidence
        self.instances: dict[tuple, Instance] = {}  # each group written as a class, by its path
        self.parameters = dict(modules[""].named_parameters())  # the layers that are one tensor (layer scale)
        self.groups = Groups(self.graph)
        self.codes: dict[tuple, Code | None] = {}
        self.templates: dict[tuple, Template] = {}
        self.words: dict[str, tuple[str, ...]] = {}  # a candidate's text -> the parameter names it is made of
        self.classes = Namespace()
        self.classes.fresh(class_name(network.name))  # the network's own class, written last
        self.layers = self.groups.by_height()  # a template's instances all have one height: name it once all are seen
        if not lockstep:
            for height in range(len(self.layers)):
                self.write(height)
                self.name_classes()

    @property
    def evidence_names(self) -> list[str]:
        """The parameters whose value differs in some build of `evidence`."""
        own = ir.network_info(self.graph).param_values
        return sorted(
            {
                name
                for other in self.evidence
                for name, value in ir.network_info(other.graph).param_values.items()
                if own.get(name) != value
            }
        )

    def write(self, height: int) -> None:
        """The code of the groups of one height (none past the highest)."""
        for path in self.layers[height] if height < len(self.layers) else []:
            self._write_group(path)

    def name_classes(self) -> None:
        """The classes of the groups written so far, named and given their arguments."""
        merge_optional(self)
        for template in self.templates.values():
            if not template.name:
                resolve(self, template)
        merge_switched(self)

    # ---- code of a group -----------------------------------------------------------------
    def init_code(self, scope: tuple, owner: str = "self") -> tuple[list[Line], list[Code]]:
        """`owner.<child> = <hole>` lines for the scope's modules, and the code of each hole."""
        lines, parts = [], []
        for kind, child in self.groups.children[scope]:
            if kind == "node":
                layer = ir.layer(self.graph, child)
                name = layer.name
                leaf = name.rsplit(".", 1)[-1]
                if name in self.modules:
                    frozen, settings = fixed_tensors(self.graph, child, attribute(owner, leaf))
                    lines.append(assigned(owner, leaf))
                    code = module_code(self.modules[name], leaf, layer.attrs)
                    parts.append(compose([HOLE, FROZEN], [code]) if frozen else code)
                    for setting in settings:  # DFL's fixed bins
                        lines.append(Line((HOLE,)))
                        parts.append(Code.text(setting, frozenset({"torch"})))
                elif name in self.parameters:
                    lines.append(assigned(owner, leaf))
                    parts.append(self._parameter_code(name, leaf))
            elif child in self.codes:
                lines.append(assigned(owner, child[-1]))
                parts.append(self.codes[child])
            elif child in self.groups.members and any(
                ir.layer(self.graph, n).name in self.modules for n in self.groups.members[child]
            ):
                lines.append(assigned(owner, child[-1]))
                parts.append(Code.text("nn.Module()", frozenset({"nn"})))
                more, more_parts = self.init_code(child, module_path(owner, child[-1]))
                lines += more
                parts += more_parts
        return lines, parts

    def _parameter_code(self, name: str, leaf: str) -> Code:
        """`nn.Parameter(torch.full((c, 1, 1), fill))`, its sizes as slots."""
        shape = tuple(self.parameters[name].shape)
        parts = parameter_parts([HOLE] * len(shape), initial_value(self.network, name))
        sizes = [Code.slot(size, f"{leaf}_channels") for size in shape]
        return _using(compose(parts, sizes), "nn", "torch")

    def forward_steps(self, items: list[Item], first: int, outputs: list[int], in_class: bool) -> list[Step]:
        """The forward's statements as PyTorch users write them: the running value in `x`, or in `out` once
        the input is still needed beside it (a residual, dense or scale join); a branch's value under its
        name, a shortcut's as `identity`, an in-place residual sum as `out += identity`. A block's output
        carries the label its caller gave it, which is no name inside the block's class."""
        uses = Counter(source for item in items for source in item.inputs) + Counter(outputs)
        names, live, steps = {first: "x"}, Namespace(), []
        live.fresh("x")
        for item in items:
            args = tuple(names[source] for source in item.inputs)
            if item.kind == "group":
                tree, own = applied(Arg(0)), module_path("self", item.name)
            else:
                own, tree = self._own_module(item), forward_tree(self.graph, item.key)
            for source in item.inputs:
                uses[source] -= 1
                if uses[source] == 0:
                    live.release(names[source])
            name = live.fresh(self._value_name(item, args, live, in_class, item.output in outputs))
            if not uses[item.output]:
                live.release(name)
            names[item.output] = name
            added = summed_in_place(tree)
            if added is not None and args[0] == name:
                steps.append(Step(name, Arg(added), args, summed=True))
            else:
                opens = leftmost(tree) == OWN and is_name(item.name.split(".")[0])
                steps.append(Step(name, tree, args, own, opens_with_module=opens))
        returned = [names[node] for node in outputs]
        last = steps[-1] if steps else None
        if last and not last.summed and returned == [last.target] and not last.opens_with_module:
            return [*steps[:-1], Step(None, last.tree, last.args, last.own)]  # a join returned as it is computed
        return [*steps, Step(None, None, tuple(returned))]

    def _own_module(self, item: Item) -> str | None:
        """`self.<path>` of the module a node calls, None where it has none: its own, or for `shared(@t)` the
        module of t, which a class reaches only inside its own scope (elsewhere the unrolled source is written)."""
        layer = ir.layer(self.graph, item.key)
        held = ir.layer(self.graph, ir.owner(self.graph, item.key)).name
        if held not in self.modules and held not in self.parameters:
            return None
        scope = layer.name[: len(layer.name) - len(item.name)]  # the dotted path of the scope, "" or "rpn."
        if not layer.name.endswith(item.name) or not held.startswith(scope):
            raise ValueError(f"{layer.name} shares {held}, outside the class that calls it")
        return module_path("self", held[len(scope) :])

    def _value_name(self, item: Item, args: tuple, live: Namespace, in_class: bool, returned: bool) -> str:
        """The name an item's value takes: the source's label; a branch's or scale's own name; `identity`
        for a shortcut; `out` where its input stays needed; else its input's running name."""
        tap = None if in_class and returned else ir.layer(self.graph, item.output).tap
        if item.kind == "group" and (*item.key, tap) in self.groups.info:
            tap = None  # the label of the block's own last statement (a bottleneck's `cv2`), no name outside it
        if value_name(tap) != "x":
            return value_name(tap)
        if item.kind == "group":
            kind = self.groups.info[item.key].kind
            if kind == "downsample":
                return "identity"
            if kind in ("branch", "scale") and value_name(item.key[-1]) != "x":
                return item.key[-1]
        running = "out" if in_class else "x"
        if not args or args[0] in live:
            return running
        return args[0] if args[0] in ("x", "out") else running

    def _write_group(self, path: tuple) -> None:
        source, output = self.groups.ends[path]
        items = self.groups.items(path)
        direct = all(item.name.count(".") == 0 for item in items)
        chain = direct and all(
            item.inputs == [items[index - 1].output if index else source] for index, item in enumerate(items)
        )
        block = self.groups.info[path].call is not None  # a block definition is always a class
        repeated = (
            self.groups.info[path].kind == "stage"
            and all(item.kind == "node" for item in items)
            and sum(
                self.groups.base(other) == self.groups.base(path)
                for other in self.groups.ends
                if self.groups.ends[other]
            )
            > 1
        )
        if chain and not block and not repeated and all(self._plain_call(item) for item in items):
            self.codes[path] = self._sequential(items)
            return
        lines, parts = self.init_code(path)
        init_lines, init = filled(lines, parts)
        steps, numbers = lifted(self.forward_steps(items, source, [output], True), bool(self.evidence))
        base = self.groups.base(path)
        template = Template(base, init_lines, steps)
        template = self.templates.setdefault(template.key(), template)
        self.instances[path] = Instance(path, init, self._candidates(path, source), numbers)
        template.instances.append(self.instances[path])
        self.codes[path] = None  # filled once every instance of the template is known

    def _plain_call(self, item: Item) -> bool:
        if item.kind == "group":
            return True
        name = ir.layer(self.graph, item.key).name
        return name in self.modules and calls_own_module(forward_tree(self.graph, item.key))

    def _candidates(self, path: tuple, source: int) -> dict:
        """Names a number in a block's code may stand for, with their values in this instance; `words`
        records the parameter names each is made of."""
        info = self.groups.info[path]
        base = {"in_channels": ir.layer(self.graph, source).shape[0]}
        for name, value in (info.call.args if info.call is not None else {}).items():
            if type(value) in (int, float):
                base[parameter_name(name)] = value
        args = info.call.args if info.call is not None else {}
        flags = {parameter_name(name): value for name, value in args.items() if type(value) is bool}
        derived = {  # a flag names a flag (`shortcut`), never a number (cf. matches); in the block's order
            name: base.get(name, flags.get(name))
            for name in ["in_channels", *map(parameter_name, args)]
            if name in base or name in flags
        }
        self.words.update({name: (name,) for name in derived})
        for name, value in base.items():
            forms = {f"2 * {name}": 2 * value, f"4 * {name}": 4 * value, f"{name} // 2": value // 2}
            derived.update(forms)
            self.words.update(dict.fromkeys(forms, (name,)))
        for first, a in base.items():
            for second, b in base.items():
                if first < second:
                    derived[f"{first} * {second}"] = a * b
                    self.words[f"{first} * {second}"] = (first, second)
        derived.update(self._scaled(base))
        return derived

    def _scaled(self, base: dict) -> dict:
        """Widths a real parameter scales, as Ultralytics writes them: `int(c2 * e)` hidden channels, and
        `(2 + n) * int(c2 * e)` for the concatenation of a C2f's two halves and n bottleneck outputs."""
        whole = [name for name, value in base.items() if type(value) is int and name != "in_channels"]
        forms = {}
        for ratio in (name for name, value in base.items() if type(value) is float):
            for width in whole:
                hidden = f"int({width} * {ratio})"
                forms[hidden] = int(base[width] * base[ratio])
                forms[f"2 * {hidden}"] = 2 * forms[hidden]  # cv1's two halves
                self.words[hidden] = self.words[f"2 * {hidden}"] = (width, ratio)
                for count in (name for name in whole if name != width):
                    joined = f"(2 + {count}) * {hidden}"
                    forms[joined] = (2 + base[count]) * forms[hidden]
                    self.words[joined] = (count, width, ratio)
        return forms

    def plain(self, name: str) -> bool:
        """The candidate is a parameter's own name (`c`), not a form of one (`2 * c`)."""
        return self.words.get(name, (name,)) == (name,)

    def _sequential(self, items: list[Item]) -> Code:
        codes = [
            self.codes[item.key]
            if item.kind == "group"
            else module_code(
                self.modules[ir.layer(self.graph, item.key).name], item.name, ir.layer(self.graph, item.key).attrs
            )
            for item in items
        ]
        bases = {self.groups.base(item.key) if item.kind == "group" else None for item in items}
        if all(item.kind == "group" for item in items) and len(bases) == 1:
            return self._loops(bases.pop(), codes, self._one_repetition(items))
        names = [item.name for item in items]
        if all(is_name(name) for name in names):
            entries = [piece for index, name in enumerate(names) for piece in (", " if index else "", f"{name}=", HOLE)]
            template = ["nn.Sequential(OrderedDict(", *entries, "))"]
        else:
            entries = [
                piece
                for index, name in enumerate(names)
                for piece in (", " if index else "", f'("{name}", ', HOLE, ")")
            ]
            template = ["nn.Sequential(OrderedDict([", *entries, "]))"]
        return _called(_using(compose(template, codes), "nn", "OrderedDict"), "nn.Sequential")

    def _one_repetition(self, items: list[Item]) -> bool:
        """The groups are the turns of one `x n` inside a block (one source position; a lone turn only of a
        `dense`): written as a loop even where n is 1, so that the block's instances share one class whose
        `n` is the loop's count."""
        positions = {self.groups.info[item.key].pos for item in items}
        inside = any(self.groups.info[items[0].key[:depth]].call is not None for depth in range(1, len(items[0].key)))
        turns = len(items) > 1 or self.groups.info[items[0].key].kind == "dense"  # one block call is no repetition
        return len(positions) == 1 and None not in positions and inside and (turns or self._turns_elsewhere(items))

    def _turns_elsewhere(self, items: list) -> bool:
        """The lone turn is one of several in a build of `evidence` (YOLO11's C2PSA holds one PSA block at n, two
        at l): a loop, so that the builds' code differs only in its count."""
        scope, position = items[0].key[:-1], self.groups.info[items[0].key].pos
        return any(
            sum(kind == "group" and other.groups.info[child].pos == position for kind, child in children) > 1
            for other in self.evidence
            if (children := other.groups.children.get(scope)) is not None
        )

    def _loops(self, base: str, codes: list[Code], repetition: bool = False) -> Code:
        """Repeated blocks as list comprehensions over runs whose numbers are constant or step evenly; the
        turns of one `repetition` always so."""
        runs, start = [], 0
        while start < len(codes):
            end = start + 1
            while (
                end < len(codes)
                and codes[end].key() == codes[start].key()
                and _steps_evenly([code.values for code in codes[start : end + 1]])
            ):
                end += 1
            if end - start == 2 and codes[start].values != codes[start + 1].values:
                end -= 1  # two that differ are two entries, not a progression
            runs.append(codes[start:end])
            start = end
        pieces, parts = [], []
        alike = len({code.callee for code in codes}) == 1  # one class: every run after the first is a loop
        for number, run in enumerate(runs):
            pieces += [", "] if number else []
            if len(run) == 1 and not (alike and number) and not repetition:
                pieces.append(HOLE)
                parts.append(run[0])
                continue
            piece, loop_parts = _loop(run)
            pieces += piece
            parts += loop_parts
        code = compose([f'_numbered("{base}", ', *pieces, ")"], parts)
        return _called(_using(code, "_numbered"), "_numbered")


def _loop(run: list[Code]) -> tuple[list, list[Code]]:
    """One run of instances as `*(Block(...) for i in range(n))`, or over the reals that differ."""
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
        if index in listed:
            slots.append(Code.text(names[index]))
        elif not step:
            slots.append(Code.slot(value, run[0].hints[index]))
        else:
            slots.append(
                compose([HOLE, " + ", HOLE, " * i"], [Code.slot(value, run[0].hints[index]), Code.slot(step, "step")])
            )
    element = compose(_with_holes(run[0].parts), slots)
    if listed:
        columns = [f"({', '.join(repr(code.values[index]) for code in run)})" for index in listed]
        target = ", ".join(names.values())
        iterable = columns[0] if len(columns) == 1 else f"zip({', '.join(columns)})"
        if any(steps):
            loop = (
                f"i, {target} in enumerate({iterable})"
                if len(listed) == 1
                else f"i, ({target}) in enumerate({iterable})"
            )
        else:
            loop = f"{target} in {iterable}"
        return ["*(", HOLE, f" for {loop})"], [element]
    counter = "i" if any(steps) else "_"
    return ["*(", HOLE, f" for {counter} in range(", HOLE, "))"], [element, Code.slot(len(run), "count")]


def _with_holes(parts: tuple) -> list:
    """The code's fragments with each number a hole (a keyword's name kept before it)."""
    result = []
    for part in parts:
        if isinstance(part, Keyword):
            result += [f", {part.name}=", HOLE]
        elif isinstance(part, Slot):
            result.append(HOLE)
        else:
            result.append(part)
    return result


def _using(code: Code, *names: str) -> Code:
    code.uses |= frozenset(names)
    return code


def _called(code: Code, callee: str) -> Code:
    code.callee = callee
    return code


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


def together(builds: list) -> list[Compact]:
    """The Compacts of builds of one network ((network, modules) each, the network's own first), each the
    evidence of the others, written a height at a time: a group's code in one build is compared with the same
    group's in the others with its blocks' classes already taking the same arguments there."""
    compacts = [Compact(*build, lockstep=True) for build in builds]
    for compact in compacts:
        compact.evidence = tuple(other for other in compacts if other is not compact)
    for height in range(max(len(compact.layers) for compact in compacts)):
        for compact in compacts:
            compact.write(height)
        for compact in compacts:
            compact.name_classes()
    return compacts
