"""The ONNX backend: every layer kind's rule computes what torch computes (batch 1 and 3, with and without folded
BatchNorm); names, metadata and opsets; the size limit and external data; weights from modules, state_dicts and
checkpoints; atomic output, SIGTERM included; no torch import. Every library network: test_onnx_library.py."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from docs_pages import run_page
from onnx import external_data_helper, numpy_helper

import cnndsl
from cnndsl.backends import onnx as onnx_backend
from cnndsl.backends.onnx import build_model, default_opset, export_onnx
from cnndsl.backends.onnx_tensors import serialized_size
from cnndsl.core.errors import CnnDslError, FileProblem, LimitProblem, NameProblem, ValueProblem
from cnndsl.graph import ir
from cnndsl.ops import REGISTRY
from cnndsl.ops.activation import _Activation
from cnndsl.ops.base import OpKind

TOLERANCE = 1e-4  # relative to the largest magnitude of the reference output


def _trained_looking(network, seed: int = 0) -> torch.nn.Module:
    """The torch module in eval mode with random weights and non-trivial BatchNorm statistics and affines."""
    module = network.to_torch(seed=seed).eval()
    generator = torch.Generator().manual_seed(seed + 1)
    for layer in module.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            size = layer.num_features
            layer.running_mean.copy_(torch.randn(size, generator=generator) * 0.2)
            layer.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            layer.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            layer.bias.data.copy_(torch.randn(size, generator=generator) * 0.2)
    return module


def _torch_outputs(module, images) -> list[np.ndarray]:
    with torch.no_grad():
        result = module(torch.from_numpy(images))
    return [tensor.numpy() for tensor in (result if isinstance(result, tuple) else (result,))]


def _session(model: onnx.ModelProto | bytes | Path) -> onnxruntime.InferenceSession:
    """A CPU session of a model, its bytes or a file (a file spares the copies of serialising a large model)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # the suite runs two workers on two cores
    # Checking values, not speed: basic rewrites and no weight prepacking start VGG's session in 0.5-0.7x the time.
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.add_session_config_entry("session.disable_prepacking", "1")
    source = str(model) if isinstance(model, Path) else model if isinstance(model, bytes) else model.SerializeToString()
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _assert_same_outputs(network, module, models: list, batches=(1, 3)) -> None:
    """Each model's outputs equal the module's within TOLERANCE of the output's scale, at every batch size."""
    sessions = [_session(model) for model in models]
    rng = np.random.default_rng(0)
    for batch in batches:
        images = rng.standard_normal((batch, *network.input_shape), dtype=np.float32)
        expected = _torch_outputs(module, images)
        for session in sessions:
            got = session.run(None, {network.input_name: images})
            assert len(got) == len(expected)
            for (name, node), value, reference in zip(network.outputs, got, expected):
                assert value.shape == reference.shape == (batch, *ir.layer(network.graph, node).shape), name
                error = np.abs(value - reference).max() / np.abs(reference).max()
                assert error <= TOLERANCE, f"{name} at batch {batch}: relative error {error:.2e}"


def _assert_inferred_shapes_agree(network, model: onnx.ModelProto | Path) -> None:
    """ONNX's own shape inference (strict), run on the model without the shapes it declares, gives every IR
    node's value the analysed shape and a dynamic batch; every layer's value is declared with that shape, the
    batch named."""
    if isinstance(model, Path):
        model = onnx.load(model, load_external_data=False)  # the tensors' dims are enough to infer from
    bare = onnx.ModelProto()
    bare.CopyFrom(model)
    del bare.graph.value_info[:]
    inferred = onnx.shape_inference.infer_shapes(bare, check_type=True, strict_mode=True, data_prop=True)
    shapes = {
        info.name: info.type.tensor_type.shape
        for info in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]
    }
    declared = {info.name: info.type.tensor_type for info in model.graph.value_info}
    assert len(declared) == len(model.graph.value_info)  # each value once, though dropout passes its input on
    inputs_and_outputs = {info.name for info in [*model.graph.input, *model.graph.output]}
    names = {node: name for name, node in reversed(network.outputs)}
    names[ir.network_info(network.graph).input] = network.input_name
    for node, data in ir.layers(network.graph):
        value = names.get(node, data.name)
        if value not in shapes:  # a layer that passes its input on (dropout) has no value of its own
            assert [ir.layer(network.graph, source).shape for source in network.graph.pred[node]] == [data.shape]
            continue
        dims = shapes[value].dim
        assert not dims[0].HasField("dim_value"), data.name  # the batch stays dynamic (Resize loses its name)
        assert tuple(dim.dim_value for dim in dims[1:]) == data.shape, data.name
        if value not in inputs_and_outputs:
            assert value in declared, data.name
    for value, tensor in declared.items():  # a layer's value named otherwise too (layerscale/Mul)
        assert tensor.elem_type == onnx.TensorProto.FLOAT, value
        assert tensor.shape.dim[0].dim_param == "batch", value
        assert [dim.dim_value for dim in tensor.shape.dim[1:]] == [dim.dim_value for dim in shapes[value].dim[1:]]


@pytest.fixture
def scratch(tmp_path):
    """tmp_path, emptied of ONNX files afterwards: pytest keeps recent tmp folders, and the library's
    files alone (VGG's are half a gigabyte each) would fill the disk."""
    yield tmp_path
    for path in tmp_path.glob("*.onnx*"):
        path.unlink()


# ---- every layer kind ----------------------------------------------------------------------------
KINDS = {
    "activations": """network activations {
        input 4x9x9
        conv3x3(8), relu6, conv1x1(8), sigmoid, conv1x1(8), tanh, conv1x1(8), gelu, conv1x1(8), silu
        conv1x1(8), hardswish, conv1x1(8), hardsigmoid, conv1x1(8), leakyrelu(0.2), conv1x1(8), softmax
    }""",
    "convolutions": """network convolutions {
        input 6x17x15
        conv(12, k=(3, 5), s=(2, 1), p=(1, 2), d=(2, 1), g=3), bn, relu
        dwconv3x3(s=2), bn
        deconv(6, k=3, s=2, p=1, op=1, g=3, bias=false), bn, relu
        conv1x1(4, bias=false), bn
    }""",
    "pools": """network pools {
        input 5x23x19
        maxpool3x3(s=2, ceil=true), avgpool(3, s=2, p=1, ceil=true), avgpool(2, s=1, p=1)
        adaptiveavgpool((4, 3)), lrn(3, alpha=0.01, beta=0.7, k=1.5), upsample(3, mode=bilinear)
        adaptiveavgpool(2), upsample(2), gap, flatten
    }""",
    "joins": """network joins {
        x: input 8x20x20
        conv3x3(8, p=0), relu, concat(@x, crop=true)
        a: conv1x1(16), b: relu, conv1x1(16), add(@a, @b)
        c: conv1x1(16)
        scale { gap, fc(4), relu, fc(16), sigmoid }
        mul(@c)
        scale { gap, conv1x1(16), hardsigmoid }
        fc(12), bn, reshape((3, 2, 2)), logits: dropout
        output @logits, @c
    }""",
    "head": """network head {
        input 64
        fc(32, bias=false), bn, relu, dropout(0.3), fc(10), softmax
    }""",
    "modern": """network modern {
        x: input 4x6x5
        conv1x1(8), layernorm, relu, groupnorm(2), relu, layerscale(0.5), relu
        branch { chunk(2, 0), relu | chunk(2, 1), identity | fc(4, pixelwise=true), relu }
        channelshuffle(2), residual { conv3x3(12), mish, prelu, stochasticdepth(0.5) }, relu
        conv1x1(8), pixelshuffle(2), elu, resize(@x), relu, mul(0.5), relu, resize((3, 7), mode=nearest)
        gap, flatten, layernorm, prelu(per_channel=true), fc(3)
    }""",
}


@pytest.mark.parametrize("name", KINDS)
def test_every_layer_kind_computes_what_torch_computes(name):
    network = cnndsl.parse(KINDS[name])
    module = _trained_looking(network)
    models = [build_model(network, weights=module), build_model(network, weights=module, fold_bn=True)]
    for model in models:
        onnx.checker.check_model(model, full_check=True)
    _assert_inferred_shapes_agree(network, models[0])
    _assert_same_outputs(network, module, models)


@pytest.mark.parametrize("opset", [9, 11, 13, 17])
def test_older_opsets_express_the_same_layers_with_older_operators(opset):
    """relu6, gelu and hardswish, layernorm, the crop and Gemm without bias have other forms in older opsets."""
    text = KINDS["activations"].replace("softmax", "relu")
    if opset >= 11:
        text = text.replace("relu6,", "relu6, upsample(2), avgpool(2), maxpool(3, ceil=true),")
    joins = KINDS["joins"].replace("fc(4)", "fc(4, bias=false)") if opset >= 11 else KINDS["joins"]
    norms = "network norms {\n input 6x5x4\n conv1x1(8), layernorm(eps=0.01), relu, gap, flatten, layernorm\n}"
    for network in (cnndsl.parse(text), cnndsl.parse(joins), cnndsl.parse(norms)):
        module = _trained_looking(network)
        model = build_model(network, weights=module, opset=opset)
        assert model.opset_import[0].version == opset
        onnx.checker.check_model(model, full_check=True)
        _assert_same_outputs(network, module, [model], batches=(2,))


def test_every_registered_kind_has_its_own_onnx_rule():
    def lacks_rule(kind):
        rule = type(kind).onnx
        return rule is OpKind.onnx or (rule is _Activation.onnx and kind.onnx_rule is None)

    assert [name for name, kind in REGISTRY.items() if name != "input" and lacks_rule(kind)] == []


# ---- names, metadata, batch, opset ----------------------------------------------------------------
def test_weights_and_values_are_named_after_the_hierarchy_as_torch_names_them():
    network = cnndsl.load("resnet50")
    model = build_model(network)
    state = network.to_torch().state_dict()
    expected = {key for key in state if not key.endswith("num_batches_tracked")}
    assert {tensor.name for tensor in model.graph.initializer} == expected
    values = {output for node in model.graph.node for output in node.output}
    assert {"layer3.bottleneck6.conv2", "layer1.bottleneck1.downsample.bn", "stem.maxpool"} <= values
    conv = next(node for node in model.graph.node if node.name == "layer3.bottleneck6.conv2")
    assert list(conv.input) == ["layer3.bottleneck6.relu1", "layer3.bottleneck6.conv2.weight"]


def test_fresh_weights_load_into_the_torch_module_and_follow_pytorchs_default_distributions():
    network = cnndsl.parse("network n { input 16x8x8\n conv3x3(32), bn, gap, fc(10) }")
    weights = {tensor.name: numpy_helper.to_array(tensor) for tensor in build_model(network).graph.initializer}
    module = network.to_torch()
    module.load_state_dict({key: torch.tensor(value) for key, value in weights.items()}, strict=False)
    assert set(module.state_dict()) - set(weights) == {"bn.num_batches_tracked"}
    bound = 1 / np.sqrt(16 * 9)
    assert 0.9 * bound < np.abs(weights["conv.weight"]).max() <= bound
    assert weights["conv.weight"].std() == pytest.approx(bound / np.sqrt(3), rel=0.05)
    assert (weights["bn.weight"] == 1).all() and (weights["bn.running_mean"] == 0).all()
    assert np.abs(weights["fc.bias"]).max() <= 1 / np.sqrt(32)


def test_input_and_outputs_are_named_by_the_source_with_a_dynamic_batch_and_metadata(tmp_path):
    path = tmp_path / "heads.cnn"
    path.write_text("""network two_heads {
    image: input 3x64x64
    conv3x3(32), relu, features: pool
    gap, logits: fc(10)
    @features
    mask: conv1x1(1), upsample(2)
    output @logits, @mask
}""")
    network = cnndsl.load(path)
    model = build_model(network)
    assert [value.name for value in model.graph.input] == ["image"]
    assert [value.name for value in model.graph.output] == ["logits", "mask"]
    assert [(node.op_type, node.doc_string) for node in model.graph.node if node.name == "mask"] == [
        ("Conv", "heads.cnn:6:11")
    ]  # the conv1x1 labelled `mask`
    joins = build_model(cnndsl.parse(KINDS["joins"]))  # `logits: dropout` passes its input on: an Identity
    [(identity, where)] = [(node.name, node.doc_string) for node in joins.graph.node if node.op_type == "Identity"]
    line, column = map(int, where.removeprefix("<string>:").split(":"))
    assert identity == "logits" and KINDS["joins"].splitlines()[line - 1][column - 1 :] == "dropout"
    dims = [
        [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]
        for value in [*model.graph.input, *model.graph.output]
    ]
    assert dims == [["batch", 3, 64, 64], ["batch", 10], ["batch", 1, 32, 32]]
    assert {prop.key: prop.value for prop in model.metadata_props} == {
        "source": "heads.cnn",
        "cnndsl_version": cnndsl.__version__,
        "input_shape": "3x64x64",
    }
    assert model.producer_name == "cnndsl"


def test_the_default_opset_is_the_newest_onnxruntime_runs():
    opset = default_opset()
    assert opset >= 17
    network = cnndsl.parse("network n { input 3x8x8\n conv3x3(4), relu }")
    assert build_model(network).opset_import[0].version == opset
    _session(build_model(network))
    newer = build_model(network, opset=opset)
    newer.opset_import[0].version = opset + 1
    with pytest.raises(Exception):  # noqa: B017 - onnxruntime raises its own pybind11 error types
        _session(newer)


def test_an_opset_the_network_cannot_be_expressed_in_is_a_located_error(cli, tmp_path):
    source = tmp_path / "up.cnn"
    source.write_text("network up {\n    input 3x8x8\n    conv3x3(4), upsample(2)\n}\n")
    result = cli("compile", source, "--to", "onnx", "--opset", "10", "-o", tmp_path / "up.onnx")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (f"{source}:3:17: error: `upsample` needs ONNX opset 11 or newer, not 10")
    assert "hint: use --opset 11 or newer, or leave --opset out" in result.stderr
    assert not (tmp_path / "up.onnx").exists()
    with pytest.raises(ValueProblem, match="ONNX opset 99 is not one this installation can write"):
        build_model(cnndsl.load(source), opset=99)


def test_an_output_named_like_another_layer_is_a_name_problem():
    text = "network n {\n input 3x8x8\n conv: relu\n conv3x3(4), out: relu\n output @conv, @out\n}"
    with pytest.raises(NameProblem, match="two values of the ONNX graph would be called `conv`"):
        build_model(cnndsl.parse(text))


def _refusal_and_peak(function) -> tuple[CnnDslError, int]:
    """The error `function` raises, and the peak of memory allocated (numpy's arrays included) until then."""
    tracemalloc.start()
    try:
        function()
    except CnnDslError as error:
        return error, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    raise AssertionError("no error raised")


def test_exactly_2_gib_of_weights_is_refused_for_one_file_before_any_is_drawn():
    """fc(2^28) on one input: weight and bias of 1 GiB each, 2^31 bytes of tensors, which protobuf cannot hold."""
    network = cnndsl.parse("network huge {\n input 1\n fc(268435456)\n}")
    error, peak = _refusal_and_peak(lambda: build_model(network, external_data=False))
    assert isinstance(error, LimitProblem) and peak < 2**20
    assert re.fullmatch(
        r"`huge` makes an ONNX model of 2,147,48\d,\d{3} bytes, more than one ONNX file holds "
        r"\(protobuf's limit: under 2,147,483,648 bytes, 2 GiB\)",
        error.message,
    ), error.message
    assert error.pos.line == 3
    assert error.hint == (
        "the largest tensor is made here: check its size, or let the weights go to a separate file (external_data=True)"
    )


def test_constants_count_toward_the_limit_and_are_never_built_as_lists():
    """adaptiveavgpool(19999) of a 20000x20000 input has no parameters but two averaging matrices of
    19999x20000 float32 (3,199,840,000 bytes together)."""
    network = cnndsl.parse("network wide {\n input 1x20000x20000\n adaptiveavgpool(19999)\n}")
    assert network.params == 0
    error, peak = _refusal_and_peak(lambda: build_model(network, external_data=False))
    assert re.match(r"`wide` makes an ONNX model of 3,199,840,\d{3} bytes, more than one ONNX file", error.message)
    assert error.pos.line == 3 and peak < 2**20


def test_the_size_check_is_the_exact_serialized_size_and_2_gib_itself_is_too_much(monkeypatch):
    """The size computed before any tensor is made is protobuf's own; a model of exactly the limit is refused."""
    models = [
        (cnndsl.load("resnet18"), False),
        (cnndsl.parse(KINDS["pools"]), False),
        (cnndsl.parse(KINDS["joins"]), True),
    ]
    for network, fold_bn in models:
        sizes = []
        monkeypatch.setattr(
            onnx_backend,
            "serialized_size",
            lambda model, pending: sizes.append(serialized_size(model, pending)) or sizes[-1],  # noqa: B023 - called at once
        )
        model = build_model(network, fold_bn=fold_bn)
        assert sizes == [len(model.SerializeToString())], network.name
    monkeypatch.setattr(onnx_backend, "ONNX_BYTES", sizes[0])
    with pytest.raises(LimitProblem, match=f"makes an ONNX model of {sizes[0]:,} bytes, more than one ONNX file"):
        build_model(network, fold_bn=True, external_data=False)
    monkeypatch.setattr(onnx_backend, "ONNX_BYTES", sizes[0] + 1)
    build_model(network, fold_bn=True, external_data=False)


# ---- external data ---------------------------------------------------------------------------------
def _external_arrays(path: Path) -> dict[str, np.ndarray]:
    """Each initializer of an ONNX file; those in its external data file mapped from it, not read into memory."""
    model = onnx.load(path, load_external_data=False)
    arrays = {}
    for tensor in model.graph.initializer:
        if not external_data_helper.uses_external_data(tensor):
            arrays[tensor.name] = numpy_helper.to_array(tensor)
            continue
        info = external_data_helper.ExternalDataInfo(tensor)
        assert info.location == f"{path.name}.data" and info.offset % 4096 == 0  # relative; page-aligned
        arrays[tensor.name] = np.memmap(path.parent / info.location, np.float32, "c", info.offset, tuple(tensor.dims))
        assert arrays[tensor.name].nbytes == info.length
    return arrays


@pytest.fixture
def big_network(tmp_path):
    """A folder with a network over 2 GiB; whatever it holds afterwards is deleted, passed or failed
    (pytest keeps recent temp folders)."""
    (tmp_path / "big.cnn").write_text("network big {\n    input 16384\n    fc(33000)\n}\n")
    yield tmp_path
    for path in tmp_path.glob("big.onnx*"):
        path.unlink()


def test_a_network_over_2_gib_is_written_with_external_data_that_checks_and_runs_as_torch(cli, big_network):
    """540,705,000 parameters: 2,162,820,000 bytes of float32, over protobuf's 2 GiB. onnxruntime must compute
    what torch's linear computes with the weights the compiler drew, read back from the data file."""
    folder = big_network
    result = cli("compile", folder / "big.cnn", "--to", "onnx", "-o", folder / "big.onnx")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"wrote {folder / 'big.onnx'} and {folder / 'big.onnx.data'}\n"
    assert sorted(os.listdir(folder)) == ["big.cnn", "big.onnx", "big.onnx.data"]
    assert (folder / "big.onnx").stat().st_size < 2000
    assert (folder / "big.onnx.data").stat().st_size == 540_705_000 * 4  # the weight ends on a page boundary
    onnx.checker.check_model(folder / "big.onnx", full_check=True)
    images = np.random.default_rng(0).standard_normal((2, 16384), dtype=np.float32)
    weights = _external_arrays(folder / "big.onnx")
    with torch.no_grad():
        expected = torch.nn.functional.linear(
            *(torch.from_numpy(value) for value in (images, weights["fc.weight"], weights["fc.bias"]))
        ).numpy()
    del weights
    got = _session(folder / "big.onnx").run(None, {"input": images})[0]
    assert np.abs(got - expected).max() / np.abs(expected).max() <= TOLERANCE


def test_external_data_can_be_forced_returned_in_memory_and_saved_with_onnx(small, tmp_path, monkeypatch):
    path, network, module = small
    monkeypatch.chdir(tmp_path)
    for _ in range(2):  # the second time over the first pair, in the folder that holds it
        files = network.to_onnx("forced.onnx", weights=module, external_data=True)
    assert files == [Path("forced.onnx"), Path("forced.onnx.data")]
    onnx.checker.check_model(tmp_path / "forced.onnx", full_check=True)
    model = network.to_onnx(weights=module, external_data=True)
    external = {tensor.name for tensor in model.graph.initializer if external_data_helper.uses_external_data(tensor)}
    assert external == {"conv2.weight"}  # 16x8x3x3 floats, 4,608 bytes: the only tensor of 1 KiB or more
    conv2 = next(tensor for tensor in model.graph.initializer if tensor.name == "conv2.weight")
    assert {entry.key: entry.value for entry in conv2.external_data} == {"location": "small.onnx.data"}
    onnx.save_model(model, tmp_path / "saved.onnx")  # onnx's own writer puts the bytes in small.onnx.data
    assert _external_arrays(tmp_path / "forced.onnx").keys() == set(module.state_dict()) - {
        "bn1.num_batches_tracked",
        "bn2.num_batches_tracked",
    }
    _assert_same_outputs(network, module, [tmp_path / "forced.onnx", tmp_path / "saved.onnx"], batches=(2,))
    assert build_model(network).graph.initializer[0].data_location == onnx.TensorProto.DEFAULT


def test_a_model_larger_than_the_free_disk_space_is_refused_before_it_is_made(small, tmp_path, monkeypatch):
    _, network, _ = small
    monkeypatch.setattr("cnndsl.backends.onnx.shutil.disk_usage", lambda folder: shutil._ntuple_diskusage(1, 1, 1000))
    with pytest.raises(LimitProblem) as refused:
        export_onnx(network, tmp_path / "small.onnx")
    free = re.escape(f"more than the 1000 B free in {tmp_path}")
    assert re.fullmatch(rf"`small` makes an ONNX model of \d+\.\d KiB, {free}", refused.value.message)
    assert sorted(os.listdir(tmp_path)) == ["small.cnn"]


# ---- folding ------------------------------------------------------------------------------------
def test_fold_bn_leaves_no_batchnorm_after_a_convolution_and_gives_each_conv_a_bias():
    network = cnndsl.load("resnet18")
    plain, folded = build_model(network), build_model(network, fold_bn=True)
    count = lambda model, op: sum(node.op_type == op for node in model.graph.node)  # noqa: E731
    assert count(plain, "BatchNormalization") == 20 and count(folded, "BatchNormalization") == 0
    assert count(folded, "Conv") == count(plain, "Conv") == 20
    names = {tensor.name for tensor in folded.graph.initializer}
    assert "layer2.basic1.conv1.bias" in names and "layer2.basic1.bn1.running_var" not in names


def test_fold_bn_keeps_a_batchnorm_whose_convolution_is_also_read_elsewhere():
    network = cnndsl.parse("network n { input 3x8x8\n conv3x3(4), a: bn, relu\n add(@a) }")
    folded = build_model(network, fold_bn=True)
    assert [node.op_type for node in folded.graph.node] == ["Conv", "Relu", "Add"]
    network = cnndsl.parse("network n { input 3x8x8\n c: conv3x3(4), bn, relu, add(@c) }")
    folded = build_model(network, fold_bn=True)
    assert [node.op_type for node in folded.graph.node] == ["Conv", "BatchNormalization", "Relu", "Add"]


# ---- weights ------------------------------------------------------------------------------------
SMALL = "network small { input 3x16x16\n conv3x3(8), bn, relu, pool, conv3x3(16, bias=false), bn, gap, fc(10) }"


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "small.cnn"
    path.write_text(SMALL)
    network = cnndsl.load(path)
    return path, network, _trained_looking(network)


def _initializers(path) -> dict[str, np.ndarray]:
    return {tensor.name: numpy_helper.to_array(tensor) for tensor in onnx.load(path).graph.initializer}


def test_weights_from_a_pt_checkpoint_a_safetensors_file_and_a_state_dict_are_the_modules(small, tmp_path, cli):
    from safetensors.torch import save_file

    path, network, module = small
    state = module.state_dict()
    torch.save(state, tmp_path / "small.pt")
    save_file(state, tmp_path / "small.safetensors")
    export_onnx(network, tmp_path / "from_dict.onnx", weights=state)
    for checkpoint in ("small.pt", "small.safetensors"):
        result = cli("compile", path, "--to", "onnx", "--weights", tmp_path / checkpoint, "-o", tmp_path / "out.onnx")
        assert result.exit_code == 0, result.stderr
        got = _initializers(tmp_path / "out.onnx")
        assert got.keys() == _initializers(tmp_path / "from_dict.onnx").keys()
        for key, value in got.items():
            np.testing.assert_array_equal(value, state[key].numpy(), err_msg=key)
    _assert_same_outputs(network, module, [onnx.load(tmp_path / "out.onnx")])


def test_a_checkpoint_of_another_shape_names_the_first_parameter_that_differs(small, tmp_path, cli):
    path, network, module = small
    other = cnndsl.parse(SMALL.replace("conv3x3(16", "conv3x3(32")).to_torch()
    torch.save(other.state_dict(), tmp_path / "other.pt")
    result = cli("compile", path, "--to", "onnx", "--weights", tmp_path / "other.pt", "-o", tmp_path / "x.onnx")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"{path}:2:30: error: {tmp_path / 'other.pt'} gives `conv2.weight` the shape 32×8×3×3; "
        "the network needs 16×8×3×3"
    )
    assert "Traceback" not in result.stderr and not (tmp_path / "x.onnx").exists()


def test_a_checkpoint_with_other_names_loads_by_structure_and_an_extra_tensor_is_refused(small):
    _, network, module = small
    state = module.state_dict()
    renamed = {key.replace("conv1", "conv_1"): value for key, value in state.items()}
    weights = {
        tensor.name: numpy_helper.to_array(tensor) for tensor in build_model(network, weights=renamed).graph.initializer
    }
    np.testing.assert_array_equal(weights["conv1.weight"], state["conv1.weight"].numpy())
    with pytest.raises(ValueProblem) as caught:
        build_model(network, weights={**state, "head.weight": torch.zeros(3)})
    assert caught.value.message == "the state_dict has `head.weight` of shape 3, which no layer of the network takes"
    assert (caught.value.pos.line, caught.value.pos.column) == (2, 64)  # the last layer with weights, `fc(10)`
    without_counter = {key: value for key, value in state.items() if not key.endswith("num_batches_tracked")}
    build_model(network, weights=without_counter)


def test_an_unreadable_or_missing_checkpoint_is_a_file_problem(small, tmp_path):
    _, network, _ = small
    with pytest.raises(FileProblem, match="does not exist"):
        build_model(network, weights=tmp_path / "absent.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(FileProblem, match="cannot read weights from"):
        build_model(network, weights=tmp_path / "junk.safetensors")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(FileProblem, match="holds no state_dict"):
        build_model(network, weights=tmp_path / "list.pt")


# ---- the file and the process -------------------------------------------------------------------
def test_a_failed_export_leaves_the_previous_file_and_no_partial_one(small, tmp_path, monkeypatch):
    path, network, module = small
    target = tmp_path / "small.onnx"
    target.write_bytes(b"previous")
    with pytest.raises(ValueProblem):
        export_onnx(network, target, weights={"conv1.weight": torch.zeros(1)})

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("cnndsl.core.atomic.os.replace", disk_full)
    with pytest.raises(FileProblem, match="No space left on device"):
        export_onnx(network, target, weights=module)
    assert target.read_bytes() == b"previous"
    assert sorted(item.name for item in tmp_path.iterdir()) == ["small.cnn", "small.onnx"]


WIDE = "network wide {\n input 4096\n fc(3200)\n}"  # 13 million weights: a 52 MB file


def _terminate_mid_write(folder: Path, args: list[str]) -> subprocess.Popen:
    """Run `cnndsl ARGS` in `folder`, freeze it (SIGSTOP) the moment its temp output appears, check that the
    write is under way, then send SIGTERM and let it go on. Tried again if the freeze came too late."""
    for _ in range(3):
        process = subprocess.Popen(
            [sys.executable, "-c", "from cnndsl.cli import main; main()", *args],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        while process.poll() is None and not any(name.endswith(".part") for name in os.listdir(folder)):
            time.sleep(0.0005)  # the 52 MB write takes tens of milliseconds
        os.kill(process.pid, signal.SIGSTOP)
        temps = [name for name in os.listdir(folder) if name.endswith(".part")]
        os.kill(process.pid, signal.SIGTERM)
        os.kill(process.pid, signal.SIGCONT)
        process.wait(timeout=60)
        if temps and not (folder / "wide.onnx").exists():
            return process
        for path in folder.glob("wide.onnx*"):
            path.unlink()
    raise AssertionError("the write always finished before it could be interrupted")


@pytest.mark.parametrize("external", [False, True])
def test_sigterm_during_a_large_write_leaves_no_output_and_no_temporary_file(tmp_path, external):
    (tmp_path / "wide.cnn").write_text(WIDE)
    args = ["compile", "wide.cnn", "--to", "onnx"] + (["--external-data"] if external else [])
    process = _terminate_mid_write(tmp_path, args)
    assert process.returncode == -signal.SIGTERM, process.stderr.read()
    assert os.listdir(tmp_path) == ["wide.cnn"]


def test_cli_compiles_a_library_network_with_every_option(cli, tmp_path):
    target = tmp_path / "r18.onnx"
    result = cli(
        "compile", "resnet18", "--to", "onnx", "-o", target, "--input", "3x64x64", "--opset", "17", "--fold-bn"
    )
    assert result.exit_code == 0 and result.stdout == f"wrote {target}\n"
    model = onnx.load(target)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17
    assert not any(node.op_type == "BatchNormalization" for node in model.graph.node)
    output = _session(model).run(None, {"input": np.zeros((2, 3, 64, 64), np.float32)})[0]
    assert output.shape == (2, 1000)


@pytest.mark.parametrize("weights", ["fresh", "safetensors"])
def test_exporting_fresh_or_safetensors_weights_never_imports_torch(tmp_path, weights):
    args = ["compile", "resnet18", "--to", "onnx", "-o", str(tmp_path / "r18.onnx")]
    if weights == "safetensors":
        from safetensors.torch import save_file

        save_file(cnndsl.load("resnet18").to_torch().state_dict(), tmp_path / "r18.safetensors")
        args += ["--weights", str(tmp_path / "r18.safetensors")]
    script = textwrap.dedent(f"""
        import sys
        from cnndsl.cli import main
        main({args!r}, standalone_mode=False)
        assert 'torch' not in sys.modules, sorted(name for name in sys.modules if name.startswith('torch'))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "r18.onnx").stat().st_size > 4 * 11_000_000


# ---- docs/onnx.md -------------------------------------------------------------------------------
def test_every_example_in_the_onnx_page_runs_as_shown(cli, scratch, monkeypatch):
    tmp_path = scratch
    monkeypatch.chdir(tmp_path)

    def write_file(fence):  # ```cnn file=net.cnn: the file the commands after it read
        if fence.kind == "cnn":
            (tmp_path / fence.info.split("file=")[1].strip()).write_text(fence.body, encoding="utf-8")

    ran = run_page("onnx.md", cli, {"cnndsl": cnndsl}, folder=tmp_path, other=write_file)
    commands = ran["console"]
    assert commands == 7
    assert sorted(path.name for path in tmp_path.glob("*.onnx*")) == [
        "net.onnx",
        "r18.onnx",
        "r18.onnx.data",
        "resnet18.onnx",
        "resnet18_trained.onnx",
        "small.onnx",
    ]
