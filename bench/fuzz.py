"""Fuzzing cnndsl: grammar-aware programs and mutated library sources, each of which must end in a
valid graph or a CnnDslError, quickly. A valid graph is also built by every backend: a DOT diagram,
the meta-device forward in which `--to pt2` counts the operators it would trace, and for a small
input a torch module run forward and an ONNX model run by onnxruntime to the same outputs. Anything
else (an exception of another type, a backend refusing what `check` accepted, a graph that breaks
the IR contract, a hang, a blow-up of memory) is an escape.

Each input is written to a file beside helper files it may import, and run in a worker process
under a time and a memory limit, so a hang or a blow-up is reported instead of stalling the run.
One input in ten goes to another surface instead (bench/fuzz_surfaces.py): a docs block, or a request
to `cnndsl serve`'s application; one in twenty is a checkpoint file (bench/fuzz_checkpoints.py) loaded into
a small network for torch and ONNX, and one in twenty a model file for `cnndsl import`
(bench/fuzz_importers.py). `--only importer` (or docs, serve, checkpoint) sends every input to one surface.

    python bench/fuzz.py --count 100000 --jobs 1

The generator takes its choices from a `Choices` object, so tests/test_fuzz.py drives the same
generator with hypothesis (which shrinks a failing program) and this script with a seeded random.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cnndsl
from cnndsl.core.errors import CnnDslError
from cnndsl.core.resources import library_dir
from cnndsl.front.evaluate import LARGEST
from cnndsl.graph import ir
from cnndsl.graph.ir import EDGE_KINDS
from cnndsl.ops import REGISTRY, known_names, lookup

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzz_checkpoints  # noqa: E402  (beside this file, which is run as a script)
import fuzz_importers  # noqa: E402
import fuzz_surfaces  # noqa: E402

MAX_NODES = 500  # small, so a program that repeats a lot ends at the limit in milliseconds
TIME_BOUND = 5.0  # seconds of CPU one input may take; typical inputs take milliseconds
HANG_BOUND = 60.0  # seconds of wall time without an answer before a worker is taken to hang (the machine is shared)
MEMORY_BOUND = 2**30  # bytes of address space an input may add to a worker (torch and onnxruntime loaded)
# Backends run on networks this small: a forward pass and an onnxruntime session in milliseconds.
SMALL_INPUT, SMALL_PARAMS, SMALL_MACS = 16 * 64 * 64, 2_000_000, 50_000_000


class Choices:
    """Where the generator's decisions come from: a seeded random here, hypothesis in the tests."""

    def __init__(self, pick: Callable[[Sequence], object], number: Callable[[int, int], int]):
        self.pick = pick
        self.number = number

    @classmethod
    def seeded(cls, seed: int) -> Choices:
        rng = random.Random(seed)
        return cls(lambda options: options[rng.randrange(len(options))], rng.randint)

    def chance(self, percent: int) -> bool:
        return self.number(1, 100) <= percent


# ---- grammar-aware programs ------------------------------------------------------------------
LAYERS = [name for name in known_names() if name != "input"] + [
    "conv5x5",
    "conv1x7",
    "dwconv5x5",
    "avgpool3x3",
    "conv0x0",
    "fcc",
    "relu2",
]
KEYWORDS = sorted({name for kind in REGISTRY.values() for name, _ in kind.signature} | {"stride", "x"})
NAMES = ["i", "c", "n", "s", "depth", "width", "classes", "unknown"]
NUMBERS = [
    "0",
    "1",
    "2",
    "3",
    "4",
    "7",
    "16",
    "64",
    "0.5",
    "1.5",
    "1e3",
    "2e-3",
    "1000000000",
    "9007199254740993",
    "123456789012345678901234567890123",
]
OPERATORS = ["+", "-", "*", "/", "//", "%", "^", "==", "!=", "<", ">=", "and", "or"]
FUNCTIONS = [
    "min",
    "max",
    "len",
    "range",
    "sum",
    "abs",
    "int",
    "round",
    "floor",
    "ceil",
    "enumerate",
    "zip",
    "log",
    "exp",
    "sqrt",
    "pow",
    "foo",
]
# Values that are large to build, walk, print or compute: each must end within the limits of docs/errors.md.
LARGE = [
    "range(1000000)",
    "range(1000001)",
    "range(999999999)",
    "sum(range(1000000))",
    "2 ^ 62",
    "10 ^ 15",
    "2 ^ 0.5",
    "exp(40)",
    "exp(1000)",
    "log(0)",
    "pow(7, 30)",
    "round(5, -(2 ^ 53))",
    "round(2.5, 40)",
    "[range(1000000), range(1000000), range(1000000), range(1000000)]",
    "zip(range(1000000), range(1000000))",
    "[x * 2 for x in range(1000000)]",
    "[xs for i in range(100000)]",
    "[i for i in range(10) if i % 2]",
    "enumerate(range(1000000))",
    "[" + ", ".join(["16"] * 20000) + "]",
    "[1, 2, 9007199254740993]",
    "range(1000000) + range(1000000)",
    "range(1000000) == range(1000000)",
]
# Files an input may import: a helper, broken ones, a cycle, a folder, a link loop, text that is not .cnn.
IMPORTS = [
    'import "helper.cnn"',
    'import "broken.cnn"',
    'import "cycle_a.cnn"',
    'import "folder"',
    'import "loop.cnn"',
    'import "notes.txt"',
    'import "binary.cnn"',
    'import "../fuzz/helper.cnn"',
    'import "missing.cnn"',
    "import resnet",
    "import nothing",
]


@dataclass
class Generator:
    """Writes a random .cnn program from the grammar's constructs, valid and broken alike."""

    choices: Choices
    depth: int = 0
    blocks: tuple = ()

    def program(self) -> str:
        parts = []
        if self.choices.chance(20):
            parts.append(self.choices.pick(IMPORTS))
        if self.choices.chance(70):
            parts.append(
                f"let xs = {self.choices.pick(['[16, 32, 64]', '[1, 2]', '[]', 'range(3)', '[(16, 1), (32, 2)]'])}"
            )
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
            return self.choices.pick(
                [
                    self.layer,
                    self.layer,
                    self.layer,
                    self.repeat,
                    self.labeled,
                    self.group,
                    self.stage,
                    self.residual,
                    self.dense,
                    self.branch,
                    self.scale,
                    self.jump,
                    self.let,
                    self.for_loop,
                    self.if_else,
                    self.defaults,
                    self.output,
                ]
            )()
        finally:
            self.depth -= 1

    def layer(self) -> str:
        name = self.choices.pick(LAYERS + list(self.blocks) * 4 + ["helper"])
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
        paths = [
            ", ".join(self.statement() for _ in range(self.choices.number(1, 3)))
            for _ in range(self.choices.number(1, 3))
        ]
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
        form = self.choices.number(0, 8)
        if form == 7:
            return self.choices.pick(LARGE)
        if form == 8:
            condition = f" if {self.operand(depth)}" if self.choices.chance(30) else ""
            return f"[{self.expr(depth + 1)} for {self.choices.pick(['c', 'c, n', 'i'])} in {self.expr(depth + 1)}{condition}]"
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
        return self.choices.pick(
            [
                self.choices.pick(NUMBERS) if self.choices.chance(20) else self.choices.pick(NUMBERS[:8]),
                self.name(),
                f"in.{self.choices.pick(['c', 'h', 'w', 'z'])}",
                self.choices.pick(["true", "false", "none", "same", "valid", '"text"', "bilinear"]),
                f"@{self.choices.pick(['a', 'b', 'skip'])}",
            ]
        )


# ---- mutations of valid sources ------------------------------------------------------------------
DOC = Path(__file__).resolve().parent.parent / "docs" / "language.md"


def seed_sources() -> list[tuple[str, str]]:
    """Valid programs to mutate: every example of the language reference and the library files."""
    examples = re.findall(r"```cnn\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    seeds = [(f"language.md example {index + 1}", text) for index, text in enumerate(examples)]
    return seeds + [(path.name, path.read_text(encoding="utf-8")) for path in sorted(library_dir().glob("*.cnn"))]


SEEDS = seed_sources()
NETWORK = re.compile(r"^\s*network\s+([A-Za-z_]\w*)", re.MULTILINE)
INSERTS = [
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\n",
    "@",
    ":",
    " x ",
    "*",
    "^",
    "-",
    "+",
    "/",
    "0",
    "9" * 40,
    "1e999",
    "\0",
    "\r",
    "\t",
    "\ufeff",
    "\ud800",
    "é",
    "#",
    '"',
    "network",
    "block",
    "residual {",
    "import ",
    "let ",
    "if ",
    "for ",
    "in.",
    "((((",
    "))))",
]


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


def fuzz_input(choices: Choices) -> tuple[str, str, str | None]:
    """One input: (label, source text, network to expand)."""
    if choices.chance(50):
        return "generated", Generator(choices).program(), "net"
    name, text = choices.pick(SEEDS)
    networks = NETWORK.findall(text)
    return f"mutated {name}", mutate(text, choices), choices.pick(networks) if networks else None


# ---- files an input may import -----------------------------------------------------------------
def make_files(root: Path) -> Path:
    """A folder `fuzz` of files the generated imports name; inputs are written there as fuzz.cnn."""
    folder = root / "fuzz"
    folder.mkdir()
    (folder / "helper.cnn").write_text("let widths = [8, 16]\nblock helper(c=8) { conv3x3(c), relu }\n")
    (folder / "broken.cnn").write_text("block broken( {\n")
    (folder / "cycle_a.cnn").write_text('import "cycle_b.cnn"\n')
    (folder / "cycle_b.cnn").write_text('import "cycle_a.cnn"\n')
    (folder / "notes.txt").write_text("a secret first line\n")
    (folder / "binary.cnn").write_bytes(b"\x00\x01\x02network")
    (folder / "folder").mkdir()
    (folder / "loop.cnn").symlink_to(folder / "loop.cnn")
    return folder


# ---- running one input ------------------------------------------------------------------------
def run(text: str, network: str | None, folder: Path) -> tuple[str | None, str]:
    """(None, how it ended) when the input ends in a CnnDslError ("error NameProblem"), or in a valid graph that the
    backends build ("graph"; "backends" when torch and onnxruntime ran it too) or refuse with a located
    error ("refused" and its message); else (what escaped, "escape").
    The input is read from folder/fuzz.cnn, as a user's file would be."""
    path = folder / "fuzz.cnn"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        network = cnndsl.load(path, network=network, max_nodes=MAX_NODES)
    except CnnDslError as error:
        error.render(text)
        return None, f"error {type(error).__name__}"
    except MemoryError:
        raise  # the worker reports it with its bound
    except Exception as error:  # noqa: BLE001 - the point is to catch whatever escapes
        return f"{type(error).__name__}: {error}", "escape"
    try:
        broken = contract_broken(network) or backends_broken(network)
    except CnnDslError as error:  # a located refusal, such as ONNX's of an even-sized lrn (docs/onnx.md)
        error.render(text)
        return None, f"refused {error.message.split(':')[0][:60]}"
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001
        broken = f"a backend failed: {type(error).__name__}: {error}"
    if broken:
        return broken, "escape"
    return None, "backends" if _small(network) else "graph"


def _small(network) -> bool:
    size = sum(math.prod(shape) for _, shape in network.inputs)
    return size <= SMALL_INPUT and network.params <= SMALL_PARAMS and network.macs <= SMALL_MACS


def contract_broken(network) -> str | None:
    """What in the graph breaks the IR contract (cnndsl/graph/ir.py), if anything."""
    graph = network.graph
    for node, layer in ir.layers(graph):
        shape = layer.shape
        if not shape or not all(isinstance(d, int) and 1 <= d <= LARGEST for d in shape):
            return f"node {node} ({layer.op}) has shape {shape}"
        if any(source >= node for source in graph.pred[node]):
            return f"node {node} has an input created after it"
    for source, target in graph.edges:
        kind = ir.edge(graph, source, target).kind
        if kind not in EDGE_KINDS:
            return f"edge {source}->{target} has kind {kind!r}"
    if network.params < 0 or network.macs < 0:
        return "negative totals"
    network.summary().render("table")
    return None


def backends_broken(network) -> str | None:
    """Build the DOT diagram; for a small network also the torch module, run forward, and the ONNX model
    with the same weights, run by onnxruntime: the outputs must have the analysed shapes and agree."""
    import numpy as np
    import onnxruntime
    import torch

    from cnndsl.backends.export_cost import traced_steps
    from cnndsl.backends.graphviz import dot_source
    from cnndsl.backends.torch import meta_forward

    if not dot_source(network).startswith(("digraph", "strict digraph")):
        return "the DOT source is not a digraph"
    steps = traced_steps(network, meta_forward(network))  # what `--to pt2` counts first: the meta forward of any size
    if any(not isinstance(count, int) or count < 0 for count in steps.values()):
        return f"--to pt2's operator count is not a count: {steps}"
    if not _small(network):
        return None
    module = network.to_torch().eval()
    generator = torch.Generator().manual_seed(0)
    images = {name: torch.randn(2, *shape, generator=generator) for name, shape in network.inputs}
    with torch.no_grad():
        result = module(*images.values())
    expected = [tensor.numpy() for tensor in (result if isinstance(result, tuple) else (result,))]
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        network.to_onnx(weights=module).SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    got = session.run(None, {name: image.numpy() for name, image in images.items()})
    if len(got) != len(expected) or len(expected) != len(network.outputs):
        return f"{len(network.outputs)} outputs analysed, torch gave {len(expected)}, onnxruntime {len(got)}"
    for (name, node), value, reference in zip(network.outputs, got, expected):
        shape = (2, *ir.layer(network.graph, node).shape)
        if value.shape != shape or reference.shape != shape:
            return f"output {name}: analysed {shape}, torch {reference.shape}, onnxruntime {value.shape}"
        scale = max(float(np.nanmax(np.abs(reference), initial=0.0)), 1e-6)
        if not np.allclose(value, reference, rtol=1e-3, atol=1e-4 * scale, equal_nan=True):
            return f"output {name}: onnxruntime differs from torch by {np.nanmax(np.abs(value - reference)):.3g}"
    return None


class Worker:
    """A `bench/fuzz.py --serve` process that runs inputs one at a time within TIME_BOUND seconds of CPU
    and MEMORY_BOUND bytes; an input that hangs (no answer within HANG_BOUND seconds), or kills the
    process, is an escape, and the next input gets a fresh worker."""

    def __init__(self, hang_bound: float = HANG_BOUND):
        self.hang_bound = hang_bound
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        environment = {
            **os.environ,
            "CNNDSL_NO_CACHE": "1",
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(Path(cnndsl.__file__).parent.parent), os.environ.get("PYTHONPATH")])
            ),
        }
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve"],
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=environment,
        )
        if self._answer(300) != "ready":
            raise RuntimeError("the fuzz worker did not start")

    def run(
        self,
        text: str,
        network: str | None,
        cpu_bound: float = TIME_BOUND,
        memory_bound: int = MEMORY_BOUND,
        surface: tuple[str, int] | None = None,
    ) -> tuple[str | None, float, str]:
        """(what escaped or None, CPU seconds the input took, how it ended: see `run`); `surface`, ("docs" or
        "serve", seed), sends the text to a docs block or a serve request instead (bench/fuzz_surfaces.py)."""
        if self.process is None:
            self.start()
        start = time.perf_counter()
        request = {"text": text, "network": network, "cpu": cpu_bound, "memory": memory_bound, "surface": surface}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self._answer(self.hang_bound)
        seconds = time.perf_counter() - start
        if answer is None:
            self.stop()
            return f"no answer within {self.hang_bound:g} s (a hang, or the worker died)", seconds, "escape"
        return answer["escaped"], answer["seconds"], answer["outcome"]

    def _answer(self, timeout: float):
        readable, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if readable else ""
        return json.loads(line) if line else None

    def stop(self) -> None:
        if self.process is not None:
            with self.process:  # closes its pipes as it waits for it
                self.process.kill()
            self.process = None


class TimeUp(BaseException):
    """An input past TIME_BOUND seconds of CPU; a BaseException, so no `except Exception` in cnndsl hides it."""


def _time_up(signum, frame):
    raise TimeUp


def serve() -> None:
    """The worker's side: read inputs as JSON lines on stdin, answer each on stdout."""
    import onnxruntime  # noqa: F401 - loaded before the memory limit is set
    import torch

    torch.set_num_threads(1)
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever else writes to stdout must not break the protocol
    sys.setrecursionlimit(1000)  # the default: an input must not need more
    with open("/proc/self/status") as status:
        size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    signal.signal(signal.SIGPROF, _time_up)
    with tempfile.TemporaryDirectory(prefix="cnndsl-fuzz-") as root:
        folder = make_files(Path(root))
        docs, served = fuzz_surfaces.make_surface_files(Path(root))
        surfaces = {
            "docs": lambda choices, text: fuzz_surfaces.run_docs(fuzz_surfaces.docs_page(choices, text), docs),
            "serve": lambda choices, text: server.request(choices, text),
            "checkpoint": lambda choices, text: fuzz_checkpoints.run(checkpoint),
            "importer": lambda choices, text: fuzz_importers.run(model_file),
        }
        server = None
        print(json.dumps("ready"), file=protocol, flush=True)
        for line in sys.stdin:
            request = json.loads(line)
            cpu_bound, memory_bound = request["cpu"], request["memory"]
            if (request.get("surface") or [None])[0] == "checkpoint":  # the file is built before the clock starts
                checkpoint = fuzz_checkpoints.write(request["surface"][1], folder)
            if (request.get("surface") or [None])[0] == "importer":
                model_file = fuzz_importers.write(request["surface"][1], folder)
            resource.setrlimit(resource.RLIMIT_AS, (size + memory_bound, resource.RLIM_INFINITY))
            start = time.process_time()
            signal.setitimer(signal.ITIMER_PROF, cpu_bound)  # CPU time: a busy machine does not count
            try:
                if request.get("surface"):
                    kind, seed = request["surface"]
                    if kind == "serve" and server is None:
                        server = fuzz_surfaces.ServeClient(served)  # its analysis worker, started once
                    escaped, outcome = _guarded(surfaces[kind], Choices.seeded(seed), request["text"])
                else:
                    escaped, outcome = run(request["text"], request["network"], folder)
            except MemoryError:
                escaped, outcome = f"MemoryError: more than {memory_bound:,} bytes", "escape"
            except TimeUp:
                escaped, outcome = f"still running after {cpu_bound:g} s of CPU", "escape"
            finally:
                signal.setitimer(signal.ITIMER_PROF, 0)
            seconds = time.process_time() - start
            if seconds > cpu_bound and not escaped:
                escaped, outcome = f"took {seconds:.2f} s of CPU", "escape"
            print(json.dumps({"escaped": escaped, "seconds": seconds, "outcome": outcome}), file=protocol, flush=True)


def _guarded(run_surface, choices: Choices, text: str) -> tuple[str | None, str]:
    try:
        return run_surface(choices, text)
    except (MemoryError, TimeUp):
        raise
    except Exception as error:  # noqa: BLE001 - the point is to catch whatever escapes
        return f"{type(error).__name__}: {error}", "escape"


def reference_seconds() -> float:
    """Loading resnet50 from the library, best of 5: what a real network costs."""
    times = []
    for _ in range(5):
        start = time.perf_counter()
        cnndsl.load("resnet50")
        times.append(time.perf_counter() - start)
    return min(times)


OUTCOMES = {
    "docs-drawn": "docs blocks drawn",
    "docs-refused": "docs blocks refused with a warning",
    **{f"serve-{status}": f"serve requests answered {status}" for status in (200, 303, 400, 403, 404, 405, 413)},
    "error": "located errors (CnnDslError)",
    "graph": "graphs (DOT built; too large for torch and onnxruntime)",
    "backends": "graphs run by torch and onnxruntime to the same outputs",
    "escape": "escapes",
    "refused": "graphs a backend refused with a located error",
    "loaded": "checkpoints loaded for torch and ONNX",
    "imported": "model files imported, their networks loaded",
    "imported-refused": "model files imported, their networks refused with a located error",
}


# by seed % 20: one input in ten goes to a docs block or a serve request, one in twenty is a checkpoint file,
# one in twenty a model file to import
SURFACES = {1: "docs", 2: "serve", 3: "checkpoint", 4: "importer"}


def _drive(seeds, results: list, lock, only: str | None = None) -> None:
    """One worker's share: take seeds until none are left."""
    worker = Worker()
    try:
        while True:
            with lock:
                seed = next(seeds, None)
            if seed is None:
                return
            label, text, network = fuzz_input(Choices.seeded(seed))
            surface = only or SURFACES.get(seed % 20)
            if surface:
                label = f"{surface} {label}"
            escaped, seconds, outcome = worker.run(text, network, surface=(surface, seed) if surface else None)
            with lock:
                results.append((seed, seconds, escaped, f"{label.split()[0]} {outcome}"))
                if escaped or len(results) % 5000 == 0:
                    print(
                        f"... {len(results):,} inputs; seed {seed}: {escaped or 'fine'}"[:300],
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        worker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0, help="first seed; input k uses seed + k")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--until", type=float, help="stop taking inputs after this many seconds")
    parser.add_argument("--only", choices=sorted(set(SURFACES.values())), help="send every input to one surface")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        serve()
        return 0
    import threading

    start = time.perf_counter()
    seeds = iter(range(options.seed, options.seed + options.count))
    if options.until:
        seeds = (seed for seed in seeds if time.perf_counter() - start < options.until)
    results, lock = [], threading.Lock()
    threads = [threading.Thread(target=_drive, args=(seeds, results, lock, options.only)) for _ in range(options.jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    os.environ["CNNDSL_NO_CACHE"] = "1"  # the reference parses, as each input does
    kinds, outcomes, refusals, escapes = {}, {}, {}, []
    for seed, _seconds, escaped, label in sorted(results):
        kind, outcome = label.split()[:2]
        kinds[kind] = kinds.get(kind, 0) + 1
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if outcome == "refused":
            refusals[label.split(maxsplit=2)[2]] = refusals.get(label.split(maxsplit=2)[2], 0) + 1
        if escaped:
            escapes.append((seed, label, escaped))
    slowest = max(results, default=(None, 0.0, None, ""), key=lambda result: result[1])
    reference = reference_seconds()
    print(
        f"python {sys.version.split()[0]}, {options.jobs} worker(s), cnndsl {cnndsl.__version__}, max_nodes "
        f"{MAX_NODES:,}, per input {TIME_BOUND:g} s of CPU "
        f"and {MEMORY_BOUND / 2**30:g} GiB"
    )
    print(
        f"tried {len(results):,} inputs (seeds {options.seed}..{options.seed + len(results) - 1}): "
        + ", ".join(f"{n:,} {kind}" for kind, n in sorted(kinds.items()))
    )
    print(
        "ended in: " + ", ".join(f"{n:,} {OUTCOMES.get(outcome, outcome)}" for outcome, n in sorted(outcomes.items()))
    )
    for message, n in sorted(refusals.items()):
        print(f"  refused {n:,} times: {message}")
    print(
        f"escaped: {len(escapes)} (anything but a valid graph that every backend builds or a CnnDslError, a hang,"
        f" or a blow-up)"
    )
    for seed, label, what in escapes[:20]:
        print(f"  seed {seed} ({label}): {what[:300]}")
    print(f"wall time {elapsed:.1f} s, {len(results) / elapsed:,.1f} inputs/s")
    print(f"slowest input: {slowest[1] * 1000:.1f} ms of CPU (seed {slowest[0]}, {slowest[3]})")
    print(
        f"reference: loading resnet50 takes {reference * 1000:.1f} ms; slowest input / resnet50 = "
        f"{slowest[1] / reference:.1f}x"
    )
    print(f"goal: 0 escaped of at least 100,000 -> {'met' if not escapes and len(results) >= 100_000 else 'NOT met'}")
    return 1 if escapes else 0


if __name__ == "__main__":
    sys.exit(main())
