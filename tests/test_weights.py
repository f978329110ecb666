"""Trained weights in: every checkpoint format and wrapping, matching by name and by structure against
hand-written torch modules (the oracle), refusals with their exact messages and positions, strict=False,
torchvision's published weights through torch.hub's cache (offline), timm's state dicts, and the CLI."""

from __future__ import annotations

import re
import urllib.error
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from conftest import library_networks
from docs_pages import fences, run_page
from oracles import torchvision_models
from safetensors.numpy import load_file as load_safetensors
from safetensors.torch import save_file
from torch import nn

import cnndsl
from cnndsl.core.errors import FileProblem, ValueProblem
from cnndsl.weights.checkpoint import PartialWeights
from cnndsl.weights.slots import network_slots

SMALL = """network small { input 3x16x16
    conv3x3(8), bn, relu
    conv3x3(8), bn, relu
    gap, fc(10)
}"""


def _randomise_norms(module: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affines, so that a norm loaded into the wrong place shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.BatchNorm2d):
                size = layer.num_features
                layer.running_mean.copy_(torch.rand(size, generator=generator) - 0.5)
                layer.running_var.copy_(torch.rand(size, generator=generator) * 1.5 + 0.5)
                layer.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                layer.bias.copy_(torch.rand(size, generator=generator) - 0.5)
    return module.eval()


class Plain(nn.Module):
    """SMALL as a user would write it in torch, under other names."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
        )
        self.head = nn.Linear(8, classes)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


class ShortcutFirst(nn.Module):
    """A residual block as torchvision's RegNet registers it: projection `proj` before the body `f`, whose
    first 1×1 convolution and BatchNorm have exactly the projection's shapes."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16))
        self.f = nn.Module()
        self.f.a = nn.Sequential(nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.f.b = nn.Sequential(nn.Conv2d(16, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.f.c = nn.Sequential(nn.Conv2d(16, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        body = self.f.c(self.f.b(self.f.a(x)))
        return self.head(torch.relu(self.proj(x) + body).mean((2, 3)))


BLOCK = """network block { input 8x16x16
    residual { conv1x1(16, bias=false), bn, relu, conv3x3(16, s=2, bias=false), bn, relu, conv1x1(16, bias=false), bn }
    relu, gap, fc(4)
}"""


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "small.cnn"
    path.write_text(SMALL)
    torch.manual_seed(0)
    return path, cnndsl.load(path), _randomise_norms(Plain())


def _same_outputs(module: nn.Module, reference: nn.Module, shape=(2, 3, 16, 16)) -> None:
    images = torch.randn(*shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(module.eval()(images), reference.eval()(images), rtol=0, atol=1e-6)


def _refusal(network, weights) -> ValueProblem:
    with pytest.raises(ValueProblem) as caught:
        network.to_torch(weights=weights)
    return caught.value


# ---- formats and wrappings ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "form", ["module", "state_dict", ".pt", ".pth", ".safetensors", "wrapped state_dict", "wrapped model", "ddp prefix"]
)
def test_every_checkpoint_form_loads_by_structure_and_computes_what_the_torch_module_does(small, tmp_path, form):
    _, network, reference = small
    state = reference.state_dict()
    given = {
        "module": reference,
        "state_dict": state,
        "wrapped state_dict": {"state_dict": state, "epoch": 3, "optimizer": {"lr": 0.1}},
        "wrapped model": {"model": state, "step": 100},
        "ddp prefix": {f"module.{key}": value for key, value in state.items()},
    }.get(form)
    if form in (".pt", ".pth"):
        given = tmp_path / f"small{form}"
        torch.save(state, given)
    elif form == ".safetensors":
        given = tmp_path / "small.safetensors"
        save_file(state, given)
    _same_outputs(network.to_torch(weights=given), reference)


def test_weights_from_a_module_are_copied_not_shared(small):
    _, network, reference = small
    module = network.to_torch(weights=reference)
    with torch.no_grad():
        module.conv1.weight.zero_()
    assert reference.features[0].weight.abs().sum() > 0


def test_a_projection_registered_before_the_body_still_matches(tmp_path):
    """torchvision's RegNet: shapes alone allow placing `proj` on the body's first conv; the checkpoint's
    order inside `f` then would not hold, so the arrangement that keeps it wins."""
    torch.manual_seed(1)
    reference = _randomise_norms(ShortcutFirst())
    network = cnndsl.parse(BLOCK, file=str(tmp_path / "block.cnn"))
    _same_outputs(network.to_torch(weights=reference.state_dict()), reference, shape=(2, 8, 16, 16))
    found = network.to_torch(weights=reference.state_dict())
    assert torch.equal(found.downsample.conv.weight, reference.proj[0].weight)
    assert torch.equal(found.conv1.weight, reference.f.a[0].weight)


@pytest.mark.parametrize("name", ["resnet50", "densenet121"])
def test_torchvisions_state_dict_as_safetensors_keys_sorted_as_text_still_matches(name, tmp_path):
    """safetensors lists keys as text (`layer1.10` before `layer1.2`, `bn1` before `conv1`): numbered children
    are ordered by number, and a bottleneck's `conv3` and `downsample` of equal shapes by their names."""
    reference = getattr(torchvision_models(), name)()
    _randomise_norms(reference)
    save_file({key: value.contiguous() for key, value in reference.state_dict().items()}, tmp_path / "w.safetensors")
    floats = [key for key in load_safetensors(tmp_path / "w.safetensors") if not key.endswith("num_batches_tracked")]
    assert floats == sorted(floats) != [key for key in reference.state_dict() if key in floats]
    network = cnndsl.load(name, input=(3, 64, 64))
    _same_outputs(network.to_torch(weights=tmp_path / "w.safetensors"), reference, shape=(1, 3, 64, 64))


def test_step_counts_follow_their_norm_and_may_be_absent(small):
    _, network, reference = small
    state = reference.state_dict()
    state["features.4.num_batches_tracked"] = torch.tensor(7)
    assert network.to_torch(weights=state).bn2.num_batches_tracked.item() == 7
    without = {key: value for key, value in state.items() if not key.endswith("num_batches_tracked")}
    module = network.to_torch(weights=without)
    assert module.bn2.num_batches_tracked.item() == 0
    _same_outputs(module, reference)


def test_the_onnx_file_takes_the_same_weights(small, tmp_path, cli):
    path, network, reference = small
    torch.save(reference.state_dict(), tmp_path / "w.pt")
    result = cli("compile", path, "--to", "onnx", "--weights", tmp_path / "w.pt", "-o", tmp_path / "small.onnx")
    assert result.exit_code == 0, result.stderr
    images = np.random.default_rng(0).standard_normal((2, 3, 16, 16), dtype=np.float32)
    session = onnxruntime.InferenceSession(str(tmp_path / "small.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = reference(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(session.run(None, {"input": images})[0], expected, rtol=0, atol=1e-5)


# ---- refusals -----------------------------------------------------------------------------------------
def test_a_checkpoint_of_another_architecture_is_refused_at_the_first_layer_that_differs():
    network = cnndsl.load("resnet50", input=(3, 64, 64))
    error = _refusal(network, torchvision_models().resnet18().state_dict())
    assert error.message == (
        "layer `layer1.bottleneck1.conv1` needs `layer1.bottleneck1.conv1.weight` of shape "
        "64×64×1×1; the state_dict has no tensor of that shape for it"
    )
    lines = Path(error.pos.file).read_text().splitlines()
    assert (Path(error.pos.file).name, lines[error.pos.line - 1][error.pos.column - 1 :]) == (
        "resnet.cnn",
        "conv1x1(inner), bn, relu",
    )
    assert error.hint.startswith("was it saved from this network, with the same options (-p, --input)? (")
    assert error.hint.endswith(" more: `cnndsl weights NETWORK CHECKPOINT` lists them all)")


def test_a_missing_layer_is_refused_with_its_position(small):
    path, network, reference = small
    state = {key: value for key, value in reference.state_dict().items() if not key.startswith("head")}
    error = _refusal(network, state)
    assert (
        error.message == "layer `fc` needs `fc.weight` of shape 10×8; the state_dict has no tensor of that shape for it"
    )
    assert (error.pos.file, error.pos.line, error.pos.column) == (str(path), 4, 10)


def test_a_transposed_weight_is_refused_naming_both_shapes(small):
    _, network, reference = small
    state = dict(reference.state_dict())
    state["head.weight"] = state["head.weight"].t().contiguous()
    error = _refusal(network, state)
    assert error.message == (
        "layer `fc` needs `fc.weight` of shape 10×8; in its place the state_dict has `head.weight` of shape 8×10"
    )


def test_a_shared_name_of_another_shape_is_refused(small):
    _, network, reference = small
    state = dict(reference.state_dict())
    renamed = {("fc" + key[4:] if key.startswith("head") else key): value for key, value in state.items()}
    renamed["fc.weight"] = torch.zeros(12, 8)
    error = _refusal(network, renamed)
    assert error.message == "the state_dict gives `fc.weight` the shape 12×8; the network needs 10×8"


class SeparateLists(nn.Module):
    """Convolutions in one list and norms in another: nothing says which norm follows which convolution."""

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)])
        self.norms = nn.ModuleList([nn.BatchNorm2d(8), nn.BatchNorm2d(8)])
        self.head = nn.Linear(8, 10)


def test_two_same_shaped_layers_the_structure_cannot_tell_apart_are_refused(small):
    _, network, _ = small
    error = _refusal(network, SeparateLists().state_dict())
    assert error.message == (
        "cannot tell whether `norms.0.weight` or `norms.1.weight` of the state_dict is layer "
        "`bn1`'s `bn1.weight` (both 8): the shapes fit either way and the checkpoint's order "
        "does not say"
    )
    assert error.hint == (
        "save the checkpoint under the network's names, or load with strict=False to take what is certain"
    )
    assert (error.pos.line, error.pos.column) == (2, 17)


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_an_integer_or_boolean_tensor_where_floats_belong_is_refused_in_torch_and_safetensors(small, tmp_path, dtype):
    path, network, reference = small
    state = dict(reference.state_dict())
    state["features.0.weight"] = torch.ones(8, 3, 3, 3, dtype=dtype)
    save_file(state, tmp_path / "w.safetensors")
    name = str(dtype).removeprefix("torch.")
    for weights, origin in ((state, "the state_dict"), (tmp_path / "w.safetensors", str(tmp_path / "w.safetensors"))):
        error = _refusal(network, weights)
        assert error.message == (
            f"{origin} holds `features.0.weight` as {name}; layer `conv1` needs "
            "floating-point values for `conv1.weight`"
        )
        assert (error.pos.line, error.pos.column) == (2, 5)
    with pytest.raises(ValueProblem, match=f"holds `features.0.weight` as {name}"):
        network.to_onnx(weights=tmp_path / "w.safetensors")


def test_files_that_hold_no_state_dict_are_file_problems(small, tmp_path):
    _, network, _ = small
    torch.save({"epoch": 3}, tmp_path / "no.pt")
    with pytest.raises(FileProblem, match=re.escape(f"{tmp_path / 'no.pt'} holds no state_dict")):
        network.to_torch(weights=tmp_path / "no.pt")
    with pytest.raises(FileProblem, match="does not exist"):
        network.to_torch(weights=tmp_path / "absent.pt")
    with pytest.raises(ValueProblem, match="cannot take weights from a int"):
        network.to_torch(weights=3)


def test_initialisation_options_with_a_complete_checkpoint_are_refused_not_ignored(small):
    _, network, reference = small
    with pytest.raises(ValueProblem, match="`init`, `zero_init_residual` and `seed` do not apply"):
        network.to_torch(weights=reference, seed=1)


# ---- strict=False: fine-tuning ----------------------------------------------------------------------------
def test_strict_false_loads_what_matches_reports_the_rest_and_keeps_the_new_head(tmp_path):
    torch.manual_seed(2)
    reference = _randomise_norms(Plain(classes=1000))
    path = tmp_path / "small.cnn"
    path.write_text(SMALL.replace("fc(10)", "fc(classes)").replace("network small {", "network small(classes=10) {"))
    network = cnndsl.load(path)
    with pytest.warns(PartialWeights) as caught:
        module = network.to_torch(weights=reference.state_dict(), strict=False, seed=0)
    assert str(caught[0].message).splitlines() == [
        "loaded 12 of the network's 14 tensors from the state_dict",
        f"  {path}:4:10: layer `fc` needs `fc.weight` of shape 10×8; in its place the state_dict has `head.weight` "
        "of shape 1000×8",
    ]
    assert torch.equal(module.conv2.weight, reference.features[3].weight)
    assert torch.equal(module.bn2.running_var, reference.features[4].running_var)
    assert module.fc.weight.shape == (10, 8)
    loss = module.train()(torch.randn(4, 3, 16, 16)).logsumexp(1).mean()
    loss.backward()
    assert module.fc.weight.grad is not None and module.conv1.weight.grad is not None


# ---- torchvision's published weights ----------------------------------------------------------------------
def test_torchvision_weights_come_from_torch_hubs_cache_under_the_published_name(tmp_path, monkeypatch, cli):
    models = torchvision_models()
    weights = models.get_model_weights("resnet18").DEFAULT
    reference = _randomise_norms(models.resnet18())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cached = tmp_path / "torch" / "hub" / "checkpoints" / Path(weights.url).name
    assert cached.name == "resnet18-f37072fd.pth"

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    network = cnndsl.load("resnet18", input=(3, 64, 64))
    with pytest.raises(FileProblem) as caught:
        network.to_torch(weights="torchvision")
    assert caught.value.message == (
        f"torchvision's weights for `resnet18` are not in torch.hub's cache ({cached}) "
        f"and cannot be downloaded from {weights.url}: <urlopen error no network>"
    )
    assert caught.value.hint == f"download {weights.url} into {cached.parent} (set TORCH_HOME to use another folder)"

    cached.parent.mkdir(parents=True, exist_ok=True)
    torch.save(reference.state_dict(), cached)
    _same_outputs(network.to_torch(weights="torchvision"), reference, shape=(1, 3, 64, 64))
    result = cli(
        "compile",
        "resnet18",
        "--input",
        "3x64x64",
        "--to",
        "onnx",
        "--weights",
        "torchvision",
        "-o",
        tmp_path / "r18.onnx",
    )
    assert result.exit_code == 0, result.stderr


# ---- timm -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["resnet50", "efficientnet_b0"])
def test_timm_state_dicts_load_by_structure_with_equal_outputs(name):
    torchvision_models()  # timm imports torchvision, whose C ops the CPU build lacks
    timm = pytest.importorskip("timm", reason="timm does not install next to this torch")
    if name not in library_networks():
        pytest.skip(f"`{name}` is not in the library yet (the library helper adds it)")
    torch.manual_seed(3)
    reference = _randomise_norms(timm.create_model(name, pretrained=False))
    network = cnndsl.load(name, input=(3, 64, 64))
    module = network.to_torch(weights=reference.state_dict())
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        got, expected = module.eval()(images), reference(images)
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()


# ---- the CLI ----------------------------------------------------------------------------------------------
def test_weights_command_lists_the_mapping_and_writes_it_under_the_networks_names(small, tmp_path, cli):
    path, network, reference = small
    torch.save(reference.state_dict(), tmp_path / "w.pt")
    result = cli("weights", path, tmp_path / "w.pt", "-o", tmp_path / "mine.safetensors")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"small <- {tmp_path / 'w.pt'}: 14 of 14 tensors matched (0 by name, 14 by structure)"
    assert lines[1].split() == ["conv1.weight", "8×3×3×3", "<-", "features.0.weight", "8×3×3×3"]
    assert lines[-2].split() == ["fc.bias", "10", "<-", "head.bias", "10"]
    assert lines[-1] == f"wrote {tmp_path / 'mine.safetensors'}"
    written = load_safetensors(tmp_path / "mine.safetensors")
    assert sorted(written) == sorted(key for key in network.to_torch().state_dict() if "num_batches" not in key)
    np.testing.assert_array_equal(written["bn2.running_var"], reference.features[4].running_var.numpy())
    again = cli("weights", path, tmp_path / "mine.safetensors")
    assert again.stdout.splitlines()[0].endswith("14 of 14 tensors matched (14 by name, 0 by structure)")


def test_weights_command_shows_what_does_not_match_and_writes_nothing(small, tmp_path, cli):
    path, _, _ = small
    torch.save(SeparateLists().state_dict(), tmp_path / "w.pt")
    result = cli("weights", path, tmp_path / "w.pt", "-o", tmp_path / "out.safetensors")
    assert result.exit_code == 1
    assert "not matched:" in result.stdout
    assert f"  {path}:2:17: cannot tell whether `norms.0.weight` or `norms.1.weight`" in result.stdout
    assert result.stderr.startswith(f"{path}:2:17: error: cannot tell whether")
    assert not (tmp_path / "out.safetensors").exists()


def test_compile_to_pt2_with_weights_exports_the_loaded_module(small, tmp_path, cli):
    path, _, reference = small
    torch.save(reference.state_dict(), tmp_path / "w.pt")
    result = cli("compile", path, "--to", "pt2", "--weights", tmp_path / "w.pt", "-o", tmp_path / "small.pt2")
    assert result.exit_code == 0, result.stderr
    program = torch.export.load(tmp_path / "small.pt2").module()
    images = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(program(images), reference(images), rtol=0, atol=1e-6)


@pytest.mark.parametrize("fmt", ["svg", "python", "dot"])
def test_weights_with_a_format_that_holds_none_is_an_error(small, tmp_path, cli, fmt):
    path, _, reference = small
    torch.save(reference.state_dict(), tmp_path / "w.pt")
    result = cli("compile", path, "--to", fmt, "--weights", tmp_path / "w.pt", "-o", tmp_path / f"out.{fmt}")
    assert result.exit_code == 2
    assert f"Error: --weights does not apply to --to {fmt}; it applies to --to onnx or pt2" in result.stderr
    assert not (tmp_path / f"out.{fmt}").exists()


# ---- docs/weights.md ----------------------------------------------------------------------------------------
PLACEHOLDER = re.compile(r"LAYER|KEY|SHAPE|CHECKPOINT|DTYPE|FILE|REASON|TYPE|NETWORK|URL|FORMAT")


def _offline(url, *args, **kwargs):
    raise urllib.error.URLError("no network")


def test_every_example_on_the_page_runs(cli, tmp_path, monkeypatch):
    torchvision = torchvision_models()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _offline)
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    torch.save(torchvision.resnet18().state_dict(), cached)
    ran = run_page("weights.md", cli, first_lines=True, other=lambda fence: None)
    assert ran["python"] >= 1 and ran["console"] >= 1
    error = _refusal(cnndsl.load("resnet50", input=(3, 64, 64)), tmp_path / "resnet18.pth")
    shown = next(fence.body for fence in fences("weights.md", "text") if "resnet.cnn:" in fence.body).strip()
    assert f"{error.pos}: error: {error.message}".endswith(
        shown.replace("resnet18.pth", str(tmp_path / "resnet18.pth"))
    )


def _message(action) -> str:
    with pytest.raises(cnndsl.CnnDslError) as caught:
        action()
    return caught.value.message


def test_the_page_lists_every_refusal_message_exactly(small, tmp_path, monkeypatch, cli):
    path, network, reference = small
    state = dict(reference.state_dict())
    own = network.to_torch(weights=state).state_dict()
    transposed = {**state, "head.weight": state["head.weight"].t()}
    integer = {**state, "features.0.weight": torch.ones(8, 3, 3, 3, dtype=torch.int64)}
    torch.save({"epoch": 3}, tmp_path / "no.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _offline)
    torchvision_models()
    messages = [
        _message(lambda weights=weights: network.to_torch(weights=weights))
        for weights in (
            transposed,
            {key: value for key, value in state.items() if not key.startswith("head")},
            {**state, "extra.weight": torch.zeros(5)},
            {**own, "extra.weight": torch.zeros(5)},
            {**own, "fc.weight": torch.zeros(12, 8)},
            SeparateLists().state_dict(),
            integer,
            tmp_path / "no.pt",
            tmp_path / "absent.pt",
            tmp_path / "junk.safetensors",
            3,
            {**state, "a." * 40 + "weight": torch.zeros(1)},
            {**state, "head.weight": state["head.weight"].to_sparse()},
        )
    ]
    messages.append(_message(lambda: cnndsl.load("resnet18").to_torch(weights="torchvision")))
    messages.append(_message(lambda: network.to_torch(weights="torchvision")))
    messages.append(_message(lambda: network.to_torch(weights=state, init="kaiming")))
    with monkeypatch.context() as patched:
        patched.setitem(__import__("sys").modules, "torchvision.models", None)
        messages.append(_message(lambda: network.to_torch(weights="torchvision")))
    torch.save(state, tmp_path / "w.pt")
    result = cli("compile", path, "--to", "svg", "--weights", tmp_path / "w.pt")
    messages.append(result.stderr.strip().splitlines()[-1].removeprefix("Error: "))

    text = fences("weights.md", "text")[0].body
    templates = text.strip().splitlines()
    patterns = [re.compile(PLACEHOLDER.sub(".+", re.escape(template))) for template in templates]
    for message in messages:
        assert any(pattern.fullmatch(message) for pattern in patterns), message
    for template, pattern in zip(templates, patterns):
        assert any(pattern.fullmatch(message) for message in messages), f"no refusal shows: {template}"


def test_a_convnext_block_takes_torchvisions_layer_scale_and_channels_last_linears():
    """torchvision's CNBlock holds `layer_scale` on the block itself, before its submodules, and applies
    `nn.Linear` to channels-last pixels; cnndsl's layers hold them in graph order, as fc(pixelwise=true)."""
    torchvision_models()
    from torchvision.models.convnext import CNBlock

    network = cnndsl.parse("""network blk { input 16x8x8
        residual {
            dwconv7x7, layernorm(eps=1e-6)
            fc(64, pixelwise=true), gelu, fc(16, pixelwise=true)
            layerscale(1e-6), stochasticdepth(0.1)
        }
    }""")
    reference = CNBlock(16, 1e-6, 0.1).eval()
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(parameter.numel()))
    module = network.to_torch(weights=reference)
    assert torch.equal(module.layerscale, reference.layer_scale)
    _same_outputs(module, reference, shape=(2, 16, 8, 8))
    images = torch.randn(2, 16, 8, 8)
    session = onnxruntime.InferenceSession(
        network.to_onnx(weights=reference).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    with torch.no_grad():
        np.testing.assert_allclose(
            session.run(None, {"input": images.numpy()})[0], reference(images).numpy(), rtol=0, atol=1e-5
        )


def test_a_checkpoint_of_many_foreign_tensors_is_refused_quickly(small):
    """Hostile input: 5,000 tensors that fit nothing take seconds at most, not minutes of edit distance."""
    import time

    _, network, _ = small
    foreign = {f"junk.{index}.weight": torch.zeros(3 + index % 5) for index in range(5_000)}
    start = time.process_time()
    error = _refusal(network, foreign)
    assert time.process_time() - start < 10
    assert re.fullmatch(
        r"layer `conv1` needs `conv1.weight` of shape 8×3×3×3; in its place the state_dict has "
        r"`junk\.\d+\.weight` of shape \d",
        error.message,
    )
    with pytest.raises(ValueProblem):
        cnndsl.load("resnet50", input=(3, 32, 32)).to_torch(weights=foreign)  # 161 layers: place by place


ONE_PER_FILE = [
    "alexnet_paper", "convnext_tiny", "densenet121", "efficientnet_b0", "fcn8s", "googlenet_aux", "inception_v3",
    "lenet5", "mnasnet0_5", "mobilenet_v3_large", "regnet_y_400mf", "resnet18", "deeplabv3_mobilenet_v3_large",
    "se_resnet50", "shufflenet_v2_x0_5", "squeezenet1_1", "unet", "vgg11_bn", "xception", "yolov1",
]  # fmt: skip


@pytest.mark.parametrize("name", ONE_PER_FILE)
def test_the_tensors_the_kinds_declare_are_the_torch_modules_state_dict(name):
    """What weights matching and the ONNX file read (network_slots, from each kind's declaration) against the
    state_dict of the torch module built on the meta device: the same keys, shapes and dtypes."""
    network = cnndsl.load(name)
    with torch.device("meta"):
        state = network.to_torch().state_dict()
    declared = {slot.key: (slot.shape, slot.floating) for slot in network_slots(network.graph)}
    assert declared == {key: (tuple(tensor.shape), tensor.is_floating_point()) for key, tensor in state.items()}


def test_shapes_agree_up_to_dimensions_of_size_one():
    """A 1×1 convolution's weight (4×8×1×1) goes into an fc (4×8), as squeeze-and-excitation is written both ways."""
    network = cnndsl.parse("network n { input 8x4x4\n gap, fc(4) }")
    reference = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(8, 4, 1), nn.Flatten())
    module = network.to_torch(weights=reference)
    assert module.fc.weight.shape == (4, 8)
    _same_outputs(module, reference, shape=(2, 8, 4, 4))
