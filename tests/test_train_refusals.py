"""`cnndsl train` refuses bad data and options before it writes anything, each with its message
(docs/train.md); hidden files are ignored and class folders sort naturally."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from synthetic import CLASSIFIER, SEGMENTER, TWO_CLASSES, classification_set, segmentation_set, tiny_set

from cnndsl.train.data import find_layout

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _refusal(cli, tmp_path, data, *options, network=TWO_CLASSES) -> str:
    (tmp_path / "net.cnn").write_text(network)
    result = cli("train", tmp_path / "net.cnn", data, "--out", tmp_path / "run", *options)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "run.json").exists()  # nothing written
    return result.stderr


def test_refuses_a_data_folder_without_train_or_validation(tmp_path, cli):
    (tmp_path / "data" / "val").mkdir(parents=True)
    assert f"error: {tmp_path / 'data'} has no train/ folder" in _refusal(cli, tmp_path, tmp_path / "data")
    (tmp_path / "data" / "val").rmdir()
    (tmp_path / "data" / "train" / "a").mkdir(parents=True)
    stderr = _refusal(cli, tmp_path, tmp_path / "data")
    assert stderr == f"error: {tmp_path / 'data'} has no validation folder\nhint: name it val, valid, validation\n"


def test_accepts_valid_and_validation_and_names_the_one_used(tmp_path):
    for name in ("valid", "validation"):
        data = classification_set(tmp_path / name, train=2, val=1, classes=("a", "b"), validation=name)
        assert find_layout(data, "classify", 2, 255, False).validation == name


def test_refuses_an_empty_class_folder(tmp_path, cli):
    data = tiny_set(tmp_path / "data")
    (data / "train" / "c").mkdir()
    (data / "train" / "c" / ".hidden.png").write_bytes((data / "train" / "a" / "0.png").read_bytes())
    assert f"error: class folder {data / 'train' / 'c'} holds no images" in _refusal(cli, tmp_path, data)


def test_refuses_a_validation_class_that_training_lacks(tmp_path, cli):
    data = tiny_set(tmp_path / "data")
    (data / "val" / "b").rename(data / "val" / "z")
    assert f"error: {data / 'val'} has class folder z that train/ lacks" in _refusal(cli, tmp_path, data)


def test_refuses_an_unreadable_image_by_name_unless_skip_bad(tmp_path, cli):
    data = tiny_set(tmp_path / "data")
    bad = data / "train" / "a" / "broken.png"
    bad.write_bytes(b"not a png")
    assert f"error: cannot read image {bad}: " in _refusal(cli, tmp_path, data)
    layout = find_layout(data, "classify", 2, 255, skip_bad=True)
    assert layout.skipped == [str(bad)] and len(layout.train) == 4


def test_refuses_a_decompression_bomb_by_name_unless_skip_bad(tmp_path, cli, monkeypatch):
    """PIL refuses to decode more than twice Image.MAX_IMAGE_PIXELS (a 190 kB PNG can hold 196 megapixels):
    lowered here so that a 64×64 image is one, beside the 32×32 images."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_500)
    data = tiny_set(tmp_path / "data")
    bomb = data / "train" / "a" / "bomb.png"
    Image.new("L", (64, 64)).save(bomb)
    stderr = _refusal(cli, tmp_path, data)
    assert stderr == (
        f"error: cannot read image {bomb}: Image size (4096 pixels) exceeds limit of 3000 pixels, could be "
        "decompression bomb DOS attack.\nhint: remove it, or pass --skip-bad\n"
    )
    layout = find_layout(data, "classify", 2, 255, skip_bad=True)
    assert layout.skipped == [str(bomb)] and len(layout.train) == 4


def test_an_image_whose_pixels_are_cut_short_stops_the_run_by_name_and_says_to_remove_it(tmp_path, cli):
    """Its header is whole, so the check before the run passes it (and --skip-bad cannot leave it out); reading
    its pixels in the first epoch fails, named, with a hint that does not point at --skip-bad."""
    (tmp_path / "net.cnn").write_text(TWO_CLASSES)
    data = tiny_set(tmp_path / "data")
    cut = data / "train" / "a" / "0.png"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    result = cli("train", tmp_path / "net.cnn", data, "--out", tmp_path / "run", "--epochs", "1", "--skip-bad")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: cannot read image {cut}: image file is truncated\n"
        "hint: remove it: the check before the run reads each image's header, and this one's is whole\n"
    )


def test_refuses_an_unreadable_mask_by_name(tmp_path, cli):
    data = segmentation_set(tmp_path / "data", train=2, val=1)
    bad = data / "train" / "masks" / "1.png"
    bad.write_bytes(b"not a png")
    stderr = _refusal(cli, tmp_path, data, network=SEGMENTER)
    assert stderr.startswith(f"error: cannot read mask {bad}: cannot identify image file")
    assert stderr.endswith("\nhint: replace it with a PNG of class indices\n")


def test_refuses_a_mask_value_above_the_class_count(tmp_path, cli):
    data = segmentation_set(tmp_path / "data", train=2, val=1)
    Image.fromarray(np.full((32, 32), 7, np.uint8)).save(data / "train" / "masks" / "1.png")
    stderr = _refusal(cli, tmp_path, data, network=SEGMENTER)
    assert (
        f"error: mask {data / 'train' / 'masks' / '1.png'} holds value 7, but the network has 3 classes (0 to 2)"
        in stderr
    )


def test_refuses_a_class_count_the_network_does_not_output_and_suggests_the_parameter(tmp_path, cli):
    data = tiny_set(tmp_path / "data", classes=("a", "b", "c"))
    stderr = _refusal(cli, tmp_path, data)
    assert (
        f"error: {data / 'train'} has 3 classes (a, b, c) but `shapes` outputs 2\nhint: set the network's class count: -p classes=3\n"
        in stderr
    )


def test_refuses_fp16_on_cpu(tmp_path, cli):
    stderr = _refusal(cli, tmp_path, tiny_set(tmp_path / "data"), "--amp", "fp16")
    assert "error: --amp fp16 needs a CUDA device" in stderr and "hint: on CPU use --amp bf16 or --amp off" in stderr


def test_a_loss_that_becomes_nan_stops_the_run_naming_epoch_and_step_and_keeps_last_ckpt(tmp_path, cli):
    data = tiny_set(tmp_path / "data")
    (tmp_path / "net.cnn").write_text(CLASSIFIER.replace("classes=4", "classes=2"))
    result = cli(
        "train", tmp_path / "net.cnn", data, "--out", tmp_path / "run", "--lr", "1e30", "--batch", "2", "--epochs", "2"
    )
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert "error: the loss became nan at epoch 1, step 2; stopped" in result.stderr
    kept = torch.load(tmp_path / "run" / "last.ckpt", weights_only=True)
    assert kept["step"]["epoch"] == 1 and kept["step"]["done"] == 0


def test_hidden_folders_and_files_are_ignored_and_classes_sort_naturally(tmp_path):
    data = tiny_set(tmp_path / "data", classes=("10", "2", "1"))
    for split in ("train", "val"):
        (data / split / ".ipynb_checkpoints").mkdir()
        (data / split / ".ipynb_checkpoints" / "0.png").write_bytes((data / "train" / "2" / "0.png").read_bytes())
        (data / split / "2" / ".0-checkpoint.png").write_bytes((data / "train" / "2" / "0.png").read_bytes())
    layout = find_layout(data, "classify", 3, 255, False)
    assert layout.classes == ["1", "2", "10"]
    assert [(Path(path).relative_to(data).as_posix(), target) for path, target in layout.val] == [
        ("val/1/0.png", 0),
        ("val/2/0.png", 1),
        ("val/10/0.png", 2),
    ]
    assert len(layout.train) == 6


def test_summary_does_not_import_the_training_package(tmp_path):
    (tmp_path / "net.cnn").write_text(CLASSIFIER)
    script = (
        "import sys; from cnndsl.cli import main\ntry: main(['summary', 'net.cnn'])\nexcept SystemExit: pass\n"
        "print('cnndsl.train' in sys.modules, 'torch' in sys.modules, file=sys.stderr)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60
    )
    assert done.stderr.strip().splitlines()[-1] == "False False"
