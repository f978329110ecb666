"""Caffe's layer graph as a .cnn a person would write: forks that meet again become `residual`/`branch`/`scale`,
repeated ones become blocks with their varying numbers as parameters, runs of a block in a stage `x n`,
and stages of Kaiming's ResNets one family whose depths are parameters."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from .caffe_layers import Holder, Node
from .caffe_text import Template, block_name, tidy
from .writing import Statement, body_lines, fold, identifier

LEADS = re.compile(r"(@\w+, )?(conv|deconv|fc)\(")  # the layers that start a group
ACTIVATIONS = re.compile(r"(relu|leakyrelu\([^)]*\)|sigmoid|tanh|elu(\([^)]*\))?)$")


@dataclass
class Part:
    """A forked part of the net that met again: its form and the node lists of its paths."""

    form: str  # residual, branch, dense or scale
    paths: list[list[int]]


@dataclass
class Item:
    """A top-level statement before writing: its nodes, text and the Caffe names it came from."""

    nodes: list[int]
    text: str
    first: int
    last: int
    composite: bool = False
    label: str | None = None
    starts_line: bool = False
    names: list[str] = field(default_factory=list)


class _Structure:
    def __init__(self, nodes: list[Node]):
        self.nodes = nodes
        self.inputs = {index: list(node.inputs) for index, node in enumerate(nodes)}
        self.parts: dict[int, Part] = {}
        self.alive = set(range(len(nodes)))

    def consumers(self) -> dict[int, list[int]]:
        found: dict[int, list[int]] = {index: [] for index in self.alive}
        for index in sorted(self.alive):
            for source in dict.fromkeys(self.inputs[index]):
                found[source].append(index)
        return found

    def collapse(self) -> None:
        """Each join whose inputs are plain chains back to one fork becomes a Part, innermost first (one pass,
        the readers of each node kept up to date, so a net of many joins takes linear time)."""
        readers = {index: len(found) for index, found in self.consumers().items()}
        for join, node in enumerate(self.nodes):
            if not node.join or len(node.inputs) < 2 or len(set(node.inputs)) != len(node.inputs):
                continue
            paths, forks = [], set()
            for source in self.inputs[join]:
                path = []
                while len(self.inputs[source]) == 1 and readers[source] == 1:
                    path.append(source)
                    source = self.inputs[source][0]
                forks.add(source)
                paths.append(path[::-1])
            part = _part(node.join, paths) if len(forks) == 1 else None
            if part is None:
                continue
            fork = forks.pop()
            self.parts[join] = part
            self.inputs[join] = [fork]
            readers[fork] += 1 - len(paths)  # the paths' heads (or the join, for an empty path) become the join
            self.alive -= {index for path in paths for index in path}

    # --- text ---------------------------------------------------------------------------------------
    def text(self, index: int) -> str:
        part = self.parts.get(index)
        if part is None:
            return self.nodes[index].text
        paths = [", ".join(self.text(i) for i in path) or "identity" for path in part.paths]
        if part.form == "branch":
            return "branch { " + " | ".join(paths) + " }"
        if part.form in ("scale", "dense"):
            return f"{part.form} {{ {paths[0]} }}"
        return f"residual {{ {paths[0]} }}" + (f" shortcut {{ {paths[1]} }}" if part.paths[1] else "")

    def holders(self, index: int) -> list[Holder]:
        part = self.parts.get(index)
        if part is None:
            return list(self.nodes[index].holders)
        return [holder for path in part.paths for i in path for holder in self.holders(i)]

    def span(self, index: int) -> tuple[int, int, list[str]]:
        """The first and last prototxt line of the node and of every node folded into it, and their Caffe names."""
        node = self.nodes[index]
        first, last, names = node.first, node.last, list(node.names)
        for path in self.parts[index].paths if index in self.parts else []:
            for inner in path:
                inner_first, inner_last, inner_names = self.span(inner)
                first, last, names = min(first, inner_first), max(last, inner_last), names + inner_names
        return first, last, names


def _part(join: str, paths: list[list[int]]) -> Part | None:
    """The form a join of these paths from one fork takes: `residual`, `dense`, `branch` or `scale`."""
    empty = sum(1 for path in paths if not path)
    if empty > 1:
        return None
    if join == "concat":
        return Part("dense", [paths[1]]) if len(paths) == 2 and not paths[0] else Part("branch", paths)
    if len(paths) != 2:
        return None
    if join == "add":
        return Part("residual", sorted(paths, key=len, reverse=True))
    return Part("scale", [max(paths, key=len)]) if join == "mul" and empty == 1 else None


def write(nodes: list[Node], net_name: str, file_name: str, line_count: int) -> tuple[str, list[Holder]]:
    """The .cnn text and the weight-holding layers in the order the network declares them."""
    structure = _Structure(nodes)
    structure.collapse()
    order = sorted(structure.alive)
    consumers = structure.consumers()
    labels = _labels(structure, order, consumers)
    items, previous = [], order[0]
    for index in order[1:]:
        text, starts = _joined(structure, index, previous, labels)
        first, last, names = structure.span(index)
        items.append(Item([index], text, first, last, index in structure.parts, labels.get(index), starts, names))
        previous = index
    items = _absorb_unit_heads(_absorb_activations(items))
    blocks = _blocks(items)
    items = _grouped(items)
    statements = _stages(items)
    holders = [holder for item in items for index in item.nodes for holder in structure.holders(index)]
    outputs = [index for index in order[1:] if not consumers[index]]
    channels_shape = "x".join(str(extent) for extent in nodes[0].shape)
    name, family = identifier(net_name), statements.pop()
    signature = f"({', '.join(f'{key}={value}' for key, value in family)})" if family else ""
    out = [f"# Imported by `cnndsl import` from the Caffe prototxt {file_name} ({line_count} lines).",
           "# Caffe's pooling rounds its output size up: ceil=true where that differs from rounding down.",
           "# Each BatchNorm and the Scale after it are one bn (the weight import divides by BN's third blob)."]  # fmt: skip
    if not any(node.kind == "BatchNorm" for node in nodes):
        out.pop()
    out += ["", *blocks] + [""] * bool(blocks)
    input_label = f"{labels[order[0]]}: " if order[0] in labels else ""
    out += [f"network {name}{signature} {{", f"    {input_label}input {channels_shape}"]
    out += _named(body_lines(statements, "prototxt lines"), nodes)
    if len(outputs) > 1 or outputs[-1] != order[-1]:
        out.append(f"    output {', '.join(f'@{labels[index]}' for index in outputs)}")
    return "\n".join(out + ["}", ""]), holders


def _named(lines: list[str], nodes: list[Node]) -> list[str]:
    """Each line's comment names the Caffe layers it starts and ends with, beside their prototxt lines."""
    starts = {node.first: node.names[0] for node in reversed(nodes)}
    ends = {node.last: node.names[-1] for node in nodes}

    def comment(match: re.Match) -> str:
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        start, end = starts.get(first, "?"), ends.get(last, "?")
        names = start if start == end else f"{start} … {end}"
        return f"# {names} (line {first})" if first == last else f"# {names} (lines {first}-{last})"

    return [re.sub(r"# prototxt lines (\d+)(?:-(\d+))?$", comment, line) for line in lines]


def _labels(structure: _Structure, order: list[int], consumers) -> dict[int, str]:
    """A tap for every node read from further away than the line before it, named after its Caffe top."""
    wanted, previous = set(), order[0]
    for index in order[1:]:
        sources = structure.inputs[index]
        wanted |= {source for source in sources if source != previous}
        join = structure.nodes[index].join
        if join and index not in structure.parts and len(sources) > 1:
            continues = sources[0] == previous or (join != "concat" and previous in sources)
            wanted |= set(sources) - {previous} if continues else set(sources)
        previous = index
    outputs = [index for index in order[1:] if not consumers[index]]
    if len(outputs) > 1 or outputs[-1] != order[-1]:
        wanted |= set(outputs)
    labels, used = {}, set()
    for index in sorted(wanted):
        base = identifier(structure.nodes[index].top or structure.nodes[index].names[0])
        label, count = base, 1
        while label in used:
            count += 1
            label = f"{base}_{count}"
        labels[index] = label
        used.add(label)
    return labels


def _joined(structure: _Structure, index: int, previous: int, labels) -> tuple[str, bool]:
    """The node's text, continued from a tap where it does not read the line before, joins written with taps."""
    sources, node = structure.inputs[index], structure.nodes[index]
    if node.join and index not in structure.parts and len(sources) > 1:
        if sources[0] == previous or (node.join != "concat" and previous in sources):
            others = list(sources)
            others.remove(previous)
            return f"{node.join}({', '.join(f'@{labels[s]}' for s in others)})", False
        taps = ", ".join(f"@{labels[s]}" for s in sources[1:])
        return f"@{labels[sources[0]]}, {node.join}({taps})", True
    text = structure.text(index)
    if sources[0] != previous:
        return f"@{labels[sources[0]]}, {text}", True
    return text, False


def _absorb_activations(items: list[Item]) -> list[Item]:
    """An unlabelled activation right after a residual or branch joins it, as a person writes `residual {...}, relu`."""
    merged: list[Item] = []
    for item in items:
        previous = merged[-1] if merged else None
        joinable = previous and previous.composite and not previous.label and not item.starts_line
        if joinable and ACTIVATIONS.match(item.text):
            previous.text += f", {item.text}"
            previous.nodes += item.nodes
            previous.last, previous.label = item.last, item.label
            previous.names += item.names
            continue
        merged.append(item)
    return merged


def _unit(name: str) -> str | None:
    """`fire2` of `fire2/squeeze1x1`: the unit a slash-named Caffe layer belongs to."""
    return name.split("/")[0] if "/" in name else None


def _absorb_unit_heads(items: list[Item]) -> list[Item]:
    """Plain layers of a unit right before its fork join the unit's item: SqueezeNet's squeeze 1x1 and its
    ReLU belong to the fire module whose two expands meet in `fire2/concat`."""
    merged: list[Item] = []
    for item in items:
        unit = _unit(item.names[0]) if item.composite and not item.starts_line else None
        while unit and merged and not merged[-1].composite and not merged[-1].label:
            head = merged[-1]
            if head.text.startswith("@") or any(_unit(name) != unit for name in head.names):
                break
            merged.pop()
            item.text, item.nodes = f"{head.text}, {item.text}", head.nodes + item.nodes
            item.first, item.names, item.starts_line = head.first, head.names + item.names, head.starts_line
        merged.append(item)
    return merged


def _blocks(items: list[Item]) -> list[str]:
    """Composite items of one template become calls of one block; returns the blocks' text."""
    groups: dict[tuple, list[Item]] = {}
    for item in items:
        if item.composite and not item.text.startswith("@"):
            groups.setdefault(Template.key(item.text), []).append(item)
    written, names = [], Counter()
    for members in groups.values():
        template = Template([member.text for member in members])
        base = block_name(members[0].text, members[0].names)
        names[base] += 1
        name = base if names[base] == 1 else f"{base}_{names[base]}"
        written.append(template.block(name))
        for member, call in zip(members, template.calls(name), strict=True):
            member.text = call
    for item in items:
        item.text = tidy(item.text)
    return written


def _grouped(items: list[Item]) -> list[Item]:
    """Each conv, deconv or fc with the plain layers after it (bn, relu, pooling, ...) as one item, so that
    lines break and runs repeat at layer boundaries, as a person writes them."""
    grouped: list[Item] = []
    open_group = False
    for item in items:
        current = grouped[-1] if grouped else None
        joins = open_group and not item.composite and not item.starts_line and not LEADS.match(item.text)
        if current and joins and not current.label:
            current.text, current.last, current.label = f"{current.text}, {item.text}", item.last, item.label
            current.nodes, current.names = current.nodes + item.nodes, current.names + item.names
            continue
        grouped.append(item)
        open_group = not item.composite and bool(LEADS.match(item.text))
    return grouped


def _stage_key(names: list[str]) -> str | None:
    """`res3` from `res3b2_branch2a`: the Caffe name up to the unit's letter, shared by a stage's units."""
    match = re.match(r"([a-z_]*\d+)[a-z]+\d*(_|$)", names[-1] if names else "", re.IGNORECASE)
    return identifier(match.group(1)) if match else None


def _stages(items: list[Item]) -> list:
    """Consecutive block calls of one stage key become `stage key { ... }`; where every stage is a first unit
    and a run of one block, the stage depths become the family's parameters. The last element is the family."""
    statements, family, at = [], [], 0
    while at < len(items):
        item = items[at]
        key = _stage_key(item.names) if item.composite and not item.label else None
        run = [item]
        while key and at + len(run) < len(items):
            nxt = items[at + len(run)]
            if not nxt.composite or nxt.label or _stage_key(nxt.names) != key or nxt.starts_line:
                break
            run.append(nxt)
        if key is None or len(run) < 2:
            statements.append(Statement(item.text, item.first, item.last, item.label, item.starts_line))
            at += 1
            continue
        units = fold([Statement(unit.text, unit.first, unit.last) for unit in run])
        depth = _depth_form(units, key, len(run))
        body = depth or ", ".join(unit.text for unit in units)
        family += [(key, len(run))] * bool(depth)
        statements.append(Statement(f"stage {key} {{ {body} }}", run[0].first, run[-1].last, None, True))
        at += len(run)
        if at < len(items):
            items[at].starts_line = True
    stages = sum(1 for s in statements if s.text.startswith("stage "))
    if len(family) < 2 or len(family) != stages:
        statements = [_fixed(s, dict(family)) for s in statements]
        family = []
    return [*fold(statements), family]


def _depth_form(units: list[Statement], key: str, count: int) -> str | None:
    """`first, unit x (key - 1)` for a stage of a first unit and a run of another, `unit x key` for a run of one;
    None for other stages."""
    runner = re.sub(r" x\d+$", "", units[-1].text)
    if len(units) == 1 and runner != units[0].text:
        return f"{runner} x {key}"
    if len(units) == 2 and count >= 2:
        return f"{units[0].text}, {runner} x ({key} - 1)"
    return None


def _fixed(statement: Statement, depths: dict[str, int]) -> Statement:
    """A stage written with a depth parameter, back to its numbers where the net is no family."""
    match = re.match(r"stage (\w+) \{ (.*) x (\(\1 - 1\)|\1) \}$", statement.text)
    if match and match.group(1) in depths:
        count = depths[match.group(1)] - match.group(3).startswith("(")
        text = f"stage {match.group(1)} {{ {match.group(2)}" + (f" x{count}" if count > 1 else "") + " }"
        return Statement(text, statement.first, statement.last, statement.label, statement.starts_line)
    return statement
