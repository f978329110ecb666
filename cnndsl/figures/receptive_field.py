"""Receptive fields, exactly: for every output position, the span of input pixels it depends on.

Each axis of a node carries two maps from its output index o to input-image indices, the first (`lo`) and
last (`hi`) pixel o depends on. Every layer reads input index ⌊(a·o + b) / c⌋ at the ends of its window, so
the maps stay periodic-linear: f(o) = f(o mod P) + ⌊o / P⌋·D. A strided chain has P = 1 and reduces to
the textbook rf_out = rf_in + (k − 1)·d·jump_in; after a transposed convolution or an upsampling, adjacent
outputs that read the same input pixels make P > 1, and the receptive field is the largest span over a
period: the most input pixels any output pixel sees (U-Net's is 204, as a gradient probe finds). Borders are
not clipped, as the textbook figure is not. The jump is D / P, the mean step between adjacent outputs.

A period is kept as its runs of equal values, one per class of positions that read alike, so the work
follows the number of classes, not the number of positions: `upsample(2^40)` makes one run per input pixel.
Each network spends at most WORK runs in all; a network whose classes pass it (a resize between two large
coprime sizes) is a located `LimitProblem`, not a stall.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable
from math import gcd
from typing import NamedTuple

from ..core.errors import LimitProblem
from ..ops import Window

LARGEST_PERIOD = 4096  # a longer period (resizes by coprime factors) is written out over the real positions
WORK = 500_000  # runs one network's receptive fields may build or visit in all: a few tenths of a second


class Budget:
    """The runs left to a network's receptive fields; spent before the work it pays for."""

    def __init__(self, work: int = WORK):
        self.left = work

    def spend(self, runs: int) -> None:
        self.left -= runs
        if self.left < 0:
            raise LimitProblem(
                f"working out the receptive field takes more than {WORK:,} steps here",
                hint="resize by whole factors, or use a smaller input: each position class of a resize is a step",
            )


class Periodic(NamedTuple):
    """f(o) = values[run of o mod period] + ⌊o / period⌋·step, where run j covers starts[j] up to the next
    start: a nondecreasing map from output to input index, kept as its runs of equal values."""

    starts: tuple[int, ...]
    values: tuple[int, ...]
    period: int
    step: int

    def __call__(self, index: int) -> int:
        turns, offset = divmod(index, self.period)
        return self.values[bisect_right(self.starts, offset) - 1] + turns * self.step

    def breaks(self, first: int, last: int) -> Iterable[int]:
        """The indices from first to last (absolute) where a run begins, in order."""
        for turn in range(first // self.period, last // self.period + 1):
            base = turn * self.period
            yield from (base + start for start in self.starts if first <= base + start <= last)

    def count_breaks(self, first: int, last: int) -> int:
        """An upper bound on len(breaks(first, last)), known before walking them."""
        return (last // self.period - first // self.period + 1) * len(self.starts)

    def after(self, a: int, b: int, c: int, size: int, budget: Budget) -> Periodic:
        """o ↦ self(⌊(a·o + b) / c⌋): the map of a layer that reads this one at those indices."""
        if a == 0:
            return constant(self(b // c), 0)
        if self.period == 1 and c == 1:  # a strided window on a strided map: the textbook case, kept fast
            return constant(self.values[0] + b * self.step, a * self.step)
        common = gcd(a, c * self.period)
        turn = c * self.period // common
        length = size if turn > max(LARGEST_PERIOD, size) else turn

        def composed(o: int) -> int:
            return self((a * o + b) // c)

        first, last = b // c, (a * (length - 1) + b) // c
        if length <= self.count_breaks(first + 1, last):
            budget.spend(length)
            starts: Iterable[int] = range(length)
        else:
            budget.spend(self.count_breaks(first + 1, last) + 1)
            starts = [0, *(-((b - c * t) // a) for t in self.breaks(first + 1, last))]
        if length < turn:
            return explicit(composed, starts, length)
        return _tabulated(composed, starts, length, a // common * self.step)


def constant(value: int, step: int) -> Periodic:
    """f(o) = value + o·step."""
    return Periodic((0,), (value,), 1, step)


def explicit(function: Callable[[int], int], starts: Iterable[int], size: int) -> Periodic:
    """A map that is not periodic-linear, written out over the layer's real positions (0 to size − 1) and
    continued beyond them at its mean step: exact where the figures are read."""
    step = round((function(size - 1) - function(0)) * size / max(size - 1, 1))
    return _tabulated(function, starts, size, step)


def _tabulated(function: Callable[[int], int], starts: Iterable[int], period: int, step: int) -> Periodic:
    """The runs of `function` over 0 to period − 1, given every index where its value may change (and more)."""
    kept_starts: list[int] = []
    values: list[int] = []
    for start in starts:
        if start >= period or (kept_starts and start <= kept_starts[-1]):
            continue
        value = function(start)
        if not values or value != values[-1]:
            kept_starts.append(start)
            values.append(value)
    return Periodic(tuple(kept_starts), tuple(values), period, step)


class Axis(NamedTuple):
    """The first and last input pixel each output index of one axis depends on; `floor`, the span of a global
    branch broadcast over every position (a squeeze-and-excitation gate), which every position then sees."""

    lo: Periodic
    hi: Periodic
    floor: int = 0

    def field(self, budget: Budget) -> int:
        """The most input pixels one output position sees: the widest span over a whole period."""
        if self.lo.period == self.hi.period == 1:
            return max(self.floor, self.hi.values[0] - self.lo.values[0] + 1)
        period = _lcm(self.lo.period, self.hi.period)
        starts = _breaks_of([self.lo, self.hi], period, budget)
        return max(self.floor, *(self.hi(o) - self.lo(o) + 1 for o in starts))

    @property
    def jump(self) -> int | float:
        jump = self.lo.step / self.lo.period
        return int(jump) if jump.is_integer() else jump


IDENTITY = Axis(constant(0, 1), constant(0, 1))


def axis_after(
    sources: list[tuple[Axis, int, int]], window: Window | None, out_size: int, axis: int, budget: Budget
) -> Axis:
    """A node's map along `axis` from its inputs' maps (each with its size and the offset it is read at)."""
    los, his, floor = [], [], max(source.floor for source, _, _ in sources)
    for source, in_size, offset in sources:
        if in_size == 1 and out_size > 1 and len(sources) > 1:  # a gate of C×1×1 (or C) broadcast everywhere
            floor = max(floor, source.hi(0) - source.lo(0) + 1)
            continue
        lo_index, hi_index = _reads(window, in_size, out_size, axis)
        los.append(source.lo.after(lo_index[0], lo_index[1] + offset * lo_index[2], lo_index[2], out_size, budget))
        his.append(source.hi.after(hi_index[0], hi_index[1] + offset * hi_index[2], hi_index[2], out_size, budget))
    return Axis(_merged(los, min, out_size, budget), _merged(his, max, out_size, budget), floor)


def _reads(window: Window | None, in_size: int, out_size: int, axis: int):
    """(a, b, c) for the first and the last input index output o reads: ⌊(a·o + b) / c⌋."""
    if window is None:
        return ((0, 0, 1),) * 2 if in_size == 1 and out_size > 1 else ((1, 0, 1),) * 2
    if window.mode == "nearest":  # PyTorch's nearest: ⌊o · in / out⌋
        return (in_size, 0, out_size), (in_size, 0, out_size)
    if window.mode == "adaptive":  # PyTorch's adaptive pooling: bin o is ⌊o·in/out⌋ to ⌈(o+1)·in/out⌉ − 1
        return (in_size, 0, out_size), (in_size, in_size - 1, out_size)
    if window.mode == "linear":  # align_corners=False: source o·in/out + (in/out − 1)/2 and its right neighbour
        return (2 * in_size, in_size - out_size, 2 * out_size), (2 * in_size, in_size + out_size, 2 * out_size)
    kernel, dilation, padding = window.kernel[axis], window.dilation[axis], window.padding[axis]
    if window.mode == "transposed":  # o = i·s − p + t·d for t < k
        stride = window.upsample[axis]
        return (1, padding - (kernel - 1) * dilation + stride - 1, stride), (1, padding, stride)
    stride = window.stride[axis]
    return (stride, -padding, 1), (stride, (kernel - 1) * dilation - padding, 1)


def _merged(maps: list[Periodic], pick, size: int, budget: Budget) -> Periodic:
    """The pointwise min or max of the maps: over their common period where they advance alike, else written out."""
    if len(maps) == 1:
        return maps[0]
    if all(m.period == 1 and m.step == maps[0].step for m in maps):
        return constant(pick(m.values[0] for m in maps), maps[0].step)
    period = 1
    for m in maps:
        period = _lcm(period, m.period)

    def picked(o: int) -> int:
        return pick(m(o) for m in maps)

    if len({m.step * period // m.period for m in maps}) > 1 or period > max(LARGEST_PERIOD, size):
        return explicit(picked, _breaks_of(maps, size, budget), size)
    return _tabulated(picked, _breaks_of(maps, period, budget), period, maps[0].step * period // maps[0].period)


def _breaks_of(maps: list[Periodic], length: int, budget: Budget) -> list[int]:
    """Every index below `length` where one of the maps begins a run, in order: where their pick may change."""
    budget.spend(sum(m.count_breaks(0, length - 1) for m in maps))
    return sorted({start for m in maps for start in m.breaks(0, length - 1)})


def _lcm(a: int, b: int) -> int:
    return a * b // gcd(a, b)
