"""`cnndsl check`: every network of a file, every independent error in one run, warnings, JSON.

The corpus in tests/data/broken holds broken files, each stating the errors it must give (position
counted by hand, `# expect: LINE:COL severity: message`); none of them may pass.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

BROKEN = sorted((Path(__file__).parent / "data" / "broken").glob("*.cnn"))
EXPECT = re.compile(r"^# expect: (\d+):(\d+) (error|warning): (.*)$", re.MULTILINE)


def _expected(path: Path) -> list[tuple[int, int, str, str]]:
    text = path.read_text()
    return [
        (int(line), int(col), severity, message.replace("{file}", str(path.resolve())))
        for line, col, severity, message in EXPECT.findall(text)
    ]


def test_the_corpus_is_large_enough():
    assert len(BROKEN) >= 30 and all(_expected(path) for path in BROKEN)


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_every_broken_file_fails_with_each_error_located(cli, path):
    result = cli("check", path.resolve(), "--format", "json")
    assert result.exit_code == 1
    found = [(d["line"], d["column"], d["severity"], d["message"]) for d in json.loads(result.stdout)["diagnostics"]]
    assert sorted(found) == sorted(_expected(path))


def test_four_mistakes_are_four_errors_in_one_run_with_a_count(cli):
    path = (Path(__file__).parent / "data" / "broken" / "02_four_mistakes.cnn").resolve()
    result = cli("check", path)
    assert result.exit_code == 1
    assert result.stderr.count(": error: ") == 4
    assert result.stderr.rstrip().endswith("4 errors, 0 warnings in 1 network of 1 file")


def test_family_argument_error_points_at_the_call_and_notes_the_definition(cli, tmp_path):
    path = tmp_path / "fam.cnn"
    path.write_text(
        "network fam(widths, classes=10) {\n    input 3x32x32\n    for w in widths { conv3x3(w) }\n"
        "    gap, fc(classes)\n}\nnetwork ok = fam([8])\nnetwork bad1 = fam([8, 16], clases=5)\n"
    )
    result = cli("check", path)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"{path}:7:9: error: `fam` has no parameter `clases`\n"
        "    network bad1 = fam([8, 16], clases=5)\n"
        "            ^\n"
        "hint: did you mean `classes`?\n"
        f"{path}:1:9: note: `fam` is defined here\n"
        "    network fam(widths, classes=10) {\n"
        "            ^\n"
    )


def test_an_error_in_a_familys_body_names_the_instance(cli, tmp_path):
    path = tmp_path / "fam.cnn"
    path.write_text("network fam(n) {\n    input 3x8x8\n    conv3x3(n), relu7\n}\nnetwork small = fam(4)\n")
    result = cli("check", path)
    assert f"{path}:3:17: error: unknown layer `relu7`" in result.stderr
    assert f"{path}:5:9: note: in network `small`, an instance of `fam`" in result.stderr


def test_a_family_with_defaults_is_checked_itself(cli, tmp_path):
    path = tmp_path / "fam.cnn"
    path.write_text("network fam(c=4) {\n    input 3x8x8\n    conv3x3(c), pool x4\n}\n")
    result = cli("check", path)
    assert result.exit_code == 1 and "shrinks" in result.stderr


def test_a_good_file_says_what_it_checked(cli):
    result = cli("check", "lenet5")
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout == "0 errors, 0 warnings in 1 network of 1 file\n"


def test_network_params_and_input_options(cli, tmp_path):
    path = tmp_path / "two.cnn"
    path.write_text(
        "network a(classes=10) { input 3x8x8\n conv3x3(4), pool x3, fc(classes) }\n"
        "network b { input 3x8x8\n conv3x3(4), pool x4 }\n"
    )
    assert cli("check", path, "--network", "a").exit_code == 0
    assert cli("check", path, "--network", "a", "--input", "3x4x4").exit_code == 1
    assert cli("check", path, "--network", "a", "-p", "classes=0").exit_code == 1
    unknown = cli("check", path, "-p", "clases=3")
    assert "error: no network checked takes the parameter `clases`" in unknown.stderr
    missing = cli("check", path, "--network", "c")
    assert missing.exit_code == 1 and f"{path} defines no network `c`" in missing.stderr


def test_json_carries_position_end_severity_hint(cli, tmp_path):
    path = tmp_path / "a.cnn"
    path.write_text("network a { input 3x8x8\n    conv3x3(8), BatchNorm2d\n}\n")
    data = json.loads(cli("check", path, "--format", "json").stdout)
    assert data["errors"] == 1 and data["warnings"] == 0
    assert data["diagnostics"] == [
        {
            "file": str(path),
            "line": 2,
            "column": 17,
            "end": {"line": 2, "column": 28},
            "severity": "error",
            "message": "unknown layer `BatchNorm2d`",
            "hint": "cnndsl calls it `bn`",
            "notes": [],
        }
    ]


@pytest.mark.parametrize(
    "written, hint",
    [
        ("batchnorm", "cnndsl calls it `bn`"),
        ("BatchNorm2d", "cnndsl calls it `bn`"),
        ("Conv2d(4)", "cnndsl calls it `conv`"),
        ("MaxPool2d", "cnndsl calls it `maxpool`"),
        ("Linear(4)", "cnndsl calls it `fc`"),
        ("Dense(4)", "cnndsl calls it `fc`"),
        ("upconv(4)", "cnndsl calls it `deconv`"),
        ("swish", "cnndsl calls it `silu`"),
        ("conv(4, stride=2)", "cnndsl calls it `s=`"),
        ("conv(4, padding=1)", "cnndsl calls it `p=`"),
        ("conv(4, kernel_size=3)", "cnndsl calls it `k=`"),
    ],
)
def test_pytorch_and_keras_spellings_get_hints(cli, tmp_path, written, hint):
    path = tmp_path / "a.cnn"
    path.write_text(f"network a {{ input 3x8x8\n    {written}\n}}\n")
    result = cli("check", path, "--format", "json")
    assert json.loads(result.stdout)["diagnostics"][0]["hint"] == hint


def test_channels_last_input_and_inferred_projection_are_warnings(cli, tmp_path):
    path = tmp_path / "w.cnn"
    path.write_text(
        "network w {\n    input 224x224x3\n}\nnetwork p {\n    input 64x56x56\n"
        "    residual { conv3x3(128, s=2), bn, relu, conv3x3(128), bn }\n}\n"
    )
    result = cli("check", path)
    assert result.exit_code == 0
    assert f"{path}:2:5: warning: the input 224×224×3 looks channels-last (H×W×C); cnndsl reads C×H×W" in result.stderr
    # conv1x1 64 -> 128 and its batch norm: 64·128 + 2·128 parameters, by hand
    assert (
        f"{path}:6:5: warning: this residual's shortcut is a projection (conv1x1 with stride 2 + bn, "
        f"{64 * 128 + 2 * 128:,} parameters), inferred because the body turns 64×56×56 into 128×28×28"
    ) in result.stderr
    assert result.stderr.rstrip().endswith("0 errors, 2 warnings in 2 networks of 1 file")
    assert cli("check", path, "--strict").exit_code == 1


def test_a_block_named_like_a_built_in_layer_is_a_warning_at_its_definition(cli, tmp_path):
    path = tmp_path / "hide.cnn"
    # the block calls itself through `conv`: without the warning, only the depth limit would say so
    path.write_text(
        "block conv(c) {\n    conv(c), bn\n}\nblock relu { sigmoid }\nnetwork n {\n    input 3x8x8\n    relu\n}\n"
    )
    result = cli("check", path)
    assert result.exit_code == 0
    assert result.stderr.startswith(
        f"{path}:1:7: warning: block `conv` hides the built-in layer `conv`: wherever the block is defined or "
        "imported, `conv` calls the block, in its own body too\n"
        "    block conv(c) {\n"
        "          ^\n"
        "hint: rename the block, e.g. `conv_block`\n"
        f"{path}:4:7: warning: block `relu` hides the built-in layer `relu`"
    )
    assert result.stderr.rstrip().endswith("0 errors, 2 warnings in 1 network of 1 file")
    assert cli("check", path, "--strict").exit_code == 1
    found = json.loads(cli("check", path, "--format", "json").stdout)["diagnostics"]
    assert [(d["line"], d["column"], d["severity"]) for d in found] == [(1, 7, "warning"), (4, 7, "warning")]


def test_a_block_with_its_own_name_warns_nothing(cli, tmp_path):
    path = tmp_path / "own.cnn"
    path.write_text("block conv_bn(c) { conv3x3(c), bn }\nnetwork n {\n    input 3x8x8\n    conv_bn(4)\n}\n")
    result = cli("check", path, "--strict")
    assert (result.exit_code, result.stderr) == (0, "")


def test_a_path_that_reaches_no_output_is_a_warning_at_its_first_layer(cli, tmp_path):
    path = tmp_path / "dead.cnn"
    path.write_text(
        "network n {\n    input 3x8x8\n    a: conv3x3(4)\n    conv3x3(8), relu\n    fc(3)\n    @a\n    gap\n}\n"
    )
    result = cli("check", path)
    assert result.exit_code == 0
    # conv3x3 4 -> 8: 4·8·9 + 8; fc 8·8·8 -> 3: 512·3 + 3; relu none: 1,835 parameters in 3 layers, by hand
    assert result.stderr == (
        f"{path}:4:5: warning: `conv2` (conv) begins a path that reaches no output: its 3 layers and "
        f"{4 * 8 * 9 + 8 + 512 * 3 + 3:,} parameters are still counted and computed\n"
        "        conv3x3(8), relu\n"
        "        ^\n"
        "hint: join it to the rest (add, concat), name it in `output @a, @b`, or remove it\n"
        "0 errors, 1 warning in 1 network of 1 file\n"
    )
    assert cli("check", path, "--strict").exit_code == 1


def test_a_head_left_out_of_output_is_dead_and_one_named_is_not(cli, tmp_path):
    path = tmp_path / "heads.cnn"
    body = "    input 3x8x8\n    f: conv3x3(4)\n    gap, logits: fc(10)\n    @f\n    mask: conv1x1(1)\n"
    path.write_text(
        f"network both {{\n{body}    output @logits, @mask\n}}\nnetwork one {{\n{body}    output @mask\n}}\n"
    )
    found = json.loads(cli("check", path, "--format", "json").stdout)["diagnostics"]
    # only `one` leaves the gap and fc(10) (4·10 + 10 parameters) behind; `both` returns every path
    assert [(d["line"], d["column"], d["message"]) for d in found] == [
        (
            12,
            5,
            "`gap` (gap) begins a path that reaches no output: its 2 layers and 50 parameters are still "
            "counted and computed",
        )
    ]
