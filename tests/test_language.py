"""The language, its graph IR and the analysis: each test is an example of one construct."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

import cnndsl
from cnndsl.core.errors import CnnDslError
from cnndsl.graph import ir


def net(body: str, **params):
    """A network from the lines of its body, with a 3x32x32 input unless the body declares one."""
    header = "" if "input" in body.split("\n")[0] else "input 3x32x32\n"
    return cnndsl.parse(f"network n {{\n{header}{body}\n}}", **params)


def layers(network):
    """(name, op, shape) of every node but the input, in creation order."""
    g = network.graph
    return [
        (ir.layer(g, n).name, ir.layer(g, n).op, ir.layer(g, n).shape)
        for n in sorted(g)
        if ir.layer(g, n).op != "input"
    ]


def node(network, name):
    return next(layer for _, layer in ir.layers(network.graph) if layer.name == name)


def edge_kinds(network):
    g = network.graph
    return sorted((ir.layer(g, a).name, ir.layer(g, b).name, ir.edge(g, a, b).kind) for a, b in g.edges)


# ---- the formulas, on hand-computed cases --------------------------------------------
def test_alexnet_first_layer_by_hand():
    n = net("input 3x227x227\nconv(64, k=11, s=4, p=2)")
    conv = node(n, "conv")
    assert conv.shape == (64, 56, 56)
    assert conv.figures.params == 64 * 3 * 11 * 11 + 64 == 23_296
    assert conv.figures.macs == 64 * 56 * 56 * 11 * 11 * 3 == 72_855_552
    assert conv.figures.memory_bytes == 64 * 56 * 56 * 4 == 784 * 1024
    assert conv.figures.rf == (11, 11) and conv.figures.jump == (4, 4)


def test_same_padding_keeps_size_and_dilation_widens_it():
    n = net("conv(8, k=5), conv(8, k=3, d=2)")
    assert [shape for _, _, shape in layers(n)] == [(8, 32, 32), (8, 32, 32)]
    assert node(n, "conv2").attrs["p"] == (2, 2)
    assert node(n, "conv2").figures.rf == (5 + 2 * 2, 9)


def test_valid_padding_and_strides_follow_the_floor_formula():
    n = net("conv(4, k=3, s=2, p=valid), conv(4, k=2, s=3, p=0)")
    # floor((32 - 3) / 2) + 1 = 15; floor((15 - 2) / 3) + 1 = 5
    assert [shape for _, _, shape in layers(n)] == [(4, 15, 15), (4, 5, 5)]


def test_ceil_mode_pooling_rounds_up_but_never_starts_a_window_in_the_padding():
    assert layers(net("input 3x112x112\nmaxpool(k=3, s=2, ceil=true)"))[0][2] == (3, 56, 56)
    assert layers(net("input 3x14x14\nmaxpool(k=3, s=2, ceil=true)"))[0][2] == (3, 7, 7)
    # ceil((5 + 2 - 2) / 2) + 1 = 4, but the 4th window would start in the padding: 3
    assert layers(net("input 3x5x5\nmaxpool(k=2, s=2, p=1, ceil=true)"))[0][2] == (3, 3, 3)


def test_grouped_and_depthwise_convolutions_divide_params_and_macs():
    n = net("input 32x16x16\nconv(64, k=3, g=4), dwconv3x3(s=2)")
    grouped, depthwise = node(n, "conv1"), node(n, "conv2")
    assert grouped.figures.params == 64 * (32 // 4) * 9 + 64
    assert grouped.figures.macs == 64 * 16 * 16 * 9 * 8
    assert depthwise.shape == (64, 8, 8) and depthwise.attrs["g"] == 64
    assert depthwise.figures.params == 64 * 1 * 9 + 64 and depthwise.figures.macs == 64 * 8 * 8 * 9


def test_transposed_convolution_shape_params_and_macs():
    n = net("input 16x7x7\ndeconv(8, k=4, s=2, p=1)")
    deconv = node(n, "deconv")
    assert deconv.shape == (8, 14, 14)  # (7 - 1)·2 − 2 + 4
    assert deconv.figures.params == 16 * 8 * 16 + 8
    assert deconv.figures.macs == 16 * 7 * 7 * 16 * 8
    assert deconv.figures.jump == (0.5, 0.5)


def test_fc_flattens_by_itself_and_counts_in_times_out():
    n = net("input 16x5x5\nfc(120), bn, fc(10, bias=false)")
    assert node(n, "fc1").figures.params == 400 * 120 + 120 and node(n, "fc1").figures.macs == 400 * 120
    assert node(n, "bn").figures.params == 240
    assert node(n, "fc2").figures.params == 1200 and n.params == 48_120 + 240 + 1200


def test_totals_label_flops_as_twice_the_macs():
    n = net("conv(8), relu, gap, fc(10)")
    assert n.macs == 8 * 32 * 32 * 27 + 80
    assert n.flops == 2 * n.macs
    totals = n.summary().totals
    assert {key: totals[key] for key in ("params", "macs", "flops", "memory_bytes", "param_bytes")} == {
        "params": n.params,
        "macs": n.macs,
        "flops": 2 * n.macs,
        "memory_bytes": 4 * (8 * 32 * 32 * 2 + 8 + 10),
        "param_bytes": 4 * n.params,
    }


def test_receptive_field_over_a_dag_takes_the_largest_path():
    n = net("branch { conv1x1(4) | conv(4, k=5), conv(4, k=5) }")
    assert node(n, "concat").figures.rf == (9, 9)


# ---- repetition, blocks, stages -------------------------------------------------------
def test_the_mission_line_works_as_written():
    n = net("stage(conv3x3*2, pool) x5")
    assert [name for name, _, _ in layers(n)][:3] == ["stage1.conv1", "stage1.conv2", "stage1.maxpool"]
    assert layers(n)[-1] == ("stage5.maxpool", "maxpool", (3, 1, 1))
    assert len(layers(n)) == 15


def test_x_binds_the_index_and_star_does_not():
    n = net("stage((conv3x3(8 * 2^i), relu) * 2, pool) x3")
    widths = [shape[0] for _, op, shape in layers(n) if op == "conv"]
    assert widths == [8, 8, 16, 16, 32, 32]
    with pytest.raises(CnnDslError, match="unknown name `i`"):
        net("conv3x3(8 + i) * 2")


def test_nested_x_repetitions_shadow_the_index():
    n = net("(conv1x1(1 + i) x 2) x 2")
    assert [shape[0] for _, _, shape in layers(n)] == [1, 2, 1, 2]


def test_unique_names_stay_bare_and_repeated_ones_are_numbered():
    n = net("stage stem { conv3x3(8), relu }\nstage body { conv3x3(8) } x2")
    assert [name for name, _, _ in layers(n)] == ["stem.conv", "stem.relu", "body1.conv", "body2.conv"]
    assert ir.network_info(n.graph).groups[("body2",)].kind == "stage"


def test_blocks_take_parameters_with_defaults_that_use_earlier_ones():
    source = """
block squeeze(c, s=1, width=c // 4) { conv1x1(width), conv3x3(width, s=s), conv1x1(c) }
network n { input 16x8x8
    squeeze(32), squeeze(64, s=2, width=8) }"""
    n = cnndsl.parse(source)
    assert [shape for _, _, shape in layers(n)] == [(8, 8, 8), (8, 8, 8), (32, 8, 8), (8, 8, 8), (8, 4, 4), (64, 4, 4)]
    # a block's title names its required arguments and only those that differ from their defaults
    assert ir.network_info(n.graph).groups[("squeeze1",)].label == "squeeze(32)"
    assert ir.network_info(n.graph).groups[("squeeze2",)].label == "squeeze(64, s=2, width=8)"  # 64 // 4 would be 16


def test_blocks_are_values_that_parameters_can_take():
    source = """
block a(c) { conv1x1(c) }
block b(c) { conv3x3(c), relu }
network fam(unit=a) { input 3x8x8
    unit(4) }
network with_b = fam(b)"""
    assert [op for _, op, _ in layers(cnndsl.parse(source, network="with_b"))] == ["conv", "relu"]
    assert [op for _, op, _ in layers(cnndsl.parse(source, network="fam"))] == ["conv"]


def test_network_parameters_can_be_overridden_from_python():
    source = "network n(classes=10, widths=[4]) { input 3x8x8\n for c in widths { conv3x3(c) }\n gap, fc(classes) }"
    n = cnndsl.parse(source, classes=3, widths=[2, 5])
    assert layers(n)[-1][2] == (3,) and [shape[0] for _, op, shape in layers(n) if op == "conv"] == [2, 5]


def test_in_reads_the_incoming_shape():
    n = net("input 12x10x6\nconv1x1(in.c * 2), fc(in.h * in.w)")
    assert [shape for _, _, shape in layers(n)] == [(24, 10, 6), (60,)]


def test_let_for_if_and_defaults():
    n = net("""defaults conv(bias=false)
let widths = [4, 8]
for index, c in enumerate(widths) { conv3x3(c, s=1 if index == 0 else 2) }
if in.h > 100 { relu } elif in.h > 10 { relu6 } else { sigmoid }""")
    assert [op for _, op, _ in layers(n)] == ["conv", "conv", "relu6"]
    assert all(not node(n, name).attrs["bias"] for name in ("conv1", "conv2"))


def test_defaults_reach_into_called_blocks_and_end_at_the_brace():
    source = """
block b { conv1x1(4) }
network n { input 3x8x8
    stage { defaults conv(bias=false), b }
    b }"""
    n = cnndsl.parse(source)
    assert [node(n, name).attrs["bias"] for name in ("stage.b.conv", "b.conv")] == [False, True]


# ---- residual, dense, branch, scale, taps ------------------------------------------------
def test_residual_with_identity_shortcut():
    n = net("input 8x8x8\nresidual { conv3x3(8), relu }")
    assert ("input", "add", "skip") in edge_kinds(n)
    assert ("conv", "relu", "sequence") in edge_kinds(n)


def test_residual_adds_a_projection_when_shapes_differ():
    n = net("input 8x8x8\nresidual { conv3x3(16, s=2) }")
    names = [name for name, _, _ in layers(n)]
    assert names == ["conv", "downsample.conv", "downsample.bn", "add"]
    projection = node(n, "downsample.conv")
    assert projection.attrs["k"] == (1, 1) and projection.attrs["s"] == (2, 2)
    assert projection.attrs["bias"] is False and projection.shape == (16, 4, 4)
    assert ("downsample.bn", "add", "skip") in edge_kinds(n)


def test_residual_with_an_explicit_shortcut():
    n = net("input 8x8x8\nresidual { conv3x3(16, s=2) } shortcut { avgpool(2), conv1x1(16) }")
    assert [name for name, _, _ in layers(n)] == ["conv", "downsample.avgpool", "downsample.conv", "add"]


def test_dense_concatenates_input_and_body():
    n = net("input 8x8x8\ndense { bn, relu, conv3x3(4) } x3")
    assert layers(n)[-1] == ("dense3.concat", "concat", (20, 8, 8))
    g = n.graph
    concat = next(i for i in g if ir.layer(g, i).name == "dense1.concat")
    assert [ir.layer(g, s).name for s in cnndsl.graph.ir.inputs_of(g, concat)] == ["input", "dense1.conv"]
    assert {kind for a, b, kind in edge_kinds(n) if b.endswith("concat")} == {"concat"}


def test_branch_runs_paths_in_parallel_and_concatenates():
    n = net("input 8x8x8\nbranch { conv1x1(2) | conv1x1(3), conv3x3(4) | maxpool3x3(s=1, p=1) }")
    assert layers(n)[-1] == ("concat", "concat", (2 + 4 + 8, 8, 8))
    assert {(a, b) for a, b, kind in edge_kinds(n) if kind == "branch"} == {
        ("input", "branch1.conv"),
        ("input", "branch2.conv1"),
        ("input", "branch3.maxpool"),
    }


def test_scale_gates_with_a_channel_vector():
    n = net("input 16x8x8\nlet c = in.c\nscale { gap, fc(c // 4), relu, fc(c), sigmoid }")
    assert layers(n)[-1] == ("mul", "mul", (16, 8, 8))
    assert ("input", "mul", "skip") in edge_kinds(n) and ("scale.sigmoid", "mul", "sequence") in edge_kinds(n)


def test_taps_jumps_joins_and_several_outputs():
    n = net("""image: input 3x16x16
conv3x3(8), skip: relu
pool, conv3x3(8), up: upsample(2)
add(@skip)
logits: gap
@up
mask: conv1x1(1)
output @logits, @mask""")
    assert n.input_name == "image"
    assert [(name, ir.layer(n.graph, i).name) for name, i in n.outputs] == [("logits", "gap"), ("mask", "conv3")]
    assert ("relu", "add", "skip") in edge_kinds(n) and ("upsample", "conv3", "branch") in edge_kinds(n)


def test_a_tap_inside_a_repetition_is_one_per_turn():
    n = net("input 3x32x32\n(conv3x3(4, s=2), level: relu) x3\noutput @level[0], @level[1], @level[-1]")
    outputs = [(name, ir.layer(n.graph, i).name, ir.layer(n.graph, i).shape) for name, i in n.outputs]
    assert outputs == [
        ("level_0", "relu1", (4, 16, 16)),
        ("level_1", "relu2", (4, 8, 8)),
        ("level_2", "relu3", (4, 4, 4)),
    ]


def test_a_tap_of_each_turn_joins_and_jumps_and_computes_what_torch_does():
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    n = net("input 3x8x8\n(conv3x3(4), t: relu) x3\n@t[1]\nconv3x3(4)\nadd(@t[2])\nconcat(@t[0])")
    module = n.to_torch().eval()
    image = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    turns, x = [], image
    for conv in convs[:3]:  # the three turns, by torch.nn.functional with the module's weights
        x = functional.relu(functional.conv2d(x, conv.weight, conv.bias, padding=1))
        turns.append(x)
    joined = functional.conv2d(turns[1], convs[3].weight, convs[3].bias, padding=1) + turns[2]
    expected = torch.cat([joined, turns[0]], dim=1)
    with torch.no_grad():
        assert torch.allclose(module(image), expected, atol=1e-6)


def test_a_tap_within_its_turn_is_that_turns_and_a_repeated_label_elsewhere_is_a_duplicate():
    n = net("input 4x4x4\n(t: conv1x1(4), relu, add(@t)) x2")
    adds = [i for i, layer in ir.layers(n.graph) if layer.op == "add"]
    assert [ir.layer(n.graph, i).name for a in adds for i in ir.inputs_of(n.graph, a)] == [
        "relu1",
        "conv1",
        "relu2",
        "conv2",
    ]
    with pytest.raises(CnnDslError) as caught:
        net("input 4x4x4\n(t: conv1x1(4)) x2\nt: relu", file="t.cnn")
    assert (caught.value.message, caught.value.pos.line, caught.value.pos.column) == (
        "duplicate tap `t` (first defined at t.cnn:3:2)",
        4,
        1,
    )


@pytest.mark.parametrize(
    "body,message,line,column",
    [
        ("(conv3x3(4), t: relu) x3\n@t[3]", "`@t` is labelled in 3 turns, so `@t[3]` does not exist", 4, 1),
        ("t: conv3x3(4)\nrelu\nadd(@t[1])", "`@t` is labelled in 1 turn, so `@t[1]` does not exist", 5, 5),
        ("(conv3x3(4), t: relu) x2\n@t[0.5]", "a tap's turn must be a whole number, got 0.5", 4, 4),
    ],
)
def test_a_turn_that_does_not_exist_is_a_located_error(body, message, line, column):
    with pytest.raises(CnnDslError) as caught:
        net(f"input 3x8x8\n{body}")
    assert (caught.value.message, caught.value.pos.line, caught.value.pos.column) == (message, line, column)


UNET_OF_BLOCKS = """block down(c) {
    conv3x3(c), bn, skip: relu
    maxpool
}
network n {
    input 3x16x16
    d1: down(4)
    d2: down(8)
    conv3x3(8), relu
    upsample(2), concat(@d2.skip)
    upsample(2), concat(@d1.skip)
    conv1x1(2)
}
"""


def test_a_tap_inside_a_labelled_block_call_is_reached_from_outside():
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    n = cnndsl.parse(UNET_OF_BLOCKS)
    concats = [i for i, layer in ir.layers(n.graph) if layer.op == "concat"]
    assert [[ir.layer(n.graph, i).name for i in ir.inputs_of(n.graph, c)] for c in concats] == [
        ["upsample1", "down2.relu"],
        ["upsample2", "down1.relu"],
    ]
    module = n.to_torch().eval()
    image = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]

    def down(x, conv, norm):  # conv3x3, bn (eval: running statistics), relu; the skip is before the pool
        x = functional.conv2d(x, conv.weight, conv.bias, padding=1)
        skip = functional.relu(functional.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias))
        return functional.max_pool2d(skip, 2), skip

    x, skip1 = down(image, convs[0], norms[0])
    x, skip2 = down(x, convs[1], norms[1])
    x = functional.relu(functional.conv2d(x, convs[2].weight, convs[2].bias, padding=1))
    x = torch.cat([functional.interpolate(x, scale_factor=2), skip2], 1)
    x = torch.cat([functional.interpolate(x, scale_factor=2), skip1], 1)
    expected = functional.conv2d(x, convs[3].weight, convs[3].bias)
    with torch.no_grad():
        assert torch.allclose(module(image), expected, atol=1e-5)


def test_a_block_calls_tap_used_outside_exports_to_onnx_and_python_source_alike(tmp_path):
    torch, onnxruntime = pytest.importorskip("torch"), pytest.importorskip("onnxruntime")
    n = cnndsl.parse(UNET_OF_BLOCKS)
    module = n.to_torch().eval()
    n.to_onnx(tmp_path / "n.onnx", weights=module.state_dict())
    image = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    session = onnxruntime.InferenceSession(str(tmp_path / "n.onnx"))
    (exported,) = session.run(None, {session.get_inputs()[0].name: image.numpy()})
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(exported), module(image), atol=1e-5)


LOOPED_TAPS = """block stage_b(c) {
    conv3x3(c, s=2), bn, mid: relu
    conv3x3(c), bn, relu
}
network inner {
    input 3x32x32
    (b: stage_b(8)) x3
    @b.mid
    conv1x1(8)
}
network turns {
    input 3x32x32
    (stage_b(8), level: relu) x3
    @level[0]
    maxpool, maxpool
    add(@level[2])
    output @level[1], @level[-1], @level[0]
}
"""


@pytest.mark.parametrize("name,cls", [("inner", "Inner"), ("turns", "Turns")])
def test_taps_of_turns_and_block_calls_give_the_same_python_source_function(tmp_path, name, cls):
    torch = pytest.importorskip("torch")
    import importlib.util

    from cnndsl.backends.torch import write_python

    network = cnndsl.parse(LOOPED_TAPS, network=name)
    module = network.to_torch(seed=0).eval()
    spec = importlib.util.spec_from_file_location(name, write_python(network, tmp_path / f"{name}.py"))
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    written = getattr(generated, cls)().eval()
    written.load_state_dict(module.state_dict())
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected, got = module(images), written(images)
    expected = expected if isinstance(expected, tuple | list) else (expected,)
    got = got if isinstance(got, tuple | list) else (got,)
    assert [tuple(t.shape) for t in expected] == (
        [(2, 8, 4, 4)] if name == "inner" else [(2, 8, 8, 8), (2, 8, 4, 4), (2, 8, 16, 16)]
    )
    assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))


@pytest.mark.parametrize(
    "use,message,column,hint",
    [
        (
            "@d3.skip",
            "`@d3` is not a labelled block call, so `@d3.skip` names nothing",
            22,
            "label the call, e.g. `d3: myblock(64)`",
        ),
        ("@d2.skp", "undefined tap `@skp` in the block call `@d2`", 22, "did you mean `skip`?"),
        (
            "@d1.skip.x",
            "`@d1.skip` is not a labelled block call, so `@d1.skip.x` names nothing",
            22,
            "label the call, e.g. `skip: myblock(64)`",
        ),
    ],
)
def test_a_tap_of_a_block_call_that_does_not_exist_is_a_located_error(use, message, column, hint):
    with pytest.raises(CnnDslError) as caught:
        cnndsl.parse(UNET_OF_BLOCKS.replace("concat(@d2.skip)", f"add({use})"))
    error = caught.value
    assert (error.message, error.pos.line, error.pos.column, error.hint) == (message, 10, column, hint)


def test_concat_crops_larger_taps_when_asked():
    n = net("input 3x20x20\nconv(4, p=0), big: relu, conv(4, p=0), concat(@big, crop=true)")
    assert layers(n)[-1][2] == (8, 16, 16)


def test_taps_are_local_to_a_block_instance():
    source = "block b { t: conv1x1(4), relu, add(@t) }\nnetwork n { input 4x4x4\n b x3 }"
    assert len(layers(cnndsl.parse(source))) == 9


# ---- grammar corners ----------------------------------------------------------------------
def test_else_elif_and_shortcut_may_start_the_line_after_the_closing_brace():
    chosen = net("""if in.c > 3 {
    relu
}
elif in.c == 3 {
    sigmoid
}
# a comment between the branches
else {
    tanh
}
residual { conv3x3(8, s=2) }
shortcut { avgpool(2), conv1x1(8) }""")
    assert [op for _, op, _ in layers(chosen)] == ["sigmoid", "conv", "avgpool", "conv", "add"]


def test_looking_past_comment_lines_for_else_takes_linear_time():
    start = time.process_time()  # CPU time: on a shared machine the wall clock measures the neighbours
    net("relu\n" + "#" * 20_000 + "\n" + "# c\n" * 20_000 + "relu")
    assert time.process_time() - start < 2  # a backtracking pattern takes minutes on 30 `#` alone


def test_a_block_called_shortcut_still_starts_a_statement():
    source = "block shortcut { relu }\nnetwork n { input 3x4x4\n residual { relu }\n shortcut }"
    assert [op for _, op, _ in layers(cnndsl.parse(source))] == ["relu", "add", "relu"]


def test_mul_of_a_number_scales_by_a_constant_and_needs_something_to_multiply_by():
    scaled = node(net("mul(0.5)"), "mul")
    assert scaled.attrs == {"factor": 0.5} and scaled.shape == (3, 32, 32)
    with pytest.raises(CnnDslError) as caught:
        net("relu, mul")
    assert str(caught.value) == (
        "<string>:3:7: error: `mul` needs something to multiply by\nhint: mul(@gate) or a constant, mul(0.5)"
    )


def test_labels_show_unequal_strides_on_both_axes():
    labels = net("maxpool(k=2, s=(2, 1)), conv(4, s=(1, 2)), avgpool(2), deconv(4, s=(2, 1))").summary().labels
    assert labels == ["maxpool 2×2, /2×1", "conv 3×3, 4, /1×2", "avgpool 2×2, /2", "deconv 2×2, 4, ×2×1"]


# ---- IR contract ------------------------------------------------------------------------
def test_every_node_carries_op_attrs_shape_position_group_and_name():
    n = net("stage s { conv3x3(8) }")
    conv = node(n, "s.conv")
    assert conv.op == "conv" and conv.group == ("s",) and conv.shape == (8, 32, 32)
    assert (conv.pos.line, conv.pos.column) == (3, 11)
    assert all(ir.edge(n.graph, a, b).kind in ir.EDGE_KINDS for a, b in n.graph.edges)


def test_imports_resolve_relative_files_and_the_library(tmp_path):
    (tmp_path / "blocks.cnn").write_text("block pair(c) { conv3x3(c), relu }\n")
    (tmp_path / "main.cnn").write_text(
        'import "blocks.cnn"\nimport resnet\nnetwork main { input 3x16x16\n pair(4), basic(4) }\n'
    )
    n = cnndsl.load(tmp_path / "main.cnn")
    assert [name for name, _, _ in layers(n)][:3] == ["pair.conv", "pair.relu", "basic.conv1"]


def test_library_names_resolve_and_families_take_parameters():
    n = cnndsl.load("resnet18", classes=10)
    assert n.name == "resnet18" and layers(n)[-1][2] == (10,)
    assert n.params == 11_689_512 - 513 * 1000 + 513 * 10


def test_inputs_are_shapes_vectors_or_expressions():
    assert net("input 784\nfc(10)").input_shape == (784,)
    assert cnndsl.parse("network n(size=20) { input(1, size, 2 * size)\n relu }").input_shape == (1, 20, 40)


def test_input_override_replaces_the_declared_input():
    assert ir.layer(cnndsl.load("resnet18", input=(3, 64, 64)).graph, 0).shape == (3, 64, 64)


# ---- the CLI ------------------------------------------------------------------------------
def test_summary_json_has_the_documented_schema(cli):
    result = cli("summary", "resnet18", "--format", "json")
    data = json.loads(result.stdout)
    assert set(data) == {"network", "input", "batch", "dtype", "layers", "totals"}
    assert set(data["layers"][0]) == {
        "name",
        "op",
        "group",
        "shape",
        "params",
        "macs",
        "memory_bytes",
        "rf",
        "jump",
        "inputs",
    }
    assert data["totals"]["params"] == 11_689_512 and data["totals"]["flops"] == 2 * 1_814_073_344
    assert data["layers"][0] == {
        "name": "stem.conv",
        "op": "conv",
        "group": "stem",
        "shape": [64, 112, 112],
        "params": 9408,
        "macs": 118_013_952,
        "memory_bytes": 3_211_264,
        "rf": 7,
        "jump": 2,
        "inputs": [{"name": "input", "edge": "sequence"}],
    }


def test_summary_table_csv_and_markdown(cli):
    table = cli("summary", "resnet18").stdout
    assert "layer2\n  basic1\n" in table and "conv1: conv 3×3, 128, /2" in table
    assert "Params: 11,689,512" in table and "FLOPs = 2 x MACs = 3,628,146,688" in table
    csv_lines = cli("summary", "resnet18", "--format", "csv").stdout.splitlines()
    assert csv_lines[0] == "name,op,group,shape,params,macs,memory_bytes,rf,jump"
    assert csv_lines[1] == "stem.conv,conv,stem,64x112x112,9408,118013952,3211264,7,2"
    markdown = cli("summary", "resnet18", "--format", "markdown").stdout
    assert "| stem.conv | conv 7×7, 64, /2 | 64×112×112 | 9,408 | 118,013,952 | 3.1 MiB | 7 |" in markdown


def test_summary_takes_input_and_params(cli):
    data = json.loads(cli("summary", "resnet18", "--input", "3x64x64", "-p", "classes=10", "--format", "json").stdout)
    assert data["input"] == [3, 64, 64] and data["layers"][-1]["shape"] == [10]


def test_check_exit_codes(cli, tmp_path):
    good, bad = tmp_path / "good.cnn", tmp_path / "bad.cnn"
    good.write_text("network good { input 3x8x8\n conv3x3(4) }\n")
    bad.write_text("network bad { input 3x8x8\n conv3x3(4), relu, pool(k=3) x5 }\n")
    assert cli("check", good).exit_code == 0
    result = cli("check", good, bad)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{bad}:2:20: error: `maxpool` shrinks 4×2×2 to nothing (0×0)\n")
    assert cli("check").exit_code == 2


def test_summary_does_not_import_torch():
    code = (
        "import sys; from cnndsl.cli import main; main(['summary', 'resnet50'], standalone_mode=False); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Params: 25,557,032" in result.stdout


def test_every_statement_of_the_syntax_has_an_expansion_handler():
    """Dispatch is an explicit table (cnndsl.graph.expand.STATEMENTS): a statement class added to the syntax without a
    handler is caught here, not met as an AttributeError by a user."""
    from cnndsl.front import syntax
    from cnndsl.graph.expand import STATEMENTS

    statements = {
        cls
        for cls in vars(syntax).values()
        if isinstance(cls, type) and issubclass(cls, syntax.Stmt) and cls is not syntax.Stmt
    }
    assert statements == set(STATEMENTS)


def test_a_file_with_several_networks_needs_a_choice():
    text = "network a { input 3x8x8\n conv3x3(4) }\nnetwork b { input 3x8x8\n conv3x3(6) }\n"
    with pytest.raises(cnndsl.CnnDslError, match=r"defines several networks \(a, b\)"):
        cnndsl.parse(text, file="two.cnn")
    assert ir.layer(cnndsl.parse(text, network="a").graph, 1).shape == (4, 8, 8)
    assert ir.layer(cnndsl.parse(text, network="b").graph, 1).shape == (6, 8, 8)
