"""`cnndsl check`: every network of every file, and every independent error, in one run.

A file's definitions are bound one by one, so a duplicate or a bad `let` does not hide the rest; each
network it defines is expanded with errors recorded statement by statement (`expand_network(errors=)`);
a family whose parameters have no defaults is checked through the networks that instantiate it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import ops
from .core.errors import CnnDslError, NameProblem, Note, SourcePos, SourceWarning, did_you_mean
from .figures import costs as analysis
from .front import syntax as ast
from .front.load import Loader, library_index
from .graph import ir
from .graph.expand import DEFAULT_MAX_NODES, NetworkRef, expand_network


@dataclass
class CheckReport:
    """What checking some files found: errors and warnings in the order met, and how many networks were built."""

    diagnostics: list[CnnDslError] = field(default_factory=list)
    networks: int = 0
    files: int = 0

    @property
    def errors(self) -> list[CnnDslError]:
        return [d for d in self.diagnostics if not isinstance(d, SourceWarning)]

    @property
    def warnings(self) -> list[SourceWarning]:
        return [d for d in self.diagnostics if isinstance(d, SourceWarning)]

    def failed(self, strict: bool = False) -> bool:
        return bool(self.errors or (strict and self.warnings))

    def tally(self) -> str:
        """`2 errors, 1 warning in 3 networks of 2 files`: the last line of the text output."""
        counts = [_plural(len(self.errors), "error"), _plural(len(self.warnings), "warning")]
        return f"{', '.join(counts)} in {_plural(self.networks, 'network')} of {_plural(self.files, 'file')}"

    def to_json(self, read) -> str:
        """One object per diagnostic, with the end of the token it points at, for editors and CI annotations."""
        return json.dumps(
            {
                "diagnostics": [_as_dict(d, read) for d in self.diagnostics],
                "errors": len(self.errors),
                "warnings": len(self.warnings),
                "networks": self.networks,
                "files": self.files,
            },
            indent=2,
        )


def check(
    sources: list[str],
    network: str | None = None,
    input: tuple | None = None,
    params: dict[str, Any] | None = None,
    max_nodes: int = DEFAULT_MAX_NODES,
    sandbox: bool = False,
) -> CheckReport:
    """Check each file (or library network name); `params` go to the networks that declare them.

    `sandbox=True` limits every import to the importing file's folder (and below) and the library.
    """
    report = CheckReport()
    params = params or {}
    taken: set[str] = set()
    for source in sources:
        report.files += 1
        _check_source(str(source), network, input, params, max_nodes, sandbox, report, taken)
    unused = sorted(set(params) - taken)
    if unused and report.networks:
        report.diagnostics.append(
            NameProblem(
                f"no network checked takes the parameter `{unused[0]}`",
                hint="check the spelling, or choose a network with --network",
            )
        )
    return report


def _check_source(
    source: str,
    network: str | None,
    input: tuple | None,
    params: dict[str, Any],
    max_nodes: int,
    sandbox: bool,
    report: CheckReport,
    taken: set[str],
) -> None:
    path = Path(source)
    if not path.exists() and not path.is_symlink() and source in library_index():
        path, network = library_index()[source], network or source
    found: list[CnnDslError] = []
    try:
        module = Loader(errors=found, sandbox=sandbox).load_path(path)
    except CnnDslError as error:  # the text does not parse, or the file cannot be read
        report.diagnostics.extend([*found, error])
        return
    report.diagnostics.extend(found)
    report.diagnostics.extend(_hidden_layers(module.program))
    if network is not None and network not in module.networks:
        report.diagnostics.append(
            NameProblem(
                f"{source} defines no network `{network}`",
                hint=did_you_mean(network, module.networks) or f"it defines: {', '.join(module.networks) or 'none'}",
            )
        )
        return
    for name in [network] if network else module.networks:
        ref = module.env.lookup(name)
        declared = _declared_parameters(ref)
        if network is None and _needs_arguments(ref):
            continue  # a family: its instances check it
        overrides = {key: value for key, value in params.items() if key in declared}
        taken.update(overrides)
        _check_network(ref, overrides, input, max_nodes, report)


def _check_network(
    ref: NetworkRef, overrides: dict[str, Any], input: tuple | None, max_nodes: int, report: CheckReport
) -> None:

    report.networks += 1
    errors: list[CnnDslError] = []
    try:
        graph = expand_network(ref, overrides, input, max_nodes, errors=errors)
        if graph is not None:
            analysis.annotate(graph)
            report.diagnostics.extend(
                warning
                for warning in ir.network_info(graph).warnings
                if not any(seen.pos == warning.pos for seen in report.warnings)
            )
    except CnnDslError as error:
        errors.append(error)
    for error in errors:
        if isinstance(ref.definition, ast.NetworkAlias) and error.pos != ref.definition.pos and not error.notes:
            error.notes.append(
                Note(
                    ref.definition.pos, f"in network `{ref.definition.name}`, an instance of `{ref.definition.target}`"
                )
            )
        if not _already(report, error):
            report.diagnostics.append(error)


def _hidden_layers(program: ast.Program) -> list[SourceWarning]:
    """A block named like a built-in layer replaces it in the whole file, its own body included."""
    warnings = []
    for definition in program.definitions:
        found = ops.lookup(definition.name) if isinstance(definition, ast.BlockDef) else None
        if found is not None and found[0].called_by_name:
            warnings.append(
                SourceWarning(
                    f"block `{definition.name}` hides the built-in layer `{definition.name}`: "
                    f"wherever the block is defined or imported, `{definition.name}` calls the block, in its own body too",
                    definition.pos,
                    f"rename the block, e.g. `{definition.name}_block`",
                )
            )
    return warnings


def _already(report: CheckReport, error: CnnDslError) -> bool:
    """The same error met again through another network of the file (a block they share)."""
    return any(seen.pos == error.pos and seen.message == error.message for seen in report.diagnostics)


def _declared_parameters(ref: NetworkRef) -> set[str]:
    """The parameters of the definition a network (or a chain of `network a = b(...)`) comes from."""
    definition = ref.definition
    for _ in range(64):
        if isinstance(definition, ast.NetworkDef):
            return {param.name for param in definition.params}
        target = ref.env.values.get(definition.target)
        if not isinstance(target, NetworkRef):
            return set()
        ref, definition = target, target.definition
    return set()


def _needs_arguments(ref: NetworkRef) -> bool:
    definition = ref.definition
    return isinstance(definition, ast.NetworkDef) and any(param.default is None for param in definition.params)


_TOKEN = re.compile(r'[A-Za-z_][A-Za-z0-9_]*|\d+(\.\d+)?([eE][-+]?\d+)?|"[^"\n]*"|@[A-Za-z_][A-Za-z0-9_]*|\S')


def _end(pos: SourcePos, text: str | None) -> dict[str, int]:
    """Where the token at `pos` ends (exclusive column), for an editor's underline."""
    lines = text.splitlines() if text is not None else []
    if not 1 <= pos.line <= len(lines):
        return {"line": pos.line, "column": pos.column + 1}
    match = _TOKEN.match(lines[pos.line - 1], pos.column - 1)
    return {"line": pos.line, "column": match.end() + 1 if match else pos.column + 1}


def _as_dict(diagnostic: CnnDslError, read) -> dict[str, Any]:
    pos = diagnostic.pos
    where: dict[str, Any] = {"file": None, "line": None, "column": None, "end": None}
    if pos is not None:
        where = {"file": pos.file, "line": pos.line, "column": pos.column, "end": _end(pos, read(pos.file))}
    return {
        **where,
        "severity": diagnostic.severity,
        "message": diagnostic.message,
        "hint": diagnostic.hint,
        "notes": [
            {"file": n.pos.file, "line": n.pos.line, "column": n.pos.column, "message": n.message}
            for n in diagnostic.notes
        ],
    }


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
