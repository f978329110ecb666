"""One runner for a docs page's examples, shared by the tests of every page (README.md and docs/*.md).

A page's fenced blocks run in order: ```python blocks in one namespace, ```console blocks (`$ cnndsl ...`
lines) through the CLI, each printing exactly the lines shown under it (or at least those, where the page
shows the start of a long listing), exiting 1 where it shows an error and 0 otherwise; other blocks go to
the caller (a ```text excerpt, a ```cnn file, a ```cnn-error example).
"""

from __future__ import annotations

import re
import shlex
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```([\w-]+)([^\n]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)  # fences at a line's start


@dataclass(frozen=True)
class Fence:
    kind: str  # python, console, text, cnn, cnn-error, ...
    info: str  # what follows the kind on the fence line (`file=net.cnn`)
    body: str


def page_text(name: str) -> str:
    """`README.md` or a page of docs/ (`torch.md`)."""
    return (ROOT / name if name == "README.md" else ROOT / "docs" / name).read_text(encoding="utf-8")


def fences(name: str, *kinds: str) -> list[Fence]:
    """The page's fenced blocks of these kinds (all of them when none is named), in order."""
    found = [Fence(kind, info.strip(), body) for kind, info, body in FENCE.findall(page_text(name))]
    return [fence for fence in found if not kinds or fence.kind in kinds]


def commands(body: str) -> list[tuple[str, str]]:
    """Each `$ cnndsl ...` line of a console block with the text shown under it."""
    parts = re.split(r"^\$ ", body, flags=re.MULTILINE)
    assert not parts[0].strip(), f"a console block starts with `$ `: {body[:40]!r}"
    return [(line, shown) for line, _, shown in (part.partition("\n") for part in parts[1:])]


def run_command(cli, line: str, shown: str, folder: Path | None = None, first_lines: bool = False) -> str:
    """`$ cnndsl ARGS` prints `shown` (stdout, then stderr; paths under `folder` as the page shows them,
    relative) and exits 1 where it shows an error, else 0; `first_lines`: the page shows only the start.
    Returns what it printed."""
    args = shlex.split(line)
    assert args[0] == "cnndsl", line
    result = cli(*args[1:])
    printed = result.stdout + result.stderr
    if folder is not None:
        printed = printed.replace(f"{folder}/", "")
    assert result.exit_code == (1 if "error:" in shown else 0), (line, result.stderr)
    if first_lines:
        assert printed.splitlines()[: len(shown.splitlines())] == shown.splitlines(), line
    else:
        assert printed == shown, line
    return printed


def run_python(body: str, name: str, namespace: dict) -> None:
    exec(compile(body, name, "exec"), namespace)  # noqa: S102 (the page's own example)


def run_page(
    name: str,
    cli,
    namespace: dict | None = None,
    *,
    folder: Path | None = None,
    first_lines: bool = False,
    other: Callable[[Fence], None] | None = None,
) -> Counter:
    """Run every example of the page in order (see the module's docstring); `other` takes the blocks that are
    neither python nor console. Returns how many of each kind ran (console: commands)."""
    namespace = {} if namespace is None else namespace
    ran: Counter = Counter()
    for fence in fences(name):
        if fence.kind == "python":
            run_python(fence.body, name, namespace)
            ran["python"] += 1
        elif fence.kind == "console":
            for line, shown in commands(fence.body):
                run_command(cli, line, shown, folder, first_lines)
                ran["console"] += 1
        elif other is not None:
            other(fence)
            ran[fence.kind] += 1
    return ran
