"""Reading a Darknet .cfg as darknet's own `read_cfg` does: whitespace removed, `[section]`s of `key=value`."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.errors import CnnDslError, SourcePos


@dataclass
class Section:
    """One `[kind]` of the file with its options and the lines they sit on."""

    kind: str
    line: int
    file: str
    options: dict[str, tuple[str, int]] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)

    @property
    def last(self) -> int:
        return max([self.line, *(line for _, line in self.options.values())])

    def error(self, message: str, key: str | None = None, hint: str | None = None) -> CnnDslError:
        line = self.options[key][1] if key in self.options else self.line
        return CnnDslError(message, SourcePos(self.file, line, 1), hint)

    def text(self, key: str, default: str | None = None) -> str | None:
        self.used.add(key)
        return self.options[key][0] if key in self.options else default

    def integer(self, key: str, default: int | None = None) -> int:
        value = self.text(key)
        if value is None:
            if default is None:
                raise self.error(f"[{self.kind}] needs `{key}`")
            return default
        try:
            return int(value)
        except ValueError:
            raise self.error(f"[{self.kind}] `{key}={value}` is not a whole number", key) from None

    def number(self, key: str, default: float) -> float:
        value = self.text(key)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise self.error(f"[{self.kind}] `{key}={value}` is not a number", key) from None

    def integers(self, key: str) -> list[int]:
        value = self.text(key)
        if value is None:
            raise self.error(f"[{self.kind}] needs `{key}`")
        try:
            return [int(part) for part in value.split(",") if part]
        except ValueError:
            raise self.error(f"[{self.kind}] `{key}={value}` is not a list of whole numbers", key) from None

    def refuse_unknown(self, known: set[str]) -> None:
        for key, (_, line) in self.options.items():
            if key not in known:
                raise CnnDslError(
                    f"[{self.kind}] has an unknown key `{key}`: its meaning would be lost",
                    SourcePos(self.file, line, 1),
                    f"the keys cnndsl reads in [{self.kind}]: {', '.join(sorted(known))}",
                )


def read_cfg(text: str, file: str) -> list[Section]:
    """The sections in order; a line that is neither a section, an option nor a comment is an error."""
    sections: list[Section] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = "".join(raw.split())
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            if not line.endswith("]"):
                raise CnnDslError("a section header must end with `]`", SourcePos(file, number, 1))
            sections.append(Section(line[1:-1], number, file))
            continue
        key, equals, value = line.partition("=")
        if not equals or not key:
            raise CnnDslError(f"`{raw.strip()}` is not `key=value`", SourcePos(file, number, 1))
        if not sections:
            raise CnnDslError(f"option `{key}` comes before any [section]", SourcePos(file, number, 1))
        sections[-1].options[key] = (value, number)
    if not sections or sections[0].kind not in ("net", "network"):
        raise CnnDslError(
            "a Darknet cfg starts with a [net] section", SourcePos(file, sections[0].line if sections else 1, 1)
        )
    return sections
