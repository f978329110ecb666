"""Time from an edit in `cnndsl serve`'s page to the new diagram and table painted, for ResNet-50 and
ResNet-152, beside a whole `cnndsl draw` process for the same file. Needs Chromium and Playwright.

    python bench/serve.py [--edits 20]
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from timing import Pair, timed_process, whole_process

import cnndsl

ROOT = Path(__file__).resolve().parent.parent
GOAL_MS = 150
CLI = [sys.executable, "-c", "from cnndsl.cli import main; main()"]

# One edit in the page, timed inside it: from the change to the editor until the diagram and table of the
# new text are in the page and a frame has been painted.
EDIT = """async ([from, to, insert]) => {
    const view = window.cnndsl.view;
    const rendered = new Promise((resolve) => document.addEventListener("cnndsl:rendered",
        (event) => resolve(event.detail), {once: true}));
    const started = performance.now();
    view.dispatch({changes: {from, to, insert}});
    const detail = await rendered;
    await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
    return {ok: detail.ok, total: performance.now() - started, server: detail.server,
            params: document.querySelector("table.cnndsl-summary .cnndsl-params").textContent};
}"""


def serve(file: Path, network: str, options: list[str]) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [*CLI, "serve", str(file), "-n", network, "--port", "0", *options], stdout=subprocess.PIPE, text=True
    )
    ready, _, _ = select.select([process.stdout], [], [], 60)
    found = re.search(r"http://\S+", process.stdout.readline() if ready else "")  # the token included
    if not found:
        process.kill()
        sys.exit("cnndsl serve printed no URL")
    return process, found.group(0)


def edits_in_page(browser, url: str, count: int) -> list[dict]:
    """`classes=1000` -> `classes=1001` -> `classes=1002` ..., `count` times: each edit changes the last fc, the title
    and the totals, and makes a text the server has not seen (a text seen again reuses its analysis)."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(url)
    page.wait_for_selector("#diagram svg", timeout=30_000)
    results = []
    for index in range(count + 2):  # the first two warm the server's imports and the page's code paths
        text = page.evaluate("() => window.cnndsl.view.state.doc.toString()")
        start = text.index("classes=") + len("classes=")
        end = start + len(re.match(r"\d+", text[start:]).group(0))
        result = page.evaluate(EDIT, [start, end, str(1001 + index)])
        assert result["ok"], result
        if index >= 2:
            results.append(result)
    page.close()
    return results


def server_stages(file: Path, network: str, repeats: int = 10) -> str:
    """Where the server's time goes for one edit, in process: median ms per stage, as `Analyser.analyse` runs them
    (the table is made while `dot` lays out the diagram in its own process)."""
    from cnndsl.api import instantiate
    from cnndsl.backends.graphviz import to_digraph
    from cnndsl.embed import summary_table
    from cnndsl.front.load import Loader
    from cnndsl.graph.expand import DEFAULT_MAX_NODES
    from cnndsl.serve.analysis import Analyser

    analyser, text = Analyser(file, network, None), file.read_text(encoding="utf-8")
    names = ("parse (the edited definition)", "expand+costs", "diagram (DOT)", "table", "layout (dot, started once)")
    stages: dict[str, list[float]] = {name: [] for name in names}
    for index in range(repeats + 1):
        edited = text.replace("classes=1000", f"classes={2001 + index}")
        marks = [time.perf_counter()]
        program = analyser.parse(edited)
        marks.append(time.perf_counter())
        module = Loader().bind(program, file.parent)
        built = instantiate(module, network, str(file), edited, None, DEFAULT_MAX_NODES, {})
        marks.append(time.perf_counter())
        dot = to_digraph(built)
        marks.append(time.perf_counter())
        summary_table(built.summary())
        marks.append(time.perf_counter())
        analyser.layout.svg(dot.source)
        marks.append(time.perf_counter())
        for name, earlier, later in zip(stages, marks, marks[1:]):
            stages[name].append(later - earlier)
    analyser.layout.close()
    return ", ".join(f"{name} {statistics.median(times[1:]) * 1e3:.0f}" for name, times in stages.items())


def chromium_path() -> str | None:
    return os.environ.get("CNNDSL_CHROMIUM") or shutil.which("chromium")


@contextmanager
def edit_pair(network: str = "resnet152", edits: int = 5) -> Iterator[Pair]:
    """The median of `edits` edits in the page (every layer drawn) beside a whole `cnndsl draw` process of the
    same file: what the page saves over drawing again from the command line."""
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp())
    file = folder / "resnet.cnn"
    shutil.copy(ROOT / "library" / "resnet.cnn", file)
    draw = [*CLI, "draw", str(file), "-n", network, "-o", str(folder / "out.svg")]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path())
        process, url = serve(file, network, [])

        def edit() -> float:
            return statistics.median(result["total"] for result in edits_in_page(browser, url, edits)) / 1e3

        try:
            yield Pair(edit, lambda: timed_process(draw))
        finally:
            process.terminate()
            process.wait()
            browser.close()
            shutil.rmtree(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=20)
    args = parser.parse_args()
    chromium = chromium_path()
    if chromium is None:
        sys.exit("needs Chromium: apt-get install chromium (or set CNNDSL_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, cnndsl {cnndsl.__version__}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    folder = Path(tempfile.mkdtemp())
    file = folder / "resnet.cnn"
    shutil.copy(ROOT / "library" / "resnet.cnn", file)
    worst = 0.0
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        for network in ("resnet50", "resnet152"):
            for options in ([], ["--depth", "2"]):
                process, url = serve(file, network, options)
                try:
                    results = edits_in_page(browser, url, args.edits)
                finally:
                    process.terminate()
                    process.wait()
                total = [result["total"] for result in results]
                server = [result["server"] for result in results]
                if not options:
                    worst = max(worst, statistics.median(total))
                print(
                    f"{network:<10} {' '.join(options) or 'all layers':<10} edit -> diagram and table painted: "
                    f"median {statistics.median(total):6.1f} ms, best {min(total):6.1f}, worst {max(total):6.1f} "
                    f"(server's analysis: median {statistics.median(server):.1f} ms; {len(total)} edits)"
                )
            print(f"{network:<10} the server's stages in process, median ms: {server_stages(file, network)}")
            draw = whole_process([*CLI, "draw", str(file), "-n", network, "-o", str(folder / "out.svg")], repeats=3)
            print(
                f"{network:<10} whole `cnndsl draw {file.name} -n {network} -o out.svg` process, best of 3: "
                f"{draw * 1e3:.0f} ms"
            )
        browser.close()
    shutil.rmtree(folder)
    print(
        f"goal: under {GOAL_MS} ms -> {worst:.0f} ms, the slower median with all layers drawn "
        f"({'met' if worst < GOAL_MS else 'not met'});"
        f" load average now {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
