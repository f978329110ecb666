"""The PyTorch backend: generated forward code, exact parameters and shapes for every library network,
readable and stable state_dict names, initialisation, the standalone source file and torch.export."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import library_networks
from torch import fx, nn

import cnndsl
from cnndsl.core.errors import NameProblem, ValueProblem
from cnndsl.graph import ir
from cnndsl.ops import REGISTRY

SMALL = """network small { input 3x32x32
    conv3x3(8), bn, relu, maxpool
    residual { conv3x3(8), bn, relu, conv3x3(8), bn }
    relu, gap, fc(10)
}"""


def _outputs(module, images):
    """The module's outputs in eval mode, without gradients, as a tuple."""
    with torch.no_grad():
        result = module.eval()(images)
    return result if isinstance(result, tuple) else (result,)


# ---- every library network ----------------------------------------------------------
@pytest.mark.parametrize("name", library_networks())
def test_library_network_trains_its_in_place_layers_overwrite_nothing_backward_needs(name):
    """Autograd refuses a backward through a tensor that an in-place layer overwrote (meta tensors
    keep the version counters, so no arithmetic is needed)."""
    network = cnndsl.load(name)
    with torch.device("meta"):
        module = network.to_torch().train()
        images = torch.zeros(2, *network.input_shape, requires_grad=True)
        outputs = module(images)
        sum(output.sum() for output in (outputs if isinstance(outputs, tuple) else (outputs,))).backward()
    assert images.grad.shape == images.shape
    assert all(parameter.grad is not None for parameter in module.parameters() if parameter.requires_grad)
    frozen = sum(parameter.numel() for parameter in module.parameters() if not parameter.requires_grad)
    assert frozen == network.summary().totals["non_trainable_params"]  # YOLOv8's DFL bins, as Ultralytics keeps them


# ---- generated code and names -------------------------------------------------------------
def test_the_forward_is_generated_code_calling_submodules_by_their_hierarchical_names():
    """As torchvision writes it: ReLUs in place and `out += identity` where nothing else reads `out`."""
    module = cnndsl.load("resnet50").to_torch()
    assert isinstance(module, fx.GraphModule) and type(module).__name__ == "Resnet50"
    assert "layer1_bottleneck1_conv1 = self.layer1.bottleneck1.conv1(stem_maxpool)" in module.code
    assert "layer1_bottleneck1_add = layer1_bottleneck1_bn3.add_(layer1_bottleneck1_downsample_bn)" in module.code
    assert isinstance(module.get_submodule("layer2.bottleneck1.downsample.conv"), nn.Conv2d)
    assert module.get_submodule("layer2.bottleneck1.relu3").inplace


@pytest.mark.parametrize("kind", sorted(name for name, kind in REGISTRY.items() if kind.called_by_name))
def test_a_kind_declares_in_place_exactly_where_torch_overwrites_its_input(kind):
    """`torch_in_place`, which the training-memory estimate reads, against what torch does in training mode: the
    kind's example after two convolutions; the output of the layer before it (the second conv, or what its example
    puts in front) is overwritten by it (its values change) as built, and also when every torch module that offers
    `inplace` is switched to it, or in neither case."""
    example = REGISTRY[kind].example
    network = cnndsl.parse(example.network(first="conv, conv"))
    node = max(node for node, layer in ir.layers(network.graph) if layer.op == kind)
    before = ir.layer(network.graph, ir.inputs_of(network.graph, node)[0]).name
    module = network.to_torch(seed=0).train()
    assert _overwrites(module, before, example.input) == REGISTRY[kind].torch_in_place
    for layer in module.modules():
        if hasattr(layer, "inplace"):
            layer.inplace = True
    assert _overwrites(module, before, example.input) == REGISTRY[kind].torch_in_place


def _overwrites(module, layer: str, shape: tuple) -> bool:
    seen = {}
    hook = module.get_submodule(layer).register_forward_hook(
        lambda _, __, out: seen.update(out=out, before=out.clone())
    )
    with torch.no_grad():
        module(torch.randn(2, *shape))
    hook.remove()
    return not torch.equal(seen["out"], seen["before"])


def test_state_dict_keys_follow_the_hierarchy_as_torchvision_names_them():
    keys = list(cnndsl.load("resnet50").to_torch().state_dict())
    assert keys[:3] == ["stem.conv.weight", "stem.bn.weight", "stem.bn.bias"]
    assert "layer1.bottleneck1.conv1.weight" in keys
    assert "layer3.bottleneck6.bn3.running_var" in keys
    assert "layer4.bottleneck1.downsample.conv.weight" in keys
    assert keys[-2:] == ["fc.weight", "fc.bias"]
    assert len(keys) == 5 * 53 + 53 + 2  # 53 BatchNorms (5 tensors each), 53 convolutions, fc


def test_state_dict_is_stable_across_compiles_and_loads_into_a_fresh_compile():
    first = cnndsl.load("resnet18").to_torch(seed=3)
    second = cnndsl.load("resnet18").to_torch(seed=4)
    assert list(first.state_dict()) == list(second.state_dict())
    second.load_state_dict(first.state_dict())
    images = torch.randn(2, 3, 64, 64)
    assert torch.equal(_outputs(first, images)[0], _outputs(second, images)[0])


def test_a_stage_named_like_a_module_attribute_is_refused_with_its_position():
    source = "network n { input 3x8x8\n stage forward { conv3x3(4) }\n relu }"
    with pytest.raises(NameProblem) as caught:  # by `check`, before any backend
        cnndsl.parse(source, file="n.cnn")
    assert caught.value.message == "`forward` cannot name a PyTorch module: it is an attribute every PyTorch module has"
    assert (caught.value.pos.line, caught.value.pos.column) == (2, 2)
    assert caught.value.hint == "rename the stage or block, e.g. `forward_`"


# ---- initialisation ----------------------------------------------------------------
def test_default_initialisation_is_pytorchs_own():
    seeded = cnndsl.parse(SMALL).to_torch(seed=7)
    torch.manual_seed(7)
    reference = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.Linear(8, 10),
    )
    ours = [tensor for key, tensor in seeded.state_dict().items() if "num_batches" not in key]
    theirs = [tensor for key, tensor in reference.state_dict().items() if "num_batches" not in key]
    assert [tensor.shape for tensor in ours] == [tensor.shape for tensor in theirs]
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))


def test_kaiming_initialisation_draws_convolutions_with_the_fan_out_relu_gain_and_zero_biases():
    module = cnndsl.load("resnet50").to_torch(init="kaiming", seed=0)
    weight = module.get_submodule("layer4.bottleneck2.conv2").weight  # 512×512×3×3: 2.4 million draws
    expected = (2 / (512 * 3 * 3)) ** 0.5
    assert abs(weight.std().item() / expected - 1) < 0.01
    assert abs(weight.mean().item()) < expected * 0.01
    default = cnndsl.load("resnet50").to_torch(seed=0).get_submodule("layer4.bottleneck2.conv2").weight
    assert abs(default.std().item() / (1 / (3 * 512 * 9) ** 0.5) - 1) < 0.01  # kaiming_uniform, a=√5
    with_bias = cnndsl.parse("network n { input 3x16x16\n conv3x3(8, bias=true) }").to_torch(init="kaiming")
    assert torch.equal(with_bias.conv.bias, torch.zeros(8))


def test_zero_init_residual_zeroes_the_last_batchnorm_of_every_residual_body_and_nothing_else():
    module = cnndsl.load("resnet50").to_torch(zero_init_residual=True)
    zeroed = {
        f"{name}.weight"
        for name, layer in module.named_modules()
        if isinstance(layer, nn.BatchNorm2d) and not layer.weight.any()
    }
    blocks = [(stage, index) for stage, count in zip((1, 2, 3, 4), (3, 4, 6, 3)) for index in range(1, count + 1)]
    assert zeroed == {f"layer{stage}.bottleneck{index}.bn3.weight" for stage, index in blocks}
    basic = cnndsl.load("resnet18").to_torch(zero_init_residual=True)
    assert not basic.get_submodule("layer2.basic1.bn2").weight.any()
    assert basic.get_submodule("layer2.basic1.downsample.bn").weight.all()
    dense = cnndsl.load("densenet121").to_torch(zero_init_residual=True)
    assert all(m.weight.all() for m in dense.modules() if isinstance(m, nn.BatchNorm2d))


def test_zero_init_residual_makes_each_block_start_as_its_shortcut():
    source = """
    network n { input 4x8x8
        residual { conv3x3(4), bn, relu, conv3x3(4), bn }
    }"""
    module = cnndsl.parse(source).to_torch(zero_init_residual=True, seed=0)
    images = torch.randn(2, 4, 8, 8)
    assert torch.equal(_outputs(module, images)[0], images)


def test_a_seed_reproduces_the_weights_and_leaves_the_global_generator_alone():
    network = cnndsl.load("resnet18")
    state = torch.random.get_rng_state()
    first, again = network.to_torch(init="kaiming", seed=11), network.to_torch(init="kaiming", seed=11)
    assert torch.equal(torch.random.get_rng_state(), state)
    other = network.to_torch(init="kaiming", seed=12)
    for key, tensor in first.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[key]), key
    assert not torch.equal(first.stem.conv.weight, other.stem.conv.weight)


def test_an_unknown_initialisation_is_a_value_problem():
    with pytest.raises(ValueProblem) as caught:
        cnndsl.parse(SMALL).to_torch(init="xavier")
    assert (caught.value.message, caught.value.hint) == (
        "unknown initialisation `xavier`",
        "choose one of default, kaiming",
    )


# ---- --to python -------------------------------------------------------------------
RUN_STANDALONE = textwrap.dedent("""
    import importlib.util, sys
    import torch
    torch.set_num_threads(int(sys.argv[1]))
    for name in sys.argv[2:]:
        spec = importlib.util.spec_from_file_location(name, f"{name}.py")
        net = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(net)
        model = getattr(net, torch.load(f"{name}.class.pt"))()
        model.load_state_dict(torch.load(f"{name}.weights.pt"))
        with torch.no_grad():
            result = model.eval()(torch.load(f"{name}.images.pt"))
        torch.save(result if isinstance(result, tuple) else (result,), f"{name}.out.pt")
    assert not [name for name in sys.modules if name.startswith("cnndsl")]
""")
STANDALONE = {"resnet18": "3x64x64", "googlenet_aux": "3x96x96", "unet": "1x188x188", "alexnet_paper": "3x99x99"}


def test_the_python_file_needs_only_torch_and_computes_what_to_torch_computes(cli, tmp_path):
    """Residual sums, concatenations with crops, three outputs and LRN, run in one fresh process."""
    modules, images, outputs = {}, {}, {}
    for name, shape in STANDALONE.items():
        assert cli("compile", name, "--input", shape, "--to", "python", "-o", tmp_path / f"{name}.py").exit_code == 0
        network = cnndsl.load(name, input=tuple(int(size) for size in shape.split("x")))
        modules[name] = network.to_torch(init="kaiming", seed=0)
        images[name] = torch.randn(2, *network.input_shape)
        outputs[name] = len(network.outputs)
        torch.save(type(modules[name]).__name__, tmp_path / f"{name}.class.pt")
        torch.save(modules[name].state_dict(), tmp_path / f"{name}.weights.pt")
        torch.save(images[name], tmp_path / f"{name}.images.pt")
    # the same thread count as here: oneDNN splits a convolution's sums by threads, and googlenet_aux's logits
    # (up to 250 with Kaiming's init) move by 2e-4 between one thread and two
    threads = str(torch.get_num_threads())
    subprocess.run([sys.executable, "-c", RUN_STANDALONE, threads, *STANDALONE], check=True, cwd=tmp_path)
    for weights in tmp_path.glob("*.weights.pt"):
        weights.unlink()  # 330 MB in all: pytest keeps the folders of its last runs
    for name, module in modules.items():
        theirs = torch.load(tmp_path / f"{name}.out.pt")
        ours = _outputs(module, images[name])
        assert len(ours) == len(theirs) == outputs[name]
        # within 1e-5: the compact file may sum a residual in another order than to_torch()
        assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-5) for a, b in zip(ours, theirs)), name


def test_the_python_file_reads_like_hand_written_code(cli, tmp_path):
    """A class per block, stages built in loops, the counts and widths of the network as arguments."""
    cli("compile", "resnet50", "--to", "python", "-o", tmp_path / "net.py")
    text = (tmp_path / "net.py").read_text()
    assert text.startswith('"""resnet50, compiled from library:resnet.cnn by cnndsl')
    assert "Input 3×224×224; 25,557,032 parameters; 4,089,184,256 multiply-accumulates per image." in text
    assert "Fixed at their values: unit=bottleneck, groups=1, width=64, dilate=[False, False, False]." in text
    assert "    def __init__(self, depths=(3, 4, 6, 3), classes=1000):" in text
    assert "class Bottleneck(nn.Module):\n    def __init__(self, in_channels, c, s=1):" in text
    assert "        self.conv3 = nn.Conv2d(c, 4 * c, 1, bias=False)" in text
    assert "            *(Bottleneck(256, 64) for _ in range(depths[0] - 1))," in text
    assert text.endswith("        x = self.fc(torch.flatten(x, 1))\n        return x\n")


# ---- --to pt2 ------------------------------------------------------------------------
def test_the_pt2_program_loads_and_runs_at_any_batch(cli, tmp_path):
    assert cli("compile", "resnet18", "--input", "3x64x64", "--to", "pt2", "-o", tmp_path / "net.pt2").exit_code == 0
    program = torch.export.load(tmp_path / "net.pt2")
    reference = cnndsl.load("resnet18", input=(3, 64, 64)).to_torch()
    reference.load_state_dict(program.state_dict)
    for batch in (1, 5):
        images = torch.randn(batch, 3, 64, 64)
        with torch.no_grad():
            result = program.module()(images)
        assert result.shape == (batch, 1000)
        torch.testing.assert_close(result, _outputs(reference, images)[0])


# ---- the PyTorch ecosystem -----------------------------------------------------------
def test_channels_last_gives_the_same_outputs_and_keeps_the_memory_format():
    module = cnndsl.load("resnet18", input=(3, 64, 64)).to_torch(seed=0).eval()
    images = torch.randn(2, 3, 64, 64)
    expected = _outputs(module, images)[0]
    module = module.to(memory_format=torch.channels_last)
    assert module.stem.conv.weight.is_contiguous(memory_format=torch.channels_last)
    layer = {}
    handle = module.get_submodule("layer4.basic2.conv2").register_forward_hook(
        lambda mod, args, out: layer.setdefault("out", out)
    )
    result = _outputs(module, images.to(memory_format=torch.channels_last))[0]
    handle.remove()
    assert layer["out"].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(result, expected, rtol=1e-4, atol=1e-4)


def test_autocast_to_bfloat16_on_cpu_runs_the_convolutions_in_bfloat16():
    module = cnndsl.load("resnet18", input=(3, 64, 64)).to_torch(seed=0).eval()
    images = torch.randn(2, 3, 64, 64)
    expected = _outputs(module, images)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = _outputs(module, images)[0]
    assert result.dtype == torch.bfloat16
    assert torch.allclose(result.float(), expected, rtol=0.05, atol=0.05 * expected.abs().max().item())


def test_torch_compile_with_fullgraph_compiles_a_small_network_with_inductor():
    module = cnndsl.parse(SMALL).to_torch(seed=0).eval()
    images = torch.randn(2, 3, 32, 32)
    compiled = torch.compile(module, fullgraph=True)
    torch.testing.assert_close(_outputs(compiled, images)[0], _outputs(module, images)[0])


def test_torch_compile_with_fullgraph_captures_resnet18_forward_and_backward_in_one_graph():
    """Dynamo's capture is where graph breaks happen; `aot_eager` also traces the backward but skips
    inductor's C++ code generation, which takes over a minute for ResNet-18 on two cores."""
    module = cnndsl.load("resnet18", input=(3, 64, 64)).to_torch(init="kaiming", seed=0).train()
    images, labels = torch.randn(4, 3, 64, 64), torch.tensor([1, 2, 3, 4])
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    gradients = []
    for run in (compiled, module):
        module.zero_grad()
        nn.functional.cross_entropy(run(images), labels).backward()
        gradients.append([parameter.grad.clone() for parameter in module.parameters()])
    for ours, eager in zip(*gradients):
        torch.testing.assert_close(ours, eager, rtol=1e-4, atol=1e-4 * eager.abs().max().item())
