"""Importers: other frameworks' model files (Darknet .cfg/.weights, Caffe .prototxt/.caffemodel, Ultralytics
YAML and state_dicts) become .cnn text."""

from __future__ import annotations

import importlib
from pathlib import Path

from ..api import parse
from ..core.atomic import write_atomically
from ..core.errors import CnnDslError
from ..core.regular_files import open_regular

# the most each format's reader takes, checked before parsing: some 25 times the largest real file, and what each
# reads within 5 s of CPU (measured under load: a 4 MiB .cfg in 2.1 s, a 3.9 MB .prototxt in 4.7 s, a YAML
# of 10 kB in 0.8 s and of 870 kB in 11.6 s: PyYAML's parser is pure Python; Ultralytics' largest is 2.6 kB)
MAX_MODEL_BYTES = {"darknet": 4 * 2**20, "caffe": 2 * 2**20, "ultralytics": 64 * 2**10}
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
    text = read_model_text(path, MAX_MODEL_BYTES[fmt])
    converter, reader = (importlib.import_module(f".{name}", __package__) for name in CONVERTERS[fmt])
    cnn, layers = converter.convert(text, str(path))
    if weights is not None:
        from safetensors.numpy import save

        loaded = reader.read_weights(weights, layers, str(path))
        # an Ultralytics file holds a network per scale, which its `convert` expanded as its `layers`
        network = layers[0] if fmt == "ultralytics" else parse(cnn, str(path))
        write_atomically(weights_out, save(reader.state_dict(network, loaded)))
    return cnn


def read_model_text(path: Path, most: int) -> str:
    """The text of a model file, read as hostile: only a regular file (checked before it is opened, and opened
    without blocking, so that a FIFO cannot hang the import nor a link to /dev/zero fill memory), at most
    `most` bytes of it; bytes that are not UTF-8 become U+FFFD, and the format's reader locates what they break."""
    try:
        with open_regular(path, lambda kind: CnnDslError(f"{path} is {kind}, not a model file")) as stream:
            data = stream.read(most + 1)
    except FileNotFoundError:
        raise CnnDslError(f"{path}: no such file") from None
    except OSError as error:
        raise CnnDslError(f"{path}: cannot read: {error.strerror}") from None
    if len(data) > most:
        raise CnnDslError(f"{path} is larger than {most:,} bytes, the most a file of its format may have")
    return data.decode("utf-8-sig", errors="replace")
