"""The output formats, one table read by the CLI (`compile --to`, `draw -o`) and the docs (docs/internals.md).

A new output format is one row of `FORMATS`: its name and suffix, the function that writes it, what it needs
installed and the backend's options that change it (the diagram's options, diagram_options.py, declare their
formats themselves). The writers import their backend when they run, so that `cnndsl draw` never loads torch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.errors import FileProblem
from ..core.records import FrozenRecord
from .diagram_options import DIAGRAM_OPTIONS, DIAGRAMS, DiagramOptions

PT2_STEPS = 100  # ATen operators `--to pt2` traces unless --max-nodes is given: see FORMATS
Writer = Callable[[Any, Path, str, dict], list[Path]]  # (network, target, format, options) -> the files written


def _write_onnx(net, target: Path, fmt: str, options: dict) -> list[Path]:
    from .onnx import export_onnx

    return export_onnx(
        net,
        target,
        weights=options.get("weights"),
        opset=options.get("opset"),
        fold_bn=options.get("fold_bn", False),
        external_data=options.get("external_data"),
        seed=options.get("seed"),
    )


def _write_python(net, target: Path, fmt: str, options: dict) -> list[Path]:
    from .torch import write_python

    write_python(net, target)
    return [target]


def _write_pt2(net, target: Path, fmt: str, options: dict) -> list[Path]:
    from .export_cost import require_export_fits
    from .torch import meta_forward, write_pt2

    # before any weight is drawn; an explicit --max-nodes (max_steps) bounds the operators too
    require_export_fits(net, meta_forward(net), options.get("max_steps") or PT2_STEPS)
    weights, seed = options.get("weights"), options.get("seed")
    module = (
        net.to_torch(weights=weights) if weights is not None else net.to_torch(seed=seed) if seed is not None else None
    )
    write_pt2(net, target, module)
    return [target]


def _write_diagram(net, target: Path, fmt: str, options: dict) -> list[Path]:
    from .diagram_fit import draw

    fit = draw(net, target, fmt, DiagramOptions.taken_from(dict(options)))
    if fit is not None and options.get("note"):
        options["note"](fit.note())
    return [target]


class Format(FrozenRecord):
    """One output format: a row of FORMATS."""

    __slots__ = ("name", "suffix", "what", "needs", "write", "options", "beside", "max_nodes")

    def __init__(
        self,
        name: str,  # `--to NAME`
        suffix: str,  # the file's suffix, without the dot
        what: str,  # a phrase for the docs
        needs: tuple[str, ...],  # what writing it loads beyond cnndsl: Python packages, or Graphviz's program `dot`
        write: Writer,
        options: tuple[str, ...] = (),  # the compile options of its backend (the diagram's declare their formats)
        beside: tuple[str, ...] = (),  # suffixes of files it may write beside the target (ONNX's external data)
        max_nodes: int | None = None,  # a lower default node bound, where writing costs more per layer than expanding
    ) -> None:
        self._set(name, suffix, what, needs, write, options, beside, max_nodes)

    @property
    def is_diagram(self) -> bool:
        return self.write is _write_diagram

    @property
    def applies(self) -> tuple[str, ...]:
        """Every option that changes this format's output."""
        return self.options + tuple(item.name for item in DIAGRAM_OPTIONS if self.name in item.spec.formats)


FORMATS: tuple[Format, ...] = (
    Format(
        "onnx",
        "onnx",
        "an ONNX model",
        ("onnx",),
        _write_onnx,
        ("weights", "seed", "opset", "fold_bn", "external_data"),
        (".data",),  # onnx.external_data_path
    ),
    # each layer's class is built and checked by torch: about 1 ms a node beside torch's own import, so 1,000
    # nodes keep the answer within docs/errors.md's 5 s (tests/test_bounds.py)
    Format("python", "py", "PyTorch source: one file, one nn.Module class", ("torch",), _write_python, max_nodes=1_000),
    # torch.export traces a few ms of CPU per ATen operator beside 4 s of imports (backends/export_cost.py), so by
    # default it takes at most PT2_STEPS operators to keep docs/errors.md's 5 s (tests/test_pt2_bounds.py); counting
    # them at 1,000 nodes stays within it
    Format("pt2", "pt2", "a torch.export program", ("torch",), _write_pt2, ("weights", "seed"), max_nodes=1_000),
    Format("svg", "svg", "the diagram as SVG", ("graphviz", "dot"), _write_diagram),
    Format("png", "png", "the diagram as PNG", ("graphviz", "dot"), _write_diagram),
    Format("pdf", "pdf", "the diagram as PDF", ("graphviz", "dot"), _write_diagram),
    Format("dot", "dot", "the diagram's Graphviz DOT text", ("graphviz",), _write_diagram),
)
BY_NAME = {row.name: row for row in FORMATS}
DIAGRAM_FORMATS = tuple(row.name for row in FORMATS if row.is_diagram)


def applies_to() -> dict[str, tuple[str, ...]]:
    """Which formats each option changes, options in the table's order: given with another, it is refused."""
    found: dict[str, list[str]] = {}
    for row in FORMATS:
        for name in row.applies:
            found.setdefault(name, []).append(row.name)
    return {name: tuple(formats) for name, formats in found.items()}


def write(net, fmt: str, target: Path, options: dict) -> list[Path]:
    """Hand the network to the writer of `fmt`; each writes atomically. Returns the files written."""
    row = BY_NAME[fmt]
    outputs = [target, *(target.with_name(target.name + suffix) for suffix in row.beside)]
    _refuse_overwriting_inputs(outputs, net, options.get("weights"))
    return row.write(net, target, fmt, options)


def _refuse_overwriting_inputs(targets: list[Path], net, weights) -> None:
    """No output replaces a .cnn file or an input: the source it was compiled from, or the checkpoint."""
    inputs = [("the source", Path(net.file))]
    if isinstance(weights, str) and weights != "torchvision":
        inputs.append(("the checkpoint", Path(weights)))
    for target in targets:
        same = next((name for name, path in inputs if _same_file(target, path)), None)
        if target.suffix == ".cnn" or same:
            raise FileProblem(
                f"refusing to write {target}: it would overwrite {same or 'a .cnn file'}",
                hint="choose another output name with -o",
            )


def _same_file(target: Path, path: Path) -> bool:
    try:
        return target.exists() and path.exists() and target.samefile(path)
    except OSError:
        return False


def formats_table() -> str:
    """FORMATS as the Markdown table docs/internals.md shows (a test holds the page to it)."""
    rows = ["| `--to` | suffix | what | needs | options |", "|---|---|---|---|---|"]
    for row in FORMATS:
        options = ", ".join(f"`{name}`" for name in row.applies)
        rows.append(f"| `{row.name}` | `.{row.suffix}` | {row.what} | {', '.join(row.needs)} | {options} |")
    return "\n".join(rows)


def _check_declarations() -> None:
    """The diagram rows are the diagram's formats, and every option's formats are rows of the table (a typo
    would silently make an option apply nowhere)."""
    if DIAGRAM_FORMATS != DIAGRAMS:
        raise TypeError(f"the diagram rows {DIAGRAM_FORMATS} are not diagram_options.DIAGRAMS {DIAGRAMS}")
    for item in DIAGRAM_OPTIONS:
        unknown = set(item.spec.formats) - set(BY_NAME)
        if unknown:
            raise TypeError(f"option {item.name} names unknown formats {sorted(unknown)}")


_check_declarations()
