"""Blocks from repeated Caffe units: the numbers that vary become parameters, the rest stays written out."""

from __future__ import annotations

import re

from ..ops.base import lookup

NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?(?:e-?\d+)?)(?![\w.])")
CALL = re.compile(r"\b(conv|maxpool|avgpool)\(((?:[^()]|\([^()]*\))*)\)")
WIDTH = 96
ONE_DEFAULT = {"s", "d", "g"}


class Template:
    """Texts that differ only in their numbers, as one block: varying positions become parameters, a position
    that is a whole multiple of a parameter in every text is written `m * p`."""

    def __init__(self, texts: list[str]):
        pieces = [NUMBER.split(text) for text in texts]
        self.literals = pieces[0][0::2]
        self.values = [piece[1::2] for piece in pieces]
        self.slots: list[str] = []
        self.params: dict[str, tuple[str, ...]] = {}
        for position, column in enumerate(zip(*self.values, strict=True)):
            self.slots.append(column[0] if len(set(column)) == 1 else self._slot(position, column))

    @staticmethod
    def key(text: str) -> tuple[str, ...]:
        return tuple(NUMBER.split(text)[0::2])

    def _slot(self, position: int, column: tuple[str, ...]) -> str:
        for name, values in self.params.items():
            if values == column:
                return name
        if all(value.isdigit() for value in column):
            for name, values in self.params.items():
                if all(
                    v.isdigit() and int(v) > 0 and int(c) % int(v) == 0 for v, c in zip(values, column, strict=True)
                ):
                    ratios = {int(c) // int(v) for v, c in zip(values, column, strict=True)}
                    if len(ratios) == 1 and ratios != {1}:
                        return f"{ratios.pop()} * {name}"
        before = self.literals[position]
        key = re.search(r"(\w+)=\(?$", before)
        base = key.group(1) if key else "c" if before.endswith("conv(") else "n" if before.endswith("fc(") else "v"
        name, count = base, 1
        while name in self.params:
            count += 1
            name = f"{base}{count}"
        self.params[name] = column
        return name

    def _defaults(self) -> dict[str, str]:
        return {name: "1" for name, values in self.params.items() if name in ONE_DEFAULT and "1" in values}

    def block(self, name: str) -> str:
        defaults = self._defaults()
        ordered = [p for p in self.params if p not in defaults] + [f"{p}={defaults[p]}" for p in defaults]
        body = "".join(part for pair in zip(self.literals, [*self.slots, ""], strict=True) for part in pair)
        signature = f"({', '.join(ordered)})" if ordered else ""
        lines = [f"block {name}{signature} {{", *format_body(tidy(body), 4), "}"]
        return "\n".join(lines)

    def calls(self, name: str) -> list[str]:
        defaults = self._defaults()
        calls = []
        for instance in range(len(self.values)):
            args = [values[instance] for p, values in self.params.items() if p not in defaults]
            args += [
                f"{p}={values[instance]}"
                for p, values in self.params.items()
                if p in defaults and values[instance] != "1"
            ]
            calls.append(f"{name}({', '.join(args)})" if args else name)
        return calls


GENERIC_STEMS = {"conv", "block", "layer", "concat", "eltwise", "output", "join", "merge", "unit", "data"}
LANGUAGE_WORDS = {"residual", "shortcut", "branch", "dense", "scale", "stage", "block", "network", "input", "output",
                  "let", "for", "in", "if", "elif", "else", "defaults", "import", "true", "false"}  # fmt: skip


def block_name(text: str, names: list[str]) -> str:
    """The Caffe unit's stem where it says something (`fire`, `inception`), else a name from the structure."""
    stem = re.match(r"[A-Za-z]{4,}(?![A-Za-z])", names[0] if names else "")
    word = stem.group().lower() if stem else ""
    if word and word not in GENERIC_STEMS | LANGUAGE_WORDS and lookup(word) is None:
        return word
    body = text.split("} shortcut {")[0]
    if "branch {" in body:
        return "inception"
    if "scale {" in body:
        return "gate"
    if "dense {" in body:
        return "dense_layer"
    name = {3: "bottleneck", 2: "basic"}.get(body.count("conv("), "residual_unit")
    return name + "_proj" * ("} shortcut {" in text)


def split_top(text: str, separator: str) -> list[str]:
    """Parts of the text split at the separator where no bracket or brace is open."""
    parts, depth, start = [], 0, 0
    at = 0
    while at < len(text):
        char = text[at]
        depth += char in "([{"
        depth -= char in ")]}"
        if depth == 0 and text.startswith(separator, at):
            parts.append(text[start:at])
            at += len(separator)
            start = at
            continue
        at += 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def pack(items: list[str], indent: int, lead: str = "") -> list[str]:
    """Items joined by commas into lines of at most WIDTH characters."""
    lines, current = [], []
    for item in items:
        candidate = ", ".join([*current, item])
        if current and indent + len(lead) + len(candidate) > WIDTH:
            lines.append(" " * indent + lead + ", ".join(current))
            lead, current = " " * len(lead), []
        current.append(item)
    if current:
        lines.append(" " * indent + lead + ", ".join(current))
    return lines


def format_body(text: str, indent: int) -> list[str]:
    """A block body over lines: each `residual`/`branch`/`scale`/`shortcut` opens its own, paths one a line."""
    lines: list[str] = []
    pending: list[str] = []
    for item in split_top(text, ", "):
        match = re.match(r"(residual|branch|scale|dense) \{ ", item)
        if not match:
            pending.append(item)
            continue
        lines += pack(pending, indent)
        pending = []
        form = match.group(1)
        inner, shortcut = _braced(item, match.end() - 2), None
        rest = item[match.end() - 2 + len(inner) + 4 :].strip()
        if rest.startswith("shortcut {"):
            shortcut = _braced(rest, len("shortcut "))
        lines.append(" " * indent + f"{form} {{")
        if form == "branch":
            for number, path in enumerate(split_top(inner, " | ")):
                lines += pack(split_top(path, ", "), indent, "    " if number == 0 else "  | ")
        else:
            lines += pack(split_top(inner, ", "), indent + 4)
        lines.append(" " * indent + "}")
        if shortcut:
            lines += pack(split_top(shortcut, ", "), indent, "shortcut { ")
            lines[-1] += " }"
    return lines + pack(pending, indent)


def _braced(text: str, opening: int) -> str:
    """The text inside the braces that open at `opening`, without the spaces next to them."""
    depth = 0
    for at in range(opening, len(text)):
        depth += text[at] in "([{"
        depth -= text[at] in ")]}"
        if depth == 0:
            return text[opening + 2 : at - 1]
    raise ValueError(text)


def tidy(text: str) -> str:
    """Options equal to cnndsl's defaults dropped: s, d, g of 1, a conv's p where it is `same`, a pool's s = k."""

    def call(match: re.Match) -> str:
        kind, args = match.group(1), split_top(match.group(2), ", ")
        options = dict(arg.split("=", 1) for arg in args if "=" in arg and not arg.startswith("("))
        kernel = options.get("k", "")
        drop = {"d": "1", "g": "1", "s": "1"} if kind == "conv" else {"p": "0"}
        if kind != "conv" and "s" in options and options["s"] == kernel:
            drop["s"] = kernel
        if kind == "conv" and kernel.isdigit() and int(kernel) % 2 and options.get("d", "1").isdigit():
            drop["p"] = str((int(kernel) - 1) // 2 * int(options.get("d", "1")))
        kept = [arg for arg in args if not ("=" in arg and drop.get(arg.split("=", 1)[0]) == arg.split("=", 1)[1])]
        return f"{kind}({', '.join(kept)})"

    return CALL.sub(call, text)
