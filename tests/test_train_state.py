"""`cnndsl train`'s state across a stop and what it never overwrites (docs/train.md): a run stopped mid-epoch
resumes its EMA, AdamW moments, warm-up and step schedule exactly; an --out folder holding a run is left as it
was; --skip-bad trains on and names what it left out."""

from __future__ import annotations

import io
import json
import os
import signal

import pytest
import torch
from synthetic import TWO_CLASSES, classification_set, tiny_set

from cnndsl.train import loop, train
from cnndsl.train.loop import Interrupted

STATEFUL = dict(
    epochs=3, batch=4, seed=7, deterministic=True, ema=0.9, opt="adamw", sched="step", step_every=1, warmup=1
)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _state(folder):
    return torch.load(folder / "last.ckpt", weights_only=True)["train"]


def _equal(a, b) -> bool:
    """Nested state_dicts equal, tensors value for value."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[key], b[key]) for key in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


def test_a_run_stopped_mid_epoch_resumes_its_ema_optimizer_and_schedule_exactly(tmp_path, monkeypatch):
    """8 images in batches of 4: 2 steps an epoch; SIGTERM during step 3 stops the run at epoch 2, step 1."""
    (tmp_path / "net.cnn").write_text(TWO_CLASSES)
    data = classification_set(tmp_path / "data", train=4, val=2, classes=("disk", "square"), seed=3)
    train(tmp_path / "net.cnn", data, out=tmp_path / "whole", stream=io.StringIO(), **STATEFUL)
    original, count = loop.train_step, [0]

    def signalled(*args):
        count[0] += 1
        if count[0] == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # noted by the run's handler, which stops after this step
        return original(*args)

    monkeypatch.setattr(loop, "train_step", signalled)
    with pytest.raises(Interrupted, match="stopped at epoch 2, step 1"):
        train(tmp_path / "net.cnn", data, out=tmp_path / "stopped", stream=io.StringIO(), **STATEFUL)
    monkeypatch.setattr(loop, "train_step", original)
    stopped = _state(tmp_path / "stopped")
    assert stopped["ema"]["n_averaged"].item() == 3 and stopped["scheduler"]["last_epoch"] == 3
    output = io.StringIO()
    train(resume=tmp_path / "stopped", stream=output)
    assert "resumed at epoch 2, step 1" in output.getvalue().splitlines()[0]
    for name in ("metrics.csv", "best.safetensors"):
        assert (tmp_path / "stopped" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    resumed, whole = _state(tmp_path / "stopped"), _state(tmp_path / "whole")
    assert resumed["ema"]["n_averaged"].item() == 3 * 2
    for part in ("model", "ema", "optimizer", "scheduler"):
        assert _equal(resumed[part], whole[part]), part


def test_an_out_folder_holding_a_run_is_refused_and_left_as_it_was(tmp_path, cli):
    data = tiny_set(tmp_path / "data")
    (tmp_path / "net.cnn").write_text(TWO_CLASSES)
    run = tmp_path / "run"
    run.mkdir()
    kept = {"run.json": b'{"kept": true}\n', "metrics.csv": b"epoch\n1\n", "last.ckpt": b"kept"}
    for name, content in kept.items():
        (run / name).write_bytes(content)
    result = cli("train", tmp_path / "net.cnn", data, "--out", run, "--epochs", "1")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert (
        result.stderr
        == f"error: {run} already holds a run\nhint: continue it with --resume {run}, or choose another --out\n"
    )
    assert {path.name: path.read_bytes() for path in run.iterdir()} == kept


def test_skip_bad_trains_on_and_names_the_images_it_left_out(tmp_path, cli):
    data = tiny_set(tmp_path / "data")
    bad = data / "train" / "a" / "broken.png"
    bad.write_bytes(b"not a png")
    (tmp_path / "net.cnn").write_text(TWO_CLASSES)
    options = ["--out", tmp_path / "run", "--epochs", "1", "--batch", "2", "--skip-bad"]
    result = cli("train", tmp_path / "net.cnn", data, *options)
    assert result.exit_code == 0, result.stderr
    header = result.stdout.splitlines()[0]
    assert "(classify, 2 classes; 4 train, 2 val/)" in header
    assert header.endswith(f"; skipped 1 unreadable image: {bad}")
    assert json.loads((tmp_path / "run" / "run.json").read_text())["data"]["skipped"] == [str(bad)]


def test_a_samples_random_flip_is_its_own_whichever_batch_loads_it(tmp_path):
    """The DataLoader fetches a batch at once (`__getitems__`, one fork of the generator per batch): each image
    is still flipped or not by its own (seed, epoch, index), as when fetched alone, and the caller's generator
    is left as it was."""
    from cnndsl.train.datasets import Preprocessing, Samples

    data = classification_set(tmp_path / "data", train=6, val=1, classes=("disk", "square"), seed=4)
    samples = sorted((str(path), 0) for path in (data / "train").rglob("*.png"))
    preprocessing = Preprocessing.for_input((3, 32, 32))
    flipping = Samples(samples, "classify", preprocessing, flip=True, seed=11)
    plain = Samples(samples, "classify", preprocessing, flip=False, seed=11)
    flipping.epoch = 2
    before = torch.get_rng_state()
    batch = flipping.__getitems__([5, 0, 9, 3, 11, 7])
    assert torch.equal(torch.get_rng_state(), before)
    flipped = []
    for (image, target), index in zip(batch, [5, 0, 9, 3, 11, 7]):
        alone, unflipped = flipping[index][0], plain[index][0]
        assert target == 0 and torch.equal(image, alone)
        mirrored = torch.equal(image, unflipped.flip(-1))
        assert mirrored or torch.equal(image, unflipped)
        flipped.append(mirrored)
    assert True in flipped and False in flipped  # both draws occur: the flip is random, not fixed


def test_a_batch_normalised_at_once_is_each_image_normalised_alone(tmp_path):
    """Training loads uint8 images and normalises each batch on the device; `predict` normalises one image:
    both give the hand calculation ((pixels / 255 - mean) / std, ImageNet's), the batch bit for bit the image."""
    import numpy as np
    from PIL import Image

    from cnndsl.train.datasets import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, Samples

    data = classification_set(tmp_path / "data", train=3, val=1, classes=("disk", "square"), seed=5)
    paths = sorted(str(path) for path in (data / "train").rglob("*.png"))
    preprocessing = Preprocessing.for_input((3, 32, 32))
    loaded = Samples([(path, 0) for path in paths], "classify", preprocessing, flip=False, seed=0)
    batch = torch.stack([image for image, _ in loaded.__getitems__(list(range(len(paths))))])
    assert batch.dtype == torch.uint8 and batch.shape == (6, 3, 32, 32)
    normalised = preprocessing.normalise(batch)
    alone = torch.stack([preprocessing.transform()(preprocessing.read(path)) for path in paths])
    assert torch.equal(normalised, alone)
    pixels = np.stack([np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255 for path in paths])
    by_hand = ((pixels - IMAGENET_MEAN) / IMAGENET_STD).transpose(0, 3, 1, 2)
    assert np.abs(normalised.numpy() - by_hand).max() < 1e-5


def test_training_freezes_the_heap_it_started_with_and_gives_the_collector_back_as_it_was(monkeypatch):
    """A full collection in the middle of an epoch sweeps every object made before it (the parse, torch's
    modules: 0.18 s of CPU here); frozen first, they are skipped. A caller's own frozen objects stay frozen:
    the collector is not touched at all (its frozen count is no witness, it falls as frozen objects die)."""
    import gc

    from cnndsl.train.worker import _settled_heap

    assert gc.get_freeze_count() == 0
    with _settled_heap():
        assert gc.get_freeze_count() > 10_000  # torch alone makes more objects than that
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        touched = []
        for name in ("collect", "freeze", "unfreeze"):
            monkeypatch.setattr(gc, name, lambda *args, name=name: touched.append(name))
        with _settled_heap():
            assert touched == []
        assert touched == []
        monkeypatch.undo()
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
