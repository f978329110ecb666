"""An Ultralytics state_dict under the imported network's names.

The checkpoint's keys (`model.2.m.0.cv1.conv.weight`) group into modules; each module's children are put in
the order its forward runs them, which differs from the order they were registered in for a few modules
(C2f and C3k2 run `m` between `cv1` and `cv2`, C3 runs `m` first, Detect runs each level's box and class
paths together). Taken in that order, the modules holding tensors meet the imported network's layers in
graph order one to one, and every shape must agree. The file is read with `torch.load(weights_only=True)`
only: a checkpoint as Ultralytics saves it pickles the whole model, and is refused with how to export its
state_dict."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from ..core.errors import CnnDslError, FileProblem
from ..graph import ir
from ..weights.slots import network_slots
from .ultralytics_depth import calibrated_last, depth_children
from .ultralytics_world import FORWARD_ORDER as WORLD_ORDER
from .ultralytics_world import own_last

EXPORT = (
    'export the state_dict with Ultralytics once: python -c "import torch; from ultralytics import YOLO; '
    "torch.save(YOLO('{stem}.pt').model.float().state_dict(), '{stem}-state.pt')\""
)
FORWARD_ORDER = [  # children as registered -> as forward runs them
    ({"cv1", "cv2", "m"}, ["cv1", "m", "cv2"]),  # C2f, C3k2
    ({"cv1", "cv2", "cv3", "m"}, ["cv1", "m", "cv2", "cv3"]),  # C3, C3k
    ({"qkv", "proj", "pe"}, ["qkv", "pe", "proj"]),  # Attention
    ({"cv1", "cv2", "attn", "ffn"}, ["cv1", "attn", "ffn", "cv2"]),  # PSA
    *WORLD_ORDER,
    (
        {"cv1", "upsample", "cv2", "cv3", "feat_refine", "feat_fuse"},
        ["feat_refine", "feat_fuse", "cv1", "upsample", "cv2", "cv3"],
    ),  # Proto26
    (
        {"cv1", "upsample", "cv2", "cv3", "feat_refine", "feat_fuse", "semseg"},
        ["feat_refine", "feat_fuse", "cv1", "upsample", "cv2", "cv3", "semseg"],
    ),  # Proto26 with its training-only semantic head, imported after the prototypes
]
HEAD_PATHS = (
    "cv2",
    "cv3",
    "one2one_cv2",
    "one2one_cv3",
    "cv4",
    "one2one_cv4",
    "proto",
    "dfl",
    "cv4_kpts",
    "one2one_cv4_kpts",
    "cv4_sigma",
    "one2one_cv4_sigma",
    "flow_model",
)  # Detect's (Segment's...) children
COMPOSITES = (  # modules that one layer kind holds whole, told by their children: AIFI, RTDETRDecoder
    {"ma", "fc1", "fc2", "norm1", "norm2"},
    {"input_proj", "decoder", "enc_score_head", "dec_score_head", "dec_bbox_head"},
    {"s", "t"},  # Pose26's RealNVP flow model: realnvp
)
DFL = re.compile(r"(^|\.)dfl\.conv$")  # Detect's DFL: a fixed 1x1 conv, which a raw-map import does not hold


def read_state(path: str | Path) -> dict:
    """The tensors of a state_dict file (or of a training checkpoint's `model`/`state_dict`), by key."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        try:
            return dict(load_file(str(path)))
        except Exception as error:  # safetensors raises several types for a damaged file
            raise FileProblem(f"cannot read weights from {path}: {error}") from None
    if not path.is_file():
        raise FileProblem(f"cannot read weights: {path} does not exist")
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a pickle it will not run
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise FileProblem(
            f"cannot read weights from {path} with torch.load(weights_only=True): {first}",
            hint=EXPORT.format(stem=path.stem),
        ) from None
    for _ in range(4):
        if isinstance(state, dict) and not any(hasattr(v, "shape") for v in state.values()):
            state = state.get("model", state.get("state_dict"))
    if not isinstance(state, dict):
        raise FileProblem(f"{path} holds no state_dict", hint=EXPORT.format(stem=path.stem))
    return {key: value for key, value in state.items() if hasattr(value, "shape")}


def forward_modules(state: dict) -> list[tuple[str, list[str]]]:
    """The checkpoint's modules that hold tensors directly, in the order Ultralytics' forward runs them,
    each with its keys."""
    tree: dict = {}
    own: dict[str, list[str]] = defaultdict(list)
    for key in state:
        if key.endswith("num_batches_tracked"):
            continue
        module = key.rpartition(".")[0]
        own[module].append(key)
        node = tree
        for part in module.split(".") if module else []:
            node = node.setdefault(part, {})
    ordered: list[tuple[str, list[str]]] = []

    def visit(node: dict, prefix: str) -> None:
        if any(set(node) >= children for children in COMPOSITES):  # one cnndsl layer holds the whole module
            ordered.append((prefix, [key for module, keys in own.items() if _within(module, prefix) for key in keys]))
            return
        after = prefix in own and (
            all(key.endswith(".gamma") for key in own[prefix])
            or own_last(set(node), own[prefix])
            or calibrated_last(set(node), own[prefix])
        )  # A2C2f scales its output
        if prefix in own and not after:
            ordered.append((prefix, own[prefix]))
        for child in _children_in_forward_order(node):
            inner = node
            for part in child.split("."):
                inner = inner[part]
            visit(inner, f"{prefix}.{child}" if prefix else child)
        if after:
            ordered.append((prefix, own[prefix]))

    visit(tree, "")
    return ordered


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _children_in_forward_order(node: dict) -> list[str]:
    names = list(node)
    numbered = sorted((n for n in names if n.isdigit()), key=int)
    names = numbered + [n for n in names if not n.isdigit()]
    for registered, forward in FORWARD_ORDER:
        if set(names) == registered:
            return forward
    depth = depth_children(node)
    if depth is not None:
        return depth
    if {"reprta", "savpe"} <= set(names):  # YOLOEDetect: the prompts' embeddings before the levels read them
        paths = ("cv5", "one2one_cv5")  # YOLOESegment's mask coefficients (and their one-to-one copy), before proto
        order = _children_in_forward_order({n: node[n] for n in names if n not in ("reprta", "savpe", *paths)})
        masks = [f"{path}.{level}" for path in paths for level in sorted(node.get(path, {}), key=int)]
        at = order.index("proto") if "proto" in order else len(order)
        return ["reprta", "savpe", *order[:at], *masks, *order[at:]]
    if {"cv2", "cv3"} <= set(names) and all(n in HEAD_PATHS for n in names):  # Detect, then its one-to-one copy
        order = ("cv2", "cv3"), ("one2one_cv2", "one2one_cv3")
        levels = [
            f"{head}.{level}"
            for pair in order
            if pair[0] in node
            for level in sorted(node[pair[0]], key=int)
            for head in pair
        ]
        extra = [  # Pose26: each level's cv4, then its cv4_kpts
            f"{path}{part}.{level}"
            for path in ("cv4", "one2one_cv4")
            for level in sorted(node.get(path, {}), key=int)
            for part in ("", "_kpts")
            if f"{path}{part}" in node
        ]
        extra += [  # Pose26's training-only sigmas, imported after every keypoint path
            f"{path}.{level}"
            for path in ("cv4_sigma", "one2one_cv4_sigma")
            for level in sorted(node.get(path, {}), key=int)
        ]
        extra += ["flow_model"] * ("flow_model" in node)  # Pose26's flow, the last training-only layer
        extra += ["proto"] * ("proto" in node)
        return levels + extra + ["dfl"] * ("dfl" in node)
    return names


def fitted(network, state: dict, origin: str) -> dict:
    """The checkpoint's tensors as float32 arrays under the network's names; a located error where the
    checkpoint's modules and the network's layers part."""
    from ..weights.checkpoint import as_float32  # numpy, kept out of `import cnndsl`

    layers: dict[int, list] = defaultdict(list)
    for slot in network_slots(network.graph):
        if slot.floating:
            layers[slot.node].append(slot)
    modules = forward_modules(state)
    if len(modules) == len(layers) + 1:  # the raw maps end before DFL
        modules = [(module, keys) for module, keys in modules if not DFL.search(module)]
    if len(modules) != len(layers):
        raise CnnDslError(
            f"{origin} holds {len(modules)} modules with tensors where the network has {len(layers)} layers",
            hint="the checkpoint is of another model or scale",
        )
    arrays = {}
    for (module, keys), slots in zip(modules, layers.values(), strict=True):
        layer = ir.layer(network.graph, slots[0].node).name
        nested = any("." in slot.key[len(layer) + 1 :] for slot in slots)  # a composite: names below the layer
        given = {(key[len(module) + 1 :] if nested else key.rpartition(".")[2]): key for key in keys}
        for slot in slots:
            own_name = slot.key[len(layer) + 1 :] if nested else slot.key.rpartition(".")[2]
            key = given.pop("gamma" if own_name.startswith("layerscale") and "gamma" in given else own_name, None)
            if key is None or not _same_values(tuple(state[key].shape), slot.shape):
                found = f"`{key}` is {tuple(state[key].shape)}" if key else f"`{module}` has no such tensor"
                raise CnnDslError(
                    f"{origin}: {found} where the network's `{slot.key}` needs {slot.shape}",
                    hint="the checkpoint is of another model or scale",
                )
            arrays[slot.key] = as_float32(state[key], slot.shape)
        if given:
            raise CnnDslError(f"{origin}: `{next(iter(given.values()))}` has no place in the network's `{module}`")
    return arrays


def _same_values(shape: tuple, wanted: tuple) -> bool:
    """The same shape, or a per-channel vector where the network holds it as C x 1 x 1 (A2C2f's gamma)."""
    return shape == wanted or (len(shape) == 1 and wanted[:1] == shape and all(size == 1 for size in wanted[1:]))
