"""The learner's view of one layer: output size, parameters, MACs and receptive field as formulas with
the numbers filled in, the way lecture notes compute them by hand (⌊(227 − 11 + 2·2)/4⌋ + 1 = 56).

Formulas are written from the layer's resolved arguments (k, s, p, d, c, g, n) and shown only when
they give the number the analysis computed; any other layer shows that number plainly.
"""

from __future__ import annotations

import networkx as nx

from ..graph import ir
from ..graph.ir import input_shapes, inputs_of
from ..ops import format_shape, numel


def explain(graph: nx.DiGraph, node: int) -> dict:
    """Name, label, input and output shapes, and the four figures of `node`, each with its working."""
    data = ir.layer(graph, node)
    kind = data.kind
    shapes = input_shapes(graph, node)
    return {
        "name": data.name,
        "label": kind.label(data.attrs),
        "inputs": [format_shape(shape) for shape in shapes],
        "output": format_shape(data.shape),
        "rows": [
            ("output size", _output_size(data, shapes)),
            ("parameters", _checked(_params(data, shapes), data.figures.params, "no parameters")),
            (
                "MACs",
                _checked(
                    _macs(data, shapes),
                    data.figures.macs,
                    "none counted: only convolutions and fully connected layers multiply-accumulate",
                ),
            ),
            ("receptive field", _receptive_field(graph, node, kind, shapes)),
        ],
    }


def _checked(worked: tuple[str, int] | None, actual: int, when_zero: str) -> str:
    """The worked formula when it gives the analysed number, else the number."""
    if worked is not None and worked[1] == actual:
        return f"{worked[0]} = {actual:,}"
    return f"{actual:,}" if actual else when_zero


def _output_size(data: ir.Layer, shapes: list) -> str:
    attrs, out = data.attrs, data.shape
    if not shapes:
        return f"the input: {format_shape(out)}"
    if len(out) == 3 and len(shapes[0]) == 3 and {"k", "s", "p"} <= attrs.keys():
        axes = [_sliding_axis(attrs, axis, shapes[0][axis + 1], out[axis + 1]) for axis in (0, 1)]
        if all(axes):
            if axes[0] == axes[1]:
                return f"H = W: {axes[0]}  → {format_shape(out)}"
            return f"H: {axes[0]};  W: {axes[1]}  → {format_shape(out)}"
    if tuple(out) == tuple(shapes[0]):
        return f"{format_shape(out)}, the shape it receives"
    return format_shape(out)


def _sliding_axis(attrs: dict, axis: int, size: int, out: int) -> str | None:
    """One axis of a sliding window; a transposed convolution's (`op`) runs the other way."""
    k, s, p = attrs["k"][axis], attrs["s"][axis], attrs["p"][axis]
    if "op" in attrs:
        extra = attrs["op"][axis]
        value = (size - 1) * s - 2 * p + k + extra
        text = f"({size} − 1)·{s} − 2·{p} + {k}" + (f" + {extra}" if extra else "")
        return f"{text} = {out}" if value == out else None
    d = attrs.get("d", (1, 1))[axis]
    span = f"{size} − {k} + 2·{p}" if d == 1 else f"{size} + 2·{p} − {d}·({k} − 1) − 1"
    numerator = size + 2 * p - d * (k - 1) - 1 if d != 1 else size - k + 2 * p
    if attrs.get("ceil"):
        value, text = -(-numerator // s) + 1, f"⌈({span})/{s}⌉ + 1"
    else:
        value, text = numerator // s + 1, f"⌊({span})/{s}⌋ + 1"
    return f"{text} = {out}" if value == out else None


def _params(data: ir.Layer, shapes: list) -> tuple[str, int] | None:
    attrs = data.attrs
    if not shapes:
        return None
    channels_in = shapes[0][0]
    if {"c", "k", "g"} <= attrs.keys():
        c, (kh, kw), g = attrs["c"], attrs["k"], attrs["g"]
        if "op" in attrs:  # transposed: the weight is C_in × C_out/g × k × k
            text, value = f"{channels_in}·{_per_group(c, g)}·{kh}·{kw}", channels_in * (c // g) * kh * kw
        else:
            text, value = f"{c}·{_per_group(channels_in, g)}·{kh}·{kw}", c * (channels_in // g) * kh * kw
        return (f"{text} + {c}", value + c) if attrs.get("bias") else (text, value)
    if "n" in attrs:
        text, value = f"{_factors(shapes[0])}·{attrs['n']}", numel(shapes[0]) * attrs["n"]
        return (f"{text} + {attrs['n']}", value + attrs["n"]) if attrs.get("bias") else (text, value)
    if data.figures.params == 2 * channels_in:
        return f"2·{channels_in}", 2 * channels_in  # batch norm: a scale and a shift per channel
    return None


def _macs(data: ir.Layer, shapes: list) -> tuple[str, int] | None:
    attrs, out = data.attrs, data.shape
    if not shapes:
        return None
    if {"c", "k", "g"} <= attrs.keys() and len(out) == 3:
        (kh, kw), g = attrs["k"], attrs["g"]
        if "op" in attrs:  # every input pixel scatters a k×k×(C_out/g) patch
            c_in, h, w = shapes[0]
            return f"{c_in}·{h}·{w}·{kh}·{kw}·{attrs['c'] // g}", c_in * h * w * kh * kw * (attrs["c"] // g)
        per_group = shapes[0][0] // g
        return f"{out[0]}·{out[1]}·{out[2]}·{kh}·{kw}·{per_group}", numel(out) * kh * kw * per_group
    if "n" in attrs:
        return f"{_factors(shapes[0])}·{attrs['n']}", numel(shapes[0]) * attrs["n"]
    return None


def _receptive_field(graph: nx.DiGraph, node: int, kind, shapes: list) -> str:
    """r = r_in + (k − 1)·d·j_in and j = j_in·s per axis, as the analysis computes it."""
    data = ir.layer(graph, node)
    rf, jump = data.figures.rf, data.figures.jump
    sources = [ir.layer(graph, source).figures for source in inputs_of(graph, node)]
    if not sources:
        return "1 pixel: the input sees itself"
    if rf is None:
        return "none: its tensor is neither C×H×W nor a vector, or comes from one that is not"
    rf_in = tuple(max(source.rf[axis] for source in sources) for axis in (0, 1))
    jump_in = tuple(max(source.jump[axis] for source in sources) for axis in (0, 1))
    widest = "the widest of its inputs: " if len(sources) > 1 else ""
    window = kind.window(data.attrs, shapes)
    if window is None:
        return f"{widest}{_axes(rf)}, as it receives (no window); jump {_axes(jump)}"
    texts = [_window_rule(window, axis, rf_in[axis], jump_in[axis], rf[axis], jump[axis]) for axis in (0, 1)]
    same = texts[0] == texts[1]
    return widest + (f"H = W: {texts[0]}" if same else f"H: {texts[0]};  W: {texts[1]}")


def _window_rule(window, axis: int, rf_in, jump_in, rf, jump) -> str:
    """The textbook rule with its numbers; where outputs next to each other read the same input pixels (after
    an upsampling), the exact figure is the widest over the outputs, and the text says so."""
    if window.mode == "transposed":  # each output reads ⌈k/s⌉ input positions
        kernel, scale = window.kernel[axis], window.upsample[axis]
        rule = f"{_n(rf_in)} + (⌈{kernel}/{scale}⌉ − 1)·{_n(jump_in)}"
        textbook = rf_in + (-(-kernel // scale) - 1) * jump_in
        moved = f"jump {_n(jump_in)}/{scale} = {_n(jump)}"
    elif window.mode in ("nearest", "linear"):
        reads = 1 if window.mode == "nearest" else 2
        rule = f"{_n(rf_in)} + ({reads} − 1)·{_n(jump_in)}"
        textbook = rf_in + (reads - 1) * jump_in
        moved = f"jump {_n(jump)} (the sizes' ratio)"
    else:
        kernel, dilation, stride = window.kernel[axis], window.dilation[axis], window.stride[axis]
        rule = f"{_n(rf_in)} + ({kernel} − 1)·{dilation}·{_n(jump_in)}"
        textbook = rf_in + (kernel - 1) * dilation * jump_in
        moved = f"jump {_n(jump_in)}·{stride} = {_n(jump)}"
    if textbook == rf:
        return f"{rule} = {_n(rf)}, {moved}"
    return f"{rule} = {_n(textbook)} for evenly spread inputs; the widest output sees {_n(rf)} pixels, {moved}"


def _per_group(channels: int, groups: int) -> str:
    return str(channels) if groups == 1 else f"({channels}/{groups})"


def _factors(shape) -> str:
    return "·".join(str(dim) for dim in shape) if len(shape) > 1 else str(shape[0])


def _axes(value) -> str:
    return _n(value[0]) if value[0] == value[1] else f"{_n(value[0])}×{_n(value[1])}"


def _n(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
