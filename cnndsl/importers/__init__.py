"""Importers: other frameworks' model files (Darknet .cfg and .weights so far) become readable .cnn text."""

from __future__ import annotations

from pathlib import Path

from ..api import parse
from ..core.atomic import write_atomically
from ..core.errors import CnnDslError

FORMATS = {".cfg": "darknet"}


def import_file(
    path: str | Path, fmt: str | None = None, weights: str | Path | None = None, weights_out: str | Path | None = None
) -> str:
    """The .cnn text for a model file (the format from `fmt` or the suffix); with `weights` and
    `weights_out`, the file's weights written as safetensors under the .cnn network's names."""
    path = Path(path)
    fmt = fmt or FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise CnnDslError(
            f"{path}: cannot tell the format from the suffix `{path.suffix}`",
            hint="name it .cfg (Darknet) or pass --from darknet",
        )
    if fmt != "darknet":
        raise CnnDslError(
            f"{path}: importing {fmt} files is not built yet", hint="only Darknet .cfg files import so far"
        )
    if (weights is None) != (weights_out is None):
        raise CnnDslError("weights and weights_out come together: the weights file in, the safetensors file out")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise CnnDslError(f"{path}: cannot read: {error.strerror}") from None
    from .darknet import convert

    cnn, layers = convert(text, str(path))
    if weights is not None:
        _write_weights(cnn, str(path), weights, layers, weights_out)
    return cnn


def _write_weights(cnn: str, cfg: str, weights, layers, target) -> None:
    from safetensors.numpy import save

    from .darknet_weights import read_weights, state_dict

    loaded = read_weights(weights, layers, cfg)
    write_atomically(target, save(state_dict(parse(cnn, cfg), loaded)))
