"""torchvision as the independent oracle: every library network named like a torchvision constructor, given
the weights of torchvision's own module (saved with `torch.save(model.state_dict(), path)`), computes what
torchvision's module computes, through `to_torch(weights=path)` and through the ONNX file that
`cnndsl compile NAME --to onnx --weights path` writes, run in onnxruntime."""

from __future__ import annotations

import contextlib
import gc

import numpy as np
import onnxruntime
import pytest
import torch
from conftest import library_networks, network_names
from oracles import torchvision_models

import cnndsl

TOLERANCE = 1e-4  # relative to the largest magnitude of torchvision's output
SMALL_SIDES = (64, 96, 128, 160, 192, 224, 299)  # tried in order: the first at which the weights keep their shapes
SEGMENTATION = {"num_classes": 21, "aux_loss": False, "weights_backbone": None}
WITHOUT_AUX = {"aux_logits": False, "init_weights": False}


def _constructors() -> dict[str, object]:
    """torchvision's classification and segmentation constructors by name."""
    models = torchvision_models()
    import torchvision.models.segmentation as segmentation

    found = {name: models.get_model_builder(name) for name in models.list_models(module=models)}
    found.update({name: models.get_model_builder(name) for name in models.list_models(module=segmentation)})
    return found


CONSTRUCTORS = _constructors()
NAMED_LIKE_TORCHVISION = [name for name in library_networks() if name in CONSTRUCTORS]


def _first_of_each_file() -> set[str]:
    firsts: dict = {}
    for name, path in network_names():
        if name in CONSTRUCTORS:
            firsts.setdefault(path, name)
    return set(firsts.values())


# ONNX from torchvision's checkpoint, through the CLI, for the first network of each library file: test_onnx_library
# holds every network's ONNX to its torch module with the same weights, so for the rest it follows from the torch
# comparison here (running all of them took a third of this file's two minutes of CPU)
ONNX_CHECKED = _first_of_each_file()


def _torchvision_module(name: str, images: torch.Tensor) -> torch.nn.Module:
    """torchvision's module with non-trivial random weights: He-uniform convolutions and linear layers,
    random norm affines, biases and layer scales, and BatchNorm statistics of the network's own activations
    on these images, each perturbed at random (statistics that ignore the activations make a deep network's
    outputs grow to where float rounding, not the function, decides the comparison: the float32 and float64
    outputs of such an EfficientNetV2-S differ by 30%; of this one, by 6e-7)."""
    arguments = SEGMENTATION if "segmentation" in CONSTRUCTORS[name].__module__ else {}
    if name in ("googlenet", "inception_v3"):
        arguments = WITHOUT_AUX
    with _initialisation_skipped():
        model = CONSTRUCTORS[name](weights=None, **arguments)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                tensor.zero_()
            elif tensor.squeeze().dim() > 1:
                bound = (6 / tensor[0].numel()) ** 0.5
                tensor.uniform_(-bound, bound, generator=generator)
            elif key.endswith("bias"):
                tensor.uniform_(-0.2, 0.2, generator=generator)
            else:
                tensor.uniform_(0.5, 1.5, generator=generator)
        _calibrate_norms(model, images, generator)
    return model.eval()


def _calibrate_norms(model: torch.nn.Module, images: torch.Tensor, generator: torch.Generator) -> None:
    norms = [layer for layer in model.modules() if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.momentum = None  # a cumulative average: after one batch, that batch's statistics
        norm.reset_running_stats()
    model.train()(torch.cat([images, images.flip(-1)]))
    for norm in norms:
        norm.momentum = 0.1
        norm.running_mean.add_((torch.rand(norm.num_features, generator=generator) - 0.5) * 0.2)
        norm.running_var.mul_(torch.rand(norm.num_features, generator=generator) * 0.5 + 0.75)
        norm.running_var.clamp_(min=float(norm.running_var.mean()))  # a channel almost constant on two images
        # would be divided by √ε: EfficientNetV2-S's float32 output then differs from float64's by 30%


@contextlib.contextmanager
def _initialisation_skipped():
    """torch.nn.init's functions as no-ops while torchvision builds (every tensor is filled afterwards):
    RegNet computes its widths with torch, so the meta device cannot stand in."""
    functions = {
        name: function
        for name, function in vars(torch.nn.init).items()
        if name.endswith("_") and not name.startswith("_") and callable(function)
    }
    for name in functions:
        setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for name, function in functions.items():
            setattr(torch.nn.init, name, function)


def _small(name: str) -> cnndsl.api.Network:
    """The network at the smallest input side that leaves its weights as at its default input."""
    default = cnndsl.load(name)
    for side in SMALL_SIDES:
        if side >= default.input_shape[1]:
            break
        try:
            network = cnndsl.load(name, input=(default.input_shape[0], side, side))
        except cnndsl.CnnDslError:
            continue
        if network.params == default.params:
            return network
    return default


def _first_output(result) -> torch.Tensor:
    if isinstance(result, dict):
        return result["out"]
    return result[0] if isinstance(result, tuple) else result


def _assert_close(got: np.ndarray, expected: np.ndarray, what: str, tolerance: float = TOLERANCE) -> None:
    assert got.shape == expected.shape, what
    error = np.abs(got - expected).max() / np.abs(expected).max()
    assert error <= tolerance, f"{what}: relative error {error:.2e}"


def _onnx_outputs(path, input_name: str, images: np.ndarray) -> np.ndarray:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.add_session_config_entry("session.disable_prepacking", "1")  # checking values, not speed
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {input_name: images})[0]


@pytest.mark.parametrize("name", NAMED_LIKE_TORCHVISION)
def test_torchvisions_weights_give_torchvisions_outputs_in_torch_and_onnx(name, tmp_path, cli):
    network = _small(name)
    images = torch.randn(1, *network.input_shape, generator=torch.Generator().manual_seed(2))
    checkpoint = tmp_path / f"{name}.pt"
    reference = _torchvision_module(name, images)
    with torch.no_grad():
        expected = _first_output(reference(images)).numpy()
    module = network.to_torch(weights=reference.state_dict()).eval()
    with torch.no_grad():
        _assert_close(_first_output(module(images)).numpy(), expected, f"{name} in torch")
    del module
    # over 2 GiB, ONNX goes to external data, which test_onnx checks on a network of its own: here only torch
    if name not in ONNX_CHECKED or network.totals.param_bytes >= 2**31:
        return
    torch.save(reference.state_dict(), checkpoint)
    with torch.no_grad():
        exact = _first_output(reference.double()(images.double())).numpy()
    rounding = np.abs(expected - exact).max() / np.abs(exact).max()
    del reference
    gc.collect()

    target = tmp_path / f"{name}.onnx"
    side = "x".join(map(str, network.input_shape))
    result = cli("compile", name, "--input", side, "--to", "onnx", "--weights", checkpoint, "-o", target)
    assert result.exit_code == 0, result.stderr
    # onnxruntime computes in float32 too, in another order: it is held to 1e-4 of the exact (float64) output, or
    # to twice torchvision's own float32 error where a deep network leaves that larger (FCN-ResNet-101: 9.5e-5)
    _assert_close(
        _onnx_outputs(target, network.input_name, images.numpy()),
        exact,
        f"{name} in onnxruntime",
        max(TOLERANCE, 2 * rounding),
    )
    target.unlink()
    checkpoint.unlink()


def test_the_harness_covers_the_classics_and_whatever_the_library_adds():
    """The list is computed, not written down: a network the library adds under a torchvision name joins it."""
    assert {
        "alexnet",
        "googlenet",
        "resnet50",
        "densenet121",
        "vgg16_bn",
        "squeezenet1_1",
        "mobilenet_v2",
        "resnext50_32x4d",
        "wide_resnet50_2",
    } <= set(NAMED_LIKE_TORCHVISION)
    assert "lenet5" not in NAMED_LIKE_TORCHVISION and "googlenet_aux" not in NAMED_LIKE_TORCHVISION
