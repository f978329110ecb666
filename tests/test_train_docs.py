"""docs/train.md runs as written: its python block makes the data set and the network, then each `$ cnndsl`
line of its console block runs in that folder, succeeds, and prints the first line the page shows after it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import torch

DOC = Path(__file__).resolve().parent.parent / "docs" / "train.md"
BLOCK = re.compile(r"```(python|console)\n(.*?)```", re.DOTALL)


def test_the_worked_example_runs(cli, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    blocks = BLOCK.findall(DOC.read_text(encoding="utf-8"))
    assert [kind for kind, _ in blocks] == ["python", "console"]
    exec(compile(blocks[0][1], str(DOC), "exec"), {})
    lines = blocks[1][1].splitlines()
    commands = [index for index, line in enumerate(lines) if line.startswith("$ cnndsl ")]
    assert len(commands) == 2
    for index in commands:
        result = cli(*shlex.split(lines[index])[2:])
        assert result.exit_code == 0, result.stderr
        shown, printed = (_top(text) for text in (lines[index + 1], result.stdout.splitlines()[0]))
        assert printed == shown, result.stdout


def _top(line: str) -> str:
    """The line without its probabilities, up to the first class (the runner-up may differ by machine)."""
    return re.sub(r" \d\.\d{3}", "", line).split(",")[0] if ".png: " in line else line
