"""Normalisations of meta tensors by their shape rule alone, for the generated source's self-check.

On the meta device torch runs batch, layer, group and instance norm through their Python decompositions, about
twenty times the cost of a convolution, and `--to python` runs a forward of every class it writes to check it.
The rules here raise where torch would, so the check still catches a width the generated code got wrong.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


def _channels_match(input: torch.Tensor, *per_channel: torch.Tensor | None) -> torch.Tensor:
    if input.dim() < 2:
        raise RuntimeError(f"a normalisation over channels needs a batch and channels, got {tuple(input.shape)}")
    for tensor in per_channel:
        if tensor is not None and tuple(tensor.shape) != (input.shape[1],):
            raise RuntimeError(f"{tuple(tensor.shape)} per-channel values for {input.shape[1]} channels")
    return torch.empty_like(input)


def _batch_norm(input, running_mean, running_var, weight=None, bias=None, *args, **kwargs):
    return _channels_match(input, running_mean, running_var, weight, bias)


def _instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, *args, **kwargs):
    return _channels_match(input, running_mean, running_var, weight, bias)


def _group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    if input.dim() < 2 or input.shape[1] % num_groups:
        raise RuntimeError(f"{tuple(input.shape)} does not split into {num_groups} groups of channels")
    return _channels_match(input, weight, bias)


def _layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    shape = tuple(normalized_shape)
    if tuple(input.shape[input.dim() - len(shape) :]) != shape or len(shape) > input.dim():
        raise RuntimeError(f"{tuple(input.shape)} does not end in the normalised shape {shape}")
    for tensor in (weight, bias):
        if tensor is not None and tuple(tensor.shape) != shape:
            raise RuntimeError(f"{tuple(tensor.shape)} affine values for the normalised shape {shape}")
    if not math.prod(shape):
        raise RuntimeError("layer norm over an empty shape")
    return torch.empty_like(input)


_RULES = {
    F.batch_norm: _batch_norm,
    F.instance_norm: _instance_norm,
    F.group_norm: _group_norm,
    F.layer_norm: _layer_norm,
}


class ShapeOnlyNorms(TorchFunctionMode):
    """Within it, the four normalisations of a meta tensor return an empty tensor of their output's shape."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        rule = _RULES.get(func)
        if rule is not None and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            return rule(*args, **kwargs)
        return func(*args, **kwargs)
