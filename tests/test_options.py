"""The diagram's options are declared once (backends/diagram_options.py) and the output formats are one table
(backends/formats.py): every surface offers exactly the declared options, and a new option or row is picked
up by the surfaces without touching them. The expected lists are written out here, read off the CLI's
documented --help, not from the declaration under test."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from dataclasses import dataclass

import click
import click.testing
import pytest

from cnndsl import cli as cli_module
from cnndsl.api import Network
from cnndsl.backends import formats
from cnndsl.backends.diagram_options import DIAGRAM_OPTIONS, DIAGRAMS, DiagramOptions
from cnndsl.core.errors import ValueProblem
from cnndsl.core.options import declared, option
from cnndsl.embed import BLOCK_OPTIONS, BlockOptions
from cnndsl.serve.analysis import Request

DIAGRAM = ["depth", "expand", "shapes", "cost", "rankdir", "layout", "style", "timeout"]
# the layout's time is set by whoever runs the build
PER_FIGURE = ["depth", "expand", "shapes", "cost", "rankdir", "layout", "style"]
NETWORK = ["source", "network", "input_shape", "params", "max_nodes", "sandbox"]
COMPILE_OWN = ["fmt", "output", "weights", "seed", "opset", "fold_bn", "external_data"]


def _params(command: click.Command) -> list[str]:
    return [param.name for param in command.params]


def test_the_declaration_is_the_documented_options():
    assert [item.name for item in DIAGRAM_OPTIONS] == DIAGRAM
    assert [(item.name, item.kind, item.default) for item in DIAGRAM_OPTIONS] == [
        ("depth", int, None),
        ("expand", bool, False),
        ("shapes", bool, False),
        ("cost", bool, False),
        ("rankdir", str, "TB"),
        ("layout", str, None),
        ("style", str, "graph"),
        ("timeout", float, None),
    ]


def test_draw_and_compile_offer_exactly_the_declared_options():
    assert _params(cli_module.draw) == NETWORK + ["output"] + DIAGRAM
    assert _params(cli_module.compile_command) == NETWORK + COMPILE_OWN + DIAGRAM
    # compile's own options are the backends' options of the formats table, nothing more
    backend_options = {name for row in formats.FORMATS for name in row.options}
    assert backend_options == set(COMPILE_OWN) - {"fmt", "output"}


def test_the_api_takes_exactly_the_declared_options_with_their_defaults():
    signature = inspect.signature(Network.draw)
    taken = {name: p.default for name, p in signature.parameters.items() if name not in ("self", "path")}
    assert taken == {item.name: item.default for item in DIAGRAM_OPTIONS}


@pytest.mark.needs_dot
def test_the_apis_timeout_bounds_the_layout_and_writes_nothing(tmp_path):
    import cnndsl
    from cnndsl.core.errors import LimitProblem

    with pytest.raises(LimitProblem, match=r"Graphviz took longer than 1e-06 s to lay out the diagram of `googlenet`"):
        cnndsl.load("googlenet").draw(tmp_path / "g.svg", timeout=1e-6)
    assert list(tmp_path.iterdir()) == []


def test_sphinx_and_markdown_offer_the_blocks_options_and_every_per_figure_diagram_option():
    from cnndsl.sphinx import CnnDslDirective

    names = ["network", *PER_FIGURE, "summary", "source"]
    assert [item.name for item in BLOCK_OPTIONS] == names
    assert list(CnnDslDirective.option_spec) == names
    with pytest.raises(ValueProblem, match=r"unknown option `timeout`") as caught:
        BlockOptions.from_strings({"timeout": "5"})
    assert caught.value.hint == f"the options are {', '.join(names)}"
    written = BlockOptions.from_strings(
        {"network": "n", "depth": "2", "expand": "yes", "shapes": "", "cost": "true", "rankdir": "LR", "summary": "no"}
    )
    assert written == BlockOptions(network="n", depth=2, expand=True, shapes=True, cost=True, rankdir="LR")


def test_the_docs_integration_page_lists_exactly_the_block_options():
    from docs_pages import page_text

    rows = re.findall(r"^\| `(\w+)` \|", page_text("docs-integration.md"), re.MULTILINE)
    assert rows == [item.name for item in BLOCK_OPTIONS]


def test_sphinx_reads_each_option_as_a_markdown_block_does():
    from cnndsl.sphinx import CnnDslDirective

    spec = CnnDslDirective.option_spec
    assert spec["depth"]("3") == 3 and spec["rankdir"]("LR") == "LR" and spec["network"]("n") == "n"
    assert spec["expand"](None) is None  # docutils' flag: present means true
    for name, text, message in [
        ("depth", "-1", "depth must be a whole number from 0, got '-1'"),
        ("rankdir", "lr", "rankdir must be one of TB, LR, got 'lr'"),
        ("network", None, "network needs a value"),
    ]:
        with pytest.raises(ValueError) as caught:
            spec[name](text)
        assert str(caught.value) == message


def test_serve_takes_every_per_figure_option_and_refuses_bad_values():
    body = {"text": "t", "depth": 1, "expand": True, "shapes": True, "cost": True, "rankdir": "LR", "timeout": 999}
    request = Request.from_json(body)
    assert request.diagram == DiagramOptions(depth=1, expand=True, shapes=True, cost=True, rankdir="LR")
    assert Request.from_json(request.to_message()) == request  # what the worker process reads back
    assert set(request.to_message()) == {"text", *PER_FIGURE}
    assert Request.from_json({"text": "t"}).diagram == DiagramOptions()
    for bad, message in [
        ({"depth": -1}, "depth must be a whole number from 0, or null"),
        ({"depth": True}, "depth must be a whole number from 0, or null"),
        ({"rankdir": "BT"}, "rankdir must be one of TB, LR, got 'BT'"),
        ({"rankdir": 3}, "rankdir must be a string, got int"),
    ]:
        with pytest.raises(ValueProblem) as caught:
            Request.from_json({"text": "t", **bad})
        assert caught.value.message == message


def test_a_markdown_block_turns_the_diagram_with_rankdir(tmp_path):
    """LeNet-5 is a column of nine boxes: drawn top to bottom it is taller than wide, left to right wider than tall."""
    import markdown

    def size(attributes: str) -> tuple[float, float]:
        page = f"```cnn {{file=lenet5 {attributes}}}\n```\n"
        svg = markdown.markdown(page, extensions=["cnndsl.markdown"])
        width, height = re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg).groups()
        return float(width), float(height)

    tall, wide = size(""), size("rankdir=LR")
    assert tall[1] > 2 * tall[0] and wide[0] > 2 * wide[1]


# ---- a new option or format is picked up ---------------------------------------------------------------


@dataclass(frozen=True)
class WithLegend(DiagramOptions):
    legend: bool = option(False, help="Add a legend of the colours.", brief="add a legend", formats=DIAGRAMS)
    dpi: int | None = option(None, help="Dots per inch.", formats=("png",), minimum=1)
    font: str = option("Helvetica", help="The labels' font.", formats=DIAGRAMS, per_figure=True)


def test_a_new_diagram_option_reaches_the_click_commands(monkeypatch):
    monkeypatch.setattr(cli_module, "DIAGRAM_OPTIONS", declared(WithLegend))

    @cli_module.diagram_options(brief=True)
    def command(**options):
        return options

    made = click.command()(command)
    by_name = {param.name: param for param in made.params}
    assert list(by_name) == DIAGRAM + ["legend", "dpi", "font"]
    assert by_name["legend"].is_flag and by_name["legend"].help == "Diagram: add a legend."
    assert by_name["dpi"].type.min == 1 and by_name["dpi"].help == "Dots per inch."
    assert by_name["font"].default == "Helvetica" and by_name["font"].show_default
    result = click.testing.CliRunner().invoke(made, ["--legend", "--dpi", "300"], standalone_mode=False)
    assert result.return_value["legend"] is True and result.return_value["dpi"] == 300
    assert click.testing.CliRunner().invoke(made, ["--dpi", "0"]).exit_code == 2


def test_a_new_option_is_read_from_text_and_json_by_its_type():
    new = {item.name: item for item in declared(WithLegend)}
    assert new["legend"].from_text("yes") is True and new["dpi"].from_text("72") == 72
    for bad in ("0", "²", "9" * 5000):
        with pytest.raises(ValueProblem, match="dpi must be a whole number from 1, got '"):
            new["dpi"].from_text(bad)
    assert new["font"].from_json("Courier") == "Courier"
    timeout = next(item for item in DIAGRAM_OPTIONS if item.name == "timeout")
    assert timeout.from_text("2.5") == 2.5 and timeout.from_json(3) == 3.0
    for bad in ("0", "nan", "inf", "soon"):
        with pytest.raises(ValueProblem, match=f"timeout must be a number above 0, got {bad!r}"):
            timeout.from_text(bad)
    with pytest.raises(ValueProblem, match="timeout must be a number above 0, got True"):
        timeout.from_json(True)


def test_a_new_format_row_is_offered_and_its_options_apply_only_to_it(monkeypatch):
    row = formats.Format("json", "json", "the summary as JSON", (), lambda *args: [], ("indent",))
    monkeypatch.setattr(formats, "FORMATS", (*formats.FORMATS, row))
    applies = formats.applies_to()
    assert applies["indent"] == ("json",)
    assert applies["weights"] == ("onnx", "pt2") and applies["depth"] == ("svg", "png", "pdf", "dot")
    assert applies["timeout"] == ("svg", "png", "pdf")


def test_an_option_of_an_unknown_type_is_refused_when_declared():
    @dataclass(frozen=True)
    class Odd:
        size: list = option(None)

    with pytest.raises(TypeError, match="an option is a bool, int, float or str"):
        declared(Odd)


# ---- the table is what the CLI offers, what the docs show, and what each format loads ------------------


def test_compile_offers_every_row_and_writes_its_suffix(cli, tmp_path, monkeypatch):
    to = next(param for param in cli_module.compile_command.params if param.name == "fmt")
    assert list(to.type.choices) == ["onnx", "python", "pt2", "svg", "png", "pdf", "dot"]
    monkeypatch.chdir(tmp_path)
    assert cli("compile", "lenet5", "--to", "python").exit_code == 0
    assert cli("compile", "lenet5", "--to", "dot").exit_code == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["lenet5.dot", "lenet5.py"]


def test_internals_md_shows_the_formats_table():
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "internals.md").read_text(encoding="utf-8")
    assert formats.formats_table() in page


@pytest.mark.parametrize("fmt", ["onnx", "python", "dot", pytest.param("svg", marks=pytest.mark.needs_dot)])
def test_writing_a_format_loads_only_what_its_row_needs(fmt, tmp_path):
    script = (
        "import sys\nfrom cnndsl.cli import main\n"
        f"try:\n    main(['compile', 'lenet5', '--to', '{fmt}', '-o', {str(tmp_path / 'out')!r}])\n"
        "except SystemExit as done:\n    assert not done.code, done.code\n"
        "print(sorted(m for m in ('torch', 'onnx', 'graphviz') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    needs = formats.BY_NAME[fmt].needs
    assert loaded.splitlines()[-1] == str(sorted(m for m in ("torch", "onnx", "graphviz") if m in needs))
