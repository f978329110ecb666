"""The layer registry. A kind's module is imported the first time one of its names is looked up (registry.py),
so a command imports only the kinds its network uses.

A new kind: add its name to its module's row of KINDS (a new module: a new row), an alias likewise, and a
family of spellings (`convKxK`) to PREFIXES; tests/test_ops_registry.py fails on a name missing here. The
order of the rows (a module after one it imports) is the order of the registry, and of docs/language.md's
layer table.
"""

from .base import REGISTRY, OpKind, Shape, Window, format_shape, known_names, lookup, numel

KINDS: dict[str, tuple[str, ...]] = {  # module -> the kinds and aliases it declares
    "activation": (
        "relu", "relu6", "sigmoid", "tanh", "gelu", "silu", "mish", "hardswish", "hardsigmoid", "leakyrelu", "elu",
        "prelu", "softmax",
    ),
    "anchors": ("anchors",),
    "merge": ("add", "concat", "maximum", "mul"),
    "arithmetic": ("sub", "div", "exp", "clamp", "calibrate"),
    "boxes": ("boxdecode", "clipboxes", "topk"),
    "layout": ("flatten", "reshape", "permute", "transpose", "split"),
    "channels": ("chunk", "channelshuffle", "identity"),
    "constants": ("grid", "constant"),
    "conv": ("conv", "deconv", "dwconv", "convtranspose"),
    "deform": ("deformconv",),
    "dense": ("fc", "linear"),
    "flow": ("realnvp",),
    "detect_anchor_free": ("anchorcat", "dfl", "dist2bbox"),
    "detect_grid": ("yolo", "yologrid"),
    "detect_keypoints": ("kptdecode",),
    "nms": ("nms",),
    "norm": ("bn", "layernorm", "groupnorm", "layerscale", "lrn", "dropout", "stochasticdepth", "droppath"),
    "padding": ("zeropad",),
    "pool": ("maxpool", "avgpool", "gap", "adaptiveavgpool", "adaptivemaxpool", "pool", "globalavgpool"),
    "psa_attention": ("attend", "attendvalues"),
    "rcnn": ("levelnms", "roidetections"),
    "rtdetr_encoder": ("aifi",),
    "rtdetr_decoder": ("rtdetrdecoder",),
    "text_guided": ("textembed", "maxsigmoid", "contrast", "crossattend"),
    "visual_prompts": ("promptpool",),
    "resize": ("upsample", "resize", "pixelshuffle", "input"),
    "roi": ("roipool", "roialign", "boxfc", "msroialign"),
}  # fmt: skip
PREFIXES = {"conv": "conv", "dwconv": "conv", "maxpool": "pool", "avgpool": "pool"}  # convKxK, maxpoolKxK, ...
REGISTRY.declare(__name__, KINDS, PREFIXES)

__all__ = [
    "KINDS",
    "PREFIXES",
    "REGISTRY",
    "OpKind",
    "Shape",
    "Window",
    "format_shape",
    "known_names",
    "lookup",
    "numel",
]
