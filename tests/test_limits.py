"""Hostile values (issue 14, findings 6-8): each program ends in a located error or a network, in
about a second of CPU and modest memory, run as a whole `cnndsl check` process.

The process gets a 1 GiB address-space limit and a wall-clock timeout, so a program that would
compute 10^(2^53) or fill the machine's memory fails the test instead of stalling or swapping the suite.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest

from cnndsl.graph import ir

WORK_MESSAGE = (
    "error: the expressions touch more than 3,000,000 values in all (elements of the lists they build, walk or compare)"
)
NESTED_MESSAGE = "error: a list of more than 1,000,000 elements, nested lists counted in full, is past the limit"

# The process reports its own peak memory when it exits (VmHWM; see tests/test_errors.py for why).
_MEASURED = (
    "import atexit, sys; atexit.register(lambda: sys.stderr.write("
    "next(line for line in open('/proc/self/status') if line.startswith('VmHWM:'))));"
    "from cnndsl.cli import main; main()"
)


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))


def _check(*args: str, timeout: float = 60) -> tuple[int, str, float, float]:
    """`cnndsl ARGS` as a bounded process: exit code, stderr, CPU seconds, peak memory (MB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "CNNDSL_NO_CACHE": "1"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _MEASURED, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=_limited,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"cnndsl {' '.join(args)} ran for more than {timeout} s")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    stderr, _, peak = done.stderr.rpartition("VmHWM:")
    seconds = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return done.returncode, stderr, seconds, int(peak.split()[0]) / 1024 if peak else float("nan")


@pytest.fixture(scope="module")
def startup() -> float:
    return _check("--version")[2]


def net(body: str, before: str = "") -> str:
    return f"{before}network n {{\n    input 3x32x32\n    {body}\n}}\n"


CASES = {
    # finding 6: round's digits were unbounded, and round(5, -n) computes 10^n
    "round-digits": (
        net("let x = round(5, -(2^53))"),
        ":3:13: error: round(x, n) keeps n digits: n must be a whole number from -30 to 30, got -9.01e+15",
    ),
    # finding 7: 20,000 loop turns are within the steps limit (50,000), each summed a million elements
    "sum-per-turn": (net("for a in range(20000) { let x = sum(range(1000000)) }"), ":3:41: " + WORK_MESSAGE),
    # finding 8: values that grow memory
    "300-ranges": (net("let x = [" + ", ".join(["range(1000000)"] * 300) + "]"), ":3:46: " + WORK_MESSAGE),
    "zip-1000-ranges": (net("let x = zip(" + ", ".join(["range(1000000)"] * 1000) + ")"), ":3:49: " + WORK_MESSAGE),
    "message-of-1e9": (
        net("conv3x3([" + ", ".join(["a"] * 1000) + "])", "let a = range(1000000)\n"),
        ":4:13: " + NESTED_MESSAGE,
    ),
    "comprehension-of-1e9": (
        net("conv3x3([a for i in range(1000)])", "let a = range(1000000)\n"),
        ":4:13: " + NESTED_MESSAGE,
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_hostile_values_end_in_a_located_error_quickly(tmp_path, startup, name):
    text, expected = CASES[name]
    path = tmp_path / "hostile.cnn"
    path.write_text(text)
    code, stderr, seconds, megabytes = _check("check", str(path))
    assert code == 1
    assert stderr.startswith(f"{path}{expected}\n"), stderr[:500]
    assert "Traceback" not in stderr
    assert seconds - startup < 1.5, (seconds, startup)
    assert megabytes < 250, megabytes


def test_a_large_list_argument_to_10000_block_calls_is_not_copied_into_each_label(tmp_path, startup):
    path = tmp_path / "labels.cnn"
    path.write_text(net("for i in range(10000) { b(a) }", "let a = range(1000000)\nblock b(xs) { relu }\n"))
    code, stderr, seconds, megabytes = _check("check", str(path), "--max-nodes", "10001")  # 10,000 calls and the input
    assert code == 0, stderr[:500]
    assert seconds - startup < 3.0, (seconds, startup)
    assert megabytes < 250, megabytes


def test_a_long_list_in_a_message_or_label_shows_its_first_elements():
    import cnndsl
    from cnndsl.core.errors import ValueProblem

    with pytest.raises(ValueProblem) as caught:
        cnndsl.parse(net("conv3x3(range(100))"))
    assert caught.value.message == (
        "channels c must be a whole number, got [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, ...]"
    )
    network = cnndsl.parse(net("b(range(20), 2.5)", "block b(xs, f) { relu }\n"))
    assert [group.label for group in ir.network_info(network.graph).groups.values()] == [
        "b([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, ...], 2.5)"
    ]


def test_a_chain_of_aliases_shares_one_work_budget(tmp_path, startup):
    path = tmp_path / "aliases.cnn"
    lines = ["network a0(x=1) {\n    input 3x8x8\n    relu\n}"]
    lines += [f"network a{i} = a{i - 1}(x=sum(range(1000000)))" for i in range(1, 60)]
    path.write_text("\n".join(lines) + "\n")
    code, stderr, seconds, megabytes = _check("summary", str(path), "--network", "a59")
    assert code == 1
    assert stderr.startswith(f"{path}:62:25: " + WORK_MESSAGE + "\n"), stderr[:500]
    assert seconds - startup < 1.5, (seconds, startup)


# ---- finding 9: a valid 4 MB file of one long list -----------------------------------------------
def test_a_4_mb_list_of_numbers_is_read_in_linear_time_and_memory(tmp_path, startup):
    path = tmp_path / "long.cnn"
    path.write_text("let xs = [" + ", ".join(["16"] * 999_999) + ", 8]\n" + net("conv3x3(xs[999999])"))
    assert path.stat().st_size > 3_900_000
    code, stderr, seconds, megabytes = _check("check", str(path))
    assert code == 0, stderr[:500]
    assert seconds - startup < 3.0, (seconds, startup)  # 83 s before, quadratic-free but one token each
    assert megabytes < 300, megabytes


@pytest.mark.parametrize(
    "literal,value",
    [
        ("[16, 32, 64]", [16, 32, 64]),
        ("[\n        1,\n        2.5\n    ]", [1, 2.5]),
        ("[007, 0.50]", [7, 0.5]),
        ("[1, 2][1]", 2),
        ("[[1, 2], [3]]", [[1, 2], [3]]),
    ],
)
def test_number_lists_read_as_one_token_have_the_values_written(literal, value):
    from cnndsl.front.load import Loader

    values = Loader().load_text(f"let v = {literal}\n", "t.cnn").env.values["v"]
    assert repr(values) == repr(value)  # ints stay ints, floats floats


@pytest.mark.parametrize(
    "literal,message",
    [
        ("[1, 2,]", "t.cnn:1:15: error: unexpected `]`\nhint: expected a number"),
        ("[1,\n   2 3]", "t.cnn:2:6: error: unexpected `3`\nhint: expected `,` or `]`"),
        ("[1, 1.2.3]", "t.cnn:1:16: error: unexpected `.`\nhint: expected `,` or `]`"),
        ("[1,\n   9007199254740993]", "t.cnn:2:4: error: 9.01e+15 is too large for a size or count"),
        (
            "[1, 2,\n 1234567890123456789012345678901]",
            "t.cnn:2:2: error: a number of 31 digits is too large for a size or count",
        ),
    ],
)
def test_errors_inside_a_number_list_are_located(literal, message):
    from cnndsl.core.errors import CnnDslError
    from cnndsl.front.load import Loader

    with pytest.raises(CnnDslError) as caught:
        Loader().load_text(f"let v = {literal}\n", "t.cnn")
    assert str(caught.value) == message
