"""An independent NumPy Caffe for tests/test_import_caffe.py: layers as Caffe's CPU code computes them,
and a .caffemodel written in protobuf's wire format by hand (no caffe.proto, no protobuf package).

Written from Caffe's conv_layer.cpp / im2col.cpp, pooling_layer.cpp (Forward_cpu, Reshape), lrn_layer.cpp
(CrossChannelForward_cpu), batch_norm_layer.cpp, scale_layer.cpp, inner_product_layer.cpp, relu_layer.cpp,
eltwise_layer.cpp, concat_layer.cpp and softmax_layer.cpp."""

from __future__ import annotations

import math
import struct

import numpy as np


def conv(x, weight, bias, stride=(1, 1), pad=(0, 0), dilation=1, group=1):
    """Caffe's convolution: per group, every output pixel the dot product of its dilated, zero-padded window."""
    channels, height, width = x.shape
    outputs, per_group, kernel_h, kernel_w = weight.shape
    padded = np.pad(x, ((0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    out_h = (height + 2 * pad[0] - (dilation * (kernel_h - 1) + 1)) // stride[0] + 1
    out_w = (width + 2 * pad[1] - (dilation * (kernel_w - 1) + 1)) // stride[1] + 1
    y = np.zeros((outputs, out_h, out_w))
    per_out = outputs // group
    for o in range(outputs):
        g = o // per_out
        for i in range(out_h):
            for j in range(out_w):
                rows = i * stride[0] + dilation * np.arange(kernel_h)
                cols = j * stride[1] + dilation * np.arange(kernel_w)
                window = padded[g * per_group : (g + 1) * per_group][:, rows][:, :, cols]
                y[o, i, j] = np.sum(window * weight[o])
    return y + (bias[:, None, None] if bias is not None else 0)


def deconv(x, weight, bias, stride, pad, group=1):
    """DeconvolutionLayer (col2im of the transposed product): each input pixel adds its kernel, scaled, at
    stride·position − pad of the output; blobs (in, out/group, kh, kw)."""
    channels, height, width = x.shape
    _, per_group, kernel_h, kernel_w = weight.shape
    outputs = per_group * group
    full = np.zeros((outputs, (height - 1) * stride + kernel_h, (width - 1) * stride + kernel_w))
    per_in = channels // group
    for c in range(channels):
        g = c // per_in
        for i in range(height):
            for j in range(width):
                window = full[g * per_group : (g + 1) * per_group, i * stride : i * stride + kernel_h]
                window[:, :, j * stride : j * stride + kernel_w] += x[c, i, j] * weight[c]
    cropped = full[:, pad : full.shape[1] - pad, pad : full.shape[2] - pad]
    return cropped + (bias[:, None, None] if bias is not None else 0)


def prelu(x, slopes):
    return np.maximum(x, 0) + slopes.reshape(-1, *[1] * (x.ndim - 1)) * np.minimum(x, 0)


def pooled_size(size, kernel, stride, pad):
    """PoolingLayer::Reshape: rounded up, then the last window dropped if it starts in the padding."""
    out = int(math.ceil((size + 2 * pad - kernel) / stride)) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def pool(x, method, kernel, stride, pad=0):
    """PoolingLayer::Forward_cpu: MAX over the window clipped to the image; AVE divides by the window clipped
    to the padded image (pad counted, the part past it not)."""
    channels, height, width = x.shape
    out_h, out_w = pooled_size(height, kernel, stride, pad), pooled_size(width, kernel, stride, pad)
    y = np.zeros((channels, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            h0, w0 = i * stride - pad, j * stride - pad
            h1, w1 = min(h0 + kernel, height + pad), min(w0 + kernel, width + pad)
            pool_size = (h1 - h0) * (w1 - w0)
            h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, height), min(w1, width)
            window = x[:, h0:h1, w0:w1]
            if method == "MAX":
                y[:, i, j] = window.max(axis=(1, 2))
            else:
                y[:, i, j] = window.sum(axis=(1, 2)) / pool_size
    return y


def lrn(x, size, alpha, beta, k):
    """CrossChannelForward_cpu: scale = k + alpha/size * sum of squares over `size` channels around each."""
    channels = x.shape[0]
    half = (size - 1) // 2
    squares = np.pad(x**2, ((half, size - 1 - half), (0, 0), (0, 0)))
    scale = k + alpha / size * np.stack([squares[c : c + size].sum(axis=0) for c in range(channels)])
    return x * scale**-beta


def batch_norm(x, mean, variance, factor, eps=1e-5):
    """BatchNormLayer with use_global_stats: the stored sums divided by the moving-average factor."""
    scale = 0 if factor[0] == 0 else 1 / factor[0]
    mean, variance = mean * scale, variance * scale
    return (x - mean[:, None, None]) / np.sqrt(variance[:, None, None] + eps)


def scale(x, gamma, beta):
    return x * gamma[:, None, None] + beta[:, None, None]


def inner_product(x, weight, bias):
    return weight @ x.reshape(-1) + bias


def relu(x, negative_slope=0.0):
    return np.maximum(x, 0) + negative_slope * np.minimum(x, 0)


def softmax(x):
    e = np.exp(x - x.max(axis=0))
    return e / e.sum(axis=0)


# --- the protobuf wire format, by hand: field numbers from BVLC's caffe.proto ---------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): a string, a message or a packed repeated field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def blob(array, legacy: bool = False) -> bytes:
    """BlobProto: shape (7: BlobShape, dim = 1 packed int64) or the legacy num/channels/height/width (1-4),
    then data (5, packed float)."""
    array = np.asarray(array, dtype="<f4")
    if legacy:
        dims = (1,) * (4 - array.ndim) + array.shape
        head = b"".join(_varint(number << 3) + _varint(dim) for number, dim in zip((1, 2, 3, 4), dims, strict=True))
    else:
        head = _field(7, _field(1, b"".join(_varint(dim) for dim in array.shape)))
    return head + _field(5, struct.pack(f"<{array.size}f", *array.reshape(-1)))


def caffemodel(layers: dict[str, list], v1: bool = False) -> bytes:
    """NetParameter with one layer per name holding its blobs: `layer` (100; name 1, blobs 7) or V1 `layers`
    (2; name 4, blobs 6, legacy 4-D blob shapes)."""
    net, name_field, blobs_field = (2, 4, 6) if v1 else (100, 1, 7)
    out = b""
    for name, arrays in layers.items():
        body = _field(name_field, name.encode()) + b"".join(_field(blobs_field, blob(a, v1)) for a in arrays)
        out += _field(net, body)
    return out
