"""An independent NumPy Darknet: the layers as darknet's C code computes them, for tests/test_import.py.

Written from darknet's convolutional_layer.c, batchnorm_layer.c, maxpool_layer.c, route_layer.c,
shortcut_layer.c (shortcut_cpu), upsample_layer.c, avgpool_layer.c and connected_layer.c."""

from __future__ import annotations

import numpy as np


def conv(x, weight, pad, stride):
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    size = weight.shape[-1]
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size), axis=(1, 2))[:, ::stride, ::stride]
    return np.einsum("chwij,ocij->ohw", windows, weight, dtype=np.float64)


def batchnorm(x, scales, biases, mean, variance):
    """normalize_cpu: (x - mean) / (sqrt(variance) + .000001f); scale_bias; add_bias."""
    normed = (x - mean[:, None, None]) / (np.sqrt(variance)[:, None, None] + 0.000001)
    return normed * scales[:, None, None] + biases[:, None, None]


def activate(x, name):
    if name == "leaky":
        return np.where(x > 0, x, 0.1 * x)
    if name == "mish":
        return x * np.tanh(np.log1p(np.exp(x)))
    assert name == "linear"
    return x


def maxpool(x, size, stride, padding=None):
    """forward_maxpool_layer: out = (h + padding - size) / stride + 1, windows from -padding/2, clipped."""
    padding = size - 1 if padding is None else padding
    channels, height, width = x.shape
    out_h, out_w = (height + padding - size) // stride + 1, (width + padding - size) // stride + 1
    offset = -(padding // 2)
    out = np.full((channels, out_h, out_w), -np.inf)
    for i in range(out_h):
        for j in range(out_w):
            for n in range(size):
                for m in range(size):
                    y, xx = offset + i * stride + n, offset + j * stride + m
                    if 0 <= y < height and 0 <= xx < width:
                        out[:, i, j] = np.maximum(out[:, i, j], x[:, y, xx])
    return out


def route(layers, groups=1, group_id=0):
    parts = []
    for x in layers:
        part = x.shape[0] // groups
        parts.append(x[group_id * part : (group_id + 1) * part])
    return np.concatenate(parts)


def shortcut(out, add):
    """shortcut_cpu: add sampled at stride w_add / w_out onto the first min(c) channels of out."""
    stride, sample = max(add.shape[2] // out.shape[2], 1), max(out.shape[2] // add.shape[2], 1)
    channels = min(out.shape[0], add.shape[0])
    height, width = min(out.shape[1], add.shape[1]), min(out.shape[2], add.shape[2])
    result = out.copy()
    for k in range(channels):
        for j in range(height):
            for i in range(width):
                result[k, j * sample, i * sample] += add[k, j * stride, i * stride]
    return result


def upsample(x, stride):
    return x.repeat(stride, axis=1).repeat(stride, axis=2)


def avgpool(x):
    return x.mean(axis=(1, 2), keepdims=True)


def connected(x, weight, biases):
    return weight @ x.reshape(-1) + biases
