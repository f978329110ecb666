"""Reading an Ultralytics model YAML with the line of every value, so that each refusal names its row.

PyYAML's composer gives every node its place; values are built from the nodes here, with anchors and
aliases refused (a file of a few lines could otherwise expand to billions of values) and a bound on the
values read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.errors import CnnDslError, SourcePos

MAX_VALUES = 100_000  # values in one file; Ultralytics' largest has under 1,000
MAX_NESTING = 32  # lists and mappings inside one another; Ultralytics' files nest 4 deep
TOP_KEYS = {"nc", "scales", "backbone", "head", "depth_multiple", "width_multiple", "activation", "reg_max",
            "end2end", "kpt_shape", "scale", "ch", "channels", "text_model", "yaml_file"}  # fmt: skip


@dataclass
class Row:
    """One `[from, repeats, module, args]` row: its index (the model.N it builds) and its line."""

    index: int
    line: int
    sources: list[int]
    repeats: int
    module: str
    args: list[Any]
    file: str

    def error(self, message: str, hint: str | None = None) -> CnnDslError:
        return CnnDslError(f"{self.module} (module {self.index}) {message}", SourcePos(self.file, self.line, 1), hint)


@dataclass
class ModelYaml:
    """The file's parameters (each with its line) and its rows, backbone then head."""

    file: str
    values: dict[str, Any]
    lines: dict[str, int]
    rows: list[Row]

    def error(self, key: str, message: str, hint: str | None = None) -> CnnDslError:
        return CnnDslError(message, SourcePos(self.file, self.lines.get(key, 1), 1), hint)


def read_yaml(text: str, file: str) -> ModelYaml:
    """The model description in `text`; a located error for what parse_model would not take."""
    import yaml

    try:
        _require_shallow(yaml.parse(text, Loader=yaml.SafeLoader), file)  # before PyYAML's recursive composer
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise CnnDslError(f"not valid YAML: {getattr(error, 'problem', None) or error}", SourcePos(file, line, 1))
    if not isinstance(root, yaml.MappingNode):
        raise CnnDslError("an Ultralytics model YAML is a mapping with `backbone` and `head`", SourcePos(file, 1, 1))
    builder = _Builder(file)
    values, lines, nodes = {}, {}, {}
    for key_node, value_node in root.value:
        key = builder.value(key_node)
        if key not in TOP_KEYS:
            raise CnnDslError(
                f"unknown key `{key}`: its meaning would be lost",
                SourcePos(file, key_node.start_mark.line + 1, 1),
                f"the keys parse_model reads: {', '.join(sorted(TOP_KEYS))}",
            )
        values[key], lines[key], nodes[key] = builder.value(value_node), key_node.start_mark.line + 1, value_node
    for part in ("backbone", "head"):
        if not isinstance(values.get(part), list):
            raise CnnDslError(f"the model needs a `{part}` list of rows", SourcePos(file, lines.get(part, 1), 1))
    rows: list[Row] = []
    for part in ("backbone", "head"):
        for node, value in zip(nodes[part].value, values[part], strict=True):
            rows.append(_row(node, value, len(rows), file))
    return ModelYaml(file, values, lines, rows)


def _require_shallow(events, file: str) -> None:
    """Refuse lists and mappings nested past MAX_NESTING, counted on PyYAML's events (its parser loops; its
    composer and the builder below recurse, so `[[[[...` a few thousand deep would end in a RecursionError)."""
    import yaml

    depth = 0
    for event in events:
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_NESTING:
                raise CnnDslError(
                    f"lists and mappings nested more than {MAX_NESTING} deep",
                    SourcePos(file, event.start_mark.line + 1, event.start_mark.column + 1),
                    "a model YAML nests rows in lists of arguments: 3 or 4 deep",
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _row(node, value, index: int, file: str) -> Row:
    line = node.start_mark.line + 1
    where = SourcePos(file, line, 1)
    if not isinstance(value, list) or len(value) != 4:
        raise CnnDslError(f"module {index}: a row is `[from, repeats, module, args]`", where)
    sources, repeats, module, args = value
    if not isinstance(module, str):
        raise CnnDslError(f"module {index}: the module is named by a string, not `{module!r}`", where)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise CnnDslError(f"{module} (module {index}): repeats must be a whole number from 1, not `{repeats!r}`", where)
    if not isinstance(args, list):
        raise CnnDslError(f"{module} (module {index}): args must be a list, not `{args!r}`", where)
    listed = sources if isinstance(sources, list) else [sources]
    absolute = []
    for source in listed:
        if isinstance(source, bool) or not isinstance(source, int):
            raise CnnDslError(f"{module} (module {index}): `from` takes module indices, not `{source!r}`", where)
        position = source + index if source < 0 else source
        if not 0 <= position < index and not (index == 0 and source == -1):
            raise CnnDslError(
                f"{module} (module {index}): `from` {source} is not an earlier module",
                where,
                f"`from` counts back from this row (-1 is the one before) or names a module from 0 to {index - 1}",
            )
        absolute.append(position)
    return Row(index, line, absolute, repeats, module, args, file)


class _Builder:
    """Python values from YAML nodes, as PyYAML's safe loader builds them, bounded and without aliases."""

    def __init__(self, file: str):
        import yaml

        self.file, self.count, self.seen = file, 0, set()
        self.loader = yaml.SafeLoader("")

    def value(self, node) -> Any:
        import yaml

        self.count += 1
        if self.count > MAX_VALUES or id(node) in self.seen:
            raise CnnDslError(
                "the file repeats values by YAML anchors or holds too many of them",
                SourcePos(self.file, node.start_mark.line + 1, 1),
                "write the rows out; Ultralytics' own files use no anchors",
            )
        self.seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            try:
                return self.loader.construct_object(node)
            except ValueError:  # an integer past Python's 4,300 digits
                raise CnnDslError(
                    f"`{node.value[:20]}…` is not a number cnndsl reads ({len(node.value):,} characters)",
                    SourcePos(self.file, node.start_mark.line + 1, node.start_mark.column + 1),
                ) from None
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item) for item in node.value]
        built = {}
        for key, item in node.value:
            key_value = self.value(key)
            if not isinstance(key_value, (str, int, float, bool)):
                raise CnnDslError("a key must be a name or a number", SourcePos(self.file, key.start_mark.line + 1, 1))
            built[key_value] = self.value(item)
        return built
