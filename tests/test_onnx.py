"""The ONNX backend: every library network checks, infers the analysed shapes and computes what the torch
module computes (batch 1 and 3, with and without folded BatchNorm); every layer kind's rule; names,
metadata and opsets; weights from modules, state_dicts and checkpoints; atomic output; no torch import."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import numpy_helper

import cnndsl
from cnndsl.backends.onnx import build_model, default_opset, export_onnx
from cnndsl.errors import FileProblem, LimitProblem, NameProblem, ValueProblem
from cnndsl.ops import REGISTRY
from cnndsl.ops.activation import _Activation
from cnndsl.ops.base import OpKind
from conftest import library_networks

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


def _session(model: "onnx.ModelProto | Path") -> onnxruntime.InferenceSession:
    """A CPU session of a model or a file (a file spares the copies of serialising a large model)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # the suite runs two workers on two cores
    # Checking values, not speed: basic rewrites and no weight prepacking start VGG's session in 0.5-0.7x the time.
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.add_session_config_entry("session.disable_prepacking", "1")
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
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
                assert value.shape == reference.shape == (batch, *network.graph.nodes[node]["shape"]), name
                error = np.abs(value - reference).max() / np.abs(reference).max()
                assert error <= TOLERANCE, f"{name} at batch {batch}: relative error {error:.2e}"


def _assert_inferred_shapes_agree(network, model: "onnx.ModelProto | Path") -> None:
    """ONNX's own shape inference (strict) gives every IR node's value the analysed shape and a dynamic batch."""
    if isinstance(model, Path):
        inferred_path = model.with_suffix(".inferred.onnx")
        onnx.shape_inference.infer_shapes_path(str(model), str(inferred_path), check_type=True, strict_mode=True,
                                               data_prop=True)
        inferred = onnx.load(inferred_path)
    else:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    shapes = {info.name: info.type.tensor_type.shape for info in
              [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]}
    names = {node: name for name, node in reversed(network.outputs)}
    names[network.graph.graph["input"]] = network.input_name
    for node, data in network.graph.nodes(data=True):
        value = names.get(node, data["name"])
        if value not in shapes:  # a layer that passes its input on (dropout) has no value of its own
            assert [network.graph.nodes[source]["shape"] for source in network.graph.pred[node]] == [data["shape"]]
            continue
        dims = shapes[value].dim
        assert not dims[0].HasField("dim_value"), data["name"]  # the batch stays dynamic (Resize loses its name)
        assert tuple(dim.dim_value for dim in dims[1:]) == data["shape"], data["name"]


@pytest.fixture
def scratch(tmp_path):
    """tmp_path, emptied of ONNX files afterwards: pytest keeps recent tmp folders, and the library's
    files alone (VGG's are half a gigabyte each) would fill the disk."""
    yield tmp_path
    for path in tmp_path.glob("*.onnx"):
        path.unlink()


# ---- every library network --------------------------------------------------------------------
@pytest.mark.parametrize("name", library_networks())
def test_library_network_checks_infers_the_analysed_shapes_and_computes_what_torch_computes(name, scratch):
    network = cnndsl.load(name)
    module = _trained_looking(network)
    plain = export_onnx(network, scratch / "plain.onnx", weights=module)
    folded = export_onnx(network, scratch / "folded.onnx", weights=module, fold_bn=True)
    for path in (plain, folded):
        onnx.checker.check_model(path, full_check=True)
    _assert_inferred_shapes_agree(network, plain)
    _assert_same_outputs(network, module, [plain, folded])


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
    """relu6, gelu and hardswish, the crop and Gemm without bias have other forms in older opsets."""
    text = KINDS["activations"].replace("softmax", "relu")
    if opset >= 11:
        text = text.replace("relu6,", "relu6, upsample(2), avgpool(2), maxpool(3, ceil=true),")
    joins = KINDS["joins"].replace("fc(4)", "fc(4, bias=false)") if opset >= 11 else KINDS["joins"]
    for network in (cnndsl.parse(text), cnndsl.parse(joins)):
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
    dims = [[dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]
            for value in [*model.graph.input, *model.graph.output]]
    assert dims == [["batch", 3, 64, 64], ["batch", 10], ["batch", 1, 32, 32]]
    assert {prop.key: prop.value for prop in model.metadata_props} == {
        "source": str(path), "cnndsl_version": cnndsl.__version__, "input_shape": "3x64x64"}
    assert model.producer_name == "cnndsl"


def test_the_default_opset_is_the_newest_onnxruntime_runs():
    opset = default_opset()
    assert opset >= 17
    network = cnndsl.parse("network n { input 3x8x8\n conv3x3(4), relu }")
    assert build_model(network).opset_import[0].version == opset
    _session(build_model(network))
    newer = build_model(network, opset=opset)
    newer.opset_import[0].version = opset + 1
    with pytest.raises(Exception):
        _session(newer)


def test_an_opset_the_network_cannot_be_expressed_in_is_a_located_error(cli, tmp_path):
    source = tmp_path / "up.cnn"
    source.write_text("network up {\n    input 3x8x8\n    conv3x3(4), upsample(2)\n}\n")
    result = cli("compile", source, "--to", "onnx", "--opset", "10", "-o", tmp_path / "up.onnx")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"{source}:3:17: error: `upsample` needs ONNX opset 11 or newer, not 10")
    assert "hint: use --opset 11 or newer, or leave --opset out" in result.stderr
    assert not (tmp_path / "up.onnx").exists()
    with pytest.raises(ValueProblem, match="ONNX opset 99 is not one this installation can write"):
        build_model(cnndsl.load(source), opset=99)


def test_an_even_lrn_window_is_refused_rather_than_shifted():
    with pytest.raises(ValueProblem, match=r"`lrn` of an even size \(4\) has no ONNX form") as caught:
        build_model(cnndsl.parse("network n {\n input 8x4x4\n lrn(4)\n}"))
    assert caught.value.pos.line == 3


def test_an_output_named_like_another_layer_is_a_name_problem():
    text = "network n {\n input 3x8x8\n conv: relu\n conv3x3(4), out: relu\n output @conv, @out\n}"
    with pytest.raises(NameProblem, match="two values of the ONNX graph would be called `conv`"):
        build_model(cnndsl.parse(text))


def test_weights_over_the_2_gib_an_onnx_file_holds_are_refused_before_they_are_drawn():
    network = cnndsl.parse("network huge {\n input 1\n fc(600000000)\n}")
    with pytest.raises(LimitProblem, match="more than one ONNX file holds") as caught:
        build_model(network)
    assert caught.value.pos.line == 3


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
        "the network needs 16×8×3×3")
    assert "Traceback" not in result.stderr and not (tmp_path / "x.onnx").exists()


def test_a_checkpoint_with_other_names_loads_by_structure_and_an_extra_tensor_is_refused(small):
    _, network, module = small
    state = module.state_dict()
    renamed = {key.replace("conv1", "conv_1"): value for key, value in state.items()}
    weights = {tensor.name: numpy_helper.to_array(tensor) for tensor in build_model(network, weights=renamed).graph.initializer}
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

    monkeypatch.setattr("cnndsl.atomic.os.replace", disk_full)
    with pytest.raises(FileProblem, match="No space left on device"):
        export_onnx(network, target, weights=module)
    assert target.read_bytes() == b"previous"
    assert sorted(item.name for item in tmp_path.iterdir()) == ["small.cnn", "small.onnx"]


def test_cli_compiles_a_library_network_with_every_option(cli, tmp_path):
    target = tmp_path / "r18.onnx"
    result = cli("compile", "resnet18", "--to", "onnx", "-o", target, "--input", "3x64x64", "--opset", "17",
                 "--fold-bn")
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
DOC = Path(__file__).resolve().parent.parent / "docs" / "onnx.md"
FENCE = re.compile(r"```(cnn|python|console)([^\n]*)\n(.*?)```", re.DOTALL)


def _run_transcript(cli, body: str, folder: Path) -> int:
    """Each `$ cnndsl ...` line prints exactly the lines under it (exit 1 where they show an error); the
    page shows file paths relative to the folder it runs in."""
    commands = re.split(r"^\$ ", body, flags=re.MULTILINE)[1:]
    for command in commands:
        line, _, expected = command.partition("\n")
        result = cli(*shlex.split(line)[1:])
        assert (result.stdout + result.stderr).replace(f"{folder}/", "") == expected, line
        assert result.exit_code == (1 if "error:" in expected else 0), line
    return len(commands)


def test_every_example_in_the_onnx_page_runs_as_shown(cli, scratch, monkeypatch):
    tmp_path = scratch
    monkeypatch.chdir(tmp_path)
    commands = 0
    for kind, info, body in FENCE.findall(DOC.read_text(encoding="utf-8")):
        if kind == "cnn":
            (tmp_path / info.split("file=")[1].strip()).write_text(body, encoding="utf-8")
        elif kind == "python":
            exec(compile(body, str(DOC), "exec"), {"cnndsl": cnndsl})  # noqa: S102  (the page's own example)
        else:
            commands += _run_transcript(cli, body, tmp_path)
    assert commands == 6
    assert sorted(path.name for path in tmp_path.glob("*.onnx")) == [
        "net.onnx", "resnet18.onnx", "resnet18_trained.onnx", "small.onnx"]
