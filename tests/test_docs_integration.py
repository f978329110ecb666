"""Real documentation builds: a Sphinx project (`sphinx-build`) and a MkDocs site (`mkdocs build`),
each holding a library network, a .cnn file, an inline network and a broken one. The HTML must hold
an inline <svg> per working block and the summary tables' totals; the broken block must be a
warning at its line in the page's source, which fails the build in strict mode.

Expected totals are counted by hand: LeNet-5 has 156 + 2,416 + 48,120 + 10,164 + 850 = 61,706
parameters; ResNet-18 has 11,689,512 (torchvision's published count); the inline network below
has a 3×3 conv 3→16 (16·3·9 + 16 = 448), a batch norm (2·16 = 32) and fc 16→10 (170): 650
parameters, and 16·32·32·9·3 + 16·10 = 442,528 MACs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's `dot` is not installed")

TINY = """\
network tiny {
    input 3x32x32
    conv3x3(16), bn, relu
    gap, fc(10)
}"""
BROKEN = """\
network broken {
    input 3x32x32
    conv3x3(16), maxpol
}"""


def _indented(text: str, by: int) -> str:
    return "\n".join(" " * by + line for line in text.splitlines())


RST = f"""\
Networks
========

A library network:

.. cnndsl:: resnet18
   :depth: 1
   :summary:

A file:

.. cnndsl:: nets/lenet.cnn
   :summary:
   :source:

Inline:

.. cnndsl::
   :shapes:
   :cost:
   :summary:

{_indented(TINY, 3)}

Broken:

.. cnndsl::

{_indented(BROKEN, 3)}

Highlighted only:

.. code-block:: cnn

   network plain {{ input 3x8x8, conv3x3(4) }}
"""

MARKDOWN = f"""\
# Networks

A library network:

```cnn {{file=resnet18 depth=1 summary=true}}
```

A file:

```cnn {{file=nets/lenet.cnn summary=true source=true}}
```

Inline:

```cnn {{shapes=true cost=true summary=true}}
{TINY}
```

Broken:

```cnn
{BROKEN}
```
"""


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, timeout=180)


def _broken_line(page: str) -> tuple[int, int]:
    """Line and column of `maxpol` in the page's source, counted here from the text itself."""
    for number, line in enumerate(page.splitlines(), 1):
        if "maxpol" in line:
            return number, line.index("maxpol") + 1
    raise AssertionError("no broken block")


def _project(folder: Path) -> None:
    (folder / "nets").mkdir(parents=True)
    shutil.copy(ROOT / "library" / "lenet.cnn", folder / "nets" / "lenet.cnn")


@pytest.fixture(scope="module")
def sphinx_build(tmp_path_factory):
    source = tmp_path_factory.mktemp("sphinx")
    _project(source)
    (source / "conf.py").write_text('extensions = ["cnndsl.sphinx"]\n')
    (source / "index.rst").write_text(RST)
    result = _run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", ".", "_build"], source)
    return result, (source / "_build" / "index.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def mkdocs_build(tmp_path_factory):
    site = tmp_path_factory.mktemp("mkdocs")
    _project(site / "docs")
    (site / "mkdocs.yml").write_text("site_name: nets\nmarkdown_extensions:\n  - cnndsl.markdown\n")
    (site / "docs" / "index.md").write_text(MARKDOWN)
    result = _run([sys.executable, "-m", "mkdocs", "build", "--strict"], site)
    return result, (site / "site" / "index.html").read_text(encoding="utf-8")


def _totals(html: str) -> list[tuple[str, str]]:
    return re.findall(r'class="cnndsl-params">([\d,]+)</td><td class="cnndsl-macs">([\d,]+)<', html)


@pytest.mark.parametrize("build", ["sphinx_build", "mkdocs_build"])
def test_each_working_block_is_an_inline_svg_with_its_summary_totals(build, request):
    _, html = request.getfixturevalue(build)
    assert html.count("<svg") == 3
    params = [params for params, _ in _totals(html)]
    assert params == ["11,689,512", "61,706", "650"]
    assert ("650", "442,528") in _totals(html)


def test_sphinx_warns_at_the_broken_blocks_line_and_fails_under_W(sphinx_build):
    result, html = sphinx_build
    line, column = _broken_line(RST)
    assert result.returncode != 0
    assert (
        f"index.rst:{line}: WARNING: cnndsl: unknown layer `maxpol` (column {column}); "
        f"hint: did you mean `maxpool`? [cnndsl]"
    ) in result.stderr
    shown = _error_shown(html)  # the page shows the located error where the diagram would be
    assert shown[0].endswith(f"index.rst:{line}:{column}: error: unknown layer `maxpol`")
    assert shown[1:] == [
        f"    {RST.splitlines()[line - 1]}",
        "    " + " " * (column - 1) + "^",
        "hint: did you mean `maxpool`?",
    ]


def _error_shown(html: str) -> list[str]:
    found = re.search(r'<pre class="cnndsl-error"[^>]*>(.*?)</pre>', html, re.DOTALL)
    return found.group(1).replace("&#x27;", "'").replace("&quot;", '"').splitlines()


def test_mkdocs_warns_at_the_broken_blocks_line_and_fails_when_strict(mkdocs_build):
    result, html = mkdocs_build
    line, _ = _broken_line(MARKDOWN)
    column = BROKEN.splitlines()[2].index("maxpol") + 1
    assert result.returncode != 0
    assert (
        f"WARNING -  index.md:{line}: cnndsl: unknown layer `maxpol` (column {column}); hint: did you mean `maxpool`?"
    ) in result.stderr
    assert _error_shown(html) == [
        f"index.md:{line}:{column}: error: unknown layer `maxpol`",
        f"    {MARKDOWN.splitlines()[line - 1]}",
        "    " + " " * (column - 1) + "^",
        "hint: did you mean `maxpool`?",
    ]


def test_sphinx_highlights_cnn_code_blocks_and_the_source_option(sphinx_build):
    _, html = sphinx_build
    assert '<span class="nb">conv3x3</span>' in html  # `.. code-block:: cnn`, Name.Builtin
    # :source: shows the file beside its figure, highlighted with inline styles (no theme stylesheet needed)
    assert re.search(
        r'<div class="cnndsl-source"[^>]*><div class="highlight"[^>]*><pre[^>]*>.*?'
        r'<span style="[^"]+">network</span>(<span[^>]*> </span>)<span style="[^"]+">lenet5</span>',
        html,
        re.DOTALL,
    )


def test_plain_python_markdown_renders_a_block_and_logs_a_located_warning(caplog):
    import markdown

    page = f"# A page\n\n```cnn {{depth=0}}\n{TINY}\n```\n\n```cnn {{depth=deep}}\n{TINY}\n```\n"
    html = markdown.markdown(page, extensions=["cnndsl.markdown"])
    assert html.count("<svg") == 1
    line = page.splitlines().index("```cnn {depth=deep}") + 1
    assert caplog.messages == [f"<markdown>:{line}: cnndsl: depth must be a whole number from 0, got 'deep'"]


# ---- a docs build reads only what its author pointed it at ----------------------------------------------
SECRET = "API_KEY=hunter2-not-for-the-page"
PRIVATE = "network private_net {\n    input 3x8x8\n    PRIVATE_TOKEN = hunter3\n}\n"  # its error would quote line 3


@pytest.fixture
def docs_tree(tmp_path) -> Path:
    """docs/ (the source folder, with nets/lenet.cnn and a link out of it) beside outside/ (a .env secret and a
    private .cnn whose broken line an error would quote)."""
    _project(tmp_path / "docs")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.env").write_text(SECRET + "\n", encoding="utf-8")
    (tmp_path / "outside" / "private.cnn").write_text(PRIVATE, encoding="utf-8")
    (tmp_path / "docs" / "nets" / "link.cnn").symlink_to(tmp_path / "outside" / "private.cnn")
    (tmp_path / "docs" / "nets" / "secret.env").write_text(SECRET + "\n", encoding="utf-8")
    return tmp_path / "docs"


OUTSIDE = "is outside the docs source folder; hint: a block draws only .cnn files inside the docs source folder (links followed), or library networks"
NOT_CNN = ": a block draws only .cnn files; hint: name a .cnn file in the docs source folder"
REFUSED = [  # (file= as written, the warning after `cnndsl: `), the tmp_path spelt {tmp}
    ("../outside/private.cnn", f"../outside/private.cnn {OUTSIDE}"),
    (
        "{tmp}/outside/private.cnn",
        "{tmp}/docs{tmp}/outside/private.cnn: no such file; hint: check the path, or give a library name like resnet50",
    ),
    ("nets/link.cnn", f"nets/link.cnn {OUTSIDE}"),
    ("../outside/secret.env", f"../outside/secret.env{NOT_CNN}"),
    ("nets/secret.env", f"nets/secret.env{NOT_CNN}"),
    ("/etc/passwd", f"/etc/passwd{NOT_CNN}"),
    ("/../../../../../etc/x.cnn", f"/../../../../../etc/x.cnn {OUTSIDE}"),
    (
        "passwd",
        "`passwd` is neither a .cnn file nor a library network; hint: name a .cnn file in the docs, or run `cnndsl list`",
    ),
]


@pytest.mark.parametrize(("target", "warning"), REFUSED, ids=[target for target, _ in REFUSED])
def test_a_markdown_block_reads_no_file_outside_the_docs_folder_nor_of_another_kind(
    docs_tree, caplog, monkeypatch, target, warning
):
    import markdown

    from cnndsl.markdown import CnnDslExtension

    tmp = str(docs_tree.parent)
    monkeypatch.chdir(docs_tree.parent / "outside")  # a bare name must not find a file of the current folder
    (docs_tree.parent / "outside" / "passwd").write_text(SECRET + "\n", encoding="utf-8")
    page = f'# A page\n\n```cnn {{file="{target.format(tmp=tmp)}"}}\n```\n'
    html = markdown.markdown(page, extensions=[CnnDslExtension(base_path=str(docs_tree))])
    assert caplog.messages == [f"<markdown>:3: cnndsl: {warning.format(tmp=tmp)}"]
    assert "hunter" not in html and "root:" not in html and "<svg" not in html


def test_a_markdown_block_draws_a_cnn_file_inside_the_docs_folder_and_a_library_network(docs_tree, caplog):
    """`nets/lenet.cnn` and `/nets/lenet.cnn` (from the docs folder) name docs/nets/lenet.cnn; `lenet5` the library's."""
    import markdown

    from cnndsl.markdown import CnnDslExtension

    page = "".join(
        f"```cnn {{file={target} summary=true}}\n```\n\n" for target in ("nets/lenet.cnn", "/nets/lenet.cnn", "lenet5")
    )
    html = markdown.markdown(page, extensions=[CnnDslExtension(base_path=str(docs_tree))])
    assert caplog.messages == [] and [params for params, _ in _totals(html)] == ["61,706"] * 3


def _tangled(convolutions: int = 150) -> str:
    """A 4.6 KB network whose diagram keeps `dot` busy for many seconds (5 s at 100 convolutions on this
    project's machine, growing faster than the square): each add joins a tap far back, so arrows cross."""
    taps = [f"    t{index}: conv3x3(8)" for index in range(convolutions)]
    adds = [f"    add(@t{index * 37 % convolutions})" for index in range(convolutions)]
    return "\n".join(["network tangled {", "    input 8x8x8", *taps, *adds, "}"])


SPHINX_REFUSED = """\
Refused
=======

.. cnndsl:: ../outside/private.cnn

.. cnndsl:: nets/link.cnn

.. cnndsl:: /etc/passwd

.. cnndsl:: nets/pipe.cnn

Too tangled to lay out in a second:

.. cnndsl::

{tangled}
"""


def test_sphinx_reads_no_file_outside_the_source_folder_nor_a_fifo_and_bounds_the_layout(docs_tree):
    """A FIFO named by a block would block the build for good; the tangled block takes `dot` far more than the
    second conf.py allows. Every refusal is a warning at its directive, and nothing of the files is on the page."""
    os.mkfifo(docs_tree / "nets" / "pipe.cnn")
    (docs_tree / "conf.py").write_text('extensions = ["cnndsl.sphinx"]\ncnndsl_layout_timeout = 1\n')
    page = SPHINX_REFUSED.format(tangled=_indented(_tangled(), 3))
    (docs_tree / "index.rst").write_text(page)
    command = [sys.executable, "-m", "sphinx", "-q", "--no-color", "-b", "html", ".", "_build"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    started = time.monotonic()
    result = subprocess.run(command, cwd=docs_tree, capture_output=True, text=True, env=env, timeout=60)
    assert time.monotonic() - started < 30
    lines = page.splitlines()
    where = {
        target: lines.index(f".. cnndsl:: {target}") + 1
        for target in ("../outside/private.cnn", "nets/link.cnn", "/etc/passwd", "nets/pipe.cnn")
    }
    warnings = [line.split("WARNING: ", 1)[1] for line in result.stderr.splitlines() if "WARNING: " in line]
    tangled_line = lines.index("   network tangled {") + 2  # the `input` line, where the diagram's network starts
    assert warnings == [
        f"cnndsl: ../outside/private.cnn {OUTSIDE} [cnndsl]",
        f"cnndsl: nets/link.cnn {OUTSIDE} [cnndsl]",
        f"cnndsl: /etc/passwd{NOT_CNN} [cnndsl]",
        f"cnndsl: {docs_tree}/nets/pipe.cnn is a FIFO, not a .cnn file [cnndsl]",
        "cnndsl: Graphviz took longer than 1 s to lay out the diagram of `tangled` and was stopped (column 8); "
        "hint: draw fewer boxes with a smaller depth, or allow more time (cnndsl draw --timeout SECONDS) [cnndsl]",
    ]
    located = [
        line.split(": WARNING", 1)[0].rsplit(":", 1)[1] for line in result.stderr.splitlines() if "WARNING: " in line
    ]
    assert located == [str(line) for line in (*where.values(), tangled_line)]
    html = (docs_tree / "_build" / "index.html").read_text(encoding="utf-8")
    assert "hunter" not in html and "root:" not in html and "<svg" not in html


def test_markdown_refuses_a_fifo_at_once_and_bounds_the_layout(docs_tree):
    """In a process of its own: on a FIFO, Python-Markdown would block for good."""
    os.mkfifo(docs_tree / "nets" / "pipe.cnn")
    page = f"```cnn {{file=nets/pipe.cnn}}\n```\n\n```cnn\n{_tangled()}\n```\n"
    script = (
        "import sys, markdown; from cnndsl.markdown import CnnDslExtension; "
        f"markdown.markdown(sys.stdin.read(), extensions=[CnnDslExtension(base_path={str(docs_tree)!r}, layout_timeout=1)])"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", script], input=page, capture_output=True, text=True, env=env, timeout=60
    )
    assert time.monotonic() - started < 15
    assert result.stderr.splitlines() == [
        f"<markdown>:1: cnndsl: {docs_tree}/nets/pipe.cnn is a FIFO, not a .cnn file",
        "<markdown>:6: cnndsl: Graphviz took longer than 1 s to lay out the diagram of `tangled` and was stopped "
        "(column 5); hint: draw fewer boxes with a smaller depth, or allow more time (cnndsl draw --timeout SECONDS)",
    ]


@pytest.mark.parametrize("command", [["draw", "-o", "net.svg"], ["compile", "--to", "png", "-o", "net.svg"]])
def test_draw_stops_graphviz_at_its_timeout_with_a_located_error_and_writes_nothing(
    tmp_path, monkeypatch, cli, command
):
    monkeypatch.chdir(tmp_path)
    Path("net.cnn").write_text(_tangled() + "\n", encoding="utf-8")
    started = time.monotonic()
    result = cli(*command[:1], "net.cnn", *command[1:], "--timeout", "0.5")
    assert time.monotonic() - started < 5
    assert (result.exit_code, result.stderr) == (
        1,
        f"{tmp_path}/net.cnn:2:5: error: Graphviz took longer than 0.5 s to lay out the diagram of `tangled` and was stopped\n"
        "        input 8x8x8\n        ^\n"
        "hint: draw fewer boxes with a smaller depth, or allow more time (cnndsl draw --timeout SECONDS)\n",
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["net.cnn"]


def test_an_inline_block_imports_only_from_the_pages_folder_and_the_library(docs_tree, caplog):
    import markdown

    from cnndsl.markdown import CnnDslExtension

    private = docs_tree.parent / "outside" / "private.cnn"
    page = f'```cnn\nimport "{private}"\nimport "nets/lenet.cnn"\nnetwork mine {{ input 3x8x8, relu }}\n```\n'
    html = markdown.markdown(page, extensions=[CnnDslExtension(base_path=str(docs_tree))])
    assert caplog.messages == [
        f"<markdown>:2: cnndsl: cannot import '{private}': the sandbox admits only files in the importing file's "
        "folder (or below) and the library (column 1); hint: move the file beside the importing one, or import a "
        "library file by name"
    ]
    assert "hunter" not in html and "<svg" not in html
    good = markdown.markdown(
        page.replace(f'import "{private}"\n', ""), extensions=[CnnDslExtension(base_path=str(docs_tree))]
    )
    assert good.count("<svg") == 1  # nets/lenet.cnn, from the page's folder, is admitted
