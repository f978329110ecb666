"""The receptive field and jump measured by autograd on the module `to_torch()` compiles, for tests/test_oracles.py.

The compiled fx graph is kept node for node; each layer module is swapped for a positive linear one of the same
geometry, so that no gradient cancels and every pixel a layer reads gets one: activations, batch and layer norm and
dropout become the identity (a layer norm keeps its mixing of the channels), max pooling becomes average pooling
over the same window, a convolution's weights are all equal and positive. A convolution is run as its groups'
channel means convolved with one window per group and repeated to the output channels: the same pixels reach each
output channel as through the full weights, at the cost of a depthwise convolution (checked against nn.Conv2d
and nn.ConvTranspose2d in tests/test_oracles.py). Values are float64: the weight of a field's outermost pixel is a
product of one tap per layer, (1/9)^depth, which float32 rounds to zero in a deep network.

The field of one output position is the span from the first to the last input row (or column) with a non-zero
gradient; the network's own code, not cnndsl's analysis, decides which pixels those are.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

IDENTITIES = (
    nn.BatchNorm2d,
    nn.BatchNorm1d,
    nn.Dropout,
    nn.ReLU,
    nn.ReLU6,
    nn.SiLU,
    nn.GELU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Sigmoid,
    nn.Tanh,
    nn.LeakyReLU,
)
KEPT = (nn.AvgPool2d, nn.AdaptiveAvgPool2d)  # already linear with positive weights
IN_PLACE = {"add_": operator.add, "mul_": operator.mul}


class SummedConv(nn.Module):
    """A convolution (or transposed one) with every weight equal: each group's channel mean, one window per group,
    repeated to the group's output channels."""

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d):
        super().__init__()
        if conv.padding_mode != "zeros":
            raise ValueError(f"padding mode {conv.padding_mode!r} is not probed")
        self.conv = conv
        self.transposed = isinstance(conv, nn.ConvTranspose2d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, groups = self.conv, self.conv.groups
        n, channels, height, width = x.shape
        means = x.reshape(n, groups, channels // groups, height, width).mean(2)
        kernel = conv.kernel_size
        weight = torch.full((groups, 1, *kernel), 1.0 / (kernel[0] * kernel[1]), dtype=x.dtype)
        if self.transposed:
            y = F.conv_transpose2d(
                means, weight, None, conv.stride, conv.padding, conv.output_padding, groups, conv.dilation
            )
        else:
            y = F.conv2d(means, weight, None, conv.stride, conv.padding, conv.dilation, groups)
        return y.repeat_interleave(conv.out_channels // groups, dim=1)


class MeanLinear(nn.Module):
    """A fully connected layer with equal weights: every output feature is the mean of the input features."""

    def __init__(self, features: int):
        super().__init__()
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(-1, keepdim=True).expand(*x.shape[:-1], self.features)


class MeanOver(nn.Module):
    """A norm over the last `dims` axes (layer norm): each value becomes the mean of the values it normalises with."""

    def __init__(self, dims: int):
        super().__init__()
        self.dims = tuple(range(-dims, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(self.dims, keepdim=True).expand_as(x)


class ChannelWindow(nn.Module):
    """Local response normalisation's reach: each channel's mean with its `size` neighbours, at the same pixel."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        near = F.avg_pool3d(x.unsqueeze(1), (self.size, 1, 1), 1, (self.size // 2, 0, 0), count_include_pad=True)
        return near.squeeze(1)[:, : x.shape[1]]


def positive(module: nn.Module) -> nn.Module:
    """The positive linear stand-in of one compiled layer module."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        return SummedConv(module)
    if isinstance(module, nn.MaxPool2d):
        if module.dilation not in (1, (1, 1)):
            raise ValueError("a dilated max pooling has no average pooling of the same window")
        return nn.AvgPool2d(module.kernel_size, module.stride, module.padding, module.ceil_mode, True)
    if isinstance(module, nn.Linear):
        return MeanLinear(module.out_features)
    if isinstance(module, nn.LayerNorm):
        return MeanOver(len(module.normalized_shape))
    if isinstance(module, nn.LocalResponseNorm):
        return ChannelWindow(module.size)
    if isinstance(module, IDENTITIES):
        return nn.Identity()
    if isinstance(module, KEPT):
        return module
    raise TypeError(f"no positive stand-in for {type(module).__name__}")


class _Recorder(fx.Interpreter):
    """Runs the stand-in, noting each upsampling node's factor: a transposed convolution's or a resize's output
    rows (or columns) per input row, rounded up."""

    def __init__(self, module: fx.GraphModule):
        super().__init__(module)
        self.factor: dict[fx.Node, int] = {}

    def run_node(self, node: fx.Node):
        result = super().run_node(node)
        upsampling = node.target is F.interpolate or (
            node.op == "call_module" and getattr(self.module.get_submodule(node.target), "transposed", False)
        )
        if upsampling:
            size = node.args[0].meta["size"]
            self.factor[node] = max(-(-result.shape[2] // size[0]), -(-result.shape[3] // size[1]))
        if isinstance(result, torch.Tensor) and result.dim() == 4:
            node.meta["size"] = tuple(result.shape[2:])
        return result

    def period(self, node: fx.Node) -> int:
        """The product of the upsampling factors upstream of `node`: a multiple of how many output rows it takes
        for the fields to repeat, shifted."""
        seen, todo, product = set(), [node], 1
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            product *= self.factor.get(current, 1)
            todo.extend(current.all_input_nodes)
        return product


@dataclass(frozen=True)
class Field:
    """Where one output position's nonzero gradient lies along the probed axis: its first and last input index."""

    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1


class Probe:
    """One forward of the positive stand-in of `module` (an fx GraphModule from `to_torch()`, on any device) on an
    input of ones, keeping the outputs of the fx nodes of `targets` (IR node ids), for backward passes."""

    def __init__(self, module: fx.GraphModule, input_shape: tuple[int, ...], targets: list[int]):
        graph = fx.Graph()
        values: dict[fx.Node, fx.Node] = {}
        by_id: dict[int, fx.Node] = {}
        stand_ins = nn.Module()
        for node in module.graph.nodes:
            if node.op == "output":
                continue
            if node.op == "call_module":
                name = f"m{len(values)}"
                stand_ins.add_module(name, positive(module.get_submodule(node.target)))
                copy = graph.call_module(name, fx.map_arg(node.args, values.get), dict(node.kwargs))
            elif node.op == "get_attr":  # a layer that is one tensor (layer scale): ones
                name = f"t{len(values)}"
                stand_ins.register_buffer(
                    name, torch.ones(module.get_parameter(node.target).shape, dtype=torch.float64)
                )
                copy = graph.get_attr(name)
            elif (
                node.op == "call_method" and node.target in IN_PLACE
            ):  # out of place, so kept outputs stay as they were
                copy = graph.call_function(IN_PLACE[node.target], fx.map_arg(node.args, values.get))
            else:
                copy = graph.node_copy(node, values.get)
            values[node] = copy
            if "cnndsl_node" in node.meta:
                by_id[node.meta["cnndsl_node"]] = copy
        graph.output(tuple(by_id[target] for target in targets))
        self.module = fx.GraphModule(stand_ins, graph)
        graph.eliminate_dead_code()  # the layers after the last target (a classifier) are never run
        self.module.recompile()
        self.input = torch.ones(1, *input_shape, dtype=torch.float64, requires_grad=True)
        recorder = _Recorder(self.module)
        self.outputs = dict(zip(targets, recorder.run(self.input)))
        self.period = {target: recorder.period(by_id[target]) for target in targets}

    def fields(self, target: int, axis: int, positions: list[int]) -> list[Field]:
        """The field along `axis` (0: rows, 1: columns) of each position along that axis of the target's output,
        at the centre of the other axis: one backward each (a batched one, through vmap, is 20 times slower)."""
        output = self.outputs[target][0]
        other = output.shape[2 - axis] // 2
        found = []
        for position in positions:
            pixel = output[:, position, other] if axis == 0 else output[:, other, position]
            (grad,) = torch.autograd.grad(pixel.sum(), self.input, retain_graph=True)
            seen = torch.nonzero(grad[0].abs().sum((0, 2 if axis == 0 else 1))).flatten()
            found.append(Field(seen.min().item(), seen.max().item()))
        return found
