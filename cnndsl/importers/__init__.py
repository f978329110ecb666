"""Importers: other frameworks' model files (Darknet .cfg/.weights, Caffe .prototxt/.caffemodel, Ultralytics
YAML and state_dicts) become .cnn text."""

from __future__ import annotations

import importlib
from pathlib import Path

from ..api import parse
from ..core.atomic import write_atomically
from ..core.errors import CnnDslError

FORMATS = {".cfg": "darknet", ".prototxt": "caffe", ".yaml": "ultralytics", ".yml": "ultralytics"}
# format -> (the module whose `convert` writes the text, the module that reads its weights: read_weights and
# state_dict), by name: `cnndsl.import_file` is public, so a format's modules (protobuf for Caffe) load only
# when a file of that format is imported, not at every command's start-up
CONVERTERS = {
    "darknet": ("darknet", "darknet_weights"),
    "caffe": ("caffe", "caffe_weights"),
    "ultralytics": ("ultralytics_import", "ultralytics_import"),
}


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
            hint="name it .cfg (Darknet), .prototxt (Caffe) or .yaml (Ultralytics), or pass --from",
        )
    if fmt not in CONVERTERS:
        raise CnnDslError(f"{path}: importing {fmt} files is not built yet", hint=f"known: {', '.join(CONVERTERS)}")
    if (weights is None) != (weights_out is None):
        raise CnnDslError("weights and weights_out come together: the weights file in, the safetensors file out")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise CnnDslError(f"{path}: cannot read: {error.strerror}") from None
    converter, reader = (importlib.import_module(f".{name}", __package__) for name in CONVERTERS[fmt])
    cnn, layers = converter.convert(text, str(path))
    if weights is not None:
        from safetensors.numpy import save

        loaded = reader.read_weights(weights, layers, str(path))
        # an Ultralytics file holds a network per scale, which its `convert` expanded as its `layers`
        network = layers[0] if fmt == "ultralytics" else parse(cnn, str(path))
        write_atomically(weights_out, save(reader.state_dict(network, loaded)))
    return cnn
