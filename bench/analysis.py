"""Parse + expand + infer time for ResNets of growing depth and the library's largest graphs
(EfficientNet-B7, RegNetY-128GF), and the whole-process summary
command beside torchinfo's route (build the torch model by hand, then torchinfo.summary).

    python bench/analysis.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from timing import Pair, best_of, cnndsl_command, timed_process, whole_process

import cnndsl
from cnndsl.core.resources import grammar_path, library_dir
from cnndsl.front.parser import _Nesting

RESNET = (library_dir() / "resnet.cnn").read_text(encoding="utf-8")


CASES = {
    "resnet18": ("resnet", {}),
    "resnet50": ("resnet", {}),
    "resnet152": ("resnet", {}),
    "resnet_1000": ("resnet", {"depths": [20, 100, 180, 33]}),
    "efficientnet_b7": ("efficientnet", {}),
    "regnet_y_128gf": ("regnet", {}),
}


def analyse(label: str):
    """Parse + expand + infer one case of CASES, in process: a function of no arguments returning the Network."""
    file, params = CASES[label]
    text = (library_dir() / f"{file}.cnn").read_text(encoding="utf-8")
    name = file if params else label
    return lambda: cnndsl.parse(text, network=name, **params)


@contextmanager
def analysis_pair(label: str, repeats: int = 5) -> Iterator[Pair]:
    """Analysing a library graph in process (best of `repeats`) beside networkx building the same graph
    from its nodes and edges with their attributes: the least any tool on a networkx IR does."""
    import networkx as nx

    run = analyse(label)
    graph = run().graph
    nodes, edges = list(graph.nodes(data=True)), list(graph.edges(data=True))

    def build():
        copy = nx.DiGraph()
        copy.add_nodes_from(nodes)
        copy.add_edges_from(edges)

    yield Pair(lambda: best_of(run, repeats), lambda: best_of(build, repeats))


def in_process() -> None:
    print("parse + expand + infer, in process (best of 20)")
    print(f"{'network':<16}{'nodes':>7}{'ms':>9}{'µs/node':>10}")
    for label in CASES:
        run = analyse(label)
        nodes = run().graph.number_of_nodes()
        seconds = best_of(run)
        print(f"{label:<16}{nodes:>7}{seconds * 1e3:>9.2f}{seconds * 1e6 / nodes:>10.1f}")
    seconds = best_of(lambda: cnndsl.parse(RESNET, network="resnet152"))
    print(
        f"goal: resnet152 under 20 ms in process -> {seconds * 1e3:.1f} ms ({'met' if seconds < 0.020 else 'NOT met'})"
    )


def parsers() -> None:
    """LALR (what cnndsl uses) against Earley on the same grammar and text."""
    from lark import Lark

    grammar = grammar_path().read_text(encoding="utf-8")
    lalr = Lark(grammar, parser="lalr", lexer="contextual", postlex=_Nesting())  # positions come from the tokens
    # Earley scans without a lexer (a standalone lexer cannot tell `*` the repetition from `*` the
    # product); resnet.cnn has no newline inside brackets, so it needs no postlexer either.
    earley = Lark(grammar, parser="earley", lexer="dynamic")
    earley.parse(RESNET)
    lalr_time = best_of(lambda: lalr.parse(RESNET))
    earley_time = best_of(lambda: earley.parse(RESNET), repeats=5)
    print(
        f"\nparsing library/resnet.cnn: LALR {lalr_time * 1e3:.2f} ms, Earley {earley_time * 1e3:.2f} ms "
        f"(Earley / LALR = {earley_time / lalr_time:.1f}x)"
    )


BENCH = Path(__file__).resolve().parent  # handwritten.py: the torch side
TORCHINFO_ROUTE = """
import sys
sys.path.insert(0, sys.argv[1])
import torchinfo
from handwritten import resnet50

stats = torchinfo.summary(resnet50(), input_size=(1, 3, 224, 224), verbose=0)
print(stats)
assert stats.total_params == 25557032
"""


SUMMARY = ["summary", "resnet50"]
NETWORKX = [sys.executable, "-c", "import networkx"]


@contextmanager
def summary_pair(anchor: str = "networkx") -> Iterator[Pair]:
    """The whole `cnndsl summary resnet50` process, its parse cache warm, beside a whole process of
    `python -c "import networkx"` (the start-up floor of a networkx IR), or with anchor="torchinfo" beside
    torch + a hand-written ResNet-50 + torchinfo.summary."""
    reference = NETWORKX if anchor == "networkx" else [sys.executable, "-c", TORCHINFO_ROUTE, str(BENCH)]
    with tempfile.TemporaryDirectory() as cache:
        command = [cnndsl_command(), *SUMMARY]
        yield Pair(
            lambda: timed_process(command, {"CNNDSL_CACHE_DIR": cache}),
            lambda: timed_process(reference),
        )


def processes() -> None:
    command = [cnndsl_command(), *SUMMARY]
    with tempfile.TemporaryDirectory() as cache:
        ours = whole_process(command, extra_env={"CNNDSL_CACHE_DIR": cache})
    unparsed = whole_process(command, extra_env={"CNNDSL_NO_CACHE": "1"})
    print(
        f"\nwhole process, best of 5: `cnndsl summary resnet50` {ours:.3f} s "
        f"({unparsed:.3f} s parsing afresh each time, CNNDSL_NO_CACHE=1)"
    )
    try:
        import torchinfo  # noqa: F401
    except ImportError:
        print("torchinfo is not installed: no side-by-side reference")
        return
    theirs = whole_process([sys.executable, "-c", TORCHINFO_ROUTE, str(BENCH)])
    print(f"whole process, best of 5: torch + hand-written ResNet-50 + torchinfo.summary {theirs:.3f} s")
    print(f"ratio torchinfo / cnndsl: {theirs / ours:.1f}x (goal: at least 10x)")
    bare = whole_process([sys.executable, "-c", "pass"])
    networkx = whole_process(NETWORKX)
    print(
        f"floor: python alone {bare:.3f} s, python + `import networkx` (the graph IR's library) {networkx:.3f} s, "
        f"against a 10x budget of {theirs / 10:.3f} s"
    )


if __name__ == "__main__":
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, cnndsl {cnndsl.__version__}")
    in_process()
    parsers()
    processes()
