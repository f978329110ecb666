"""`cnndsl compile --to pt2` within docs/errors.md's bounds (issue 24): torch.export costs a few ms of CPU per
ATen operator traced on top of some 4 s of importing torch and torch._dynamo, so by default it takes at most 100
operators (backends/formats.PT2_STEPS), counted before it starts, and refuses more at the layer that passes them.

Here: the costliest shapes measured export at the bound and record the operators counted; one operator more is
refused before torch.export starts (the export is replaced by a failure). What the bound buys in time (the
costliest shapes at the bound within 5/4 of a one-layer export's CPU) is a benchmark's figure: bench/pt2_bound.py,
in bench/all.py, as docs/benchmarks.md records it (a timed test failed on a loaded machine at 1.25x).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from bounded import cpu_of

from cnndsl.backends.formats import PT2_STEPS

# The costliest shapes per operator measured, which bench/pt2_bound.py times
_spec = importlib.util.spec_from_file_location("pt2_networks", Path(__file__).parents[1] / "bench" / "pt2_networks.py")
_networks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_networks)
AT_THE_BOUND = _networks.AT_THE_BOUND


def network(tmp_path: Path, name: str, input: str, line: str) -> Path:
    path = tmp_path / f"{name}.cnn"
    path.write_text(f"network {name} {{\n    input {input}\n    {line}\n}}\n")
    return path


def test_the_costliest_networks_at_the_bound_export_and_record_the_operators_counted(tmp_path, cli):
    for name, (shape, line, operators) in AT_THE_BOUND.items():
        target = tmp_path / f"{name}.pt2"
        done = cli("compile", network(tmp_path, name, shape, line), "--to", "pt2", "-o", target)
        assert done.exit_code == 0, done.stderr
        traced = torch.export.load(target).graph.nodes
        assert sum(node.op == "call_function" for node in traced) == operators <= PT2_STEPS


@pytest.fixture
def never_exporting(monkeypatch):
    """torch.export.export replaced by a failure: a refusal must come before the export starts."""

    def export(*args, **kwargs):
        raise AssertionError("torch.export started")

    monkeypatch.setattr(torch.export, "export", export)


def test_one_operator_past_the_bound_is_refused_at_its_layer_before_exporting(tmp_path, cli, never_exporting):
    source = network(tmp_path, "over", "8x8x8", "layernorm x 33, relu, layernorm")
    done = cli("compile", source, "--to", "pt2", "-o", tmp_path / "over.pt2")
    assert done.exit_code == 1
    assert done.stderr.splitlines() == [
        f"{source}:3:27: error: exporting this network with torch.export traces more than 100 operators "
        "(103 by this layer, 103 in all), past the 5 s bound of `--to pt2`",
        "        layernorm x 33, relu, layernorm",
        "                              ^",
        "hint: compile --to onnx or --to python instead, or raise the bound with --max-nodes",
    ]
    assert not (tmp_path / "over.pt2").exists()


def test_a_thousand_nodes_are_counted_and_refused_before_exporting_and_resnet50_says_what_to_do(
    tmp_path, cli, never_exporting
):
    """--to pt2 expands at most 1,000 nodes by default (as --to python) and counts their operators: 999 nodes of
    branches (an operator each) are refused at the 101st before torch.export starts."""
    line = "(branch { conv1x1(1) | conv1x1(1) | conv1x1(1) | conv1x1(1) }, relu) x 166, conv1x1(1), relu, relu"
    source = network(tmp_path, "wide", "4x8x8", line)  # 1 + 166 × 6 + 3 = 1,000 nodes
    done = cli("compile", source, "--to", "pt2", "-o", tmp_path / "wide.pt2")
    assert (done.exit_code, done.stderr.splitlines()[0]) == (
        1,
        f"{source}:3:6: error: exporting this network with torch.export traces more than 100 operators "
        "(101 by this layer, 999 in all), past the 5 s bound of `--to pt2`",
    )
    done = cli("compile", "resnet50", "--to", "pt2", "-o", tmp_path / "resnet50.pt2")
    assert done.exit_code == 1
    assert done.stderr.splitlines()[0].split(": error: ")[1] == (
        "exporting this network with torch.export traces more than 100 operators (101 by this layer, 229 in all), "
        "past the 5 s bound of `--to pt2`"
    )
    assert done.stderr.splitlines()[-1] == (
        "hint: compile --to onnx or --to python instead, or raise the bound with --max-nodes"
    )


def test_nms_counts_every_round_its_trace_unrolls(tmp_path, cli):
    """A meta run of nms returns at once, but the trace runs max_det rounds: 3 rounds of 44 operators after 30,
    and the convolution and reshape before them; the program written with the bound raised records 166."""
    source = network(tmp_path, "boxes", "3x16x16", "conv1x1(85), reshape((85, 256)), nms(max_det=3)")
    done = cli("compile", source, "--to", "pt2", "-o", tmp_path / "boxes.pt2")
    assert done.exit_code == 1
    assert done.stderr.splitlines()[0] == (
        f"{source}:3:38: error: exporting this network with torch.export traces more than 100 operators "
        "(168 by this layer, 168 in all), past the 5 s bound of `--to pt2`"
    )
    raised = cli("compile", source, "--to", "pt2", "-o", tmp_path / "boxes.pt2", "--max-nodes", "200")
    assert raised.exit_code == 0, raised.stderr
    traced = torch.export.load(tmp_path / "boxes.pt2").graph.nodes
    assert sum(node.op == "call_function" for node in traced) == 166


@pytest.mark.parametrize("size", ["3x20000x20000"])
def test_a_large_input_exports_without_allocating_its_example(tmp_path, size):
    """The example input the archive keeps is one zero broadcast: 2 × 3 × 20000² float32 would be 9.6 GB."""
    target = tmp_path / "big.pt2"
    done, _ = cpu_of("compile", network(tmp_path, "big", size, "conv1x1(4)"), "--to", "pt2", "-o", target)
    assert done.returncode == 0, done.stderr
    assert target.stat().st_size < 2**20
    (example,), _ = torch.export.load(target).example_inputs
    assert tuple(example.shape) == (2, 3, 20000, 20000) and example.stride() == (0, 0, 0, 0)
    assert example.untyped_storage().nbytes() == 4
