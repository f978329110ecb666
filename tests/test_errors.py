"""One golden test per error kind: the exact `file:line:col: error: message`, and the hint.

Every failure a .cnn file can cause is a CnnDslError with a position; the CLI prints it with
the source line and a caret and exits 1, and shows a traceback only with --debug.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from docs_pages import commands, fences, page_text

import cnndsl
from cnndsl.core.errors import (
    CnnDslError,
    FileProblem,
    LimitProblem,
    NameProblem,
    ShapeProblem,
    SyntaxProblem,
    ValueProblem,
)

CNNDSL = [sys.executable, "-c", "from cnndsl.cli import main; main()"]  # the installed command, as a process


def net(*lines: str) -> str:
    """A network `n` on a 3×32×32 input whose body starts on line 3, column 5."""
    return "network n {\n    input 3x32x32\n" + "".join(f"    {line}\n" for line in lines) + "}\n"


# (id, source, options, error class, first line of the rendered error, hint)
GOLDEN = [
    # ---- syntax --------------------------------------------------------------------------------
    (
        "syntax",
        "network n {\n    input 3x32x32\n    conv3x3(16,\n}\n",
        {},
        SyntaxProblem,
        "t.cnn:4:1: error: unexpected `}`",
        "expected `(`, `-`, `@`, `[`, a name, a number, ...",
    ),
    (
        "syntax-character",
        net("conv3x3(16) $ relu"),
        {},
        SyntaxProblem,
        "t.cnn:3:17: error: unexpected character '$'",
        "remove it, or check for a missing quote",
    ),
    (
        "syntax-carriage-return",
        "network n {\r    input 3x32x32\r}\r",
        {},
        SyntaxProblem,
        "t.cnn:1:12: error: a line ends in a lone carriage return",
        "save the file with \\n line endings",
    ),
    # ---- unknown names, with the nearest suggestion -----------------------------------------
    (
        "unknown-layer",
        net("conv3x3(16), relu, fcc(10)"),
        {},
        NameProblem,
        "t.cnn:3:24: error: unknown layer `fcc`",
        "did you mean `fc`?",
    ),
    (
        "unknown-name",
        "network n(width=16) {\n    input 3x32x32\n    conv3x3(widht)\n}\n",
        {},
        NameProblem,
        "t.cnn:3:13: error: unknown name `widht`",
        "did you mean `width`?",
    ),
    (
        "unknown-function",
        net("conv3x3(mx(16, 8))"),
        {},
        NameProblem,
        "t.cnn:3:13: error: unknown function `mx`",
        "did you mean `max`?",
    ),
    (
        "unknown-block-parameter",
        "block b(c) { conv3x3(c) }\n" + net("b(chans=16)"),
        {},
        NameProblem,
        "t.cnn:4:5: error: `b` has no parameter `chans`",
        "its parameters are (c)",
    ),
    # ---- duplicates --------------------------------------------------------------------------
    (
        "duplicate-definition",
        "block b { relu }\nblock b { relu }\n" + net("b"),
        {},
        NameProblem,
        "t.cnn:2:7: error: `b` is defined twice (first at t.cnn:1:7)",
        None,
    ),
    (
        "duplicate-parameter",
        "block b(c, c) { conv3x3(c) }\n" + net("b(1, 2)"),
        {},
        NameProblem,
        "t.cnn:1:12: error: parameter `c` is declared twice (first at t.cnn:1:9)",
        "give each parameter its own name",
    ),
    (
        "duplicate-keyword",
        net("conv3x3(16, s=1, s=2)"),
        {},
        NameProblem,
        "t.cnn:3:22: error: argument `s` is given twice",
        None,
    ),
    # ---- taps ----------------------------------------------------------------------------------
    (
        "undefined-tap",
        net("conv3x3(16), add(@skip)"),
        {},
        NameProblem,
        "t.cnn:3:22: error: undefined tap `@skip`",
        "label a point first, e.g. `enc1: conv3x3(64)`",
    ),
    (
        "duplicate-tap",
        net("a: conv3x3(16), a: relu"),
        {},
        NameProblem,
        "t.cnn:3:21: error: duplicate tap `a` (first defined at t.cnn:3:5)",
        "give each labelled point its own name",
    ),
    (
        "tap-as-number",
        net("a: relu, conv3x3(@a + 1)"),
        {},
        ValueProblem,
        "t.cnn:3:25: error: `+` needs numbers, got @a",
        None,
    ),
    # ---- shape mismatches: both shapes named ------------------------------------------------
    (
        "add-mismatch",
        net("a: conv3x3(16)", "conv3x3(32, s=2)", "add(@a)"),
        {},
        ShapeProblem,
        "t.cnn:5:5: error: cannot add 16×32×32 to 32×16×16",
        "project the shortcut: conv1x1(32, s=2), bn",
    ),
    (
        "concat-mismatch",
        net("a: conv3x3(16)", "maxpool", "concat(@a)"),
        {},
        ShapeProblem,
        "t.cnn:5:5: error: cannot concatenate 16×32×32 with 16×16×16: sizes differ",
        "crop the larger one with concat(..., crop=true), or resize one side",
    ),
    (
        "concat-rank",
        net("a: conv3x3(16)", "gap, fc(10)", "concat(@a)"),
        {},
        ShapeProblem,
        "t.cnn:5:5: error: cannot concatenate 16×32×32 with 10",
        None,
    ),
    (
        "gate-mismatch",
        net("scale { gap, fc(8), sigmoid }"),
        {},
        ShapeProblem,
        "t.cnn:3:5: error: cannot gate 3×32×32 with 8",
        "the gate must be 3, 3×1×1 or 3×32×32",
    ),
    (
        "fc-mismatch",
        net("gap, a: fc(20)", "fc(10)", "add(@a)"),
        {},
        ShapeProblem,
        "t.cnn:5:5: error: cannot add 20 to 10",
        "make both operands the same shape",
    ),
    (
        "residual-projection",
        net("residual { upsample(2) }"),
        {},
        ShapeProblem,
        "t.cnn:3:5: error: a residual's body turns 3×32×32 into 3×64×64, which no conv1x1 projection matches",
        "write the shortcut explicitly: residual { ... } shortcut { ... }",
    ),
    (
        "wrong-rank",
        net("gap, flatten, conv3x3(16)"),
        {},
        ShapeProblem,
        "t.cnn:3:19: error: `conv` needs a C×H×W input, got 3",
        "it cannot follow a flatten or fully connected layer",
    ),
    (
        "no-input",
        "network n {\n    conv3x3(16)\n}\n",
        {},
        ShapeProblem,
        "t.cnn:2:5: error: there is no tensor here yet",
        "start the network with `input 3x224x224`",
    ),
    (
        "shrinks-to-zero",
        net("maxpool x 6"),
        {},
        ShapeProblem,
        "t.cnn:3:5: error: `maxpool` shrinks 3×1×1 to nothing (0×0)",
        "the input is too small here: use a larger input, padding, or fewer downsampling layers",
    ),
    # ---- values: sizes, probabilities, arithmetic ------------------------------------------
    (
        "fractional-size",
        net("conv3x3(2.5)"),
        {},
        ValueProblem,
        "t.cnn:3:5: error: channels c must be a whole number, got 2.5",
        "use // for floor division",
    ),
    (
        "fractional-division",
        net("conv3x3(in.c / 2)"),
        {},
        ValueProblem,
        "t.cnn:3:5: error: channels c must be a whole number, got 1.5",
        "use // for floor division",
    ),
    ("zero-size", net("conv3x3(0)"), {}, ValueProblem, "t.cnn:3:5: error: channels c must be at least 1, got 0", None),
    (
        "negative-size",
        net("conv3x3(-16)"),
        {},
        ValueProblem,
        "t.cnn:3:5: error: channels c must be at least 1, got -16",
        None,
    ),
    (
        "zero-input",
        "network n {\n    input 3x0x32\n}\n",
        {},
        ValueProblem,
        "t.cnn:2:13: error: an input dimension must be at least 1, got 0",
        None,
    ),
    (
        "probability",
        net("dropout(1.5)"),
        {},
        ValueProblem,
        "t.cnn:3:5: error: dropout probability p must be between 0 and 1, got 1.5",
        None,
    ),
    (
        "division-by-zero",
        net("conv3x3(16 // (in.c - 3))"),
        {},
        ValueProblem,
        "t.cnn:3:16: error: division by zero",
        None,
    ),
    (
        "complex-power",
        net("conv3x3((-8) ^ 0.5)"),
        {},
        ValueProblem,
        "t.cnn:3:13: error: (-8)^0.5 is not a real number",
        "a negative base needs a whole exponent",
    ),
    (
        "too-large-number",
        net("conv3x3(2^60)"),
        {},
        ValueProblem,
        "t.cnn:3:13: error: 1.15e+18 is too large for a size or count",
        None,
    ),
    (
        "too-many-digits",
        net("conv3x3(1234567890123456789012345678901)"),
        {},
        ValueProblem,
        "t.cnn:3:13: error: a number of 31 digits is too large for a size or count",
        None,
    ),
    (
        "condition-not-boolean",
        net("if in.c { relu }"),
        {},
        ValueProblem,
        "t.cnn:3:8: error: a condition must be true or false, got 3",
        None,
    ),
    (
        "not-a-list",
        net("for c in 3 { relu }"),
        {},
        ValueProblem,
        "t.cnn:3:14: error: `for` needs a list to walk over, got 3",
        None,
    ),
    (
        "index-outside",
        "let widths = [16, 32]\n" + net("conv3x3(widths[2])"),
        {},
        ValueProblem,
        "t.cnn:4:20: error: index 2 is outside a list of 2",
        None,
    ),
    # ---- repetitions ---------------------------------------------------------------------------
    (
        "repetition-zero",
        net("relu x 0"),
        {},
        ValueProblem,
        "t.cnn:3:12: error: a repetition count must be at least 1, got 0",
        None,
    ),
    (
        "repetition-fraction",
        net("relu * 2.5"),
        {},
        ValueProblem,
        "t.cnn:3:12: error: a repetition count must be a whole number, got 2.5",
        "use // for floor division",
    ),
    # ---- limits --------------------------------------------------------------------------------
    (
        "repetition-limit",
        net("relu x 1000000000"),
        {},
        LimitProblem,
        "t.cnn:3:12: error: 1,000,000,000 repetitions exceed the limit of 10,000 nodes",
        "check the count, or raise the limit with --max-nodes",
    ),
    (
        "repetition-projected",
        net("(relu x 1000) x 1000"),
        {},
        LimitProblem,
        "t.cnn:3:21: error: 1,000 repetitions of 1,000 nodes each exceed the limit of 10,000 nodes",
        "check the count, or raise the limit with --max-nodes",
    ),
    (
        "node-limit",
        net("conv3x3, relu, conv3x3, relu, conv3x3, relu"),
        {"max_nodes": 5},
        LimitProblem,
        "t.cnn:3:35: error: the network expands to more than 5 nodes",
        "check the repetition counts, or raise the limit with --max-nodes",
    ),
    (
        "list-too-long",
        net("for c in range(10^7) { relu }"),
        {},
        LimitProblem,
        "t.cnn:3:14: error: a list of 10,000,000 elements is longer than the limit of 1,000,000",
        None,
    ),
    (
        "step-limit",
        net("for a in range(1000) { for b in range(1000) { } }"),
        {},
        LimitProblem,
        "t.cnn:3:14: error: expanding takes more than 50,000 steps (4 per node of the limit of 10,000)",
        "check the loop bounds, or raise the limit with --max-nodes",
    ),
    (
        "tensor-too-large",
        net("upsample(2^20) x 4"),
        {},
        LimitProblem,
        "t.cnn:3:5: error: `upsample` makes a 3×36893488147419103232×36893488147419103232 tensor, "
        "larger than any size cnndsl accepts (2^53)",
        "check the input size, strides and scale factors",
    ),
    # ---- nesting: no input reaches Python's recursion limit --------------------------------
    (
        "bracket-nesting",
        net("(" * 101 + "relu" + ")" * 101),
        {},
        LimitProblem,
        "t.cnn:3:104: error: brackets nest more than 100 deep",
        "flatten the expression or split it into a block",
    ),
    (
        "expression-nesting",
        "let deep = " + "1 + " * 150 + "1\n" + net("relu"),
        {},
        LimitProblem,
        "t.cnn:1:414: error: this expression nests more than 100 deep",
        "split it into steps with `let`",
    ),
    (
        "block-recursion",
        "block again { relu, again }\n" + net("again"),
        {},
        LimitProblem,
        "t.cnn:1:21: error: blocks call each other more than 64 deep",
        "a block that calls itself needs a condition that stops it",
    ),
    (
        "body-nesting",
        "block b(n) { stage { stage { if n > 0 { b(n - 1) } } } }\n" + net("b(40)"),
        {},
        LimitProblem,
        "t.cnn:1:41: error: bodies and block calls nest more than 100 deep",
        "flatten the structure, or give a recursive block a condition that stops it",
    ),
    # ---- whole-file errors carry no position ---------------------------------------------------
    (
        "no-network",
        "block b { relu }\n",
        {},
        NameProblem,
        "error: t.cnn defines no network",
        "add `network name { input 3x224x224 ... }`",
    ),
]


@pytest.mark.parametrize(
    "source,options,kind,expected,hint", [case[1:] for case in GOLDEN], ids=[case[0] for case in GOLDEN]
)
def test_error_kind_has_its_exact_message_position_and_hint(source, options, kind, expected, hint):
    with pytest.raises(CnnDslError) as caught:
        cnndsl.parse(source, file="t.cnn", **options)
    assert type(caught.value) is kind
    assert caught.value.render().splitlines()[0] == expected
    assert caught.value.hint == hint


def test_every_error_class_has_a_golden_case():
    covered = {case[3] for case in GOLDEN}
    assert covered == {SyntaxProblem, NameProblem, ShapeProblem, ValueProblem, LimitProblem}  # FileProblem below


def test_render_shows_the_line_and_a_caret_under_the_column():
    source = net("conv3x3(16), relu, fcc(10)")
    with pytest.raises(CnnDslError) as caught:
        cnndsl.parse(source, file="t.cnn")
    assert caught.value.render(source) == (
        "t.cnn:3:24: error: unknown layer `fcc`\n"
        "        conv3x3(16), relu, fcc(10)\n"
        "                           ^\n"
        "hint: did you mean `fc`?"
    )


def test_a_long_line_is_clipped_around_the_caret():
    source = net("(" * 20000 + "relu" + ")" * 20000)
    with pytest.raises(LimitProblem) as caught:
        cnndsl.parse(source, file="t.cnn")
    rendered = caught.value.render(source).splitlines()
    assert rendered[0] == "t.cnn:3:104: error: brackets nest more than 100 deep"
    assert rendered[1] == "    ..." + "(" * 100 + "..."
    assert rendered[2] == "    " + " " * 53 + "^"  # under the 51st character shown, the 104th of the line


# ---- imports -------------------------------------------------------------------------------
def test_import_cycle_names_the_chain(tmp_path):
    (tmp_path / "a.cnn").write_text('import "b.cnn"\nnetwork a { input 3 }\n')
    (tmp_path / "b.cnn").write_text('block x { relu }\nimport "a.cnn"\n')
    with pytest.raises(LimitProblem) as caught:
        cnndsl.load(tmp_path / "a.cnn")
    assert (
        caught.value.render().splitlines()[0]
        == f"{tmp_path / 'b.cnn'}:2:1: error: import cycle: a.cnn -> b.cnn -> a.cnn"
    )
    assert caught.value.hint == "move the shared blocks into a third file"


def test_import_depth_is_bounded(tmp_path):
    for level in range(20):
        (tmp_path / f"m{level}.cnn").write_text(f'import "m{level + 1}.cnn"\n')
    (tmp_path / "m20.cnn").write_text("block leaf { relu }\n")
    (tmp_path / "main.cnn").write_text('import "m0.cnn"\nnetwork main { input 3 }\n')
    with pytest.raises(LimitProblem) as caught:
        cnndsl.load(tmp_path / "main.cnn")
    assert caught.value.render().splitlines()[0] == f"{tmp_path / 'm15.cnn'}:1:1: error: imports nest more than 16 deep"


def test_import_of_a_missing_file(tmp_path):
    (tmp_path / "main.cnn").write_text('import "gone.cnn"\nnetwork main { input 3 }\n')
    with pytest.raises(FileProblem) as caught:
        cnndsl.load(tmp_path / "main.cnn")
    assert caught.value.render().splitlines()[0] == (
        f"{tmp_path / 'main.cnn'}:1:1: error: cannot import 'gone.cnn': {tmp_path / 'gone.cnn'}: no such file"
    )


def test_import_of_a_missing_library_file(tmp_path):
    (tmp_path / "main.cnn").write_text("import resnt\nnetwork main { input 3 }\n")
    with pytest.raises(FileProblem) as caught:
        cnndsl.load(tmp_path / "main.cnn")
    assert caught.value.render().splitlines()[0] == f"{tmp_path / 'main.cnn'}:1:1: error: no library file `resnt`"
    assert caught.value.hint == "did you mean `resnet`?"


# ---- input files -----------------------------------------------------------------------------
def _file_error(path: Path) -> str:
    with pytest.raises(FileProblem) as caught:
        cnndsl.load(path)
    return caught.value.render()


def test_missing_file(tmp_path):
    assert _file_error(tmp_path / "gone.cnn") == (
        f"error: {tmp_path / 'gone.cnn'}: no such file\nhint: check the path, or give a library name like resnet50"
    )


def test_directory_as_input(tmp_path):
    (tmp_path / "nets.cnn").mkdir()
    assert _file_error(tmp_path / "nets.cnn") == f"error: {tmp_path / 'nets.cnn'} is a directory, not a .cnn file"


def test_not_utf8_points_at_the_byte(tmp_path):
    path = tmp_path / "latin1.cnn"
    path.write_bytes("network n {\n    input 3x8x8  # café\n}\n".encode("latin-1"))
    assert _file_error(path) == f"{path}:2:23: error: not UTF-8 text (byte 0xe9)\nhint: save the file as UTF-8"


def test_binary_file(tmp_path):
    path = tmp_path / "model.cnn"
    path.write_bytes(b"PK\x03\x04\x00\x00network")
    assert _file_error(path) == f"error: {path} is a binary file, not .cnn text"


def test_file_too_large_is_read_only_up_to_the_limit():
    assert (
        _file_error(Path("/dev/zero"))
        == "error: /dev/zero is larger than 4,194,304 bytes, the most a .cnn file may have"
    )


def test_unreadable_file(tmp_path, monkeypatch):
    path = tmp_path / "secret.cnn"
    path.write_text("network n { input 3 }\n")

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)  # the tests may run as root, who reads anything
    assert _file_error(path) == f"error: {path}: cannot read it (Permission denied)"


def test_symlink_loop(tmp_path):
    (tmp_path / "a.cnn").symlink_to(tmp_path / "b.cnn")
    (tmp_path / "b.cnn").symlink_to(tmp_path / "a.cnn")
    assert _file_error(tmp_path / "a.cnn") == (
        f"error: {tmp_path / 'a.cnn'}: the symbolic links loop\nhint: point the link at a real file"
    )


def test_a_file_name_with_a_nul_character():
    assert _file_error(Path("a\0b.cnn")) == "error: 'a\\x00b.cnn' is not a file name: it holds a NUL character"


def test_empty_and_comment_only_files_define_no_network(tmp_path):
    for text in ("", "  \n\n# only a comment\n"):
        path = tmp_path / "empty.cnn"
        path.write_text(text)
        with pytest.raises(NameProblem) as caught:
            cnndsl.load(path)
        assert caught.value.render() == (
            f"error: {path} defines no network\nhint: add `network name {{ input 3x224x224 ... }}`"
        )


def test_bom_crlf_and_tabs_are_fine(tmp_path):
    path = tmp_path / "windows.cnn"
    path.write_bytes(b"\xef\xbb\xbfnetwork windows {\r\n\tinput 3x8x8\r\n\tconv3x3(4)\r\n}\r\n")
    assert cnndsl.load(path).params == 112


# ---- the command line -----------------------------------------------------------------------
def test_cli_prints_the_located_error_and_exits_1(cli, tmp_path):
    path = tmp_path / "bad.cnn"
    path.write_text(net("conv3x3(16), relu, fcc(10)"))
    result = cli("summary", path)
    assert result.exit_code == 1
    assert result.stderr == (
        f"{path}:3:24: error: unknown layer `fcc`\n"
        "        conv3x3(16), relu, fcc(10)\n"
        "                           ^\n"
        "hint: did you mean `fc`?\n"
    )


def test_cli_shows_a_traceback_only_with_debug(tmp_path):
    path = tmp_path / "bad.cnn"
    path.write_text(net("dropout(2)"))
    quiet = subprocess.run([*CNNDSL, "check", str(path)], capture_output=True, text=True)
    loud = subprocess.run([*CNNDSL, "--debug", "summary", str(path)], capture_output=True, text=True)
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr
    assert quiet.stderr.startswith(f"{path}:3:5: error: dropout probability p must be between 0 and 1, got 2\n")
    assert loud.returncode == 1 and "Traceback" in loud.stderr
    assert loud.stderr.rstrip().endswith("dropout probability p must be between 0 and 1, got 2")


# The command as a process that reports its own peak memory when it exits: the kernel's VmHWM of the
# process's own address space. (`ru_maxrss` from wait4 would not do: a child started from a large
# parent, such as a test worker that has imported torch, inherits the parent's high-water mark.)
_MEASURED = (
    "import atexit, sys; atexit.register(lambda: sys.stderr.write("
    "next(line for line in open('/proc/self/status') if line.startswith('VmHWM:'))));"
    "from cnndsl.cli import main; main()"
)


def _in_a_process(*args: str) -> tuple[int, str, float, float]:
    """Run `cnndsl ARGS` as a whole process: exit code, stderr, CPU seconds of that process alone
    (`wait4`, not RUSAGE_CHILDREN, which would count every earlier child too) and its peak memory (MB).

    CPU time, not wall time: on a shared 2-core machine the wall clock measures the neighbours.
    """
    command = [sys.executable, "-c", _MEASURED, *args]
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as child:
        stderr = child.stderr.read()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    stderr, _, peak = stderr.rpartition("VmHWM:")
    return child.returncode, stderr, usage.ru_utime + usage.ru_stime, int(peak.split()[0]) / 1024


@pytest.mark.parametrize(
    "body,expected",
    [
        ("conv3x3(16) x 1000000000", ":3:19: error: 1,000,000,000 repetitions exceed the limit of 10,000 nodes"),
        (
            "((conv3x3(16) x 1000) x 1000) x 1000",
            ":3:29: error: 1,000 repetitions of 1,000 nodes each exceed the limit",
        ),
        ("(" * 20000 + "relu" + ")" * 20000, ":3:104: error: brackets nest more than 100 deep"),
    ],
    ids=["1e9-repetitions", "nested-1e9-repetitions", "20000-parentheses"],
)
def test_hostile_sizes_answer_within_a_second_in_modest_memory(tmp_path, body, expected):
    path = tmp_path / "hostile.cnn"
    path.write_text(net(body))
    _, _, startup, _ = _in_a_process("--version")
    code, stderr, seconds, megabytes = _in_a_process("check", str(path))
    assert code == 1
    assert stderr.startswith(f"{path}{expected}")
    # The whole process, less the interpreter and imports starting (~0.3 s alone), in under a second.
    assert seconds - startup < 1.0, (seconds, startup)
    assert megabytes < 200, megabytes


# ---- outputs: whole or not at all ---------------------------------------------------------------
TINY = "network tiny {\n    input 3x16x16\n    conv3x3(4), bn, relu, gap, fc(2)\n}\n"
FORMATS = ["python", "dot", "svg", "png", "pdf", "onnx", "pt2"]


class _FullDisk:
    """A stream that takes a few bytes and then fails the way a full disk does."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, data):
        self.stream.write(data[:10])
        raise OSError(28, "No space left on device")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stream.close()


def _fill_the_disk(monkeypatch):
    """Every write through cnndsl.core.atomic's temp file fails (pt2 too: its archive is made in memory)."""
    import os

    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda *args, **kwargs: _FullDisk(real_fdopen(*args, **kwargs)))


@pytest.mark.parametrize(
    "fmt", [pytest.param(fmt, marks=pytest.mark.needs_dot) if fmt in ("svg", "png", "pdf") else fmt for fmt in FORMATS]
)
def test_a_write_that_fails_midway_leaves_no_file_and_no_temp_file(cli, tmp_path, monkeypatch, fmt):
    source = tmp_path / "tiny.cnn"
    source.write_text(TINY)
    target = tmp_path / "out" / f"tiny.{fmt}"
    target.parent.mkdir()
    assert cli("compile", source, "--to", fmt, "-o", target).exit_code == 0  # the format works at all
    target.unlink()
    _fill_the_disk(monkeypatch)
    result = cli("compile", source, "--to", fmt, "-o", target)
    assert result.exit_code == 1
    assert result.stderr == f"error: cannot write {target}: No space left on device\n"
    assert list(target.parent.iterdir()) == []


def test_a_failed_write_keeps_the_previous_output(cli, tmp_path, monkeypatch):
    source = tmp_path / "tiny.cnn"
    source.write_text(TINY)
    target = tmp_path / "tiny.py"
    target.write_text("previous\n")
    _fill_the_disk(monkeypatch)
    assert cli("compile", source, "--to", "python", "-o", target).exit_code == 1
    assert target.read_text() == "previous\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tiny.cnn", "tiny.py"]


def test_an_output_in_a_missing_folder(cli, tmp_path):
    source = tmp_path / "tiny.cnn"
    source.write_text(TINY)
    target = tmp_path / "nowhere" / "tiny.py"
    result = cli("compile", source, "--to", "python", "-o", target)
    assert result.exit_code == 1
    assert result.stderr == f"error: cannot write {target}: folder {target.parent} does not exist\n"


def test_a_folder_as_output_is_refused_before_any_work(cli, tmp_path):
    source = tmp_path / "tiny.cnn"
    source.write_text(TINY)
    result = cli("compile", source, "--to", "python", "-o", tmp_path)
    assert result.exit_code == 2
    assert f"'{tmp_path}' is a directory" in result.stderr


class _Trap:
    """Unpickling this runs code: it writes the file named. weights_only=True must refuse it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def test_a_checkpoint_that_would_run_code_is_refused(cli, tmp_path):
    import torch

    source, marker, checkpoint = tmp_path / "tiny.cnn", tmp_path / "pwned", tmp_path / "evil.pt"
    source.write_text(TINY)
    torch.save({"conv.weight": _Trap(marker)}, checkpoint)
    result = cli("compile", source, "--to", "onnx", "-o", tmp_path / "tiny.onnx", "--weights", checkpoint)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot read weights from {checkpoint}: Weights only load failed")
    assert not marker.exists() and not (tmp_path / "tiny.onnx").exists()


# ---- docs/errors.md: every example runs ------------------------------------------------------
def _doc_blocks() -> list[tuple[str, str]]:
    return [(fence.kind, fence.body) for fence in fences("errors.md", "cnn-error", "text", "console")]


def _doc_error_examples() -> list[tuple[str, str]]:
    blocks = _doc_blocks()
    return [(body, blocks[i + 1][1]) for i, (kind, body) in enumerate(blocks) if kind == "cnn-error"]


def test_the_errors_page_shows_every_error_class():
    text = page_text("errors.md")
    assert len(_doc_error_examples()) >= 15 and len([b for b in _doc_blocks() if b[0] == "console"]) >= 2
    for kind in (SyntaxProblem, NameProblem, ShapeProblem, ValueProblem, LimitProblem, FileProblem):
        assert f"`{kind.__name__}`" in text


@pytest.mark.parametrize("body,expected", _doc_error_examples(), ids=lambda value: value.split("\n")[0][:30])
def test_errors_page_example_fails_with_the_text_shown(body, expected):
    with pytest.raises(CnnDslError) as caught:
        cnndsl.parse(body, file="net.cnn")
    assert caught.value.render(body) == expected.rstrip("\n")


@pytest.mark.parametrize(
    "block", [body for kind, body in _doc_blocks() if kind == "console"], ids=lambda block: block.split("\n")[0]
)
def test_errors_page_command_prints_what_is_shown(block):
    ((command, shown),) = commands(block)  # run as a process, from the checkout: the page shows paths from there
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([*CNNDSL, *shlex.split(command)[1:]], capture_output=True, text=True, cwd=root)
    assert result.returncode == 1
    assert (result.stdout + result.stderr).replace(f"{root}/", "") == shown


def test_weights_too_large_to_build_are_refused_before_allocating(cli, tmp_path, monkeypatch):
    source = tmp_path / "big.cnn"
    source.write_text(net("conv3x3(64), conv3x3(1000000000)"))
    monkeypatch.setattr(cnndsl.api, "memory_bytes", lambda: 8 * 2**30)
    monkeypatch.setattr("cnndsl.backends.onnx.memory_bytes", lambda: 8 * 2**30)
    result = cli("compile", source, "--to", "onnx", "-o", tmp_path / "big.onnx")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"{source}:3:18: error: `n` makes ONNX tensors of 2,149.5 GiB, more than half of this machine's memory "
        "holds (4.0 GiB)"
    )
    assert result.stderr.splitlines()[-1] == "hint: the largest tensor is made here: check its size"
    with pytest.raises(LimitProblem) as caught:
        cnndsl.load(source).to_torch()
    assert caught.value.message == (
        "`n` has 577,000,001,792 parameters (2,149.5 GiB as float32), "
        "more than half of this machine's memory holds (4.0 GiB)"
    )
    assert list(tmp_path.iterdir()) == [source]


# ---- clean errors for what used to escape as tracebacks or silence (issue 14, findings 13, 14, 16) --
def test_a_cropping_concat_of_two_axis_tensors_is_refused_where_it_is_written(cli, tmp_path):
    path = tmp_path / "seq.cnn"
    path.write_text("network seq {\n    input 120\n    a: reshape((20, 6))\n    relu, concat(@a, crop=true)\n}\n")
    result = cli("check", path)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"{path}:4:11: error: `concat(crop=true)` joins C×H×W tensors along their channels\n"
        "        relu, concat(@a, crop=true)\n"
        "              ^\n"
        "hint: leave crop out, or join along the channels (axis 0) of C×H×W tensors\n"
    )


def test_a_network_name_too_long_for_graphviz_is_drawn_cut_short(cli, tmp_path):
    path = tmp_path / "long.cnn"
    path.write_text("network " + "n" * 100_000 + " {\n    input 3x8x8\n    relu\n}\n")
    result = cli("draw", path, "-o", tmp_path / "x.svg")
    assert result.exit_code == 0, result.stderr
    svg = (tmp_path / "x.svg").read_text()
    assert ">" + "n" * 199 + "…<" in svg and "n" * 200 not in svg


def test_when_graphviz_refuses_a_diagram_its_own_message_is_the_error(cli, tmp_path, monkeypatch):
    from cnndsl.backends import diagram_labels

    monkeypatch.setattr(diagram_labels, "LONGEST_TEXT", 10**6)
    path = tmp_path / "long.cnn"
    path.write_text("network " + "n" * 20_000 + " {\n    input 3x8x8\n    relu\n}\n")
    result = cli("draw", path, "-o", tmp_path / "x.svg")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: Graphviz could not draw the diagram: Error: <stdin>: syntax error in "
        "line 2 scanning a HTML string (missing '>'? bad nesting? longer than 16384?)"
    )
    assert not (tmp_path / "x.svg").exists()


@pytest.mark.parametrize(
    "shape,expected",
    [
        ("3x²x2", "expected CxHxW like 3x224x224, got '3x²x2'"),
        (
            "3x" + "9" * 5000 + "x32",
            "'3x" + "9" * 38 + "'... has a dimension larger than any size cnndsl accepts (2^53)",
        ),
        ("3x9007199254740993x3", "'3x9007199254740993x3' has a dimension larger than any size cnndsl accepts (2^53)"),
        ("3x0x3", "expected CxHxW of sizes of at least 1, got '3x0x3'"),
    ],
    ids=["superscript-digit", "5000-digits", "above-2^53", "zero"],
)
def test_an_input_option_that_is_not_a_shape_is_a_usage_error(cli, shape, expected):
    result = cli("summary", "lenet5", "--input", shape)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == f"Error: Invalid value for '--input': {expected}"


def test_an_unknown_argument_in_defaults_is_located(tmp_path):
    path = tmp_path / "d.cnn"
    path.write_text(net("defaults conv(zz=1)", "conv3x3(8)"))
    with pytest.raises(NameProblem) as caught:
        cnndsl.load(path)
    assert caught.value.render().splitlines()[0] == f"{path}:3:14: error: `conv` has no argument `zz`"


@pytest.mark.parametrize("output,why", [("SOURCE", "the source"), ("other.cnn", "a .cnn file")])
def test_an_output_never_overwrites_a_cnn_file(cli, tmp_path, output, why):
    source = tmp_path / "tiny.cnn"
    source.write_text(TINY)
    (tmp_path / "other.cnn").write_text(TINY)
    target = source if output == "SOURCE" else tmp_path / output
    for fmt in ("onnx", "python", "dot"):
        result = cli("compile", source, "--to", fmt, "-o", target)
        assert result.exit_code == 1
        assert (
            result.stderr
            == f"error: refusing to write {target}: it would overwrite {why}\nhint: choose another output name with -o\n"
        )
        assert target.read_text() == TINY


def test_an_output_never_overwrites_the_source_whatever_its_name(cli, tmp_path):
    source = tmp_path / "tiny.txt"
    source.write_text(TINY)
    result = cli("compile", source, "--to", "dot", "-o", tmp_path / "." / "tiny.txt")
    assert result.exit_code == 1 and "it would overwrite the source" in result.stderr
    assert source.read_text() == TINY
