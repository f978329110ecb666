"""The layer registry: importing this package registers every built-in kind."""

from . import (  # noqa: F401  (imported to register their kinds)
    activation,
    anchors,
    arithmetic,
    boxes,
    channels,
    constants,
    conv,
    deform,
    dense,
    detect_anchor_free,
    detect_grid,
    detect_keypoints,
    layout,
    merge,
    nms,
    norm,
    padding,
    pool,
    psa_attention,
    rcnn,
    resize,
    roi,
)
from .base import REGISTRY, OpKind, Shape, Window, format_shape, known_names, lookup, numel

__all__ = ["REGISTRY", "OpKind", "Shape", "Window", "format_shape", "known_names", "lookup", "numel"]
