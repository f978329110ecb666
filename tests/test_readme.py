"""The README's examples run: its network has the counts it claims, its summary excerpt is what
the command prints, and its Python snippet works."""

from __future__ import annotations

from docs_pages import fences, page_text, run_python

import cnndsl

README = page_text("README.md")


def _blocks(language: str) -> list[str]:
    return [fence.body for fence in fences("README.md", language)]


def test_the_readme_network_is_resnet50_with_the_counts_it_states():
    (source,) = _blocks("cnn")
    network = cnndsl.parse(source)
    assert (network.params, network.macs) == (25_557_032, 4_089_184_256)
    assert f"{network.params:,} parameters and {network.macs:,} multiply-accumulates" in README


def test_the_mission_line_quoted_in_the_readme_works():
    assert "`stage(conv3x3*2, pool) x5`" in README
    assert cnndsl.parse("network n { input 3x64x64\n stage(conv3x3*2, pool) x5 }").input_shape == (3, 64, 64)


def test_the_summary_excerpt_is_what_the_command_prints(cli):
    (excerpt,) = [block for block in _blocks("text") if block.startswith("$ cnndsl summary resnet50")]
    printed = cli("summary", "resnet50").stdout.splitlines()
    shown = [line for line in excerpt.splitlines()[1:] if line.strip() != "..."]
    assert shown == printed[:6] + printed[-(len(shown) - 6) :]


def test_the_python_snippet_runs():
    (snippet,) = _blocks("python")
    printed = []
    namespace: dict = {"print": lambda *args: printed.append(args)}
    run_python(snippet, "README.md", namespace)
    assert printed[0] == (namespace["net"].params, namespace["net"].macs)
    assert namespace["net"].params == 25_557_032 - 2049 * 1000 + 2049 * 10
    assert sum(p.numel() for p in namespace["module"].parameters()) == namespace["net"].params
