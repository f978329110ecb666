"""Each layer kind against a reference written with torch.nn.functional alone, never with cnndsl's rules.

The torch module runs in float64, where 1e-10 is far below the effect of any attribute (an ε of 1e-5 on a
running variance of 0.01 moves the output by ~1e-3); the ONNX file runs in onnxruntime in float32 at 1e-5.
Running variances are small on purpose, so that an ignored ε shows. Training mode is tested too: dropout's
rate and batch norm's running statistics after a step with the given momentum.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

import cnndsl
from cnndsl.graph import ir


def _network(body: str, shape: str):
    net = cnndsl.parse(f"network t {{\n    input {shape}\n    {body}\n}}\n")
    module = net.to_torch(seed=0)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, buffer in module.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(torch.randn(buffer.shape, generator=generator) * 0.5)
            elif name.endswith("running_var"):
                buffer.copy_(torch.rand(buffer.shape, generator=generator) * 0.09 + 0.01)
        for _, parameter in module.named_parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return net, module.eval()


def _check(body: str, shape: str, reference, batch: int = 2, fold_bn: bool = False):
    """cnndsl's torch module (float64) and ONNX file (float32) against `reference(x, weights)`."""
    net, module = _network(body, shape)
    weights = {name: value.double() for name, value in module.state_dict().items()}
    x = torch.randn(batch, *net.input_shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    expected = reference(x, weights)
    assert ir.layer(net.graph, net.outputs[0][1]).shape == tuple(expected.shape[1:])  # the inferred shape too
    assert net.params == sum(parameter.numel() for parameter in module.parameters())  # as torch's layers count
    with torch.no_grad():
        got = module.double()(x)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    model = net.to_onnx(weights=module.float(), fold_bn=fold_bn)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: x.float().numpy()})
    np.testing.assert_allclose(onnx_out, expected.numpy(), rtol=1e-5, atol=1e-5)


def test_conv_with_stride_padding_dilation_groups_and_bias():
    _check(
        "conv(6, k=3, s=2, p=2, d=2, g=2)",
        "4x11x11",
        lambda x, w: F.conv2d(x, w["conv.weight"], w["conv.bias"], stride=2, padding=2, dilation=2, groups=2),
    )


def test_asymmetric_kernel_and_stride():
    _check(
        "conv(5, k=(1, 3), s=(2, 1), p=(0, 1), bias=false)",
        "3x8x9",
        lambda x, w: F.conv2d(x, w["conv.weight"], None, stride=(2, 1), padding=(0, 1)),
    )


def test_deconv_with_output_padding_and_groups():
    _check(
        "deconv(4, k=3, s=2, p=1, op=1, g=2)",
        "6x5x7",
        lambda x, w: F.conv_transpose2d(
            x, w["deconv.weight"], w["deconv.bias"], stride=2, padding=1, output_padding=1, groups=2
        ),
    )


@pytest.mark.parametrize(
    "layer, reference",
    [
        ("maxpool(k=3, s=2, ceil=true)", lambda x: F.max_pool2d(x, 3, 2, ceil_mode=True)),
        ("maxpool(k=3, s=2, p=1)", lambda x: F.max_pool2d(x, 3, 2, padding=1)),
        ("avgpool(k=3, s=2, p=1, ceil=true)", lambda x: F.avg_pool2d(x, 3, 2, padding=1, ceil_mode=True)),
        ("gap", lambda x: x.mean((2, 3), keepdim=True)),
        ("adaptiveavgpool(3)", lambda x: F.adaptive_avg_pool2d(x, 3)),
        ("upsample(3)", lambda x: F.interpolate(x, scale_factor=3, mode="nearest")),
        (
            "upsample(2, mode=bilinear)",
            lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False),
        ),
        ("leakyrelu(0.2)", lambda x: F.leaky_relu(x, 0.2)),
        ("lrn(size=3, alpha=0.5, beta=0.6, k=1.5)", lambda x: F.local_response_norm(x, 3, alpha=0.5, beta=0.6, k=1.5)),
        ("relu6", F.relu6),
        ("hardswish", F.hardswish),
        ("silu", F.silu),
        ("gelu", F.gelu),
        ("sigmoid", torch.sigmoid),
    ],
)
def test_weightless_layers(layer, reference):
    _check(layer, "3x10x10", lambda x, w: reference(x))


@pytest.mark.parametrize("fold_bn", [False, True])
def test_batch_norm_uses_its_epsilon_and_running_statistics(fold_bn):
    def reference(x, w):
        y = F.conv2d(x, w["conv.weight"], None, padding=1)
        return F.batch_norm(y, w["bn.running_mean"], w["bn.running_var"], w["bn.weight"], w["bn.bias"], eps=1e-3)

    _check("conv(5, bias=false), bn(eps=1e-3)", "3x6x6", reference, fold_bn=fold_bn)


def test_concat_puts_the_current_tensor_first_then_the_taps_in_order():
    def reference(x, w):
        a = F.conv2d(x, w["conv1.weight"], w["conv1.bias"], padding=1)
        b = F.conv2d(a, w["conv2.weight"], w["conv2.bias"], padding=1)
        c = F.conv2d(b, w["conv3.weight"], w["conv3.bias"], padding=1)
        return torch.cat([c, a, b], 1)

    _check("a: conv3x3(2), b: conv3x3(3), conv3x3(4), concat(@a, @b)", "3x5x5", reference)


def test_concat_crop_takes_the_centre_of_the_larger_tap():
    """7 pixels cropped to 4: the odd difference puts the extra pixel after the window, as U-Net's crop does
    (an even one could not tell rounding down from rounding up)."""

    def reference(x, w):
        a = F.conv2d(x, w["conv1.weight"], w["conv1.bias"])  # 3x9x9 -> 2x7x7
        b = F.conv2d(F.conv2d(a, w["conv2.weight"], w["conv2.bias"]), w["conv3.weight"], w["conv3.bias"])  # 4x4
        return torch.cat([b, a[:, :, 1:5, 1:5]], 1)

    _check("a: conv(2, k=3, p=0), conv(2, k=2, p=0), conv(2, k=3, p=0), concat(@a, crop=true)", "3x9x9", reference)


def test_residual_adds_the_shortcut_and_scale_gates_per_channel():
    def reference(x, w):
        y = F.conv2d(x, w["conv.weight"], w["conv.bias"], padding=1) + x
        gate = torch.sigmoid(F.linear(y.mean((2, 3)), w["scale.fc.weight"], w["scale.fc.bias"]))
        return y * gate[:, :, None, None]

    _check("residual { conv3x3(4) }\n    scale { gap, fc(4), sigmoid }", "4x6x6", reference)


def test_fc_flattens_channels_first():
    _check("fc(7)", "3x2x4", lambda x, w: F.linear(x.flatten(1), w["fc.weight"], w["fc.bias"]))


def test_kaiming_init_uses_fan_out_as_torchvision_does():
    """He et al. for ReLU networks with fan_out = C_out·K·K, as torchvision's ResNet: 3 -> 64 channels tells fan_out
    (std 0.0589) from fan_in (std 0.272)."""
    net = cnndsl.parse("network t { input 3x8x8\n conv(64, k=3) }")
    weight = net.to_torch(init="kaiming", seed=0).conv.weight
    assert abs(weight.std().item() / (2 / (64 * 9)) ** 0.5 - 1) < 0.05  # 1,728 draws: ~2 % standard error


# ---- training mode --------------------------------------------------------------------------------
def test_dropout_drops_at_its_rate_and_rescales():
    net = cnndsl.parse("network t { input 20000\n dropout(0.3) }")
    module = net.to_torch().train()
    torch.manual_seed(0)
    y = module(torch.ones(5, 20000))
    kept = (y != 0).double().mean().item()
    assert abs(kept - 0.7) < 0.01  # 100,000 draws: the standard error is 0.0014
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.7))


def test_batch_norm_running_statistics_follow_its_momentum():
    net = cnndsl.parse("network t { input 3x4x4\n bn(momentum=0.3) }")
    module = net.to_torch().train()
    x = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    module(x)
    mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=True)
    torch.testing.assert_close(module.bn.running_mean, 0.3 * mean)
    torch.testing.assert_close(module.bn.running_var, 0.7 * torch.ones(3) + 0.3 * var)
