"""docs/torch.md runs as written: its python blocks in order in one namespace, its console commands print
what it shows, and its code excerpts are in the code generated so far."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "torch.md"
BLOCK = re.compile(r"```(python|console|text)\n(.*?)```", re.DOTALL)


def _generated_code(namespace: dict, folder: Path) -> str:
    """`model.code` of the module the page last built, and every source file its commands wrote."""
    model = namespace.get("model")
    files = [path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.py"))]
    return "\n".join([getattr(model, "code", ""), *files])


def test_every_example_on_the_page_runs(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = BLOCK.findall(DOC.read_text(encoding="utf-8"))
    assert [kind for kind, _ in blocks].count("python") >= 6
    namespace: dict = {}
    for kind, body in blocks:
        if kind == "python":
            exec(compile(body, str(DOC), "exec"), namespace)
        elif kind == "console":
            command, *expected = body.strip("\n").split("\n")
            assert command.startswith("$ cnndsl ")
            result = cli(*shlex.split(command)[2:])
            assert (result.exit_code, result.stdout.splitlines()) == (0, expected)
        else:
            assert body in _generated_code(namespace, tmp_path)
