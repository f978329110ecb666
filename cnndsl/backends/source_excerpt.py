"""The `.cnn` text a generated file quotes: the network's own definition (for `network x = family(...)`,
the family's and that line) and the blocks it calls, not the rest of the file it was read from."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import CnnDslError
from ..core.source_map import source_name
from ..front.load import Loader, read_source
from ..front.syntax import NetworkAlias
from ..graph import ir
from ..graph.expand import BlockRef, NetworkRef


def network_text(network) -> str:
    """The definitions the network is built from, in file order, those of an imported file first and
    named; the whole source where they cannot be found (text compiled without its file)."""
    try:
        definitions = _definitions(network)
    except (CnnDslError, OSError, KeyError):
        return network.source
    texts, files = [], {}
    for definition in sorted(
        definitions, key=lambda item: (item.pos.file == network.file, item.pos.file, item.pos.line)
    ):
        file = definition.pos.file
        if file not in files:
            files[file] = network.source if file == network.file else read_source(Path(file))
        closing = ")" if isinstance(definition, NetworkAlias) else "}"
        text = _definition_text(files[file], definition.pos.line, definition.pos.column, closing)
        if text is None:
            return network.source
        note = "" if file == network.file else f"# from {source_name(file, network.file)}\n"
        texts.append(note + text)
    return "\n\n".join(texts)


def _definitions(network) -> list:
    """The network's definition, its family's, and the definition of every block its expansion called."""
    loader = Loader()
    path = Path(network.file)
    module = loader.load_path(path) if path.is_file() else loader.load_text(network.source, network.file)
    values = module.env.values
    reference = values[network.name]
    found = [reference.definition]
    if isinstance(reference.definition, NetworkAlias):
        found.append(values[reference.definition.target].definition)
        if not isinstance(values[reference.definition.target], NetworkRef):
            raise KeyError(reference.definition.target)
    groups = ir.network_info(network.graph).groups.values()
    blocks = {group.call.block for group in groups if group.call is not None}
    for name in sorted(blocks):
        block = values[name]
        if not isinstance(block, BlockRef):
            raise KeyError(name)
        found.append(block.definition)
    return found


def _definition_text(text: str, line: int, column: int, closing: str) -> str | None:
    """The whole lines from the definition at (line, column) to the first `closing` bracket that brings the
    depth back to none: its body's `}`, or an alias's `)`; brackets in comments and strings not counted."""
    lines = text.splitlines(keepends=True)
    start = sum(len(row) for row in lines[: line - 1]) + column - 1
    depth, quote, comment, index = 0, None, False, start
    while index < len(text):
        char = text[index]
        if comment:
            comment = char != "\n"
        elif quote:
            quote = None if char == quote else quote
        elif char == "#":
            comment = True
        elif char in "\"'":
            quote = char
        elif char in "({[":
            depth += 1
        elif char in ")}]":
            depth -= 1
            if depth == 0 and char == closing:
                end = text.find("\n", index)
                return text[sum(len(row) for row in lines[: line - 1]) : len(text) if end < 0 else end]
        index += 1
    return None
