"""The Pygments lexer reads every shipped and documented network without an Error token, gives each
part of the grammar its token, and is found by alias and file name through the `pygments.lexers`
entry point that pyproject.toml declares."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, String
from pygments.token import Punctuation as P

from cnndsl.lexer import KEYWORDS, CnnLexer
from cnndsl.ops import known_names

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = sorted((ROOT / "library").glob("*.cnn"))
FENCE = re.compile(r"^```cnn(?:[ \t][^\n]*)?\n(.*?)^```", re.MULTILINE | re.DOTALL)  # not ```cnn-error


def _doc_blocks() -> list[tuple[str, str]]:
    blocks = []
    for page in sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]:
        for number, body in enumerate(FENCE.findall(page.read_text(encoding="utf-8")), 1):
            blocks.append((f"{page.relative_to(ROOT)}#{number}", body))
    return blocks


def _errors(text: str) -> list[str]:
    return [value for token, value in CnnLexer().get_tokens(text) if token in Error]


def _tokens(text: str) -> list[tuple]:
    return [(token, value) for token, value in CnnLexer().get_tokens(text) if value.strip()]


@pytest.mark.parametrize("path", LIBRARY, ids=lambda path: path.name)
def test_every_library_file_lexes_without_an_error_token(path):
    assert _errors(path.read_text(encoding="utf-8")) == []


def test_the_docs_have_cnn_blocks():
    assert len(_doc_blocks()) >= 10


@pytest.mark.parametrize("where,body", _doc_blocks(), ids=[where for where, _ in _doc_blocks()])
def test_every_cnn_block_of_the_docs_lexes_without_an_error_token(where, body):
    assert _errors(body) == []


def test_a_character_outside_the_grammar_is_an_error_token():
    assert _errors("network n { input 3x8x8, relu $ }") == ["$"]


def test_each_part_of_the_grammar_gets_its_token():
    text = 'import "blocks.cnn"\nnetwork net(c=64) {  # the stem\n    enc1: conv3x3(c, s=2) x 2, add(@enc1)\n}'
    assert _tokens(text) == [
        (Keyword, "import"),
        (String.Double, '"blocks.cnn"'),
        (Keyword.Declaration, "network"),
        (Name.Class, "net"),
        (P, "("),
        (Name, "c"),
        (Operator, "="),
        (Number.Integer, "64"),
        (P, ")"),
        (P, "{"),
        (Comment.Single, "# the stem"),
        (Name.Label, "enc1"),
        (P, ":"),
        (Name.Builtin, "conv3x3"),
        (P, "("),
        (Name, "c"),
        (P, ","),
        (Name, "s"),
        (Operator, "="),
        (Number.Integer, "2"),
        (P, ")"),
        (Operator.Word, "x"),
        (Number.Integer, "2"),
        (P, ","),
        (Name.Builtin, "add"),
        (P, "("),
        (Operator, "@"),
        (Name.Label, "enc1"),
        (P, ")"),
        (P, "}"),
    ]


def test_every_keyword_of_the_grammar_is_a_keyword():
    text = """let k = 3
block unit(c, s=1) {
    defaults conv(bias=false)
    residual { conv3x3(c, s=s) } shortcut { conv1x1(c, s=s) }
    dense { bn, relu }
    branch { relu | conv1x1(in.c) }
    scale { gap }
    stage inner { relu }
    for c in [8, 16] { if c > 8 and not false { relu } elif c < 4 or true { tanh } else { relu } }
}
network n { input 3x32x32, unit(8) x 2, a: relu, b: tanh, output @a, train output @b }
"""
    keywords = {value for token, value in _tokens(text) if token in Keyword and token is not Keyword.Constant}
    assert keywords == {
        "let",
        "block",
        "defaults",
        "residual",
        "shortcut",
        "dense",
        "branch",
        "scale",
        "stage",
        "for",
        "in",
        "if",
        "elif",
        "else",
        "network",
        "input",
        "output",
        "train",
    }
    assert _errors(text) == []


def test_shapes_repeats_and_builtins():
    assert _tokens("input 3x224x224") == [(Keyword, "input"), (Number.Integer, "3x224x224")]
    assert _tokens("stage(conv3x3 * 2, pool) x5")[-3:] == [(P, ")"), (Operator.Word, "x"), (Number.Integer, "5")]
    assert _tokens("zip(a, b) if true else 1e-4")[0] == (Name.Function, "zip")
    assert (Keyword.Constant, "true") in _tokens("zip(a, b) if true else 1e-4")
    assert _tokens("1e-4 0.5")[0:2] == [(Number.Float, "1e-4"), (Number.Float, "0.5")]


def test_every_name_the_registry_knows_is_a_layer_and_a_block_name_is_not():
    for name in set(known_names()) - set(KEYWORDS):  # `input` is the grammar's keyword first
        assert _tokens(name) == [(Name.Builtin, name)], name
    assert _tokens("conv7x7 maxpool3x3 bottleneck") == [
        (Name.Builtin, "conv7x7"),
        (Name.Builtin, "maxpool3x3"),
        (Name, "bottleneck"),
    ]


@pytest.fixture(scope="module")
def installed_entry_point(tmp_path_factory) -> Path:
    """A dist-info folder holding the entry points pyproject.toml declares, as pip installs them."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = re.search(r'^\[project\.entry-points\."pygments\.lexers"\]\n(.*?)(?:^\[|\Z)', text, re.M | re.S)
    assert section, "pyproject.toml declares no pygments.lexers entry point"
    folder = tmp_path_factory.mktemp("site")
    info = folder / "cnndsl_probe-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cnndsl-probe\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[pygments.lexers]\n" + section.group(1).replace('"', ""))
    return folder


def test_pygments_finds_the_lexer_by_alias_and_file_name(installed_entry_point, monkeypatch):
    from pygments.lexers import get_lexer_by_name, get_lexer_for_filename

    monkeypatch.syspath_prepend(str(installed_entry_point))
    assert type(get_lexer_by_name("cnn")) is CnnLexer
    assert type(get_lexer_for_filename("resnet.cnn")) is CnnLexer


def test_pygmentize_highlights_a_cnn_file(installed_entry_point):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed_entry_point), str(ROOT)])}
    result = subprocess.run(
        [sys.executable, "-m", "pygments", "-l", "cnn", "-f", "html", str(LIBRARY[0])],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert '<span class="kd">network</span>' in result.stdout and '<span class="nb">relu</span>' in result.stdout
