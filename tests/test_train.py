"""`cnndsl train` and `cnndsl predict` (docs/train.md): real learning on small synthetic sets, the ONNX
export agreeing with the run, exact kill-and-resume, DDP validation counting each image once (the
refusals: test_train_refusals.py). Budget: about 40 s of CPU on one thread (measured with nice on 2 shared cores)."""

from __future__ import annotations

import csv
import gc
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import onnxruntime
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from synthetic import CLASSIFIER, SEGMENTER, TWO_CLASSES, classification_set, segmentation_set, tiny_set

import cnndsl
from cnndsl.train import train

ROOT = Path(__file__).resolve().parent.parent
IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """One 8-epoch run on 4 classes x 60 images (52 validation images: not a multiple of the batch), shared."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("classify")
    (folder / "net.cnn").write_text(CLASSIFIER)
    data = classification_set(folder / "data", train=60, val=13)
    stream = io.StringIO()
    result = train(folder / "net.cnn", data, out=folder / "run", stream=stream, epochs=8, batch=16, lr=0.05)
    return folder, result, stream.getvalue()


def _metrics(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _validation_arrays(data: Path, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The validation images normalised by hand (ImageNet mean and std, as the run's preprocessing says)."""
    images, labels = [], []
    for index, name in enumerate(classes):
        for path in sorted((data / "val" / name).iterdir()):
            pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255
            images.append(((pixels - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1).astype(np.float32))
            labels.append(index)
    return np.stack(images), np.array(labels)


def test_a_small_network_learns_the_shapes(classifier):
    folder, result, _ = classifier
    rows = _metrics(folder / "run" / "metrics.csv")
    assert [row["epoch"] for row in rows] == [str(epoch) for epoch in range(1, 9)]
    assert list(rows[0]) == ["epoch", "train_loss", "val_loss", "val_acc", "lr"]
    assert result.best >= 0.95 and result.best == max(float(row["val_acc"]) for row in rows)
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert json.loads((folder / "run" / "classes.json").read_text()) == ["disk", "hstripes", "square", "vstripes"]


def test_best_onnx_in_onnxruntime_gives_the_accuracy_the_run_reported(classifier):
    folder, result, _ = classifier
    images, labels = _validation_arrays(folder / "data", ["disk", "hstripes", "square", "vstripes"])
    session = onnxruntime.InferenceSession(str(folder / "run" / "best.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: images})[0]
    assert (logits.argmax(1) == labels).mean() == result.best


def test_the_run_folder_records_options_versions_and_hashes(classifier):
    folder, result, _ = classifier
    record = json.loads((folder / "run" / "run.json").read_text())
    assert record["options"]["epochs"] == 8 and record["options"]["lr"] == 0.05
    assert record["versions"]["torch"] == torch.__version__
    assert set(record["data"]["listing"]) == {
        f"{split}/{name}" for split in ("train", "val") for name in ("disk", "square", "hstripes", "vstripes")
    }
    summary = json.loads((folder / "run" / "summary.json").read_text())
    assert summary["val_acc"] == result.best and summary["images_per_second"] > 0
    assert 0 <= summary["data_wait_share"] < 1 and summary["peak_memory_bytes"] > 0


def test_a_piped_run_prints_one_line_per_epoch_and_a_short_header_and_footer(classifier):
    _, _, output = classifier
    lines = output.splitlines()
    assert len(lines) <= 8 + 5
    assert sum(line.startswith("epoch ") for line in lines) == 8
    assert "val/" in lines[0]  # the validation folder used is named


def test_best_safetensors_load_by_cnndsl_names_and_predict_uses_them(classifier, cli):
    folder, _, _ = classifier
    run = folder / "run"
    network = cnndsl.load(folder / "net.cnn")
    assert set(load_file(run / "best.safetensors")) == set(network.to_torch().state_dict())
    image = folder / "data" / "val" / "hstripes" / "0.png"
    shown = cli(
        "predict", folder / "net.cnn", "--weights", run / "best.safetensors", image, "--format", "json", "--top", "2"
    )
    assert shown.exit_code == 0, shown.stderr
    (result,) = json.loads(shown.stdout)
    assert result["image"] == str(image) and result["top"][0]["class"] == "hstripes"
    assert len(result["top"]) == 2 and 0 < result["top"][1]["prob"] <= result["top"][0]["prob"] <= 1


def test_predict_names_an_image_it_cannot_read_or_will_not_decode(classifier, cli, tmp_path, monkeypatch):
    folder, _, _ = classifier
    broken, bomb = tmp_path / "broken.png", tmp_path / "bomb.png"
    broken.write_bytes(b"not a png")
    Image.new("L", (64, 64)).save(bomb)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_500)  # 4,096 pixels is over twice this: a bomb to PIL
    hint = "hint: give it a file PIL reads (PNG, JPEG, ...), of fewer pixels than PIL's decompression-bomb limit\n"
    for image, why in ((broken, "cannot identify image file"), (bomb, "Image size (4096 pixels) exceeds limit")):
        shown = cli("predict", folder / "net.cnn", "--weights", folder / "run" / "best.safetensors", image)
        assert shown.exit_code == 1 and shown.stdout == ""
        assert shown.stderr.startswith(f"error: cannot read image {image}: {why}") and shown.stderr.endswith(hint)


def test_segmentation_reaches_the_miou_and_writes_masks(tmp_path, cli):
    (tmp_path / "segnet.cnn").write_text(SEGMENTER)
    data = segmentation_set(tmp_path / "data", train=120, val=30)
    result = train(
        tmp_path / "segnet.cnn", data, out=tmp_path / "run", stream=io.StringIO(), epochs=8, batch=16, lr=0.05
    )
    assert result.task == "segment" and result.best >= 0.8
    assert list(_metrics(tmp_path / "run" / "metrics.csv")[0]) == ["epoch", "train_loss", "val_loss", "val_miou", "lr"]
    image = data / "val" / "images" / "0.png"
    shown = cli(
        "predict",
        tmp_path / "segnet.cnn",
        "--weights",
        tmp_path / "run" / "best.safetensors",
        image,
        "--masks",
        tmp_path,
    )
    assert shown.exit_code == 0 and shown.stdout == f"{image}: wrote {tmp_path / '0.mask.png'}\n"
    predicted = np.asarray(Image.open(tmp_path / "0.mask.png"))
    truth = np.asarray(Image.open(data / "val" / "masks" / "0.png"))
    assert predicted.shape == truth.shape and (predicted == truth).mean() > 0.9


KILLER = """
import os, signal, sys
import torch
torch.set_num_threads(1)
from cnndsl.train import loop
signum, at = getattr(signal, sys.argv[1]), int(sys.argv[2])
original, count = loop.train_step, [0]
def step(*args):
    count[0] += 1
    if count[0] == at:
        os.kill(os.getpid(), signum)  # a real signal, delivered mid-epoch at a known step
    return original(*args)
loop.train_step = step
from cnndsl.cli import main
main(sys.argv[3:])
"""
RESUMABLE = ["--epochs", "3", "--batch", "8", "--seed", "5", "--deterministic", "--lr", "0.05"]


@pytest.fixture(scope="module")
def resumable(tmp_path_factory):
    """An uninterrupted deterministic run (3 epochs of 5 steps) to compare interrupted ones with."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("resume")
    (folder / "net.cnn").write_text(CLASSIFIER)
    classification_set(folder / "data", train=10, val=3, seed=1)
    options = dict(epochs=3, batch=8, seed=5, deterministic=True, lr=0.05)
    train(folder / "net.cnn", folder / "data", out=folder / "whole", stream=io.StringIO(), **options)
    return folder


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_run_killed_mid_epoch_and_resumed_is_the_uninterrupted_run(resumable, signame, cli):
    out = resumable / signame
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLER,
            signame,
            "8",
            "train",
            resumable / "net.cnn",
            resumable / "data",
            "--out",
            out,
            *RESUMABLE,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=resumable,
        timeout=120,
    )
    assert killed.returncode == 128 + getattr(signal, signame)
    assert "Traceback" not in killed.stderr
    assert f"{signame}: stopped at epoch 2, step 3; wrote {out / 'last.ckpt'}" in killed.stderr
    assert len(_metrics(out / "metrics.csv")) == 1
    resumed = cli("train", "--resume", out)
    assert resumed.exit_code == 0, resumed.stderr
    assert "resumed at epoch 2, step 3" in resumed.stdout
    assert (out / "metrics.csv").read_bytes() == (resumable / "whole" / "metrics.csv").read_bytes()
    assert (out / "best.safetensors").read_bytes() == (resumable / "whole" / "best.safetensors").read_bytes()
    final, whole = (
        torch.load(f / "last.ckpt", weights_only=True)["train"]["model"] for f in (out, resumable / "whole")
    )
    assert all(torch.equal(final[name], whole[name]) for name in whole)


def test_resuming_with_a_changed_network_or_data_is_refused(resumable, tmp_path, cli):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(resumable / "whole", run)
    source = resumable / "net.cnn"
    text = source.read_text()
    try:
        source.write_text(text.replace("conv3x3(32)", "conv3x3(24)"))
        refused = cli("train", "--resume", run)
        assert refused.exit_code == 1
        assert f"error: the network changed since the run started: {source} is not the text" in refused.stderr
    finally:
        source.write_text(text)
    extra = resumable / "data" / "train" / "square" / "extra.png"
    shutil.copy(resumable / "data" / "train" / "square" / "0.png", extra)
    try:
        refused = cli("train", "--resume", run)
        assert "error: the data listing changed since the run started: train/square\n" in refused.stderr
    finally:
        extra.unlink()
    assert (run / "last.ckpt").read_bytes() == (resumable / "whole" / "last.ckpt").read_bytes()


def test_ddp_on_two_cpu_processes_evaluates_each_validation_image_once(tmp_path):
    """19 validation images, global batch 8 (4 per rank): ranks hold 10 and 9 images, in batches 4+4+2 and
    4+4+1. A rank padding its share, or a sampler repeating the tail, would change the count and the mean."""
    (tmp_path / "net.cnn").write_text(CLASSIFIER)
    data = classification_set(tmp_path / "data", train=8, val=5, seed=2)
    (data / "val" / "vstripes" / "4.png").unlink()
    result = train(
        tmp_path / "net.cnn", data, out=tmp_path / "run", stream=io.StringIO(), epochs=1, batch=8, devices="cpu:2"
    )
    (row,) = result.rows
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["device"] == "cpu x2"
    module = cnndsl.load(tmp_path / "net.cnn").to_torch(weights=str(tmp_path / "run" / "best.safetensors")).eval()
    images, labels = _validation_arrays(data, ["disk", "hstripes", "square", "vstripes"])
    assert len(labels) == 19
    with torch.no_grad():
        logits = module(torch.from_numpy(images))
    losses = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels), reduction="none").double()
    assert row["val_acc"] == (logits.argmax(1).numpy() == labels).sum() / 19
    assert row["val_loss"] == pytest.approx(losses.mean().item(), rel=1e-6)


def test_weights_of_another_class_count_load_all_but_the_head_and_say_so(classifier, tmp_path, cli):
    folder, _, _ = classifier
    data = tiny_set(tmp_path / "data", classes=("disk", "square"))
    best = folder / "run" / "best.safetensors"
    result = cli(
        "train",
        folder / "net.cnn",
        data,
        "-p",
        "classes=2",
        "--weights",
        best,
        "--epochs",
        "1",
        "--batch",
        "4",
        "--out",
        tmp_path / "run",
    )
    assert result.exit_code == 0, result.stderr
    assert f"loaded 18 of the network's 20 tensors from {best}\n" in result.stdout
    assert "gives `fc.weight` the shape 4×32; the network needs 2×32" in result.stdout
    started, ended = load_file(best), load_file(tmp_path / "run" / "best.safetensors")
    assert ended["fc.weight"].shape == (2, 32) and started["fc.weight"].shape == (4, 32)


def test_in_a_terminal_each_epoch_shows_a_live_bar_and_the_callers_torch_settings_are_kept(tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    (tmp_path / "net.cnn").write_text(TWO_CLASSES)
    data = tiny_set(tmp_path / "data")
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal 100 columns wide
    generator = torch.get_rng_state()
    with os.fdopen(follower, "w") as terminal:
        train(tmp_path / "net.cnn", data, out=tmp_path / "run", stream=terminal, epochs=1, batch=2, deterministic=True)
    # the caller's generator and settings are its own again
    assert torch.equal(torch.get_rng_state(), generator) and not torch.are_deterministic_algorithms_enabled()
    assert gc.get_freeze_count() == 0  # the heap frozen while training is unfrozen
    shown = b""
    try:
        while chunk := os.read(leader, 4096):  # a few hundred bytes: the pty's buffer holds them all
            shown += chunk
    except OSError:  # EIO once the follower is closed and everything is read
        pass
    os.close(leader)
    shown = shown.decode()
    assert "\repoch 1/1: " in shown and "step/s]" in shown  # tqdm's bar, redrawn in place


def test_ema_bf16_channels_last_adamw_step_schedule_with_warmup_run_and_are_checkpointed(tmp_path, cli):
    data = tiny_set(tmp_path / "data")
    (tmp_path / "net.cnn").write_text(TWO_CLASSES)
    options = [
        "--ema",
        "0.9",
        "--amp",
        "bf16",
        "--channels-last",
        "--opt",
        "adamw",
        "--sched",
        "step",
        "--step-every",
        "1",
        "--warmup",
        "1",
        "--smoothing",
        "0.1",
        "--epochs",
        "3",
        "--batch",
        "2",
    ]
    result = cli("train", tmp_path / "net.cnn", data, "--out", tmp_path / "run", *options)
    assert result.exit_code == 0, result.stderr
    assert "on cpu, bf16;" in result.stdout.splitlines()[0]
    saved = torch.load(tmp_path / "run" / "last.ckpt", weights_only=True)
    assert saved["train"]["ema"]["n_averaged"].item() == 3 * 2  # one EMA update per step: 2 steps x 3 epochs
    assert type(saved["train"]["optimizer"]["state"][0]["exp_avg"]) is torch.Tensor  # AdamW's moments
    lrs = [float(row["lr"]) for row in _metrics(tmp_path / "run" / "metrics.csv")]
    assert lrs == pytest.approx([1e-3, 1e-4, 1e-5])  # warm-up ends at epoch 1's end; then x0.1 per epoch


def test_the_run_draws_its_curves_as_real_png_and_svg_images(classifier):
    """The classifier run's own curves.png and curves.svg (matplotlib is pinned in the test extra): a PNG that
    decodes at the figure's size, an SVG that parses, each holding the three curves in matplotlib's colours."""
    pytest.importorskip("matplotlib")
    folder, _, output = classifier
    run = folder / "run"
    assert output.rstrip().endswith(f"curves: {run / 'curves.png'}, {run / 'curves.svg'}")
    curves = {"train loss": (0x1F, 0x77, 0xB4), "validation loss": (0xFF, 0x7F, 0x0E), "val_acc": (0x2C, 0xA0, 0x2C)}
    with Image.open(run / "curves.png") as png:
        assert png.format == "PNG" and png.size == (900, 350)  # 9 x 3.5 inches at 100 dpi
        pixels = {tuple(pixel) for pixel in np.asarray(png.convert("RGB")).reshape(-1, 3)}
    assert all(colour in pixels for colour in curves.values())
    svg = ElementTree.parse(run / "curves.svg").getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    strokes = {element.get("style", "") for element in svg.iter("{http://www.w3.org/2000/svg}path")}
    for red, green, blue in curves.values():
        assert any(f"stroke: #{red:02x}{green:02x}{blue:02x}" in style for style in strokes)


def test_without_matplotlib_the_curves_are_not_drawn_and_the_footer_says_how_to_get_them(tmp_path, monkeypatch):
    from cnndsl.train.rundir import write_curves

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    rows = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.0, "val_acc": 0.5}]
    assert write_curves(tmp_path, rows, "val_acc") == (
        "curves not drawn: matplotlib is not installed (pip install matplotlib)"
    )
    assert list(tmp_path.iterdir()) == []


def test_two_data_loading_workers_give_the_run_of_none(resumable):
    """Each sample's random draws are seeded by (seed, epoch, index), not by the process that loads it, so
    --workers 2 trains exactly as --workers 0 with --seed and --deterministic."""
    out = resumable / "workers"
    options = dict(epochs=3, batch=8, seed=5, deterministic=True, lr=0.05, workers=2)
    train(resumable / "net.cnn", resumable / "data", out=out, stream=io.StringIO(), **options)
    assert json.loads((out / "run.json").read_text())["options"]["workers"] == 2
    assert (out / "metrics.csv").read_bytes() == (resumable / "whole" / "metrics.csv").read_bytes()
    assert (out / "best.safetensors").read_bytes() == (resumable / "whole" / "best.safetensors").read_bytes()


def test_compile_trains_through_torch_compile_as_without_it(resumable, monkeypatch):
    """--compile hands the module to torch.compile once; dynamo traces its forward and the run is the
    uncompiled one. Dynamo's eager backend stands in for inductor, which works here but whose C++ build is
    too slow for the suite (a 6-layer model's first forward and backward: 49 s on the shared 2-core machine):
    what is tested is that the option reaches torch.compile and the compiled module trains."""
    import torch._dynamo

    real, handed = torch.compile, []

    def compile_eagerly(model, **options):
        handed.append(model)
        return real(model, backend="eager", **options)

    monkeypatch.setattr(torch, "compile", compile_eagerly)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    out = resumable / "compiled"
    options = dict(epochs=3, batch=8, seed=5, deterministic=True, lr=0.05, compile=True)
    try:
        train(resumable / "net.cnn", resumable / "data", out=out, stream=io.StringIO(), **options)
    finally:
        torch._dynamo.reset()
    assert len(handed) == 1 and isinstance(handed[0], torch.nn.Module)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # dynamo traced the forward
    assert (out / "metrics.csv").read_bytes() == (resumable / "whole" / "metrics.csv").read_bytes()
