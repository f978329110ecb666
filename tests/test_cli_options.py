"""Every CLI option has a visible effect through the CLI, and an option that does not apply to the chosen
output is an error, never silently ignored. Expected values are read off the network by hand."""

from __future__ import annotations

import json
import re

import onnx
import pytest


@pytest.mark.parametrize(
    "args, option",
    [
        (["--to", "pt2", "--opset", "9"], "--opset"),
        (["--to", "svg", "--opset", "9"], "--opset"),
        (["--to", "python", "--fold-bn"], "--fold-bn"),
        (["--to", "svg", "--weights", "junk.pt"], "--weights"),
        (["--to", "python", "--weights", "junk.pt"], "--weights"),
        (["--to", "onnx", "--rankdir", "LR"], "--rankdir"),
        (["--to", "onnx", "--depth", "1"], "--depth"),
        (["--to", "python", "--expand"], "--expand"),
        (["--to", "pt2", "--shapes"], "--shapes"),
        (["--to", "onnx", "--cost"], "--cost"),
    ],
)
def test_an_option_that_does_not_apply_is_an_error(cli, tmp_path, args, option):
    result = cli("compile", "lenet5", *args, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert f"Error: {option} does not apply to --to {args[1]}" in result.stderr
    assert not (tmp_path / "out").exists()


def test_opset_is_the_files_opset(cli, tmp_path):
    assert cli("compile", "lenet5", "--to", "onnx", "--opset", "13", "-o", tmp_path / "a.onnx").exit_code == 0
    assert [o.version for o in onnx.load(tmp_path / "a.onnx").opset_import if o.domain in ("", "ai.onnx")] == [13]


def test_fold_bn_removes_every_batch_norm(cli, tmp_path):
    cli("compile", "resnet18", "--input", "3x32x32", "--to", "onnx", "-o", tmp_path / "plain.onnx")
    cli("compile", "resnet18", "--input", "3x32x32", "--to", "onnx", "--fold-bn", "-o", tmp_path / "folded.onnx")

    def ops(path):
        return [node.op_type for node in onnx.load(path).graph.node]

    assert ops(tmp_path / "plain.onnx").count("BatchNormalization") == 20  # 17 convs' norms + 3 shortcuts'
    assert "BatchNormalization" not in ops(tmp_path / "folded.onnx")


def _dot(cli, tmp_path, *args) -> str:
    path = tmp_path / "net.dot"
    assert cli("draw", *args, "-o", path).exit_code == 0
    return path.read_text()


def test_rankdir_turns_the_diagram(cli, tmp_path):
    assert "rankdir=TB" in _dot(cli, tmp_path, "lenet5")
    assert "rankdir=LR" in _dot(cli, tmp_path, "lenet5", "--rankdir", "LR")


def test_expand_draws_every_repeated_block(cli, tmp_path):
    folded, expanded = _dot(cli, tmp_path, "resnet50"), _dot(cli, tmp_path, "resnet50", "--expand")
    assert re.findall(r"<b>×(\d+)</b>", folded)  # identical bottlenecks fold into ×n boxes
    assert not re.findall(r"<b>×(\d+)</b>", expanded)
    # ResNet-50 has 3 + 4 + 6 + 3 bottlenecks of three convolutions, plus the stem's and four projections
    assert len(re.findall(r"class=conv ", expanded)) == 16 * 3 + 1 + 4


def test_depth_collapses_groups(cli, tmp_path):
    def boxes(dot):
        return len(re.findall(r"tooltip=", dot))  # every drawn layer or group

    # depth 0: the whole network is one box; depth 1: stem, layer1..4, gap and fc; depth 2: stage clusters open
    # with the stem's 4 layers, the 7 distinct blocks of layer1..4 (the identical pair in layer1 folds) and gap, fc
    assert boxes(_dot(cli, tmp_path, "resnet18", "--depth", "0")) == 1
    assert boxes(_dot(cli, tmp_path, "resnet18", "--depth", "1")) == 7
    depth2 = _dot(cli, tmp_path, "resnet18", "--depth", "2")
    assert len(re.findall(r"subgraph cluster", depth2)) == 5 and boxes(depth2) == 4 + 7 + 2


def test_shapes_and_cost_add_to_the_labels(cli, tmp_path):
    plain = _dot(cli, tmp_path, "resnet18")
    shapes = _dot(cli, tmp_path, "resnet18", "--shapes")
    cost = _dot(cli, tmp_path, "resnet18", "--cost")
    # the stem's conv 7×7/2 on 3×224×224 gives 64×112×112 with 3·64·49 = 9,408 weights
    assert "64×112×112" not in plain and "64×112×112" in shapes
    assert "9.41K params" not in plain and "9.41K params" in cost


def test_compile_to_a_diagram_takes_the_diagram_options(cli, tmp_path):
    assert cli("compile", "lenet5", "--to", "dot", "--rankdir", "LR", "-o", tmp_path / "a.dot").exit_code == 0
    assert "rankdir=LR" in (tmp_path / "a.dot").read_text()


def test_summary_options(cli):
    data = json.loads(cli("summary", "resnet18", "--input", "3x64x64", "-p", "classes=10", "--format", "json").stdout)
    assert data["input"] == [3, 64, 64] and data["layers"][-1]["shape"] == [10]
    assert data["totals"]["params"] == 11_689_512 - 513 * 1000 + 513 * 10
    too_small = cli("summary", "resnet18", "--max-nodes", "10")
    assert too_small.exit_code == 1 and "more than 10 nodes" in too_small.stderr
    csv = cli("summary", "lenet5", "--format", "csv").stdout.splitlines()
    assert csv[0] == "name,op,group,shape,params,macs,memory_bytes,rf,jump"


def test_pt2_is_written_without_torchs_warning_about_the_file_name(tmp_path):
    """torch.export.save warns about a file name that does not end in .pt2, such as a temporary `.part`."""
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from cnndsl.cli import main; main()",
            "compile",
            "lenet5",
            "--to",
            "pt2",
            "-o",
            str(tmp_path / "lenet5.pt2"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and (tmp_path / "lenet5.pt2").stat().st_size > 0
    assert result.stderr == (
        f"cnndsl: warning: without --weights, {tmp_path / 'lenet5.pt2'} holds random weights, drawn anew on each run "
        "(--seed N draws the same ones every time)\n"
    )


def test_python_dash_m_cnndsl_is_the_cnndsl_command(cli):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "cnndsl", "summary", "lenet5", "--format", "csv"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout == cli("summary", "lenet5", "--format", "csv").stdout
    assert result.stdout.splitlines()[1].startswith("features.conv1,conv,features,6x28x28,156,")  # 6·(5·5·1) + 6
    refused = subprocess.run(
        [sys.executable, "-m", "cnndsl", "summary", "no_such_network"], capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: `no_such_network` is neither a file nor a library network\n")


def test_every_option_of_every_command_says_what_it_does():
    """`--help` is the reference a user reads first: no option of any command (train and predict are loaded
    lazily) is listed without a sentence."""
    import click

    from cnndsl.cli import main

    context = click.Context(main)
    silent = [
        f"{name} {option.opts[0]}"
        for name in main.list_commands(context)
        for option in main.get_command(context, name).params
        if isinstance(option, click.Option) and not option.help
    ]
    assert silent == []
