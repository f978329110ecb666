"""`cnndsl train --resume FOLDER` reads run.json and last.ckpt, which may come from anyone (a shared or damaged
run folder): each part is checked as a run writes it, and refused by name, never a traceback or a crash (a
recorded `threads` of 10^6 made torch's set_num_threads end the process with a segmentation fault)."""

from __future__ import annotations

import json
import shutil
from io import StringIO

import pytest
import torch
from synthetic import TWO_CLASSES, tiny_set

from cnndsl.train import train


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One whole run of one epoch: its folder is copied and damaged by each test."""
    root = tmp_path_factory.mktemp("resume")
    (root / "net.cnn").write_text(TWO_CLASSES)
    data = tiny_set(root / "data")
    torch.set_num_threads(1)
    train(root / "net.cnn", data, out=root / "run", stream=StringIO(), epochs=1, batch=2)
    return root / "run"


@pytest.fixture
def resumed(finished, tmp_path, cli):
    """Resume a copy of the run, its run.json or last.ckpt changed by `damage`: (exit code, stderr)."""

    def run(damage) -> tuple[int, str]:
        folder = shutil.copytree(finished, tmp_path / "run")
        damage(folder)
        result = cli("train", "--resume", folder)
        return result.exit_code, result.stderr.replace(str(folder), "RUN")

    return run


def _record(change):
    def damage(folder):
        record = json.loads((folder / "run.json").read_text())
        change(record)
        (folder / "run.json").write_text(json.dumps(record))

    return damage


RECORD_HINT = "hint: --resume takes the folder a run wrote\n"


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda folder: (folder / "run.json").write_text("[1, 2]"), "it is not an object"),
        (_record(lambda record: record.pop("network")), "`network` is not an object"),
        (_record(lambda record: record["network"].pop("sha256")), "`network.sha256` is missing or not of the type a run writes"),
        (_record(lambda record: record.update(classes=True)), "`classes` is missing or not of the type a run writes"),
        (_record(lambda record: record["network"].update(input=["a"])), "`network.input` is not a shape of whole sizes of at least 1"),
        (_record(lambda record: record.update(task="evil")), "`task` is not one of classify, segment or `classes` is under 1"),
        (_record(lambda record: record.update(threads=10**6)), "`threads` is not from 0 to 1,024"),
        (_record(lambda record: record.update(threads=-1)), "`threads` is not from 0 to 1,024"),
    ],
)  # fmt: skip
def test_a_run_json_that_is_not_a_runs_record_is_refused_by_name(resumed, damage, why):
    assert resumed(damage) == (1, f"error: RUN/run.json is not the record of a run: {why}\n{RECORD_HINT}")


def test_a_run_json_too_deep_to_read_is_refused_by_name(resumed):
    damage = lambda folder: (folder / "run.json").write_text("[" * 100_000 + "]" * 100_000)  # noqa: E731
    assert resumed(damage) == (1, "error: cannot read RUN/run.json: it nests too deep\n")


def test_an_option_of_another_type_is_refused_before_it_is_used(resumed):
    damage = _record(lambda record: record["options"].update(batch="lots"))
    assert resumed(damage) == (1, "error: training option `batch` is 'lots', not int\n")


def _checkpoint(change):
    def damage(folder):
        saved = torch.load(folder / "last.ckpt", weights_only=True)
        torch.save(change(saved), folder / "last.ckpt")

    return damage


CHECKPOINT_HINT = "hint: --resume takes the folder a run wrote, with the last.ckpt it saved\n"


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (_checkpoint(lambda saved: saved["train"]["model"]), "is not a run's: it lacks 'train'"),
        (_checkpoint(lambda saved: [1, 2, 3]), "does not fit this run: list indices must be integers or slices, not str"),
        (_checkpoint(lambda saved: {**saved, "step": {**saved["step"], "epoch": "x"}}), "does not fit this run: its step (epoch, done, loss_sum, timing) is not where a run stops"),
        (_checkpoint(lambda saved: {**saved, "rows": [{"evil": 1}]}), "does not fit this run: its rows are not the epochs' epoch, train_loss, val_loss, val_acc, lr"),
        (_checkpoint(lambda saved: {**saved, "best": "best"}), "does not fit this run: its best epoch is not a (value, epoch) pair: best"),
        (_checkpoint(lambda saved: {**saved, "random": {**saved["random"], "torch": torch.zeros(3)}}), "does not fit this run: RNG state must be a torch.ByteTensor"),
    ],
)  # fmt: skip
def test_a_last_ckpt_that_is_not_this_runs_is_refused_by_name(resumed, damage, why):
    assert resumed(damage) == (1, f"error: checkpoint RUN/last.ckpt {why}\n{CHECKPOINT_HINT}")


def test_a_run_started_with_a_named_input_shape_resumes_with_it(tmp_path, cli):
    """`--input NAME=CxHxW` is recorded by name ({"input": [3, 32, 32]}), and --resume loads it so."""
    (tmp_path / "net.cnn").write_text(TWO_CLASSES)
    data = tiny_set(tmp_path / "data")
    started = cli("train", tmp_path / "net.cnn", data, "--out", tmp_path / "run", "--epochs", "1", "--batch", "2",
                  "--input", "input=3x32x32")  # fmt: skip
    assert started.exit_code == 0, started.stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["network"]["input"] == {"input": [3, 32, 32]}
    resumed = cli("train", "--resume", tmp_path / "run")
    assert resumed.exit_code == 0, resumed.stderr
    assert "resumed at epoch 2, step 0" in resumed.stdout.splitlines()[0]
