"""`cnndsl import model.yaml`: read, convert, check that every scale builds, and write the weights.

Every scale's network is expanded before the text is handed back, so a row that parse_model would build but
whose shapes do not fit (a Concat of maps of different sizes) is reported at its YAML line, not at a line of
a generated file the user never saw."""

from __future__ import annotations

import re
from pathlib import Path

from ..api import parse
from ..core.atomic import write_atomically
from ..core.errors import CnnDslError, SourcePos
from .ultralytics import convert, network_names
from .ultralytics_weights import read_state, state_dict
from .ultralytics_yaml import read_yaml

MAX_BYTES = 1_000_000  # Ultralytics' largest model YAML is under 4 kB


def import_ultralytics(path: Path, weights=None, weights_out=None) -> str:
    """The .cnn text for the YAML at `path`; with `weights`, its state_dict written to `weights_out`."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise CnnDslError(f"{path}: over {MAX_BYTES:,} bytes, which no model YAML needs")
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise CnnDslError(f"{path}: cannot read: {error.strerror}") from None
    cnn = convert(text, str(path))
    rows = read_yaml(text, str(path)).rows
    networks = [_built(cnn, name, rows, str(path)) for name in network_names(cnn)]
    if weights is not None:
        _write_weights(networks, weights, weights_out)
    return cnn


def _built(cnn: str, name: str, rows, file: str):
    """The expanded network `name`; where it does not build, the error at the YAML row its line came from."""
    try:
        return parse(cnn, file, network=name)
    except CnnDslError as error:
        line = cnn.splitlines()[error.pos.line - 1] if error.pos and error.pos.line <= len(cnn.splitlines()) else ""
        found = re.search(r"# modules (\d+)", line)
        row = rows[int(found.group(1))] if found else rows[-1]
        raise CnnDslError(
            f"{row.module} (module {row.index}) does not fit in {name}: {error.message}",
            SourcePos(file, row.line, 1),
            error.hint,
        ) from None


def _write_weights(networks, weights, target) -> None:
    """The state_dict under the names of the one scale whose shapes it fits (the first where several do)."""
    from safetensors.numpy import save

    state = read_state(weights)
    problems = []
    for network in networks:
        try:
            arrays = state_dict(network, state, str(weights))
        except CnnDslError as error:
            problems.append(f"{network.name}: {error.message}")
            continue
        write_atomically(target, save(arrays))
        return
    raise CnnDslError(
        f"{weights} fits none of the imported networks",
        hint="; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else ""),
    )
