"""Darknet .cfg -> .cnn, with shapes as darknet's parser.c computes them (pjreddie's and AlexeyAB's builds).

Each darknet layer becomes one statement; a shortcut around a plain run of equal shape becomes
`residual { ... }`, routes become taps and `concat`, `[yolo]` heads become `yolo` decoders, `[region]`/`[detection]` heads end at their raw maps."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .darknet_cfg import Section, read_cfg
from .writing import Statement, body_lines, fold, identifier

ACTIVATIONS = {"linear": "", "leaky": "leakyrelu(0.1)", "relu": "relu", "logistic": "sigmoid", "mish": "mish",
               "swish": "silu", "tanh": "tanh", "elu": "elu", "relu6": "relu6"}  # fmt: skip
BN = "bn(eps=1e-12)"
HEADS = {"yolo", "region", "detection", "Gaussian_yolo"}
YOLO_KEYS = {"mask", "anchors", "classes", "num", "jitter", "ignore_thresh", "truth_thresh", "random", "scale_x_y",
             "iou_thresh", "cls_normalizer", "iou_normalizer", "obj_normalizer", "iou_loss", "nms_kind", "beta_nms",
             "max_delta", "resize", "new_coords", "counters_per_class", "label_smooth_eps", "objectness_smooth",
             "focal_loss", "iou_thresh_kind", "coords", "softmax", "bias_match", "rescore", "thresh", "absolute",
             "object_scale", "noobject_scale", "class_scale", "coord_scale", "side", "sqrt", "only_objectness"}  # fmt: skip
TRAINING_KEYS = {"learning_rate", "stopbackward", "dontload", "dontloadscales", "train_only_bn"}
KNOWN = {
    "convolutional": {
        "filters",
        "size",
        "stride",
        "pad",
        "padding",
        "activation",
        "batch_normalize",
        "groups",
        "dilation",
    },
    "maxpool": {"size", "stride", "padding"},
    "avgpool": set(),
    "route": {"layers", "groups", "group_id"},
    "shortcut": {"from", "activation"},
    "upsample": {"stride"},
    "softmax": {"groups"},
    "dropout": {"probability"},
    "connected": {"output", "activation", "batch_normalize"},
    "cost": {"type", "scale", "ratio", "noobject_scale", "thresh"},
}
SPELLINGS = {"conv": "convolutional", "max": "maxpool", "avg": "avgpool", "soft": "softmax", "conn": "connected"}
NO_EQUIVALENT = {
    "local": "a locally connected layer (unshared weights per position)",
    "sam": "the spatial attention multiply of AlexeyAB's builds",
    "scale_channels": "per-channel scaling by another layer's output",
    "reorg": "darknet's reorg (its own space-to-depth order)",
    "crop": "random cropping", "shortcut_sampled": "", "crnn": "a recurrent layer", "rnn": "a recurrent layer",
    "gru": "a recurrent layer", "lstm": "a recurrent layer", "conv_lstm": "a recurrent layer",
    "deconvolutional": "darknet's deconvolution (its own padding)", "batchnorm": "a standalone batch norm",
    "normalization": "darknet's LRN", "implicit_add": "an implicit-knowledge layer", "implicit_mul": "an implicit-knowledge layer",
    "contrastive": "a contrastive head", "empty": "", "silence": "", "reorg3d": "darknet's reorg3d",
}  # fmt: skip


@dataclass
class Layer:
    """One darknet layer: its statement text, output shape (C, H, W) and the layers it reads."""

    section: Section
    text: str
    shape: tuple[int, ...]
    reads: list[int] = field(default_factory=list)
    head: bool = False
    residual_from: int | None = None
    activation: str = ""
    tensors: tuple[int, int, int, bool] | None = None  # (outputs, inputs per group, size, batch-normed)


class _Converter:
    def __init__(self, sections: list[Section], file: str):
        self.file, self.net, self.sections = file, sections[0], sections[1:]
        self.layers: list[Layer] = []
        self.blocks: dict[str, str] = {}

    def input_shape(self) -> tuple[int, int, int]:
        shape = (self.net.integer("channels", 3), self.net.integer("height", 0), self.net.integer("width", 0))
        if min(shape) <= 0:
            raise self.net.error("[net] needs positive `channels`, `height` and `width`")
        return shape

    def run(self) -> str:
        shape = self.input_shape()
        for section in self.sections:
            kind = SPELLINGS.get(section.kind, section.kind)
            if kind in NO_EQUIVALENT or (kind not in KNOWN and kind not in HEADS):
                what = NO_EQUIVALENT.get(kind)
                why = f"{what}, which cnndsl cannot express exactly" if what else "a layer type cnndsl does not import"
                raise section.error(f"[{section.kind}] is {why}", hint="the import refuses rather than approximate it")
            section.refuse_unknown((YOLO_KEYS if kind in HEADS else KNOWN[kind]) | TRAINING_KEYS)
            layer = getattr(self, kind if kind not in HEADS else "head")(section, shape)
            self.layers.append(layer)
            shape = layer.shape
        return self.write()

    def index_of(self, section: Section, index: int, key: str) -> int:
        here = len(self.layers)
        absolute = index + here if index < 0 else index
        if not 0 <= absolute < here:
            raise section.error(f"[{section.kind}] refers to layer {index}, which is not before layer {here}", key)
        return absolute

    # --- layers ---------------------------------------------------------------------------------
    def convolutional(self, section: Section, shape):
        channels, height, width = _spatial(section, shape)
        filters, size = section.integer("filters", 1), section.integer("size", 1)
        stride, groups, dilation = (
            section.integer("stride", 1),
            section.integer("groups", 1),
            section.integer("dilation", 1),
        )
        pad = size // 2 if section.integer("pad", 0) else section.integer("padding", 0)
        if min(filters, size, stride, groups, dilation) < 1 or channels % groups or filters % groups:
            raise section.error(
                "[convolutional] needs positive filters, size, stride and groups that divide the channels"
            )
        reach = dilation * (size - 1) + 1
        out_h, out_w = (height + 2 * pad - reach) // stride + 1, (width + 2 * pad - reach) // stride + 1
        if out_h < 1 or out_w < 1:
            raise section.error(f"[convolutional] of size {size} does not fit its {height}x{width} input")
        activation = _activation(section)
        normed = bool(section.integer("batch_normalize", 0))
        if groups == 1 and dilation == 1:
            text = self._conv_call(filters, size, stride, pad, normed, activation)
        else:
            options = f", g={groups}" * (groups > 1) + f", d={dilation}" * (dilation > 1)
            layers = [f"conv({filters}, k={size}, s={stride}, p={pad}{options}{', bias=false' * normed})"]
            layers += [BN] * normed + [activation] * bool(activation)
            text = ", ".join(layers)
        return Layer(section, text, (filters, out_h, out_w), tensors=(filters, channels // groups, size, normed))

    def _conv_call(self, filters, size, stride, pad, normed, activation) -> str:
        act_name = {"leakyrelu(0.1)": "leaky"}.get(activation, activation)
        name = "conv" + "_bn" * normed + (f"_{act_name}" if act_name else "")
        if name == "conv":
            return (
                f"conv({filters}, k={size}"
                + f", s={stride}" * (stride != 1)
                + f", p={pad}" * (pad != size // 2 or size % 2 == 0)
                + ")"
            )
        inner = (
            f"conv(c, k=k, s=s, p=p{', bias=false' * normed})"
            + f", {BN}" * normed
            + f", {activation}" * bool(activation)
        )
        self.blocks[name] = f"block {name}(c, k=3, s=1, p=k // 2) {{ {inner} }}"
        args = [str(filters)] + [str(size)] * (size != 3 or stride != 1) + [str(stride)] * (stride != 1)
        return f"{name}({', '.join(args)}{f', p={pad}' * (pad != size // 2)})"

    def maxpool(self, section: Section, shape):
        channels, height, width = _spatial(section, shape)
        size = section.integer("size", 1)
        stride = section.integer("stride", size)
        padding = section.integer("padding", size - 1)
        if min(size, stride) < 1 or padding < 0:
            raise section.error("[maxpool] needs a positive size and stride")
        out = ((height + padding - size) // stride + 1, (width + padding - size) // stride + 1)
        left = padding // 2
        if left > size // 2:
            raise section.error(f"[maxpool] padding {padding} puts more than half the window before the input")
        for ceil in (False, True):
            if tuple(_torch_pool(n, size, stride, left, ceil) for n in (height, width)) == out:
                return Layer(section, _maxpool_text(size, stride, left, ceil), (channels, *out))
        extra = [
            (count - 1) * stride + size - extent - 2 * left for count, extent in zip(out, (height, width), strict=True)
        ]
        if extra[0] != extra[1] or not 0 < extra[0] < size:
            raise section.error(
                f"[maxpool] size={size} stride={stride} pads {padding} in a way cnndsl's maxpool cannot express"
            )
        options = f"k={size}" + f", s={stride}" * (stride != size) + f", p={left}" * bool(left)
        return Layer(section, f"maxpool({options}, p_end={extra[0]})", (channels, *out))

    def avgpool(self, section: Section, shape):
        return Layer(section, "gap", (_spatial(section, shape)[0], 1, 1))

    def upsample(self, section: Section, shape):
        channels, height, width = _spatial(section, shape)
        stride = section.integer("stride", 2)
        if stride < 1:
            raise section.error("[upsample] with a negative stride (downsampling) is not imported", "stride")
        return Layer(section, f"upsample({stride})", (channels, height * stride, width * stride))

    def route(self, section: Section, shape):
        reads = [self.index_of(section, index, "layers") for index in section.integers("layers")]
        if not reads:  # `layers=,` is a list of none
            raise section.error("[route] names no layer in `layers`", "layers")
        groups, group_id = section.integer("groups", 1), section.integer("group_id", 0)
        shapes = [self.layers[index].shape for index in reads]
        if any(len(s) != 3 or s[1:] != shapes[0][1:] for s in shapes):
            raise section.error("[route] joins maps of different sizes", "layers")
        if groups > 1 and (len(reads) > 1 or shapes[0][0] % groups or not 0 <= group_id < groups):
            raise section.error("[route] with groups takes one layer whose channels the groups divide", "groups")
        here = len(self.layers)
        parts = [] if reads[0] == here - 1 else [f"@l{reads[0]}"]
        if len(reads) > 1:
            parts.append(f"concat({', '.join(f'@l{index}' for index in reads[1:])})")
        if groups > 1:
            parts.append(f"chunk({groups}, {group_id})")
        channels = sum(s[0] for s in shapes) // groups
        taps = [index for position, index in enumerate(reads) if position or index != here - 1]
        return Layer(section, ", ".join(parts), (channels, *shapes[0][1:]), taps)

    def shortcut(self, section: Section, shape):
        sources = section.integers("from")
        if len(sources) != 1:
            raise section.error("[shortcut] from several layers is not imported", "from")
        source = self.index_of(section, sources[0], "from")
        other = self.layers[source].shape
        activation = _activation(section)
        reads = [source]
        if other == shape:
            text = f"add(@l{source})"
        else:
            reads.append(len(self.layers) - 1)
            text = _sampled_shortcut(section, source, reads[1], other, shape)
        text += f", {activation}" * bool(activation)
        return Layer(section, text, shape, reads, activation=activation, residual_from=source)

    def softmax(self, section: Section, shape):
        if section.integer("groups", 1) != 1:
            raise section.error("[softmax] with groups is not imported", "groups")
        return Layer(section, "softmax", shape)

    def dropout(self, section: Section, shape):
        return Layer(section, f"dropout({section.number('probability', 0.5):g})", shape)

    def connected(self, section: Section, shape):
        outputs, activation = section.integer("output", 1), _activation(section)
        normed = bool(section.integer("batch_normalize", 0))
        parts = [f"fc({outputs}{', bias=false' * normed})"] + [BN] * normed + [activation] * bool(activation)
        inputs = 1
        for extent in shape:
            inputs *= extent
        return Layer(section, ", ".join(parts), (outputs,), tensors=(outputs, inputs, 0, normed))

    def cost(self, section: Section, shape):
        return Layer(section, "identity", shape)

    def head(self, section: Section, shape):
        if section.kind == "yolo":
            return self.yolo(section, shape)
        return Layer(section, "", shape, [len(self.layers) - 1], head=True)

    def yolo(self, section: Section, shape):
        """`[yolo]` as cnndsl's `yolo` decoder (darknet's get_yolo_box), after the levels decoded before it."""
        channels, height, width = _spatial(section, shape)
        net_h, net_w = self.input_shape()[1:]
        if net_h % height or net_w % width:
            raise section.error(f"[yolo] on a {height}x{width} map of a {net_h}x{net_w} input has no whole stride")
        if section.integer("new_coords", 0):
            raise section.error("[yolo] new_coords=1 decodes boxes otherwise; it is not imported", "new_coords")
        try:
            anchors = [float(value) for value in section.text("anchors", "").split(",") if value]
        except ValueError:
            raise section.error("[yolo] `anchors` is not a list of numbers", "anchors") from None
        mask = section.integers("mask") if section.text("mask") is not None else list(range(len(anchors) // 2))
        classes = section.integer("classes", 20)
        if channels != len(mask) * (classes + 5):
            raise section.error(
                f"[yolo] with {len(mask)} anchors and {classes} classes needs {len(mask) * (classes + 5)} "
                f"channels, got {channels}", "classes")  # fmt: skip
        earlier = [index for index, layer in enumerate(self.layers) if layer.section.kind == "yolo"][-1:]
        scale = section.number("scale_x_y", 1.0)
        text = (f"yolo({''.join(f'@l{index}, ' for index in earlier)}anchors=[{', '.join(f'{a:g}' for a in anchors)}], "
                f"mask={mask}, stride={net_h // height if net_h // height == net_w // width else (net_h // height, net_w // width)}"
                + (f", scale_xy={scale:g}" if scale != 1 else "") + ")")  # fmt: skip
        boxes = len(mask) * height * width + sum(self.layers[index].shape[1] for index in earlier)
        return Layer(section, text, (classes + 4, boxes), earlier)

    # --- writing --------------------------------------------------------------------------------
    def write(self) -> str:
        heads = [layer.reads[0] for layer in self.layers if layer.head]
        decoders = [index for index, layer in enumerate(self.layers) if layer.section.kind == "yolo"]
        ends = heads + decoders[-1:] if heads or decoders[-1:] != [len(self.layers) - 1] else []
        wanted = {index for layer in self.layers for index in layer.reads if not layer.head} | set(ends)
        folded = self._residuals(wanted)
        statements: list[Statement] = []
        for index, layer in enumerate(self.layers):
            if index in folded:
                continue
            text = layer.text
            if text == "" and index not in wanted:
                continue
            label = f"l{index}" if index in wanted else None
            statements.append(Statement(text or "identity", layer.section.line, layer.section.last, label,
                                        starts_line=text.startswith("@") or layer.section.kind == "route"))  # fmt: skip
        lines = body_lines(fold(statements), "cfg lines")
        name = identifier(Path(self.file).stem)
        channels, height, width = self.input_shape()
        out = [f"# Imported by `cnndsl import` from the Darknet cfg {Path(self.file).name}.",
               "# Darknet's batch norm divides by sqrt(var) + 1e-6; bn(eps=1e-12) with the running variance",
               "# rewritten by the weight import as (sqrt(var) + 1e-6)^2 - 1e-12 computes the same."]  # fmt: skip
        if decoders:
            out.append(
                "# [yolo] heads decode to (4 + classes) x boxes in input pixels; add `nms` for boxes, scores, labels."
            )
        if heads:
            out.append("# The detection heads ([region]/[detection]) end at their raw maps: decoding is not imported.")
        out += ["", *self.blocks.values(), "", f"network {name} {{", f"    input {channels}x{height}x{width}", *lines]
        if ends:
            out.append(f"    output {', '.join(f'@l{index}' for index in ends)}")
        return "\n".join(out + ["}", ""])

    def _residuals(self, wanted: set[int]) -> dict:
        """Fold each shortcut around a plain run of equal shape into `residual { run }`; returns the folded indices."""
        folded: dict = {}
        for index, layer in enumerate(self.layers):
            source = layer.residual_from
            if source is None or not layer.text.startswith("add(") or self.layers[source].shape != layer.shape:
                continue
            body = list(range(source + 1, index))
            readers = sum(1 for other in self.layers for read in other.reads if read == source)
            plain = all(not self.layers[b].reads and not self.layers[b].head and b not in wanted for b in body)
            if not body or readers != 1 or not plain or any(b in folded for b in body):
                continue
            inner = ", ".join(self.layers[b].text for b in body)
            layer.text = f"residual {{ {inner} }}" + f", {layer.activation}" * bool(layer.activation)
            layer.section.line = self.layers[body[0]].section.line
            for b in body:
                folded[b] = True
            wanted.discard(source)
        return folded


def _spatial(section: Section, shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise section.error(f"[{section.kind}] needs a C×H×W input, not a vector of {shape[0]}")
    return shape


def _activation(section: Section) -> str:
    name = section.text("activation", "logistic" if section.kind == "connected" else "linear")
    if name not in ACTIVATIONS:
        raise section.error(
            f"[{section.kind}] activation `{name}` is not imported", "activation", f"known: {', '.join(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]


def _torch_pool(size: int, kernel: int, stride: int, pad: int, ceil: bool) -> int:
    """PyTorch's pooled size: ceil mode drops a last window that starts in the right padding."""
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _maxpool_text(size: int, stride: int, pad: int, ceil: bool) -> str:
    if (size, stride, pad, ceil) == (2, 2, 0, False):
        return "maxpool"
    return (
        f"maxpool(k={size}" + f", s={stride}" * (stride != size) + f", p={pad}" * bool(pad) + ", ceil=true" * ceil + ")"
    )


def _sampled_shortcut(section: Section, source: int, here: int, other, shape) -> str:
    """Darknet adds the other map sampled to this one's size over the smaller channel count; cnndsl writes the
    case a strided ResNet needs: a stride-s subsample, zero channels appended, then the add."""
    (c_from, h_from, w_from), (c_here, h_here, w_here) = other, shape
    stride = w_from // w_here if w_here else 0
    if stride < 1 or w_from != stride * w_here or h_from != stride * h_here or c_here % c_from:
        raise section.error(
            f"[shortcut] adds a {c_from}x{h_from}x{w_from} map to {c_here}x{h_here}x{w_here}; cnndsl imports "
            "only a whole-stride subsample to a whole multiple of the channels", "from")  # fmt: skip
    zeros = " | mul(0)" * (c_here // c_from - 1)
    sample = f"maxpool(k=1, s={stride}), " if stride > 1 else ""
    widen = f"branch {{ identity{zeros} }}, " if zeros else ""
    return f"@l{source}, {sample}{widen}add(@l{here})"


def convert(text: str, file: str) -> tuple[str, list[Layer]]:
    """The .cnn text for a Darknet cfg, and its layers (for reading a .weights file in their order)."""
    converter = _Converter(read_cfg(text, file), file)
    return converter.run(), converter.layers
