"""`cnndsl import model.yaml` as the importers' CONVERTERS call a format: `convert` for the text, then
`read_weights` and `state_dict` for a checkpoint.

Every scale's network is expanded before the text is handed back, so a row that parse_model would build but
whose shapes do not fit (a Concat of maps of different sizes) is reported at its YAML line, not at a line of
a generated file the user never saw; the expanded networks are what `read_weights` fits the state_dict to."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from pathlib import Path

from ..api import DEFAULT_MAX_NODES, Loader, instantiate
from ..core.errors import CnnDslError, FileProblem, SourcePos
from .ultralytics import convert as convert_yaml
from .ultralytics import network_names
from .ultralytics_weights import fitted, read_state
from .ultralytics_world import EXPORT as TEXT_EXPORT
from .ultralytics_world import held_classes, require_text
from .ultralytics_yaml import read_yaml

MAX_BYTES = 1_000_000  # Ultralytics' largest model YAML is under 4 kB


def convert(text: str, file: str) -> tuple[str, list]:
    """The .cnn text for the YAML, and its network per scale, expanded."""
    if len(text) > MAX_BYTES:
        raise CnnDslError(f"{file}: over {MAX_BYTES:,} characters, which no model YAML needs")
    cnn = convert_yaml(text, file)
    rows = read_yaml(text, file).rows
    names = network_names(cnn)
    module = _at_row(lambda: Loader().load_text(cnn, file), cnn, names[0], rows, file)  # parsed once, for every scale
    return cnn, [
        _at_row(partial(instantiate, module, name, file, cnn, None, DEFAULT_MAX_NODES, {}), cnn, name, rows, file)
        for name in names
    ]


def _at_row(build: Callable, cnn: str, name: str, rows, file: str):
    """What `build` makes of the generated text; where it fails, the error at the YAML row its line came from."""
    try:
        return build()
    except CnnDslError as error:
        line = cnn.splitlines()[error.pos.line - 1] if error.pos and error.pos.line <= len(cnn.splitlines()) else ""
        found = re.search(r"# modules (\d+)", line)
        row = rows[int(found.group(1))] if found else rows[-1]
        raise CnnDslError(
            f"{row.module} (module {row.index}) does not fit in {name}: {error.message}",
            SourcePos(file, row.line, 1),
            error.hint,
        ) from None


def read_weights(weights, networks: list, file: str) -> dict:
    """The state_dict's tensors under the names of the first scale whose shapes they fit."""
    try:
        state = read_state(weights)
    except FileProblem as problem:
        if problem.hint and held_classes(networks):  # YOLO-World's export also saves its class text
            problem.hint = TEXT_EXPORT.format(stem=Path(weights).stem)
        raise
    require_text(state, networks, str(weights))
    problems = []
    for network in networks:
        try:
            return fitted(network, state, str(weights))
        except CnnDslError as error:
            problems.append(f"{network.name}: {error.message}")
    raise CnnDslError(
        f"{weights} fits none of the networks of {file}",
        hint="; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else ""),
    )


def state_dict(network, arrays: dict) -> dict:
    """The arrays `read_weights` gave: already under the network's names, which every scale shares."""
    return arrays
