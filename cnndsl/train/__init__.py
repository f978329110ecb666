"""Training: `cnndsl train NET DATA` and `cnndsl predict`, a layer above the backends and the public API.

    from cnndsl.train import train
    result = train("net.cnn", "data/", epochs=10, batch=64)
    print(result.best, result.folder)

Importing this package imports neither torch nor torchvision; a run does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..api import Network, load
from .prepare import prepare


def train(
    network: Any = None,
    data: str | Path | None = None,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    params: dict | None = None,
    input: tuple | None = None,
    network_name: str | None = None,
    stream=None,
    **options: Any,
):
    """Train `network` (a .cnn file, a library name or a loaded Network; `params` as `-p`) on the folder
    `data`; or continue the run in `resume`. `input` and `network_name` as `--input` and `--network`. Options as `cnndsl train`'s (docs/train.md); returns a Result."""
    from .distributed import launch

    source = None
    if network is not None and not isinstance(network, Network):
        file = str(Path(network).resolve()) if Path(network).exists() else str(network)
        network = load(network, network=network_name, input=input, **(params or {}))
        source = {"file": file, "network": network.name, "params": params or {}, "input": input}
    if resume is None and (network is None or data is None):
        raise TypeError("train() needs a network and a data folder, or resume=RUN_FOLDER")
    spec = prepare(network, data, options, out=out, resume=resume, source=source)
    return launch(spec, stream=stream)
