"""bench/all.py's judgement: a run whose quartiles of paired ratios lie wholly on the worse side of the last
recorded run's is a slip, and the table it writes into docs/benchmarks.md is the record it reads back."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def bench_all():
    sys.path.insert(0, str(BENCH))  # its modules import timing as the scripts do
    try:
        spec = importlib.util.spec_from_file_location("bench_all", BENCH / "all.py")
        module = sys.modules["bench_all"] = importlib.util.module_from_spec(spec)  # its dataclasses look it up
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCH))
        sys.modules.pop("bench_all", None)


def result(bench_all, ratios: list[float], faster: bool, goal: float | None = None):
    figure = bench_all.Figure("f", "ours", "anchor", "m:f", rounds=len(ratios), faster=faster, goal=goal)
    anchor = [1.0] * len(ratios)
    ours = [1 / ratio for ratio in ratios] if faster else ratios  # anchor/ours or ours/anchor gives `ratios`
    return bench_all.Result(figure, ours, anchor)


def test_a_cost_ratio_slips_when_the_record_is_below_this_runs_lower_quartile(bench_all):
    run = result(bench_all, [1.30, 1.32, 1.34, 1.36, 1.38], faster=False, goal=1.35)
    assert run.ratio == pytest.approx(1.34)
    assert run.quartiles == pytest.approx((1.32, 1.36))  # inclusive quartiles of five: the 2nd and 4th
    assert run.met() is True
    record = bench_all.Record
    assert run.slip(record("anchor", 1.28, 1.26, 1.31)) == "SLIPPED"
    assert run.slip(record("anchor", 1.30, 1.27, 1.33)) == "no"  # the quartiles overlap: within the noise
    assert run.slip(record("anchor", 1.40, 1.37, 1.42)) == "improved"
    assert run.slip(None) == "no record"


def test_a_times_faster_ratio_slips_when_the_record_is_above_this_runs_upper_quartile(bench_all):
    run = result(bench_all, [6.0, 6.5, 7.0, 7.5, 8.0], faster=True, goal=7.0)
    assert run.ratio == pytest.approx(7.0)
    assert run.met() is True
    record = bench_all.Record
    assert run.slip(record("anchor", 8.0, 7.6, 8.4)) == "SLIPPED"
    assert run.slip(record("anchor", 7.8, 7.4, 8.2)) == "no"
    assert run.slip(record("anchor", 6.0, 5.8, 6.4)) == "improved"
    assert result(bench_all, [6.0, 6.5, 6.9], faster=True, goal=7.0).met() is False


def test_the_written_table_is_the_record_read_back(bench_all, tmp_path, monkeypatch):
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"# Benchmarks\n\nby hand\n\n{bench_all.BEGIN}\nold\n{bench_all.END}\n\nby hand too\n")
    monkeypatch.setattr(bench_all, "DOCS", docs)
    startup = bench_all.FIGURES[0]
    run = bench_all.Result(startup, [0.180, 0.170, 0.175], [0.130, 0.130, 0.125])
    rows = [bench_all.row(startup, run, "", None)]
    carried = bench_all.Record(bench_all.FIGURES[1].anchor, 9.1, 8.8, 9.5)
    rows.append(bench_all.row(bench_all.FIGURES[1], None, "skipped: no torchinfo", carried))
    bench_all.write_docs(bench_all.markdown(rows, "Command: `python bench/all.py`"))
    text = docs.read_text()
    assert text.startswith("# Benchmarks\n\nby hand\n\n") and text.endswith("\n\nby hand too\n")
    assert "old" not in text
    # ratios 0.180/0.130 = 1.3846, 0.170/0.130 = 1.3077, 0.175/0.125 = 1.4: median and inclusive quartiles of
    # three (halfway between neighbours), written to 3 digits
    assert bench_all.recorded() == {
        "startup": bench_all.Record(startup.anchor, 1.38, 1.35, 1.39),
        "summary-torchinfo": carried,  # a skipped row keeps its last record
    }
