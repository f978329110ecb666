"""Every speed figure cnndsl claims, re-measured in one run beside its anchor: one table with the goals and slips.

    python bench/all.py                  # every figure, under 5 minutes on 2 idle cores; writes docs/benchmarks.md
    python bench/all.py --quick          # the cheap figures, under 1 minute; prints only
    python bench/all.py --only startup,onnx --no-write

Each figure is a Pair of timed runs, ours and its anchor's, made by the bench module that owns the figure.
After one warm-up run of each (bytecode written, file cache warm), the two run in alternation, the order swapped
every round, so that other work on the machine slows both sides of a round alike; each round gives one paired
ratio, and the figure is their median.

Noise model: the spread of a run's own paired ratios, their interquartile range (the 25th to the 75th
percentile, "quartiles"). A figure has slipped when this run's quartiles and those of the last recorded run
(docs/benchmarks.md's table) do not overlap and this run's are the worse: the two runs differ by more than
either spreads within itself. Improved is the mirror image.

A new benchmark (training images/s, YOLO forward, ...) joins by adding one Figure to FIGURES: a function of its
bench module that yields a timing.Pair.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench/all.py writes this table: begin -->", "<!-- bench/all.py: end -->"
NETWORKX = '`python -c "import networkx"`, whole process'


@dataclass(frozen=True)
class Figure:
    """One headline figure: what is timed, beside what, and the goal it is held to."""

    key: str  # its name in the docs table, which keeps its last recorded ratio
    ours: str
    anchor: str
    pair: str  # "module:function" of bench/: a context manager yielding a timing.Pair
    rounds: int
    quick: int = 0  # rounds in --quick; 0 leaves it out
    options: dict = field(default_factory=dict)  # keyword arguments of the pair function
    faster: bool = False  # the ratio is anchor ÷ ours (how many times faster); else ours ÷ anchor (what we cost)
    goal: float | None = None  # the ratio's goal: at least this when `faster`, else at most this
    under: float | None = None  # a goal on ours itself: its median below this many seconds
    needs: tuple[str, ...] = ()  # modules (or the `chromium` command) without which the figure is skipped

    @property
    def ratio_name(self) -> str:
        return "anchor/ours" if self.faster else "ours/anchor"


FIGURES = [
    Figure(
        "startup",
        "`cnndsl summary resnet50`, whole process",
        NETWORKX,
        "analysis:summary_pair",
        rounds=12,
        quick=8,
        goal=1.35,
    ),
    Figure(
        "summary-torchinfo",
        "`cnndsl summary resnet50`, whole process",
        "torch + hand-written ResNet-50 + torchinfo.summary, whole process",
        "analysis:summary_pair",
        rounds=4,
        options={"anchor": "torchinfo"},
        faster=True,
        needs=("torch", "torchinfo"),
    ),
    Figure(
        "onnx",
        "`cnndsl compile resnet50 --to onnx`, whole process",
        "torch module + `torch.onnx.export` (dynamo), whole process",
        "onnx_export:export_pair",
        rounds=3,
        faster=True,
        goal=7.0,
        needs=("torch", "onnxruntime", "onnxscript"),
    ),
    Figure(
        "draw",
        "`cnndsl draw resnet152 -o r.svg`, whole process",
        NETWORKX,
        "draw:draw_pair",
        rounds=8,
        quick=5,
        under=1.0,
    ),
    Figure(
        "draw-torchview",
        "`cnndsl draw resnet152 -o r.svg`, whole process",
        "torch + hand-written ResNet-152 + torchview to SVG, whole process",
        "draw:draw_pair",
        rounds=3,
        options={"anchor": "torchview"},
        faster=True,
        needs=("torch", "torchview"),
    ),
    Figure(
        "forward",
        "to_torch() ResNet-50 forward, batch 8, CPU, fresh process per round",
        "hand-written ResNet-50 (torchvision's code), the same weights",
        "torch_forward:forward_pair",
        rounds=5,
        goal=1.02,
        needs=("torch",),
    ),
    Figure(
        "weights",
        "torchvision ResNet-50 checkpoint into to_torch(), whole process",
        "`torchvision.models.resnet50()` + `load_state_dict`, whole process",
        "weights:load_pair",
        rounds=3,
        goal=1.0,
        needs=("torch", "torchvision"),
    ),
    Figure(
        "analysis-resnet152",
        "parse + expand + infer ResNet-152 (515 nodes), in process",
        "networkx: the same nodes and edges into a DiGraph",
        "analysis:analysis_pair",
        rounds=7,
        quick=5,
        options={"label": "resnet152"},
        under=0.020,
    ),
    Figure(
        "analysis-efficientnet_b7",
        "parse + expand + infer EfficientNet-B7 (864 nodes), in process",
        "networkx: the same nodes and edges into a DiGraph",
        "analysis:analysis_pair",
        rounds=7,
        quick=5,
        options={"label": "efficientnet_b7"},
    ),
    Figure(
        "analysis-resnet_1000",
        "parse + expand + infer a 1000-layer ResNet (2,344 nodes), in process",
        "networkx: the same nodes and edges into a DiGraph",
        "analysis:analysis_pair",
        rounds=5,
        options={"label": "resnet_1000"},
    ),
    Figure(
        "serve",
        "`cnndsl serve`: an edit to its ResNet-152 diagram painted (median of 5 edits)",
        "a whole `cnndsl draw` process of the same file",
        "serve:edit_pair",
        rounds=3,
        faster=True,
        under=0.150,
        needs=("playwright", "chromium"),
    ),
    Figure(
        "train",
        "`cnndsl train`, a small network on 32x32 images, CPU: seconds per training image",
        "the hand-written PyTorch loop: same module, data, transforms and optimizer",
        "train:train_pair",
        rounds=3,
        faster=True,
        goal=0.97,
        needs=("torch", "torchvision", "PIL"),
    ),
    Figure(
        "pt2-bound",
        "`cnndsl compile --to pt2` of the costlier network at the 100-operator bound, CPU of the whole process",
        "`cnndsl compile --to pt2` of a one-convolution network, CPU of the whole process",
        "pt2_bound:bound_pair",
        rounds=3,
        goal=1.25,
        needs=("torch",),
    ),
    Figure(
        "detect-yolov8n",
        "yolov8n's eager forward, cnndsl's module loaded with Ultralytics' weights (batch 1, 640×640)",
        "Ultralytics' DetectionModel('yolov8n.yaml') on the same input",
        "detect:forward_pair",
        rounds=11,
        goal=1.05,
        needs=("torch", "ultralytics"),
    ),
]


@dataclass(frozen=True)
class Record:
    """A figure's row as the docs table holds it: its anchor, its ratio and that run's quartiles."""

    anchor: str
    ratio: float
    low: float
    high: float


@dataclass
class Result:
    figure: Figure
    ours: list[float]
    anchor: list[float]

    @property
    def ratios(self) -> list[float]:
        pairs = zip(self.ours, self.anchor)
        return [anchor / ours if self.figure.faster else ours / anchor for ours, anchor in pairs]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def quartiles(self) -> tuple[float, float]:
        if len(self.ratios) < 2:
            return self.ratio, self.ratio
        low, _, high = statistics.quantiles(self.ratios, n=4, method="inclusive")
        return low, high

    def met(self) -> bool | None:
        figure, verdicts = self.figure, []
        if figure.goal is not None:
            verdicts.append(self.ratio >= figure.goal if figure.faster else self.ratio <= figure.goal)
        if figure.under is not None:
            verdicts.append(statistics.median(self.ours) < figure.under)
        return all(verdicts) if verdicts else None

    def slip(self, last: Record | None) -> str:
        """Against the last recorded run, by both runs' own spread (see the module's docstring)."""
        if last is None:
            return "no record"
        low, high = self.quartiles
        if self.figure.faster:
            worse, better = high < last.low, low > last.high
        else:
            worse, better = low > last.high, high < last.low
        return "SLIPPED" if worse else "improved" if better else "no"


def goal_text(figure: Figure) -> str:
    parts = []
    if figure.goal is not None:
        parts.append(f"{'≥' if figure.faster else '≤'} {figure.goal:g}")
    if figure.under is not None:
        parts.append(f"ours < {seconds_text(figure.under)}")
    return ", ".join(parts) or "—"


def seconds_text(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 0.1 else f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def missing(figure: Figure) -> list[str]:
    """What the figure needs and this machine lacks."""
    return [
        need
        for need in figure.needs
        if (shutil.which(need) is None and need == "chromium")
        or (need != "chromium" and importlib.util.find_spec(need) is None)
    ]


def measure(figure: Figure, rounds: int) -> Result:
    """One warm-up run of each side, then `rounds` rounds, alternating which side goes first."""
    module, function = figure.pair.split(":")
    with getattr(importlib.import_module(module), function)(**figure.options) as pair:
        pair.ours(), pair.anchor()
        ours: list[float] = []
        anchor: list[float] = []
        for index in range(rounds):
            sides = [(pair.ours, ours), (pair.anchor, anchor)]
            for run, times in sides if index % 2 == 0 else sides[::-1]:
                times.append(run())
    return Result(figure, ours, anchor)


# ---- the docs table ----------------------------------------------------------------------------------------------
COLUMNS = ("key", "ours", "anchor", "ours: median", "anchor: median", "ratio", "quartiles", "goal", "met")
COLUMNS += ("last recorded", "slipped")


NUMBER = r"\d+(?:\.\d+)?"


def recorded() -> dict[str, Record]:
    """key -> Record of the table docs/benchmarks.md holds now; a skipped row keeps its last ratio alone."""
    text = DOCS.read_text(encoding="utf-8")
    if BEGIN not in text:
        return {}
    records = {}
    for line in text.split(BEGIN, 1)[1].split(END, 1)[0].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != len(COLUMNS) or not cells[0].startswith("`"):
            continue
        measured = re.search(NUMBER, cells[5]) is not None  # else a skipped row, which carries the last record
        ratio_cell, spread_cell = (cells[5], cells[6]) if measured else (cells[9], cells[9].partition("(")[2])
        ratio = re.search(NUMBER, ratio_cell)
        if ratio:
            spread = re.search(rf"({NUMBER})–({NUMBER})", spread_cell)
            low, high = (float(spread[1]), float(spread[2])) if spread else (float(ratio[0]),) * 2
            records[cells[0].strip("`")] = Record(cells[2], float(ratio[0]), low, high)
    return records


def row(figure: Figure, result: Result | None, why_not: str, last: Record | None) -> list[str]:
    same_anchor = last if last and last.anchor == figure.anchor else None
    last_text = f"{same_anchor.ratio:.3g} ({same_anchor.low:.3g}–{same_anchor.high:.3g})" if same_anchor else "—"
    head = [f"`{figure.key}`", figure.ours, figure.anchor]
    if result is None:
        return head + [why_not, "", "", "", goal_text(figure), "", last_text, ""]
    low, high = result.quartiles
    met = {True: "met", False: "NOT met", None: "—"}[result.met()]
    return head + [
        seconds_text(statistics.median(result.ours)),
        seconds_text(statistics.median(result.anchor)),
        f"{figure.ratio_name} {result.ratio:.3g}",
        f"{low:.3g}–{high:.3g} ({len(result.ratios)} rounds)",
        goal_text(figure),
        met,
        last_text,
        result.slip(same_anchor),
    ]


def markdown(rows: list[list[str]], heading: str) -> str:
    lines = [heading, "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def write_docs(table: str) -> None:
    from cnndsl.core.atomic import write_atomically

    text = DOCS.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        sys.exit(f"{DOCS} has no {BEGIN} ... {END} markers to write the table between")
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    write_atomically(DOCS, f"{before}{BEGIN}\n{table}\n{END}{after}".encode())


def terminal(rows: list[list[str]]) -> str:
    """The table for a terminal: the long descriptions left out (the docs table has them)."""
    keep = [0, 3, 4, 5, 6, 7, 8, 9, 10]
    table = [[COLUMNS[i] for i in keep]] + [[cells[i].strip("`") for i in keep] for cells in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(keep))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in table)


def versions() -> str:
    found = [f"python {platform.python_version()}", f"{os.cpu_count()} cores"]
    for name in ("torch", "onnx", "ml_dtypes", "networkx"):
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return ", ".join(found)


def outside_bounds() -> list[str]:
    """Installed packages that pyproject.toml's dependencies exclude (a bound there may be a speed figure's)."""
    try:
        import tomllib  # Python 3.11 and later
        from packaging.requirements import Requirement
    except ImportError:
        return []
    found = []
    for text in tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]:
        requirement = Requirement(text)
        try:
            version = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if not requirement.specifier.contains(version, prereleases=True):
            found.append(f"{requirement.name} {version} (pyproject.toml: {requirement.specifier})")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the cheap figures, fewer rounds; writes nothing")
    parser.add_argument("--only", help="comma-separated keys: " + ", ".join(figure.key for figure in FIGURES))
    parser.add_argument("--no-write", action="store_true", help="leave docs/benchmarks.md as it is")
    options = parser.parse_args()
    chosen = FIGURES
    if options.only:
        keys = options.only.split(",")
        unknown = set(keys) - {figure.key for figure in FIGURES}
        if unknown:
            parser.error(f"no figure {', '.join(sorted(unknown))}")
        chosen = [figure for figure in FIGURES if figure.key in keys]
    if options.quick:
        chosen = [figure for figure in chosen if figure.quick]
    command = "python bench/all.py" + " ".join(["", *sys.argv[1:]]).rstrip()
    started, load = time.perf_counter(), os.getloadavg()[0]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{command}: {when}; {versions()}; load average {load:.1f}", flush=True)
    for package in outside_bounds():
        print(f"  note: installed {package}; `pip install -e .` installs what pyproject.toml asks", flush=True)
    last = recorded()
    rows = []
    for figure in chosen:
        rounds = figure.quick if options.quick else figure.rounds
        lacking = missing(figure)
        print(
            f"  {figure.key}: " + (f"skipped, no {', '.join(lacking)}" if lacking else f"{rounds} rounds"), flush=True
        )
        result, why_not = None, f"skipped: no {', '.join(lacking)}"
        if not lacking:
            try:
                result = measure(figure, rounds)
            except (Exception, SystemExit) as error:  # one figure's failure leaves the others' rows standing
                message = str(error).strip()
                why_not = f"failed: {message.splitlines()[-1][:80] if message else type(error).__name__}"
                print(f"  {figure.key} {why_not}", flush=True)
        rows.append(row(figure, result, why_not, last.get(figure.key)))
    elapsed = time.perf_counter() - started
    heading = (
        f"Command: `{command}` ({when}, {elapsed:.0f} s; {versions()}; load average {load:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end)"
    )
    print()
    print(terminal(rows))
    print(
        f"\nratio: ours/anchor where the goal is at most (what cnndsl costs beside the anchor), anchor/ours where it"
        f"\nis at least (how many times faster); the median of the paired rounds. slipped: this run's quartiles of"
        f"\nthe paired ratios and the last recorded run's do not overlap, this run's the worse. {elapsed:.0f} s in all, load"
        f" average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end."
    )
    if options.quick or options.only or options.no_write:
        print(f"{DOCS.relative_to(ROOT)} left as it is (a partial run, or --no-write)")
    else:
        write_docs(markdown(rows, heading))
        print(f"wrote the table of {DOCS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
