"""Every example in docs/language.md runs: ```cnn blocks load and meet their `# expect:` lines,
```cnn-error blocks fail with exactly the error shown after them."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import cnndsl
from cnndsl.errors import CnnDslError
from cnndsl.ops import format_shape

DOC = Path(__file__).resolve().parent.parent / "docs" / "language.md"
BLOCK = re.compile(r"```(cnn|cnn-error|text)\n(.*?)```", re.DOTALL)


def _blocks():
    return [(kind, body) for kind, body in BLOCK.findall(DOC.read_text(encoding="utf-8"))]


def _examples():
    return [body for kind, body in _blocks() if kind == "cnn"]


def _error_examples():
    blocks = _blocks()
    return [(body, blocks[i + 1][1]) for i, (kind, body) in enumerate(blocks) if kind == "cnn-error"]


def _expectations(body: str) -> dict[str, str]:
    found = {}
    for line in body.splitlines():
        if line.startswith("# expect:"):
            found.update(item.split("=", 1) for item in line[len("# expect:"):].split())
    return found


def test_the_page_has_examples():
    assert len(_examples()) >= 10 and len(_error_examples()) >= 2


@pytest.mark.parametrize("body", _examples(), ids=lambda body: body.split("{")[0].split()[-1])
def test_example_loads_and_meets_its_expectations(body, tmp_path):
    expect = _expectations(body)
    path = tmp_path / "example.cnn"
    path.write_text(body, encoding="utf-8")
    network = cnndsl.load(path, network=expect.get("network"))
    output = network.graph.nodes[network.outputs[0][1]]
    if "shape" in expect:
        assert format_shape(output["shape"]).replace("×", "x") == expect["shape"]
    for figure in ("params", "macs"):
        if figure in expect:
            assert getattr(network, figure) == int(expect[figure])
    if "memory" in expect:
        assert output["memory_bytes"] == int(expect["memory"])
    if "rf" in expect:
        assert output["rf"] == (int(expect["rf"]),) * 2


@pytest.mark.parametrize("body,expected", _error_examples())
def test_error_example_fails_with_the_text_shown(body, expected):
    with pytest.raises(CnnDslError) as caught:
        cnndsl.parse(body, file="<doc>")
    assert caught.value.render(body) == expected.rstrip("\n")
