"""Whole-process time of drawing ResNet-152 to SVG (by default at the depth that fits a page, and as the
block figure), beside torchview's `draw_graph` of a hand-written torch ResNet-152 (where torchview is
installed), and the size of each picture.

    python bench/draw.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from timing import Pair, best_of, cnndsl_command, timed_process, whole_process

import cnndsl
from cnndsl.backends.graphviz import to_digraph

SCREEN = (1920, 1080)

BENCH = Path(__file__).resolve().parent  # handwritten.py: the torch side
TORCHVIEW_ROUTE = """
import sys
sys.path.insert(0, sys.argv[2])
from torchview import draw_graph
from handwritten import resnet152

model = resnet152()
assert sum(p.numel() for p in model.parameters()) == 60192808
graph = draw_graph(model, input_size=(1, 3, 224, 224), device="cpu")
graph.visual_graph.render(sys.argv[1], format="svg", cleanup=True)
"""


def pixels(svg: Path) -> tuple[int, int]:
    """An SVG's size in CSS pixels (Graphviz writes points: 96 px = 72 pt; the block figure writes px)."""
    head = svg.read_text(encoding="utf-8")[:2000]
    found = [re.search(rf'{side}="([\d.]+)(pt|px)"', head) for side in ("width", "height")]
    return tuple(round(float(match.group(1)) * (96 / 72 if match.group(2) == "pt" else 1)) for match in found)


def describe(label: str, seconds: float, svg: Path) -> None:
    width, height = pixels(svg)
    fits = "fits" if width <= SCREEN[0] and height <= SCREEN[1] else "does not fit"
    print(f"{label:<52}{seconds:>7.3f} s {width:>6} x {height:<6} px ({fits} one {SCREEN[0]}x{SCREEN[1]} screen)")


@contextmanager
def draw_pair(anchor: str = "networkx") -> Iterator[Pair]:
    """The whole `cnndsl draw resnet152 -o r.svg` process beside a whole process of `python -c "import
    networkx"` (the start-up floor), or with anchor="torchview" beside torch + a hand-written ResNet-152 +
    torchview's draw_graph rendered to SVG."""
    with tempfile.TemporaryDirectory() as folder:
        ours = [cnndsl_command(), "draw", "resnet152", "-o", str(Path(folder) / "r.svg")]
        if anchor == "networkx":
            reference = [sys.executable, "-c", "import networkx"]
        else:
            reference = [sys.executable, "-c", TORCHVIEW_ROUTE, str(Path(folder) / "torchview"), str(BENCH)]
        yield Pair(lambda: timed_process(ours), lambda: timed_process(reference))


def in_process(network) -> None:
    """Where the time goes: building the DOT is ours, the layout is Graphviz's `dot`."""
    build = best_of(lambda: to_digraph(network).source, 10)
    dot = to_digraph(network)
    layout = best_of(lambda: dot.pipe(format="svg"), 3)
    print(
        f"in process, resnet152 full depth: DOT built in {build * 1e3:.1f} ms, laid out by dot in {layout * 1e3:.0f} ms"
    )


def main() -> None:
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, cnndsl {cnndsl.__version__}, "
        f"{subprocess.run(['dot', '-V'], capture_output=True, text=True).stderr.strip()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    cnndsl_bin = cnndsl_command()
    in_process(cnndsl.load("resnet152"))
    print("whole process, best of 5:")
    with tempfile.TemporaryDirectory() as folder:
        ours = {}
        runs = (
            ("default", []),
            ("--depth 1", ["--depth", "1"]),
            ("--depth 2", ["--depth", "2"]),
            ("--style blocks", ["--style", "blocks"]),
        )
        for label, options in runs:
            target = Path(folder) / f"ours{len(ours)}.svg"
            ours[label] = whole_process([cnndsl_bin, "draw", "resnet152", "-o", str(target), *options])
            describe(f"`cnndsl draw resnet152 -o r.svg {' '.join(options)}`", ours[label], target)
        goal = max(ours["default"], ours["--style blocks"])
        print(f"goal: under 1 s, the default and the block figure -> {goal:.2f} s ({'met' if goal < 1 else 'NOT met'})")
        try:
            import torchview  # noqa: F401
        except ImportError:
            print("torchview is not installed: no side-by-side reference")
            return
        target = Path(folder) / "torchview"
        theirs = whole_process([sys.executable, "-c", TORCHVIEW_ROUTE, str(target), str(BENCH)], repeats=3)
        describe("torch + hand-written ResNet-152 + torchview (best of 3)", theirs, target.with_suffix(".svg"))
        print(f"ratio torchview / cnndsl (default): {theirs / ours['default']:.1f}x")


if __name__ == "__main__":
    main()
