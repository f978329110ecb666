"""Receptive fields against a gradient probe in torch: the most input pixels any output pixel depends on.

The probe builds the network in torch with every weight and bias positive, max pooling swapped for average
pooling over the same window (so that every pixel of a window gets a gradient), and an input of ones; the
extent of the nonzero gradient of one output pixel is the pixels it depends on. Output pixels whose extent
touches the image border are left out, since the figure, like the textbook one, is not clipped there.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import cnndsl
from cnndsl.core.resources import library_dir
from cnndsl.graph import ir


def _probe(net, rows: range) -> int:
    module = net.to_torch(seed=0).eval()
    for name, child in list(module.named_modules()):
        if isinstance(child, nn.MaxPool2d):
            parent = module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module
            setattr(
                parent,
                name.rsplit(".", 1)[-1],
                nn.AvgPool2d(child.kernel_size, child.stride, child.padding, ceil_mode=child.ceil_mode),
            )
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.fill_(0.01)
    rows = list(rows)
    x = torch.ones(len(rows), *net.input_shape, requires_grad=True)  # one image per probed row, one backward
    y = module(x)
    y[torch.arange(len(rows)), 0, rows, y.shape[3] // 2].sum().backward()
    height, widest = net.input_shape[1], 0
    for grad in x.grad:
        seen = torch.nonzero(grad.abs().sum((0, 2))).flatten()
        first, last = seen.min().item(), seen.max().item()
        if first > 0 and last < height - 1:
            widest = max(widest, last - first + 1)
    return widest


def test_unet_sees_204_pixels_as_the_probe_finds():
    """U-Net's 2×2 up-convolutions read one pixel per output: adjacent outputs share their inputs, so the
    widest output pixel sees 204 input pixels (the textbook formula, which assumes an even spread, says 215)."""
    assert cnndsl.load("unet").summary().layers[-1]["rf"] == 204
    # the probe on the same layout with 4 channels everywhere, on a 252×252 tile the figure fits in (output 68×68)
    text = re.sub(r"\((64|128|256|512|1024)\)", "(4)", (library_dir() / "unet.cnn").read_text())
    net = cnndsl.parse(text, network="unet", input=(1, 252, 252))
    assert net.summary().layers[-1]["rf"] == 204
    assert _probe(net, range(26, 42)) == 204  # one period: four ×2 up-convolutions repeat every 16 rows


@pytest.mark.parametrize(
    "body",
    [
        "conv(4, k=3, s=2), deconv(4, k=3, s=2, p=1, op=1), conv3x3(4)",
        "conv(4, k=3, s=2), conv(4, k=3, s=2), upsample(2), conv3x3(4), conv3x3(4)",
        "conv(4, k=5, s=2), upsample(2, mode=bilinear), conv3x3(4)",
        "conv(4, k=3, s=2), deconv(4, k=2, s=2), conv3x3(4), upsample(3), conv(4, k=5)",
        "a: conv(4, k=3, p=0), conv(4, k=3, s=2, p=0), deconv(4, k=2, s=2), concat(@a, crop=true), conv3x3(4)",
        "conv1x1(16), conv(16, k=3, s=2), pixelshuffle(2), conv3x3(4)",
        "conv(4, k=3, s=2), conv(4, k=3, s=2), resize(@x), conv3x3(4)",
        "maxpool3x3(s=2, p=1), conv(4, k=3, d=2), upsample(2), conv(4, k=2, p=0)",
    ],
)
def test_small_networks_match_the_probe(body):
    net = cnndsl.parse(f"network n {{\n    x: input 3x40x40\n    {body}\n}}")
    rows = range(ir.layer(net.graph, net.outputs[0][1]).shape[1])
    assert net.summary().layers[-1]["rf"] == _probe(net, rows)


def test_a_strided_chain_keeps_the_textbook_figures():
    net = cnndsl.parse("network n { input 3x227x227\n conv(64, k=11, s=4, p=2), maxpool3x3(s=2), conv(192, k=5, p=2) }")
    # by hand: 11; 11 + 2·4 = 19; 19 + 4·8 = 51; jumps 4, 8, 8
    assert [(layer["rf"], layer["jump"]) for layer in net.summary().layers] == [(11, 4), (19, 8), (51, 8)]
