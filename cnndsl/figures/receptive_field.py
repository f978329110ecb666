"""Receptive fields, exactly: for every output position, the span of input pixels it depends on.

Each axis of a node carries two maps from its output index o to input-image indices, the first (`lo`) and
last (`hi`) pixel o depends on. Every layer reads input index ⌊(a·o + b) / c⌋ at the ends of its window, so
the maps stay periodic-linear: f(o) = table[o mod P] + ⌊o / P⌋·D. A strided chain has P = 1 and reduces to
the textbook rf_out = rf_in + (k − 1)·d·jump_in; after a transposed convolution or an upsampling, adjacent
outputs that read the same input pixels make P > 1, and the receptive field is the largest span over a
period: the most input pixels any output pixel sees (U-Net's is 204, as a gradient probe finds). Borders are
not clipped, as the textbook figure is not. The jump is D / P, the mean step between adjacent outputs.
"""

from __future__ import annotations

from math import gcd
from typing import NamedTuple

from ..ops import Window

LARGEST_PERIOD = 4096  # a longer period (resizes by coprime factors) is written out over the real positions


class Periodic(NamedTuple):
    """f(o) = table[o mod P] + ⌊o / P⌋·step: a nondecreasing map from output to input index."""

    table: tuple[int, ...]
    step: int

    def __call__(self, index: int) -> int:
        turns, offset = divmod(index, len(self.table))
        return self.table[offset] + turns * self.step

    def after(self, a: int, b: int, c: int, size: int) -> Periodic:
        """o ↦ self(⌊(a·o + b) / c⌋): the map of a layer that reads this one at those indices."""
        if a == 0:
            return Periodic((self(b // c),), 0)
        period = len(self.table)
        if period == 1 and c == 1:  # a strided window on a strided map: the textbook case, kept fast
            return Periodic((self.table[0] + b * self.step,), a * self.step)
        common = gcd(a, c * period)
        turn = c * period // common
        if turn > max(LARGEST_PERIOD, size):
            return explicit(lambda o: self((a * o + b) // c), size)
        return Periodic(tuple(self((a * o + b) // c) for o in range(turn)), a // common * self.step)


def explicit(function, size: int) -> Periodic:
    """A map that is not periodic-linear, written out over the layer's real positions (0 to size − 1) and
    continued beyond them at its mean step: exact where the figures are read."""
    table = tuple(function(o) for o in range(size))
    return Periodic(table, round((table[-1] - table[0]) * size / max(size - 1, 1)))


class Axis(NamedTuple):
    """The first and last input pixel each output index of one axis depends on; `floor`, the span of a global
    branch broadcast over every position (a squeeze-and-excitation gate), which every position then sees."""

    lo: Periodic
    hi: Periodic
    floor: int = 0

    @property
    def field(self) -> int:
        if len(self.lo.table) == len(self.hi.table) == 1:
            return max(self.floor, self.hi.table[0] - self.lo.table[0] + 1)
        period = _lcm(len(self.lo.table), len(self.hi.table))
        return max(self.floor, *(self.hi(o) - self.lo(o) + 1 for o in range(period)))

    @property
    def jump(self) -> int | float:
        jump = self.lo.step / len(self.lo.table)
        return int(jump) if jump.is_integer() else jump


IDENTITY = Axis(Periodic((0,), 1), Periodic((0,), 1))


def axis_after(sources: list[tuple[Axis, int, int]], window: Window | None, out_size: int, axis: int) -> Axis:
    """A node's map along `axis` from its inputs' maps (each with its size and the offset it is read at)."""
    los, his, floor = [], [], max(source.floor for source, _, _ in sources)
    for source, in_size, offset in sources:
        if in_size == 1 and out_size > 1 and len(sources) > 1:  # a gate of C×1×1 (or C) broadcast everywhere
            floor = max(floor, source.hi(0) - source.lo(0) + 1)
            continue
        lo_index, hi_index = _reads(window, in_size, out_size, axis)
        los.append(source.lo.after(lo_index[0], lo_index[1] + offset * lo_index[2], lo_index[2], out_size))
        his.append(source.hi.after(hi_index[0], hi_index[1] + offset * hi_index[2], hi_index[2], out_size))
    return Axis(_merged(los, min, out_size), _merged(his, max, out_size), floor)


def _reads(window: Window | None, in_size: int, out_size: int, axis: int):
    """(a, b, c) for the first and the last input index output o reads: ⌊(a·o + b) / c⌋."""
    if window is None:
        return ((0, 0, 1),) * 2 if in_size == 1 and out_size > 1 else ((1, 0, 1),) * 2
    if window.mode == "nearest":  # PyTorch's nearest: ⌊o · in / out⌋
        return (in_size, 0, out_size), (in_size, 0, out_size)
    if window.mode == "linear":  # align_corners=False: source o·in/out + (in/out − 1)/2 and its right neighbour
        return (2 * in_size, in_size - out_size, 2 * out_size), (2 * in_size, in_size + out_size, 2 * out_size)
    kernel, dilation, padding = window.kernel[axis], window.dilation[axis], window.padding[axis]
    if window.mode == "transposed":  # o = i·s − p + t·d for t < k
        stride = window.upsample[axis]
        return (1, padding - (kernel - 1) * dilation + stride - 1, stride), (1, padding, stride)
    stride = window.stride[axis]
    return (stride, -padding, 1), (stride, (kernel - 1) * dilation - padding, 1)


def _merged(maps: list[Periodic], pick, size: int) -> Periodic:
    """The pointwise min or max of the maps: over their common period where they advance alike, else written out."""
    if len(maps) == 1:
        return maps[0]
    if all(len(m.table) == 1 and m.step == maps[0].step for m in maps):
        return Periodic((pick(m.table[0] for m in maps),), maps[0].step)
    period = 1
    for m in maps:
        period = _lcm(period, len(m.table))
    if len({m.step * period // len(m.table) for m in maps}) > 1 or period > max(LARGEST_PERIOD, size):
        return explicit(lambda o: pick(m(o) for m in maps), size)
    return Periodic(tuple(pick(m(o) for m in maps) for o in range(period)), maps[0].step * period // len(maps[0].table))


def _lcm(a: int, b: int) -> int:
    return a * b // gcd(a, b)
