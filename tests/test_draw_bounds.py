"""`cnndsl draw` answers within 5 s of CPU and 1 GiB for every program under 10 kB (issue 24): the worst
shapes found, each at the 10,000-node limit or as tangled as 10 kB allows, drawn as a whole bounded process
(bounded.py), `dot` included in the CPU time. A layout that does not finish within the default budget
(layout_budget.LAYOUT_CPU_S of CPU for all the layout work) is a located error saying what to do; a depth
search that runs out keeps the deepest level it laid out."""

from __future__ import annotations

import re
import resource
from pathlib import Path

import pytest
from bounded import CPU_SECONDS, cnndsl

pytestmark = pytest.mark.needs_dot

BRANCHES = "(branch { conv1x1(1) | conv1x1(1) | conv1x1(1) | conv1x1(1) }, relu) x 1666\n    conv1x1(1), relu, relu"
WORST = {
    # 1 + 1,666 × 6 + 3 = 10,000 nodes, no group to fold: `dot` needs minutes (8 s at 800 branches)
    "branches": BRANCHES,
    # the same 9,600 nodes inside 90 nested stages: 90 levels for the depth search, each a DOT of 10,000 nodes
    "nested": "stage s { " * 90 + BRANCHES.split("\n")[0].replace("1666", "1600") + " }" * 90,
    # 4,999 convolutions and relus, every one drawn: a strip 500,000 px long that `dot` lays out in 0.5 s
    "chain": "for i in range(4999) { conv1x1(1 + i % 3), relu }",
    # 280 taps each added far back (tests/test_docs_integration.py's tangled network at 10 kB): arrows cross
    "tangled": "\n    ".join(
        [f"t{index}: conv3x3(8)" for index in range(280)] + [f"add(@t{index * 37 % 280})" for index in range(280)]
    ),
}
TOO_SLOW = "error: Graphviz took longer than 2 s of CPU to lay out the diagram of `t` and was stopped"
HINT = "hint: draw fewer boxes with a smaller depth, or allow more time (cnndsl draw --timeout SECONDS)"


def worst(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.cnn"
    path.write_text(f"network t {{\n    input 8x8x8\n    {WORST[name]}\n}}\n")
    assert path.stat().st_size < 10_000
    return path


def bounded_draw(*args) -> tuple:
    """The bounded process's result and the CPU seconds it and its `dot` processes took."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = cnndsl("draw", *args)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return done, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


@pytest.mark.parametrize("name", ["branches", "tangled"])
@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_a_layout_past_the_budget_is_a_located_error_and_writes_nothing(tmp_path, name, fmt):
    source = worst(tmp_path, name)
    done, cpu = bounded_draw(source, "-o", tmp_path / f"t.{fmt}")
    assert (done.returncode, done.stderr.splitlines()) == (
        1,
        [f"{source}:2:5: {TOO_SLOW}", "        input 8x8x8", "        ^", HINT],
    )
    assert cpu < CPU_SECONDS
    assert not (tmp_path / f"t.{fmt}").exists()


def test_a_depth_search_past_the_budget_keeps_the_deepest_level_laid_out(tmp_path):
    source = worst(tmp_path, "nested")
    done, cpu = bounded_draw(source, "-o", tmp_path / "t.png")
    assert done.returncode == 0, done.stderr
    note = re.fullmatch(
        r"cnndsl: note: drawn at --depth (\d+), \d+×\d+ px: the deepest level that fits 1600 px and was laid out "
        r"in time; --depth N to choose\nwrote .*\n",
        done.stderr + done.stdout,
    )
    assert note and 1 <= int(note.group(1)) < 91, done.stderr
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cpu < CPU_SECONDS


@pytest.mark.parametrize("name", ["branches", "nested", "chain"])
def test_the_block_figure_of_the_worst_shapes_answers_within_the_bounds(tmp_path, name):
    """No Graphviz here: the row is measured level by level (each lays out every node), for at most 1 s of CPU."""
    source = worst(tmp_path, name)
    done, cpu = bounded_draw(source, "-o", tmp_path / "t.svg", "--style", "blocks")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "t.svg").read_text().startswith("<svg")
    assert cpu < CPU_SECONDS


def test_a_long_chain_that_dot_lays_out_quickly_is_drawn(tmp_path):
    source = worst(tmp_path, "chain")
    done, cpu = bounded_draw(source, "-o", tmp_path / "t.svg")
    assert done.returncode == 0, done.stderr
    drawn = (tmp_path / "t.svg").read_text()
    assert (drawn.count('class="node conv"'), drawn.count('class="node act"')) == (4999, 4999)
    assert cpu < CPU_SECONDS


def test_an_explicit_timeout_replaces_the_default_budget(tmp_path):
    """An explicit --timeout is the bound instead (here a shorter one), and the message names it."""
    source = worst(tmp_path, "tangled")
    done = cnndsl("draw", source, "-o", tmp_path / "t.svg", "--timeout", "1")
    assert done.stderr.splitlines()[0] == (
        f"{source}:2:5: error: Graphviz took longer than 1 s to lay out the diagram of `t` and was stopped"
    )


def test_each_dot_gets_what_is_left_of_the_cpu_budget_and_1_gib():
    """Read back from /proc: the default budget gives a `dot` started at once its 2 s (to the nearest second;
    SIGXCPU, then SIGKILL a second later), an explicit timeout of 8 s gives it 8, and 1 GiB of address space either way."""
    import subprocess

    from cnndsl.backends.layout_budget import LayoutBudget

    def limits(budget: LayoutBudget) -> list[str]:
        process = subprocess.Popen(["sleep", "30"])
        try:
            budget.bound(process)
            lines = Path(f"/proc/{process.pid}/limits").read_text().splitlines()
        finally:
            process.kill()
            process.wait()
        return [" ".join(line.split()) for line in lines if line.startswith(("Max cpu time", "Max address space"))]

    assert limits(LayoutBudget.of(None)) == [
        "Max cpu time 2 3 seconds",
        "Max address space 1073741824 1073741824 bytes",
    ]
    assert limits(LayoutBudget.of(8)) == ["Max cpu time 8 9 seconds", "Max address space 1073741824 1073741824 bytes"]
