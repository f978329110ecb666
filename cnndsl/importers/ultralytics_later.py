"""Handlers for the modules of YOLOv10, YOLO12 and YOLO26 (SCDown, PSA, C2fCIB, v10Detect, SPPF with `n`,
C3k2 with attention), mixed into the row converter like MoreModules."""

from __future__ import annotations

from . import ultralytics_blocks_later  # noqa: F401  (registers the blocks these handlers use)
from .ultralytics_more import Written, padded
from .ultralytics_yaml import Row


def _whole(row: Row, *values) -> None:
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        raise row.error(f"takes whole numbers from 1 here, not {list(values)}")


def _flag(row: Row, value, what: str) -> bool:
    if not isinstance(value, bool):
        raise row.error(f"takes true or false for {what}, not `{value!r}`")
    return value


class LaterModules:
    """Handlers `m_<Module>` for the converter; they use its width(), repeat(), times(), used and _call()."""

    def m_SCDown(self, row, args, inputs):
        c, k, s = padded(row, args, [None, None, None], "SCDown", required=3)
        _whole(row, k, s)
        return self._call(row, "scdown", self.width(row, c), [str(k)] * (k != 3 or s != 2) + [str(s)] * (s != 2))

    def m_PSA(self, row, args, inputs):
        c, e = padded(row, args, [None, 0.5], "PSA")
        self.used.add("psa")
        width = self.width(row, c)
        return Written(self.times(row, f"psa({width}{f', {e!r}' * (e != 0.5)})"), width)

    def m_C2fCIB(self, row, args, inputs):
        c, shortcut, lk, g, e = padded(row, args, [None, False, False, 1, 0.5], "C2fCIB")
        if g != 1:
            raise row.error("with groups is not imported")
        shortcut, lk = _flag(row, shortcut, "shortcut"), _flag(row, lk, "lk")
        options = ["true"] * (shortcut or lk) + ["lk=true"] * lk + [f"e={e!r}"] * (e != 0.5)
        return self._csp(row, "c2fcib", c, options)

    def sppf_n(self, row, args):
        """SPPF with `n` or `shortcut`: parse_model leaves its first conv unactivated (YOLO26's form)."""
        c, k, n, shortcut = padded(row, args, [None, 5, 3, False], "SPPF")
        _whole(row, k, n)
        shortcut = _flag(row, shortcut, "shortcut")
        options = [str(k)] * (k != 5 or n != 3 or shortcut) + [str(n)] * (n != 3 or shortcut) + ["true"] * shortcut
        return self._call(row, "sppf_n", self.width(row, c), options)

    def c3k2_psa(self, row, c, e, shortcut):
        """C3k2 with attention: each part a Bottleneck and a PSABlock, whatever c3k says."""
        options = [f"e={e!r}"] * (e != 0.5) + ["shortcut=false"] * (not shortcut)
        return self._csp(row, "c3k2_psa", c, options)

    def m_v10Detect(self, row, args, inputs):
        (classes,) = padded(row, args, [None], "v10Detect")  # its class path is Detect's depthwise one
        self.used.add("detect_level_dw")
        return Written(f"detect_level_dw({inputs[0]}, {self.classes(row, classes)})", "")

    def m_A2C2f(self, row, args, inputs):
        c, a2, area, residual, mlp, e, g, shortcut = padded(
            row, args, [None, True, 1, False, 2.0, 0.5, 1, True], "A2C2f"
        )
        if g != 1:
            raise row.error("with groups is not imported")
        a2, residual, shortcut = (
            _flag(row, v, what) for v, what in ((a2, "a2"), (residual, "residual"), (shortcut, "shortcut"))
        )
        if a2:
            _whole(row, area)
        if self.large_scales() and a2 and len(args) != 3:
            raise row.error("with more than 3 arguments is not imported at scales l and x, where parse_model appends 2")
        self.a2_scales = self.a2_scales or a2
        options = ["false"] * (not a2) + [f"area={area}"] * (a2 and area != 1)
        if a2 and self.large_scales():  # parse_model appends (residual=True, mlp_ratio=1.2) at scales l and x
            options.append("gamma=large, mlp=1.2 if large else 2.0")
        else:
            options += ["gamma=true"] * residual + [f"mlp={mlp!r}"] * (mlp != 2.0)
        options += [f"e={e!r}"] * (e != 0.5) + ["shortcut=false"] * (not shortcut)
        return self._csp(row, "a2c2f", c, options)

    def large_scales(self) -> bool:
        return any(scale in ("l", "x") for scale in self.scales)

    def m_CBLinear(self, row, args, inputs):
        """YOLOv9-E's CBLinear: one convolution (with bias) whose channels CBFuse later takes in parts; its widths
        are the YAML's own (parse_model does not scale them)."""
        parts, k, s, p, g = padded(row, args, [None, 1, 1, None, 1], "CBLinear")
        if not isinstance(parts, list) or not parts:
            raise row.error(f"takes a list of channel counts first, not `{parts!r}`")
        _whole(row, *parts, k, s, g)
        self.cblinear[row.index] = parts
        width = " + ".join(map(str, parts))
        options = (
            [f"k={k}"] + [f"s={s}"] * (s != 1) + [f"p={p}"] * (p is not None and p != k // 2) + [f"g={g}"] * (g != 1)
        )
        return Written(self.times(row, f"conv({width}, {', '.join(options)})"), f"({width})")

    def m_CBFuse(self, row, args, inputs):
        """The sum of the last source and, from each CBLinear before it, the part `idx` names, resized (nearest) to
        the last source's size: each part a statement `f<row>_<j>`."""
        (chosen,) = padded(row, args, [None], "CBFuse")
        sources, target = row.sources[:-1], row.sources[-1]
        if not isinstance(chosen, list) or len(chosen) != len(sources):
            raise row.error(f"takes one part index for each of its {len(sources)} CBLinear sources, not `{chosen!r}`")
        if row.repeats != 1:
            raise row.error("is imported once per row, not repeated")
        parts = []
        for j, (source, index) in enumerate(zip(sources, chosen, strict=True)):
            split = self.cblinear.get(source)
            if split is None:
                raise row.error(f"reads module {source}, which is not a CBLinear")
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(split):
                raise row.error(f"takes part {index!r} of module {source}, which has {len(split)} parts")
            sizes = f"[{', '.join(map(str, split))}]"
            parts.append(f"@l{source}, split({sizes}, {index}), f{row.index}_{j}: resize(@l{target}, mode=nearest)")
        taps = ", ".join(f"@f{row.index}_{j}" for j in range(len(sources)))
        return Written(f"@l{target}, add({taps})", inputs[-1], tuple(parts))

    def m_nn_ZeroPad2d(self, row, args, inputs):
        (sides,) = padded(row, args, [None], "nn.ZeroPad2d")
        sides = list(sides) if isinstance(sides, (list, tuple)) else [sides] * 4
        if len(sides) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in sides):
            raise row.error(f"takes one padding or four (left, right, top, bottom), not `{args[0]!r}`")
        written = str(sides[0]) if len(set(sides)) == 1 else f"[{', '.join(map(str, sides))}]"
        return Written(self.times(row, f"zeropad({written})"), inputs[0])

    def m_Segment(self, row, args, inputs):
        classes, masks, protos = padded(row, args, [None, 32, 256], "Segment")
        _whole(row, masks)
        self.used.update(("extra_level", "proto"))
        self.extra = ("mask", f"extra_level({inputs[0]}, {masks})")  # every level's widths from the first's
        self.proto = f"proto({self.width(row, protos)}, {masks})"  # parse_model scales npr as a width
        return self.task_head(row, classes, inputs)

    def m_Pose(self, row, args, inputs):
        classes, shape = padded(row, args, [None, "kpt_shape"], "Pose")
        if shape == "kpt_shape":
            shape = self.model.values.get("kpt_shape", [17, 3])
        if not isinstance(shape, (list, tuple)) or len(shape) != 2 or shape[1] not in (2, 3):
            raise row.error(f"takes kpt_shape [keypoints, 2 or 3], not `{shape!r}`")
        _whole(row, *shape)
        self.used.add("extra_level")
        self.extra = ("keypoint", f"extra_level({inputs[0]}, {shape[0] * shape[1]})")
        self.keypoint_dims = shape[1]
        return self.task_head(row, classes, inputs)

    def m_OBB(self, row, args, inputs):
        classes, angles = padded(row, args, [None, 1], "OBB")
        _whole(row, angles)
        self.used.add("extra_level")
        self.extra = ("angle", f"extra_level({inputs[0]}, {angles})")
        return self.task_head(row, classes, inputs)

    def m_OBB26(self, row, args, inputs):
        """YOLO26's OBB: OBB whose angles stay logits (no sigmoid), the same raw maps."""
        return self.m_OBB(row, args, inputs)

    def task_head(self, row, classes, inputs):
        """Detect's levels, which the segment, pose and OBB heads extend (their cv4 written by convert)."""
        return self.m_Detect(row, [classes], inputs)
