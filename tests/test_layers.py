"""Each layer kind computes what an independent reference computes: torch.nn.functional, torch.nn or
torchvision.ops on small random inputs, through both the compiled torch module and the ONNX export
(onnxruntime); and its figures (params, MACs, receptive field) are the hand-counted ones."""

from __future__ import annotations

import re

import onnxruntime
import pytest
import torch
import torch.nn.functional as F
from oracles import torchvision_models

import cnndsl
from cnndsl.backends.onnx import build_model
from cnndsl.core.errors import CnnDslError
from cnndsl.graph import ir

TOLERANCE = 1e-5  # absolute, on outputs of order 1: well below the effect of any attribute tested (eps=1e-3, ...)


def torchvision_ops():
    """`torchvision.ops`, importable on the CPU build of torch (see tests/oracles.py)."""
    torchvision_models()
    import torchvision.ops

    return torchvision.ops


def compile_network(body: str, shape: str = "4x6x5", blocks: str = ""):
    """A network from the lines of its body (after `blocks`), compiled to torch (eval, seeded weights) and ONNX."""
    network = cnndsl.parse(f"{blocks}\nnetwork n {{\n    x: input {shape}\n{body}\n}}")
    module = network.to_torch(seed=0).eval()
    with torch.no_grad():  # weights that are not PyTorch's defaults, so a misplaced one shows
        for parameter in module.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1)) * 0.3)
    session = onnxruntime.InferenceSession(
        build_model(network, weights=module).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return network, module, session


def both(network, module, session, images: torch.Tensor) -> list[torch.Tensor]:
    """The torch module's output and onnxruntime's, for the same images."""
    with torch.no_grad():
        from_torch = module(images)
    from_onnx = session.run(None, {network.input_name: images.numpy()})[0]
    return [from_torch, torch.from_numpy(from_onnx)]


def images(shape: str, batch: int = 3, seed: int = 0) -> torch.Tensor:
    dims = [int(d) for d in shape.split("x")]
    return torch.randn(batch, *dims, generator=torch.Generator().manual_seed(seed))


def assert_computes(body: str, reference, shape: str = "4x6x5", blocks: str = ""):
    """The torch module and the ONNX export both equal `reference(images, module)`; returns the network."""
    network, module, session = compile_network(body, shape, blocks)
    x = images(shape)
    with torch.no_grad():
        expected = reference(x, module)
    for got in both(network, module, session, x):
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=TOLERANCE, rtol=0), (got - expected).abs().max()
    return network


def figures(network, name: str) -> dict:
    layer = next(layer for _, layer in ir.layers(network.graph) if layer.name == name)
    figures = layer.figures
    return {
        "shape": layer.shape,
        "params": figures.params,
        "macs": figures.macs,
        "rf": figures.rf,
        "jump": figures.jump,
    }


# ---- mul ---------------------------------------------------------------------------------
def test_mul_by_a_constant_scales_and_gates_too_when_given_a_tap():
    assert_computes("relu, mul(0.5)", lambda x, m: F.relu(x) * 0.5)
    assert_computes("a: conv1x1(4), relu, mul(@a, 0.5)", lambda x, m: F.relu(m.conv(x)) * m.conv(x) * 0.5)


# ---- stochastic depth -------------------------------------------------------------------------
def test_stochastic_depth_is_the_identity_in_eval_mode():
    assert_computes("conv3x3(4), stochasticdepth(0.3)", lambda x, m: m.conv(x))


def test_stochastic_depth_drops_whole_samples_at_rate_p_and_rescales_survivors_as_torchvision_does():
    stochastic_depth = torchvision_ops().stochastic_depth
    module = cnndsl.parse("network n { input 4x2x2\n droppath(0.25) }").to_torch().train()
    x = images("4x2x2", batch=4000) + 3  # no sample is zero by chance
    torch.manual_seed(7)
    out = module(x)
    torch.manual_seed(7)
    assert torch.equal(out, stochastic_depth(x, 0.25, "row", training=True))  # the same mask from the same seed
    dropped = (out == 0).flatten(1).all(1)
    kept = torch.allclose(out[~dropped], x[~dropped] / 0.75, rtol=1e-6, atol=0)
    assert kept and ((out == 0) == dropped.view(-1, 1, 1, 1)).all()  # a sample is dropped whole or kept whole
    # 4000 samples: the drop rate's standard deviation is sqrt(0.25 · 0.75 / 4000) = 0.0068; allow 4 of them
    assert abs(dropped.float().mean().item() - 0.25) < 4 * 0.0068


def test_stochastic_depth_at_the_end_of_a_residual_body_drops_the_body_not_the_shortcut():
    network = cnndsl.parse("network n { input 4x3x3\n residual { conv3x3(4), stochasticdepth(0.5) } }")
    module = network.to_torch(seed=0).train()
    x = images("4x3x3", batch=400)
    with torch.no_grad():
        body, out = module.conv(x), module(x)
    dropped = torch.isclose(out, x, atol=1e-6).flatten(1).all(1)
    assert torch.allclose(out[~dropped], x[~dropped] + body[~dropped] / 0.5, atol=1e-5)
    assert 0.4 < dropped.float().mean().item() < 0.6  # 400 samples: sd 0.025, 4 of them
    assert [name for name, _ in module.named_children()] == ["conv", "stochasticdepth"]


# ---- normalisation and scale -----------------------------------------------------------------
def test_layernorm_normalises_the_channels_of_each_pixel():
    network = assert_computes(
        "layernorm(eps=1e-3)",
        lambda x, m: F.layer_norm(x.permute(0, 2, 3, 1), (4,), m.layernorm.weight, m.layernorm.bias, 1e-3).permute(
            0, 3, 1, 2
        ),
    )
    assert figures(network, "layernorm")["params"] == 8 and figures(network, "layernorm")["macs"] == 0


def test_layernorm_of_a_vector():
    assert_computes(
        "layernorm(eps=1e-3)",
        lambda x, m: F.layer_norm(x, (12,), m.layernorm.weight, m.layernorm.bias, 1e-3),
        shape="12",
    )


def test_groupnorm_normalises_each_group_of_channels():
    network = assert_computes(
        "conv1x1(6), groupnorm(3, eps=1e-3)",
        lambda x, m: F.group_norm(m.conv(x), 3, m.groupnorm.weight, m.groupnorm.bias, 1e-3),
    )
    assert figures(network, "groupnorm")["params"] == 12
    with pytest.raises(CnnDslError, match=r"groups g=4 must divide the channels \(6\)"):
        cnndsl.parse("network n { input 6x4x4\n groupnorm(4) }")


def test_groupnorm_of_a_vector():
    assert_computes(
        "groupnorm(4, eps=1e-3)",
        lambda x, m: F.group_norm(x, 4, m.groupnorm.weight, m.groupnorm.bias, 1e-3),
        shape="12",
    )


def test_layerscale_is_one_learned_factor_per_channel_starting_at_init():
    network = assert_computes("layerscale(0.1)", lambda x, m: x * m.layerscale)
    fresh = network.to_torch().state_dict()["layerscale"]
    assert fresh.shape == (4, 1, 1) and torch.equal(fresh, torch.full((4, 1, 1), 0.1))
    assert figures(network, "layerscale")["params"] == 4 and figures(network, "layerscale")["macs"] == 0


def test_pixelwise_fc_is_a_linear_layer_at_every_pixel_counted_at_every_pixel():
    network = assert_computes(
        "fc(7, pixelwise=true)",
        lambda x, m: F.linear(x.permute(0, 2, 3, 1), m.fc.weight, m.fc.bias).permute(0, 3, 1, 2),
    )
    assert figures(network, "fc") == {
        "shape": (7, 6, 5),
        "params": 4 * 7 + 7,
        "macs": 4 * 7 * 6 * 5,
        "rf": (1, 1),
        "jump": (1, 1),
    }
    assert network.to_torch().state_dict()["fc.weight"].shape == (7, 4)  # nn.Linear's (out, in)


CONVNEXT_BLOCK = """residual {
        dwconv7x7, layernorm(eps=1e-6)
        fc(4 * in.c, pixelwise=true), gelu, fc(8, pixelwise=true)
        layerscale(0.5), stochasticdepth(0.1)
    }"""
# cnndsl's state_dict key -> torchvision's CNBlock key: same shapes, so the checkpoint loads unchanged
CNBLOCK_KEYS = {
    "conv.weight": "block.0.weight",
    "conv.bias": "block.0.bias",
    "layernorm.weight": "block.2.weight",
    "layernorm.bias": "block.2.bias",
    "fc1.weight": "block.3.weight",
    "fc1.bias": "block.3.bias",
    "fc2.weight": "block.5.weight",
    "fc2.bias": "block.5.bias",
    "layerscale": "layer_scale",
}


def test_a_convnext_block_is_torchvisions_cnblock_with_its_weights():
    block = torchvision_models().convnext.CNBlock(8, layer_scale=0.5, stochastic_depth_prob=0.1).eval()
    with torch.no_grad():
        for parameter in block.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=torch.Generator().manual_seed(2)) * 0.3)
    reference = block.state_dict()
    network, module, _ = compile_network(CONVNEXT_BLOCK, "8x6x5")
    module.load_state_dict({key: reference[tv] for key, tv in CNBLOCK_KEYS.items()})
    session = onnxruntime.InferenceSession(
        build_model(network, weights=module).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    x = images("8x6x5")
    with torch.no_grad():
        expected = block(x)
    for got in both(network, module, session, x):
        assert torch.allclose(got, expected, atol=TOLERANCE, rtol=0)
    assert network.params == sum(p.numel() for p in block.parameters())
    assert network.macs == 8 * 6 * 5 * 49 + 2 * (8 * 32 * 6 * 5)  # depthwise 7×7, and both Linears per pixel


# ---- channels: parts, shuffle, identity, the block's input --------------------------------------
def test_chunk_takes_one_of_n_equal_parts_of_the_channels():
    network = assert_computes("conv1x1(6), chunk(3, 1)", lambda x, m: m.conv(x).chunk(3, dim=1)[1])
    assert figures(network, "chunk")["shape"] == (2, 6, 5)
    with pytest.raises(CnnDslError, match=r"`chunk` cannot cut 4 channels into 3 equal parts"):
        cnndsl.parse("network n { input 4x2x2\n chunk(3, 0) }")
    with pytest.raises(CnnDslError, match=r"part i=2 does not exist among 2 parts"):
        cnndsl.parse("network n { input 4x2x2\n chunk(2, 2) }")


def test_a_layer_after_a_chunk_never_overwrites_the_channels_another_path_reads():
    network = cnndsl.parse("network n { input 4x3x3\n conv1x1(4)\n branch { chunk(2, 0), relu | chunk(2, 1) } }")
    module = network.to_torch(seed=0).eval()
    x = images("4x3x3")
    with torch.no_grad():
        full = module.conv(x)
        assert torch.equal(module(x), torch.cat([F.relu(full[:, :2]), full[:, 2:]], 1))


def test_channelshuffle_interleaves_the_groups_as_torchvision_does():
    channel_shuffle = torchvision_models().shufflenetv2.channel_shuffle
    network = assert_computes("conv1x1(6), channelshuffle(3)", lambda x, m: channel_shuffle(m.conv(x), 3))
    assert figures(network, "channelshuffle")["params"] == 0
    with pytest.raises(CnnDslError, match=r"`channelshuffle` cannot cut 4 channels into 3 groups"):
        cnndsl.parse("network n { input 4x2x2\n channelshuffle(3) }")


def test_identity_is_a_path_of_its_own_in_a_branch_and_in_names_the_blocks_input():
    def reference(x, m):
        entry = F.relu(m.conv(x))
        return m.both.conv(torch.cat([entry, m.both.branch2.conv(entry)], 1)) + entry

    assert_computes(
        "conv1x1(4), relu, both(4)",
        reference,
        blocks="block both(c) { branch { identity | conv1x1(c) }, conv1x1(c), add(@in) }",
    )


def test_in_is_the_networks_input_outside_a_block_and_no_label():
    assert_computes("relu, add(@in)", lambda x, m: F.relu(x) + x)
    with pytest.raises(CnnDslError, match="`in` cannot label a point: `@in` is the input of the block"):
        cnndsl.parse("network n { input 3x2x2\n in: relu }")


SHUFFLENET_UNIT = """block unit(c, s=1) {
        if s == 1 {
            branch {
                chunk(2, 0)
              | chunk(2, 1), conv1x1(c // 2, bias=false), bn, relu, dwconv3x3(bias=false), bn
                conv1x1(c // 2, bias=false), bn, relu
            }
        }
        else {
            branch {
                dwconv3x3(s=s, bias=false), bn, conv1x1(c // 2, bias=false), bn, relu
              | conv1x1(c // 2, bias=false), bn, relu, dwconv3x3(s=s, bias=false), bn
                conv1x1(c // 2, bias=false), bn, relu
            }
        }
        channelshuffle(2)
    }"""


def test_shufflenet_v2_units_are_torchvisions_inverted_residuals_with_their_weights():
    shufflenetv2 = torchvision_models().shufflenetv2
    reference = torch.nn.Sequential(shufflenetv2.InvertedResidual(16, 32, 2), shufflenetv2.InvertedResidual(32, 32, 1))
    network = cnndsl.parse(f"{SHUFFLENET_UNIT}\nnetwork n {{\n input 16x8x7\n unit(32, s=2), unit(32)\n}}")
    module = network.to_torch().eval()
    generator = torch.Generator().manual_seed(3)
    for layer in reference.modules():  # non-trivial weights and statistics
        for tensor in [*layer.parameters(recurse=False), *layer.buffers(recurse=False)]:
            if tensor.is_floating_point():
                tensor.data.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
    theirs, ours = reference.eval().state_dict(), module.state_dict()
    assert [value.shape for value in theirs.values()] == [value.shape for value in ours.values()]
    module.load_state_dict(dict(zip(ours, theirs.values())))
    session = onnxruntime.InferenceSession(
        build_model(network, weights=module).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    x = images("16x8x7")
    with torch.no_grad():
        expected = reference(x)
    for got in both(network, module, session, x):
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-4 * expected.abs().max().item())
    assert network.params == sum(p.numel() for p in reference.parameters())


# ---- resizing ------------------------------------------------------------------------------------
def test_resize_to_a_taps_size_is_torchvisions_segmentation_upsampling():
    network = assert_computes(
        "conv(4, s=2), conv(4, s=2), resize(@x)",
        lambda x, m: F.interpolate(m.conv2(m.conv1(x)), size=x.shape[-2:], mode="bilinear", align_corners=False),
        shape="3x13x11",
    )
    # 13×11 -> 7×6 -> 4×3 -> 13×11; each output pixel reads 2×2 pixels 4 apart: rf 7 + 1·4
    assert figures(network, "resize") == {
        "shape": (4, 13, 11),
        "params": 0,
        "macs": 0,
        "rf": (11, 11),
        "jump": (4 * 4 / 13, 4 * 3 / 11),
    }


@pytest.mark.parametrize("opset", [11, 13])
def test_resize_to_a_fixed_size_in_older_opsets(opset):
    network = cnndsl.parse(
        "network n { input 3x9x8\n resize((7, 12), mode=nearest), resize((14, 24)), resize((1, 5)) }"
    )
    session = onnxruntime.InferenceSession(
        build_model(network, opset=opset).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    x = images("3x9x8")
    expected = F.interpolate(x, size=(7, 12), mode="nearest")
    for size in ((14, 24), (1, 5)):  # a length of 1 samples the middle, not pixel 0
        expected = F.interpolate(expected, size=size, mode="bilinear", align_corners=False)
    for got in both(network, network.to_torch().eval(), session, x):
        assert torch.allclose(got, expected, atol=TOLERANCE, rtol=0)


def test_resize_takes_one_tap_or_a_size():
    for call in ("resize", "resize(@x, size=4)", "resize(@x, @y)"):
        with pytest.raises(CnnDslError, match=r"`resize` takes either one @tap to match or a size"):
            cnndsl.parse(f"network n {{ x: input 3x4x4\n y: relu\n conv1x1(3)\n {call} }}")
    with pytest.raises(CnnDslError, match=r"`resize` cannot take the size of a 48 tensor"):
        cnndsl.parse("network n { input 3x4x4\n v: flatten\n @in\n resize(@v) }")


# ---- dilated stages ----------------------------------------------------------------------------
DILATED_RESNET = """block bottleneck(c, s=1, d=1) {
    residual {
        conv1x1(c, bias=false), bn, relu
        conv3x3(c, s=s, d=d, bias=false), bn, relu
        conv1x1(4 * c, bias=false), bn
    }
    relu
}

# A stage whose dilation grows (d > d0, torchvision's replace_stride_with_dilation) trades its stride for
# dilation; its first block keeps the previous dilation, as torchvision's _make_layer(dilate=True) builds it.
network resnet(depths=[3, 4, 6, 3], dilation=[1, 1, 1, 1]) {
    input 3x224x224
    conv7x7(64, s=2, bias=false), bn, relu, maxpool3x3(s=2, p=1)
    for c, n, s, d, d0 in zip([64, 128, 256, 512], depths, [1, 2, 2, 2], dilation, [1] + dilation) {
        stage layer { bottleneck(c, s if i == 0 and d == d0 else 1, d0 if i == 0 else d) x n }
    }
    gap, fc(1000)
}"""


def test_a_dilated_stage_is_torchvisions_replace_stride_with_dilation():
    models = torchvision_models()
    reference = models.ResNet(models.resnet.Bottleneck, [1, 2, 2, 2], replace_stride_with_dilation=[False, True, True])
    network = cnndsl.parse(DILATED_RESNET, input=(3, 40, 40), depths=[1, 2, 2, 2], dilation=[1, 1, 2, 4])
    module = network.to_torch().eval()
    convs = [(m.stride, m.padding, m.dilation) for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs == [(m.stride, m.padding, m.dilation) for m in reference.modules() if isinstance(m, torch.nn.Conv2d)]
    # layer4, by hand: its first block's 3×3 keeps layer3's dilation 2, its stride-1 projection, then dilation 4
    assert [convs[-6], convs[-4], convs[-2]] == [
        ((1, 1), (2, 2), (2, 2)),
        ((1, 1), (0, 0), (1, 1)),
        ((1, 1), (4, 4), (4, 4)),
    ]
    theirs, ours = reference.eval().state_dict(), module.state_dict()
    module.load_state_dict(dict(zip(ours, theirs.values())))
    x = images("3x40x40", batch=2)
    with torch.no_grad():
        expected = reference(x)
        assert torch.allclose(module(x), expected, atol=1e-4 * expected.abs().max().item(), rtol=0)
    assert network.params == sum(p.numel() for p in reference.parameters())


# ---- activations and pixel shuffle ------------------------------------------------------------
def test_elu_and_mish():
    assert_computes("elu(0.5), conv1x1(4), mish", lambda x, m: F.mish(m.conv(F.elu(x, 0.5))))


@pytest.mark.parametrize("opset", [11, 17])
def test_mish_before_opset_18_is_x_tanh_softplus(opset):
    network = cnndsl.parse("network n { input 3x4x4\n mish }")
    session = onnxruntime.InferenceSession(
        build_model(network, opset=opset).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    x = images("3x4x4") * 4
    assert torch.allclose(torch.from_numpy(session.run(None, {"input": x.numpy()})[0]), F.mish(x), atol=TOLERANCE)


def test_prelu_learns_one_slope_or_one_per_channel():
    network = assert_computes(
        "prelu, conv1x1(4), prelu(per_channel=true, init=0.1)",
        lambda x, m: F.prelu(m.conv(F.prelu(x, m.prelu1.weight)), m.prelu2.weight),
    )
    assert [figures(network, name)["params"] for name in ("prelu1", "prelu2")] == [1, 4]
    assert torch.equal(network.to_torch().prelu2.weight, torch.full((4,), 0.1))
    assert_computes("prelu(per_channel=true)", lambda x, m: F.prelu(x, m.prelu.weight), shape="6")


def test_pixelshuffle_turns_channels_into_pixels():
    network = assert_computes("conv1x1(8), pixelshuffle(2)", lambda x, m: F.pixel_shuffle(m.conv(x), 2))
    assert figures(network, "pixelshuffle") == {
        "shape": (2, 12, 10),
        "params": 0,
        "macs": 0,
        "rf": (1, 1),
        "jump": (0.5, 0.5),
    }
    with pytest.raises(CnnDslError, match=r"`pixelshuffle` needs channels divisible by r² = 4, got 6"):
        cnndsl.parse("network n { input 6x2x2\n pixelshuffle(2) }")


# ---- training ------------------------------------------------------------------------------------
def test_every_new_kind_trains_where_its_in_place_neighbours_overwrite_nothing_backward_needs():
    """Autograd refuses backward when a tensor it saved was overwritten in place, so backward is the check."""
    body = """conv1x1(8), layernorm, relu, groupnorm(2), relu, layerscale(0.5), relu
    branch { chunk(2, 0), relu | chunk(2, 1), identity | fc(4, pixelwise=true), relu }
    channelshuffle(2), residual { conv3x3(12), mish, prelu, stochasticdepth(0.5) }, relu
    conv1x1(8), pixelshuffle(2), elu, resize(@x), relu, mul(0.5), relu"""
    network = cnndsl.parse(f"network n {{\n x: input 4x6x5\n {body}\n}}")
    module = network.to_torch(seed=0).train()
    x = images("4x6x5", batch=4).requires_grad_()
    module(x).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in module.parameters())


# ---- diagrams ----------------------------------------------------------------------------------
def test_new_kinds_are_drawn_in_their_family_and_a_constant_factor_fits_its_oval():
    from cnndsl.backends.graphviz import to_digraph

    network = cnndsl.parse("""network n {
        image: input 4x6x6
        layernorm, layerscale, groupnorm(2), prelu, elu, mish, chunk(2, 0), channelshuffle(2), identity
        stochasticdepth(0.1), pixelshuffle(1), resize(@image), fc(4, pixelwise=true), mul(0.5)
    }""")
    source = to_digraph(network, expand=True).source
    drawn = dict(re.findall(r"label=<([^>]*)> class=(\w+)", source))
    assert drawn == {
        "layernorm": "norm",
        "layerscale 1e-06": "norm",
        "groupnorm 2": "norm",
        "prelu": "act",
        "elu": "act",
        "mish": "act",
        "chunk 1/2": "reshape",
        "channel shuffle 2": "reshape",
        "identity": "reshape",
        "stochastic depth 0.1": "reg",
        "pixel shuffle ×1": "reshape",
        "resize 6×6": "pool",
        "fc 4 per pixel": "fc",
        "× 0.5": "merge",
    }
    assert re.search(r"label=<× 0.5> class=merge [^\]]*shape=ellipse", source)


def test_bilinear_resizing_widens_the_receptive_field_by_one_input_pixel():
    network = cnndsl.parse("""network n { input 3x16x16
        conv(4, s=2), a: upsample(2, mode=bilinear), conv(4, s=2), b: upsample(2), conv(4, s=2), resize((8, 8))
    }""")
    assert [(figures(network, name)["rf"], figures(network, name)["jump"]) for name in ("upsample1", "upsample2")] == [
        ((3 + 2, 3 + 2), (1, 1)),
        ((5 + 2, 5 + 2), (1, 1)),
    ]  # bilinear: + jump_in (2); nearest: + 0
    assert (figures(network, "resize")["rf"], figures(network, "resize")["jump"]) == ((9 + 2, 9 + 2), (2, 2))
