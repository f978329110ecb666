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
