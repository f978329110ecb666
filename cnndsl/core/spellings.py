"""The names people bring from PyTorch and Keras, and what cnndsl calls them: hints, not aliases.

A hint teaches the cnndsl spelling once; an alias would let two spellings of every layer spread through
the library. Keys are compared without case, so `BatchNorm2d` and `batchnorm2d` both find `bn`.
"""

from __future__ import annotations

LAYERS = {
    "batchnorm": "bn",
    "batchnorm2d": "bn",
    "batchnorm1d": "bn",
    "batchnormalization": "bn",
    "conv2d": "conv",
    "convolution2d": "conv",
    "maxpool2d": "maxpool",
    "maxpooling2d": "maxpool",
    "avgpool2d": "avgpool",
    "averagepooling2d": "avgpool",
    "adaptiveavgpool2d": "adaptiveavgpool",
    "globalaveragepooling2d": "gap",
    "linear": "fc",
    "dense": "fc",
    "upconv": "deconv",
    "convtranspose2d": "deconv",
    "conv2dtranspose": "deconv",
    "swish": "silu",
    "dropout2d": "dropout",
    "upsampling2d": "upsample",
}

ARGUMENTS = {
    "stride": "s",
    "strides": "s",
    "padding": "p",
    "kernel_size": "k",
    "kernel": "k",
    "dilation": "d",
    "dilation_rate": "d",
    "groups": "g",
    "out_channels": "c",
    "filters": "c",
    "units": "n",
    "out_features": "n",
    "rate": "p",
}


def unknown_layer_hint(name: str) -> str | None:
    """`BatchNorm2d` -> "cnndsl calls it `bn`", for a layer name that is not cnndsl's."""
    known = LAYERS.get(name.lower())
    return f"cnndsl calls it `{known}`" if known else None


def unknown_argument_hint(name: str, accepted: list[str]) -> str | None:
    """`stride=` -> "cnndsl calls it `s=`", where the layer has that argument."""
    known = ARGUMENTS.get(name.lower())
    return f"cnndsl calls it `{known}=`" if known in accepted else None
