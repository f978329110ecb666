"""Fuzzing cnndsl: grammar-aware programs and mutated library sources, each of which must end in a
valid graph or a CnnDslError, quickly. Anything else (an exception of another type, a hang, a
graph that breaks the IR contract) is an escape.

    python bench/fuzz.py --count 100000 --jobs 2

The generator takes its choices from a `Choices` object, so tests/test_fuzz.py drives the same
generator with hypothesis (which shrinks a failing program) and this script with a seeded random.
"""
from __future__ import annotations

import argparse
import multiprocessing
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import cnndsl
from cnndsl.errors import CnnDslError
from cnndsl.evaluate import LARGEST
from cnndsl.ir import EDGE_KINDS
from cnndsl.ops import REGISTRY, known_names, lookup
from cnndsl.resources import library_dir

MAX_NODES = 500  # small, so a program that repeats a lot ends at the limit in milliseconds
TIME_BOUND = 5.0  # seconds one input may take on a busy 2-core machine; typical inputs take milliseconds


class Choices:
    """Where the generator's decisions come from: a seeded random here, hypothesis in the tests."""

    def __init__(self, pick: Callable[[Sequence], object], number: Callable[[int, int], int]):
        self.pick = pick
        self.number = number

    @classmethod
    def seeded(cls, seed: int) -> "Choices":
        rng = random.Random(seed)
        return cls(lambda options: options[rng.randrange(len(options))], rng.randint)

    def chance(self, percent: int) -> bool:
        return self.number(1, 100) <= percent


# ---- grammar-aware programs ------------------------------------------------------------------
LAYERS = [name for name in known_names() if name != "input"] + ["conv5x5", "conv1x7", "dwconv5x5", "avgpool3x3", "conv0x0", "fcc", "relu2"]
KEYWORDS = sorted({name for kind in REGISTRY.values() for name, _ in kind.signature} | {"stride", "x"})
NAMES = ["i", "c", "n", "s", "depth", "width", "classes", "unknown"]
NUMBERS = ["0", "1", "2", "3", "4", "7", "16", "64", "0.5", "1.5", "1e3", "2e-3", "1000000000",
           "9007199254740993", "123456789012345678901234567890123"]
OPERATORS = ["+", "-", "*", "/", "//", "%", "^", "==", "!=", "<", ">=", "and", "or"]
FUNCTIONS = ["min", "max", "len", "range", "sum", "abs", "int", "round", "floor", "ceil", "enumerate", "zip", "foo"]


@dataclass
class Generator:
    """Writes a random .cnn program from the grammar's constructs, valid and broken alike."""

    choices: Choices
    depth: int = 0
    blocks: tuple = ()

    def program(self) -> str:
        parts = []
        if self.choices.chance(5):
            parts.append(self.choices.pick(["import resnet", 'import "missing.cnn"', "import nothing"]))
        if self.choices.chance(70):
            parts.append(f"let xs = {self.choices.pick(['[16, 32, 64]', '[1, 2]', '[]', 'range(3)', '[(16, 1), (32, 2)]'])}")
        if self.choices.chance(20):
            parts.append(f"let {self.name()} = {self.expr()}")
        self.blocks = tuple(f"b{index}" for index in range(self.choices.number(0, 2)))
        for block in self.blocks:
            parts.append(f"block {block}{self.params()} {self.body()}")
        params = "(c=16, n=2, s=1, i=0, width=8, depth=2, classes=10)" if self.choices.chance(80) else self.params()
        parts.append(f"network net{params} {{\n    input {self.shape()}\n{self.statements(1)}\n}}")
        if self.choices.chance(10):
            parts.append(f"network alias = net({self.choices.pick(['', '1', 'n=2', 'c=16, n=1', 'zz=1'])})")
        return "\n".join(parts) + "\n"

    def shape(self) -> str:
        if self.choices.chance(80):
            return self.choices.pick(["3x32x32", "3x16x16", "16x7x7", "784", "3x64x64"])
        return self.choices.pick(["1x1x1", "3x224x224", "0x4x4", "3x100000x100000", "(3, 16, 16)", "(in.c)", "2x3"])

    def params(self) -> str:
        if self.choices.chance(50):
            return ""
        names = dict.fromkeys(self.name() for _ in range(self.choices.number(0, 3)))  # a repeat is rare
        params = [name + (f"={self.atom()}" if self.choices.chance(70) else "") for name in names]
        return f"({', '.join(params)})"

    def name(self) -> str:
        return self.choices.pick(NAMES)

    def body(self) -> str:
        return "{\n" + self.statements(2) + "\n}"

    def statements(self, indent: int) -> str:
        count = self.choices.number(0 if self.choices.chance(10) else 1, 4 if self.depth == 0 else 2)
        separator = self.choices.pick([",\n", "\n", ", ", "\n\n"])
        return separator.join("    " * indent + self.statement() for _ in range(count))

    def statement(self) -> str:
        if self.depth > 2:
            return self.layer()
        self.depth += 1
        try:
            return self.choices.pick([
                self.layer, self.layer, self.layer, self.repeat, self.labeled, self.group, self.stage,
                self.residual, self.dense, self.branch, self.scale, self.jump, self.let, self.for_loop,
                self.if_else, self.defaults, self.output,
            ])()
        finally:
            self.depth -= 1

    def layer(self) -> str:
        name = self.choices.pick(LAYERS + list(self.blocks) * 4)
        return name + (self.arguments(name) if self.choices.chance(50) else "")

    def arguments(self, layer: str = "") -> str:
        """Mostly what the layer takes (a width, its own keywords), sometimes anything."""
        found = lookup(layer)
        own = [name for name, _ in found[0].signature] if found else []
        args = []
        for _ in range(self.choices.number(0, 2)):
            value = self.choices.pick(["16", "32", "2", "1", "c", "n"]) if self.choices.chance(70) else self.expr()
            if self.choices.chance(40):
                keyword = self.choices.pick(own) if own and self.choices.chance(80) else self.choices.pick(KEYWORDS)
                args.append(f"{keyword}={value}")
            else:
                args.append(value)
        if "@" not in "".join(args) and layer in ("add", "concat", "mul"):
            args.append(f"@{self.choices.pick(['a', 'b', 'skip'])}")
        return f"({', '.join(args)})"

    def repeat(self) -> str:
        return f"{self.unit()} {self.choices.pick(['x', '*'])} {self.count()}"

    def count(self) -> str:
        return self.choices.pick(["2", "3", "0", "n", "(i + 1)", "(-1)", "1000", "1000000000", "(2.5)", "in.c"])

    def unit(self) -> str:
        return self.choices.pick([self.layer, self.group, self.stage])()

    def labeled(self) -> str:
        return f"{self.choices.pick(['a', 'b', 'skip'])}: {self.choices.pick([self.layer, self.group])()}"

    def group(self) -> str:
        return "(" + ", ".join(self.statement() for _ in range(self.choices.number(1, 3))) + ")"

    def stage(self) -> str:
        name = self.choices.pick(["", "layer ", "stem "])
        return f"stage {name}{self.body()}"

    def residual(self) -> str:
        shortcut = f" shortcut {self.body()}" if self.choices.chance(30) else ""
        return f"residual {self.body()}{shortcut}"

    def dense(self) -> str:
        return f"dense {self.body()}"

    def branch(self) -> str:
        paths = [", ".join(self.statement() for _ in range(self.choices.number(1, 3)))
                 for _ in range(self.choices.number(1, 3))]
        return "branch { " + " | ".join(paths) + " }"

    def scale(self) -> str:
        return f"scale {self.body()}"

    def jump(self) -> str:
        return f"@{self.choices.pick(['a', 'b', 'skip', 'input'])}"

    def let(self) -> str:
        return f"let {self.name()} = {self.expr()}"

    def for_loop(self) -> str:
        return f"for {self.choices.pick(['c', 'c, n', 'i'])} in {self.expr()} {self.body()}"

    def if_else(self) -> str:
        otherwise = f" else {self.body()}" if self.choices.chance(50) else ""
        return f"if {self.expr()} {self.body()}{otherwise}"

    def defaults(self) -> str:
        layer = self.choices.pick(LAYERS)
        return f"defaults {layer}{self.arguments(layer)}"

    def output(self) -> str:
        taps = ", ".join(f"@{self.choices.pick(['a', 'b', 'skip'])}" for _ in range(self.choices.number(1, 2)))
        return f"output {taps}\n"  # it takes every tap that follows, so a line break must end it

    def expr(self, depth: int = 0) -> str:
        if depth > 3 or self.choices.chance(60):
            return self.atom()
        form = self.choices.number(0, 6)
        if form == 0:
            return f"{self.operand(depth)} {self.choices.pick(OPERATORS)} {self.operand(depth)}"
        if form == 1:
            return f"{self.choices.pick(['-', 'not '])}{self.operand(depth)}"
        if form == 2:
            return f"{self.operand(depth)} if {self.operand(depth)} else {self.expr(depth + 1)}"
        if form == 3:
            items = ", ".join(self.expr(depth + 1) for _ in range(self.choices.number(0, 3)))
            return f"[{items}]"
        if form == 4:
            return f"({self.expr(depth + 1)}, {self.expr(depth + 1)})"
        if form == 5:
            return f"{self.choices.pick(['xs', '[1, 2, 3]', 'range(4)'])}[{self.expr(depth + 1)}]"
        args = ", ".join(self.expr(depth + 1) for _ in range(self.choices.number(0, 3)))
        return f"{self.choices.pick(FUNCTIONS)}({args})"

    def operand(self, depth: int) -> str:
        """A sub-expression, in parentheses when it has operators of its own."""
        text = self.expr(depth + 1)
        return f"({text})" if " " in text and not text.startswith(("[", "(")) else text

    def atom(self) -> str:
        return self.choices.pick([
            self.choices.pick(NUMBERS) if self.choices.chance(20) else self.choices.pick(NUMBERS[:8]), self.name(),
            f"in.{self.choices.pick(['c', 'h', 'w', 'z'])}",
            self.choices.pick(["true", "false", "none", "same", "valid", '"text"', "bilinear"]),
            f"@{self.choices.pick(['a', 'b', 'skip'])}",
        ])


# ---- mutations of valid sources ------------------------------------------------------------------
DOC = Path(__file__).resolve().parent.parent / "docs" / "language.md"


def seed_sources() -> list[tuple[str, str]]:
    """Valid programs to mutate: every example of the language reference and the library files."""
    examples = re.findall(r"```cnn\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    seeds = [(f"language.md example {index + 1}", text) for index, text in enumerate(examples)]
    return seeds + [(path.name, path.read_text(encoding="utf-8")) for path in sorted(library_dir().glob("*.cnn"))]


SEEDS = seed_sources()
NETWORK = re.compile(r"^\s*network\s+([A-Za-z_]\w*)", re.MULTILINE)
INSERTS = ["(", ")", "{", "}", "[", "]", ",", "\n", "@", ":", " x ", "*", "^", "-", "+", "/", "0", "9" * 40,
           "1e999", "\0", "\r", "\t", "\ufeff", "\ud800", "é", "#", '"', "network", "block", "residual {",
           "import ", "let ", "if ", "for ", "in.", "((((", "))))"]


def mutate(text: str, choices: Choices) -> str:
    """A few random edits: deletions, insertions, duplications and truncation."""
    for _ in range(choices.number(1, 4)):
        if not text:
            break
        start = choices.number(0, len(text) - 1)
        end = min(len(text), start + choices.number(1, 40))
        edit = choices.number(0, 4)
        if edit == 0:
            text = text[:start] + text[end:]
        elif edit == 1:
            text = text[:start] + choices.pick(INSERTS) + text[start:]
        elif edit == 2:
            text = text[:end] + text[start:end] + text[end:]
        elif edit == 3:
            text = text[:start]
        else:
            text = text[:start] + chr(choices.number(0, 0x2FFF)) + text[end:]
    return text


def fuzz_input(choices: Choices) -> tuple[str, str, Optional[str]]:
    """One input: (label, source text, network to expand)."""
    if choices.chance(50):
        return "generated", Generator(choices).program(), "net"
    name, text = choices.pick(SEEDS)
    networks = NETWORK.findall(text)
    return f"mutated {name}", mutate(text, choices), choices.pick(networks) if networks else None


# ---- running one input ------------------------------------------------------------------------
def run(text: str, network: Optional[str] = None, folder: Path = library_dir()) -> Optional[str]:
    """None when the input ends in a valid graph or a CnnDslError; else what escaped."""
    try:
        network = cnndsl.parse(text, file=str(folder / "fuzz.cnn"), network=network, max_nodes=MAX_NODES)
    except CnnDslError as error:
        error.render(text)
        return None
    except Exception as error:  # noqa: BLE001 - the point is to catch whatever escapes
        return f"{type(error).__name__}: {error}"
    return contract_broken(network)


def contract_broken(network) -> Optional[str]:
    """What in the graph breaks the IR contract (cnndsl/ir.py), if anything."""
    graph = network.graph
    for node, data in graph.nodes(data=True):
        shape = data["shape"]
        if not shape or not all(isinstance(d, int) and 1 <= d <= LARGEST for d in shape):
            return f"node {node} ({data['op']}) has shape {shape}"
        if any(source >= node for source in graph.pred[node]):
            return f"node {node} has an input created after it"
    for source, target, data in graph.edges(data=True):
        if data["kind"] not in EDGE_KINDS:
            return f"edge {source}->{target} has kind {data['kind']!r}"
    if network.params < 0 or network.macs < 0:
        return "negative totals"
    network.summary().render("table")
    return None


def _one(seed: int) -> tuple[int, float, Optional[str], str]:
    label, text, network = fuzz_input(Choices.seeded(seed))
    start = time.perf_counter()
    escaped = run(text, network)
    return seed, time.perf_counter() - start, escaped, label


def reference_seconds() -> float:
    """Loading resnet50 from the library, best of 5: what a real network costs."""
    times = []
    for _ in range(5):
        start = time.perf_counter()
        cnndsl.load("resnet50")
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0, help="first seed; input k uses seed + k")
    parser.add_argument("--jobs", type=int, default=2)
    options = parser.parse_args()
    sys.setrecursionlimit(1000)  # the default: an input must not need more
    start = time.perf_counter()
    escapes, slowest, kinds = [], (0.0, None, ""), {}
    seeds = range(options.seed, options.seed + options.count)
    with multiprocessing.Pool(options.jobs) as pool:
        for seed, seconds, escaped, label in pool.imap_unordered(_one, seeds, chunksize=200):
            kinds[label.split()[0]] = kinds.get(label.split()[0], 0) + 1
            if seconds > slowest[0]:
                slowest = (seconds, seed, label)
            if escaped or seconds > TIME_BOUND:
                escapes.append((seed, label, escaped or f"took {seconds:.2f} s"))
    elapsed = time.perf_counter() - start
    reference = reference_seconds()
    print(f"python {sys.version.split()[0]}, {options.jobs} jobs, cnndsl {cnndsl.__version__}, max_nodes {MAX_NODES:,}")
    print(f"tried {options.count:,} inputs (seeds {options.seed}..{options.seed + options.count - 1}): "
          + ", ".join(f"{n:,} {kind}" for kind, n in sorted(kinds.items())))
    print(f"escaped: {len(escapes)} (anything but a valid graph or a CnnDslError, or over {TIME_BOUND:.0f} s)")
    for seed, label, what in escapes[:10]:
        print(f"  seed {seed} ({label}): {what[:200]}")
    print(f"wall time {elapsed:.1f} s, {options.count / elapsed:,.0f} inputs/s")
    print(f"slowest input: {slowest[0] * 1000:.1f} ms (seed {slowest[1]}, {slowest[2]})")
    print(f"reference: loading resnet50 takes {reference * 1000:.1f} ms; slowest input / resnet50 = "
          f"{slowest[0] / reference:.1f}x")
    print(f"goal: 0 escaped of at least 100,000 -> {'met' if not escapes and options.count >= 100_000 else 'NOT met'}")
    return 1 if escapes else 0


if __name__ == "__main__":
    sys.exit(main())
