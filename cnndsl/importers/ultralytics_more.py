"""Handlers for the less common Ultralytics modules (C2, GhostConv, C3Ghost, ResNetLayer, the YOLOv9
modules), mixed into the row converter; and what every handler shares."""

from __future__ import annotations

from dataclasses import dataclass

from .ultralytics_yaml import Row


@dataclass
class Written:
    """A row's statement text and its output width as a .cnn expression."""

    text: str
    width: str
    parts: tuple[str, ...] = ()  # statements the row needs before its own (CBFuse's resized parts)


def padded(row: Row, args: list, defaults: list, name: str, required: int = 1) -> list:
    """The row's args filled with the module's defaults; more args than the module takes is an error."""
    if len(args) > len(defaults):
        raise row.error(f"takes at most {len(defaults)} arguments here, not {len(args)}")
    if len(args) < required:
        raise row.error(f"needs at least {required} argument(s)")
    return list(args) + defaults[len(args) :]


class MoreModules:
    """Handlers `m_<Module>` for the converter; they use its width(), repeat(), used and conv."""

    def _call(self, row: Row, block: str, width: str, options: list[str]) -> Written:
        self.used.add(block)
        return Written(self.times(row, f"{block}({', '.join([width, *options])})"), width)

    def m_C2(self, row, args, inputs):
        c, shortcut, g, e = padded(row, args, [None, True, 1, 0.5], "C2")
        if g != 1:
            raise row.error("with groups is not imported")
        n = self.repeat(row)
        options = [n] * (n != "1" or not shortcut or e != 0.5) + ["false"] * (not shortcut) + [f"e={e!r}"] * (e != 0.5)
        self.used.add("c2")
        width = self.width(row, c)
        return Written(f"c2({', '.join([width, *options])})", width)

    def m_GhostConv(self, row, args, inputs):
        c, k, s, g, act = padded(row, args, [None, 1, 1, 1, True], "GhostConv")
        if g != 1 or act is not True:
            raise row.error("with groups or an activation of its own is not imported")
        options = [str(k)] * (k != 1 or s != 1) + [str(s)] * (s != 1)
        return self._call(row, "ghostconv", self.width(row, c), options)

    def m_C3Ghost(self, row, args, inputs):
        c, _shortcut, g, e = padded(row, args, [None, True, 1, 0.5], "C3Ghost")  # its bottlenecks always add
        if g != 1:
            raise row.error("with groups is not imported")
        n = self.repeat(row)
        options = [n] * (n != "1" or e != 0.5) + [f"e={e!r}"] * (e != 0.5)
        self.used.add("c3ghost")
        width = self.width(row, c)
        return Written(f"c3ghost({', '.join([width, *options])})", width)

    def m_ResNetLayer(self, row, args, inputs):
        _c1, c, s, first, n, e = padded(row, args, [None, None, 1, False, 1, 4], "ResNetLayer", required=2)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (c, s, n, e)):
            raise row.error("takes whole numbers for its channels, stride, blocks and expansion")
        options = [str(s)] * (s != 1 or first or n != 1) + ["true"] * bool(first) + [f"n={n}"] * (n != 1)
        options += [f"e={e}"] * (e != 4)
        self.used.add("resnetlayer")  # its widths are the YAML's own: parse_model does not scale them
        return Written(self.times(row, f"resnetlayer({', '.join([str(c), *options])})"), str(c if first else e * c))

    def m_RepNCSPELAN4(self, row, args, inputs):
        c, c3, c4, n = padded(row, args, [None, None, None, 1], "RepNCSPELAN4", required=3)
        return self._call(row, "repncspelan4", self.width(row, c), [str(c3), str(c4)] + [str(n)] * (n != 1))

    def m_ELAN1(self, row, args, inputs):
        c, c3, c4 = padded(row, args, [None, None, None], "ELAN1", required=3)
        return self._call(row, "elan1", self.width(row, c), [str(c3), str(c4)])

    def m_AConv(self, row, args, inputs):
        (c,) = padded(row, args, [None], "AConv")
        return self._call(row, "aconv", self.width(row, c), [])

    def m_ADown(self, row, args, inputs):
        (c,) = padded(row, args, [None], "ADown")
        return self._call(row, "adown", self.width(row, c), [])

    def m_SPPELAN(self, row, args, inputs):
        c, c3, k = padded(row, args, [None, None, 5], "SPPELAN", required=2)
        return self._call(row, "sppelan", self.width(row, c), [str(c3)] + [str(k)] * (k != 5))
