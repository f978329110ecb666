"""The rows of an Ultralytics model YAML as .cnn statements: one handler per module of parse_model.

Each handler reads the row's args as parse_model does (`nc` by name, strings as Python literals), with
the module's own defaults, and returns the statement and its output width as a .cnn expression; a module
cnndsl cannot express is refused at the row's line."""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field
from typing import Any

from .ultralytics_blocks import activation
from .ultralytics_depth import DepthModule
from .ultralytics_heads26 import Heads26
from .ultralytics_later import LaterModules
from .ultralytics_more import MoreModules, Written, padded
from .ultralytics_rtdetr import RTDETRModules
from .ultralytics_torchvision import TorchVisionModules
from .ultralytics_world import TEXT_HEADS, WorldModules
from .ultralytics_yaml import ModelYaml, Row
from .ultralytics_yoloe import YoloeModules

REFUSED = {"C3TR": "a transformer block"}  # Ultralytics modules cnndsl has no layers for
DETECTS = {"Detect", "v10Detect", "Segment", "Pose", "OBB", "OBB26", "Segment26", "Pose26"}
HEADS = {*DETECTS, *TEXT_HEADS, "Classify", "SemanticSegment", "Depth"}


@dataclass
class Converter(
    MoreModules, LaterModules, WorldModules, YoloeModules, TorchVisionModules, Heads26, RTDETRModules, DepthModule
):
    model: ModelYaml
    widths: dict[int, str] = field(default_factory=dict)  # YAML channel count -> its let name
    repeats: dict[int, str] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    c3k_scales: bool = False
    cblinear: dict[int, list[int]] = field(default_factory=dict)  # CBLinear rows' channel parts
    extra: tuple[str, str] | None = None  # a task head's extra path per level: its name and text
    proto: str | None = None  # Segment's mask prototypes
    proto_parts: tuple[str, ...] = ()  # statements before them (Proto26's other levels)
    centred_keypoints: bool = False  # Pose26 decodes its keypoints from the anchors' centres
    training_parts: tuple[str, ...] = ()  # statements after the head: the modules only training runs
    train_outputs: tuple[str, ...] = ()  # their taps, for `train output`
    train_inputs: tuple[str, ...] = ()  # `train input`s they read: Pose26's keypoint errors, which its flow reads
    keypoint_dims: int = 3  # Pose's values per keypoint
    a2_scales: bool = False  # A2C2f with area attention: residual and mlp 1.2 at scales l and x
    torchvision_blocks: dict[str, str] = field(default_factory=dict)  # TorchVision rows' blocks, by name

    def __post_init__(self):
        values = self.model.values
        self.act_layer, self.act = activation(
            values.get("activation"), self.model.file, self.model.lines.get("activation", 1)
        )
        self.conv = f"conv_bn_{self.act}"
        self.scales = values.get("scales") or {}
        if not isinstance(self.scales, dict) or any(
            not isinstance(v, list) or len(v) != 3 or not all(_is_number(x) for x in v) for v in self.scales.values()
        ):
            raise self.model.error("scales", "`scales` maps each scale to `[depth, width, max_channels]`")
        for scale, (depth, width, most) in self.scales.items():
            if not isinstance(scale, str) or not (scale.isascii() and scale.isidentifier()):
                raise self.model.error(
                    "scales", f"scale `{scale}` is not a name: letters, digits and `_`", "as Ultralytics' n, s, m, l, x"
                )
            if not all(math.isfinite(value) for value in (depth, width, most)) or min(depth, width) <= 0 or most < 1:
                raise self.model.error(
                    "scales",
                    f"scale `{scale}` is `{[depth, width, most]}`: depth and width must be above 0 and max_channels "
                    "at least 1, or its layers have no width",
                    "as Ultralytics' own scales, e.g. `n: [0.50, 0.25, 1024]`",
                )
        self.legacy = not any(row.module in ("C3k2", "A2C2f", "C2fCIB") for row in self.model.rows)
        self.nc = values.get("nc")

    # --- values -----------------------------------------------------------------------------------
    def width(self, row: Row, channels: Any) -> str:
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise row.error(f"takes a whole number of channels first, not `{channels!r}`")
        return self.widths.setdefault(channels, f"c{channels}")

    def repeat(self, row: Row) -> str:
        if row.repeats == 1:
            return "1"
        return self.repeats.setdefault(row.repeats, f"n{row.repeats}")

    def classes(self, row: Row, value: Any) -> str:
        if value == "nc":
            if not isinstance(self.nc, int) or isinstance(self.nc, bool) or self.nc < 1:
                raise self.model.error("nc", "`nc`, the number of classes, must be a whole number from 1")
            return "classes"
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise row.error(f"takes the number of classes, not `{value!r}`")
        return str(value)

    # --- rows -------------------------------------------------------------------------------------
    def row(self, row: Row, inputs: list[str]) -> Written:
        if row.module in REFUSED:
            raise row.error(
                f"is {REFUSED[row.module]}, which cnndsl cannot express",
                "the import refuses rather than approximate it",
            )
        handler = getattr(self, "m_" + row.module.replace("nn.", "nn_"), None)
        if handler is None:
            raise row.error("is a module cnndsl does not import", "known: " + ", ".join(sorted(_known())))
        if (
            row.module not in ("Concat", "CBFuse", "ImagePoolingAttn", "RTDETRDecoder")
            and row.module not in HEADS
            and len(row.sources) != 1
        ):
            raise row.error(f"reads one module, not {len(row.sources)}")
        return handler(row, [_literal(arg) for arg in row.args], inputs)

    def times(self, row: Row, text: str) -> str:
        """A module that is not a repeat module, built `repeats` times in a Sequential."""
        return text if row.repeats == 1 else f"{text} x {self.repeat(row)}"

    def m_Conv(self, row, args, inputs):
        c, k, s, p, g, d, act = padded(row, args, [None, 1, 1, None, 1, 1, True], "Conv")
        if d != 1 or not isinstance(act, bool):
            raise row.error("with a dilation or an activation of its own is not imported")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (k, s, g, 0 if p is None else p)):
            raise row.error(f"takes whole numbers for its kernel, stride, padding and groups, not {args[1:5]}")
        name = self.conv if act else "conv_bn"
        self.used.add("conv_bn_ACT" if act else "conv_bn")
        width = self.width(row, c)
        options = [width] + [str(k)] * (k != 1 or s != 1) + [str(s)] * (s != 1)
        options += [f"p={p}"] * (p is not None and p != k // 2) + [f"g={g}"] * (g != 1)
        return Written(self.times(row, f"{name}({', '.join(options)})"), width)

    def m_C2f(self, row, args, inputs):
        c, shortcut, g, e = padded(row, args, [None, False, 1, 0.5], "C2f")
        return self._csp(row, "c2f", c, _flags(shortcut, e, g, row, "true"))

    def m_C3(self, row, args, inputs):
        c, shortcut, g, e = padded(row, args, [None, True, 1, 0.5], "C3")
        return self._csp(row, "c3", c, _flags(not shortcut, e, g, row, "false"))

    def m_C3k2(self, row, args, inputs):
        c, c3k, e, attn, g, shortcut = padded(row, args, [None, False, 0.5, False, 1, True], "C3k2")
        if g != 1:
            raise row.error("with groups is not imported")
        if attn:
            return self.c3k2_psa(row, c, e, shortcut)
        self.c3k_scales = True
        extra = [f"e={e!r}"] * (e != 0.5) + ["shortcut=false"] * (not shortcut)
        return self._csp(row, "c3k2", c, ["true" if c3k else "c3k", *extra])

    def _csp(self, row, block, c, options):
        """A repeat module: the repeats are its `n`, written where they or later options are not the default."""
        self.used.add(block)
        width = self.width(row, c)
        n = self.repeat(row)
        written = [width] + ([n] if n != "1" or options else []) + options
        return Written(f"{block}({', '.join(written)})", width)

    def m_Bottleneck(self, row, args, inputs):
        c, shortcut, g, k, e = padded(row, args, [None, True, 1, (3, 3), 0.5], "Bottleneck")
        if g != 1 or k != (3, 3) and k != [3, 3]:
            raise row.error("with groups or other kernels is not imported")
        self.used.add("bottleneck")
        width = self.width(row, c)
        options = [width] + ["false"] * (not shortcut) + [f"e={e!r}"] * (e != 0.5)
        return Written(self.times(row, f"bottleneck({', '.join(options)})"), width)

    def m_SPPF(self, row, args, inputs):
        if len(args) > 2:
            return self.sppf_n(row, args)
        c, k = padded(row, args, [None, 5], "SPPF")
        self.used.add("sppf")
        width = self.width(row, c)
        return Written(self.times(row, f"sppf({width}{f', {k}' * (k != 5)})"), width)

    def m_SPP(self, row, args, inputs):
        c, k = padded(row, args, [None, [5, 9, 13]], "SPP")
        if list(k) != [5, 9, 13]:
            raise row.error("with pools other than (5, 9, 13) is not imported")
        self.used.add("spp")
        width = self.width(row, c)
        return Written(self.times(row, f"spp({width})"), width)

    def m_nn_Upsample(self, row, args, inputs):
        size, scale, mode = padded(row, args, [None, None, "nearest"], "nn.Upsample", required=0)
        if size is not None or not isinstance(scale, int) or mode not in ("nearest", "bilinear"):
            raise row.error("is imported with a whole scale factor and mode nearest or bilinear")
        return Written(self.times(row, f"upsample({scale}{', mode=bilinear' * (mode == 'bilinear')})"), inputs[0])

    def m_nn_MaxPool2d(self, row, args, inputs):
        k, s, p = padded(row, args, [None, None, 0], "nn.MaxPool2d")
        s = k if s is None else s
        text = f"maxpool(k={k}" + f", s={s}" * (s != k) + f", p={p}" * bool(p) + ")"
        return Written(self.times(row, text), inputs[0])

    def m_nn_ConvTranspose2d(self, row, args, inputs):
        c, k, s, p = padded(row, args, [None, 1, 1, 0], "nn.ConvTranspose2d")
        width = self.width(row, c)
        return Written(self.times(row, f"deconv({width}, k={k}, s={s}, p={p})"), width)

    def m_nn_Identity(self, row, args, inputs):
        return Written(self.times(row, "identity"), inputs[0])

    def m_Concat(self, row, args, inputs):
        if args not in ([1], [-3]):
            raise row.error(f"joins along dimension {args[0] if args else '?'}; only channels (1) are imported")
        return Written("", " + ".join(inputs))

    def m_Classify(self, row, args, inputs):
        classes, k, s = padded(row, args, [None, 1, 1], "Classify")
        self.used.add("classify")
        options = [self.classes(row, classes)] + [str(k)] * (k != 1 or s != 1) + [str(s)] * (s != 1)
        return Written(f"classify({', '.join(options)})", self.classes(row, classes))

    def m_C2PSA(self, row, args, inputs):
        c, e = padded(row, args, [None, 0.5], "C2PSA")
        n = self.repeat(row)
        options = [n] * (n != "1" or e != 0.5) + [f"e={e!r}"] * (e != 0.5)
        self.used.add("c2psa")
        width = self.width(row, c)
        return Written(f"c2psa({', '.join([width, *options])})", width)

    def m_Detect(self, row, args, inputs):
        (classes,) = padded(row, args, [None], "Detect")
        block = "detect_level" if self.legacy else "detect_level_dw"
        self.used.add(block)
        reg_max = self.model.values.get("reg_max", 16)
        tail = f", {reg_max}" * (reg_max != 16)
        return Written(f"{block}({inputs[0]}, {self.classes(row, classes)}{tail})", "")


def _literal(arg: Any) -> Any:
    """A string argument as parse_model reads it: `nc` stays a name, `None` or `"(3, 3)"` a Python literal."""
    if not isinstance(arg, str) or arg == "nc" or len(arg) > 100:
        return arg
    try:
        return ast.literal_eval(arg)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return arg


def _known() -> set[str]:
    return {name[2:].replace("nn_", "nn.") for name in dir(Converter) if name.startswith("m_")}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _flags(flag: bool, e, g, row: Row, written: str) -> list[str]:
    """The shortcut flag where it is not the block's default (`written` is its non-default), then e."""
    if g != 1:
        raise row.error("with groups is not imported")
    return [written] * bool(flag) + ([f"e={e!r}"] if e != 0.5 else [])
