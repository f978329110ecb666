"""`cnndsl predict` reads the task, class names and preprocessing a run stores in best.safetensors' metadata; a
file from anyone else is checked entry by entry against the network, and refused by name, before any image."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import cnndsl

NET = "network tiny {\n  input 1x8x8\n  conv3x3(4), relu, gap, fc(3)\n}\n"
GOOD = {"task": "classify", "classes": ["cat", "dog", "eel"]}
GOOD_PREPROCESSING = {"channels": 1, "height": 8, "width": 8, "mean": [0.5], "std": [0.25]}
HINT = "hint: give the best.safetensors of a run of this network, or weights without cnndsl metadata\n"


@pytest.fixture
def predicted(tmp_path, cli):
    """Run `cnndsl predict` with weights whose `cnndsl` metadata is the given text; (exit code, out, err)."""
    (tmp_path / "tiny.cnn").write_text(NET)
    Image.new("L", (8, 8), 200).save(tmp_path / "image.png")
    module = cnndsl.parse(NET).to_torch(seed=0)
    tensors = {key: value.contiguous() for key, value in module.state_dict().items()}

    def run(metadata: str):
        save_file(tensors, str(tmp_path / "best.safetensors"), metadata={"cnndsl": metadata})
        result = cli(
            "predict", tmp_path / "tiny.cnn", "--weights", tmp_path / "best.safetensors", tmp_path / "image.png"
        )
        return result.exit_code, result.stdout, result.stderr.replace(str(tmp_path / "best.safetensors"), "FILE")

    return run


def test_a_runs_metadata_names_the_classes_and_normalises_as_stored(predicted, tmp_path):
    code, out, _ = predicted(json.dumps({**GOOD, "preprocessing": GOOD_PREPROCESSING}))
    assert code == 0
    module = cnndsl.parse(NET).to_torch(seed=0).eval()
    pixel = (200 / 255 - 0.5) / 0.25  # the stored mean and std, not the input's default 0.5 and 0.5
    with torch.no_grad():
        probs = module(torch.full((1, 1, 8, 8), pixel)).softmax(1)[0]
    ranked = sorted(zip(probs.tolist(), GOOD["classes"]), reverse=True)
    assert out == f"{tmp_path / 'image.png'}: " + ", ".join(f"{name} {prob:.3f}" for prob, name in ranked) + "\n"


@pytest.mark.parametrize(
    ("metadata", "why"),
    [
        ("[1, 2]", "its cnndsl metadata is not an object"),
        ("[" * 100_000 + "]" * 100_000, "its cnndsl metadata nests too deep"),
        (
            json.dumps({"task": "segment"}),
            'it was trained for the task "segment"; this network\'s outputs are for classify',
        ),
        (json.dumps({"classes": ["cat"]}), "it names 1 class; the network has 3"),
        (json.dumps({"classes": "cat dog eel"}), "its class names are not a list of strings"),
        (json.dumps({"classes": [1, 2, 3]}), "its class names are not a list of strings"),
        (
            json.dumps({"preprocessing": {**GOOD_PREPROCESSING, "evil": 1}}),
            "its preprocessing is not an object of channels, height, width, mean, std",
        ),
        (
            json.dumps({"preprocessing": {**GOOD_PREPROCESSING, "height": 100_000, "width": 100_000}}),
            "its preprocessing is for 1x100000x100000 inputs; the network takes 1x8x8",
        ),
        (
            json.dumps({"preprocessing": {**GOOD_PREPROCESSING, "channels": 3}}),
            "its preprocessing is for 3x8x8 inputs; the network takes 1x8x8",
        ),
        (
            json.dumps({"preprocessing": {**GOOD_PREPROCESSING, "std": [0]}}),
            "its preprocessing's std must be a number above 0 per channel (1)",
        ),
        (
            json.dumps({"preprocessing": {**GOOD_PREPROCESSING, "mean": [0.5, 0.5]}}),
            "its preprocessing's mean must be a finite number per channel (1)",
        ),
        (
            '{"preprocessing": {"channels": 1, "height": 8, "width": 8, "mean": [NaN], "std": [1]}}',
            "its preprocessing's mean must be a finite number per channel (1)",
        ),
    ],
)
def test_metadata_that_does_not_fit_the_network_is_refused_by_name(predicted, metadata, why):
    assert predicted(metadata) == (1, "", f"error: the metadata of FILE does not fit: {why}\n{HINT}")
