"""`cnndsl import` reads hostile model files (issue 24): each of these, run as a whole process within 5 s of CPU
and 1 GiB (bounded.py), ends in a located error, never a traceback or a hang. What it guards against, per case:
a FIFO would block the read for good, a link to /dev/zero would fill memory, PyYAML's composer recurses (a list
nested a few thousand deep is a RecursionError), Python refuses to read an integer of over 4,300 digits, and
aliases would let a few lines stand for billions of values."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bounded import cnndsl

SUFFIXES = {"cfg": "darknet", "prototxt": "caffe", "yaml": "ultralytics"}


def imported(path: Path) -> list[str]:
    done = cnndsl("import", path, "-o", path.with_suffix(".cnn"))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert not path.with_suffix(".cnn").exists()
    return done.stderr.splitlines()


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_fifo_is_refused_before_it_is_opened(tmp_path, suffix):
    path = tmp_path / f"model.{suffix}"
    os.mkfifo(path)
    assert imported(path) == [f"error: {path} is a FIFO, not a model file"]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_link_to_a_device_is_refused_before_it_is_read(tmp_path, suffix):
    path = tmp_path / f"model.{suffix}"
    path.symlink_to("/dev/zero")
    assert imported(path) == [f"error: {path} is a character device, not a model file"]


@pytest.mark.parametrize(("suffix", "most"), [("cfg", 4 * 2**20), ("prototxt", 2 * 2**20), ("yaml", 64 * 2**10)])
def test_a_file_past_its_formats_bound_is_refused_before_it_is_parsed(tmp_path, suffix, most):
    path = tmp_path / f"model.{suffix}"
    path.write_bytes(b"#" * (most + 1))
    assert imported(path) == [f"error: {path} is larger than {most:,} bytes, the most a file of its format may have"]


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("backbone: " + "[" * 4000 + "]" * 4000, 42),  # the 33rd collection counting the file's own mapping
        ("backbone: " + "{a: " * 3000 + "1" + "}" * 3000, 135),
        ("backbone:\n  - [-1, 1, Conv, " + "[" * 3000 + "]" * 3000 + "]", 48),
    ],
    ids=["lists", "mappings", "args"],
)
def test_yaml_nested_past_32_is_a_located_error(tmp_path, row, column):
    path = tmp_path / "model.yaml"
    path.write_text(f"nc: 80\n{row}\nhead: []\n")
    line = 2 if row.startswith("backbone: ") else 3
    assert imported(path)[0] == f"{path}:{line}:{column}: error: lists and mappings nested more than 32 deep"


def test_a_yaml_integer_past_pythons_digits_is_a_located_error(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text("nc: " + "9" * 5000 + "\nbackbone: []\nhead: []\n")
    assert imported(path)[0] == (
        f"{path}:1:5: error: `99999999999999999999…` is not a number cnndsl reads (5,000 characters)"
    )


def test_a_billion_laughs_yaml_is_refused_at_its_first_alias(tmp_path):
    """Nine levels of nine aliases each would be 9^9 = 387,420,489 values to walk; PyYAML shares the nodes, and the
    reader refuses the second visit of one, on the line of the row."""
    levels = ["&l0 [64, 3, 1, 1, 1, 1, 1, 1, 1]"]
    levels += [f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    path = tmp_path / "model.yaml"
    path.write_text("backbone:\n  - [-1, 1, Conv, [" + ", ".join(levels) + "]]\nhead: []\n")
    assert path.stat().st_size < 10_000
    assert imported(path)[0] == f"{path}:2:1: error: the file repeats values by YAML anchors or holds too many of them"


@pytest.mark.parametrize(
    ("suffix", "text", "first"),
    [
        ("cfg", b"[net]\nwidth=\xff\xfe\n", "{path}:2:1: error: [net] `width=\ufffd\ufffd` is not a whole number"),
        (
            "yaml",
            b"nc: 80\nbackbone: \xff\x00\nhead: []\n",
            "{path}:1:1: error: not valid YAML: unacceptable character",
        ),
        ("prototxt", b'name: "\xff\xfe"\n', "{path}:1:1: error: the prototxt declares no input"),
    ],
)
def test_bytes_that_are_not_utf8_end_in_a_located_error(tmp_path, suffix, text, first):
    path = tmp_path / f"model.{suffix}"
    path.write_bytes(text)
    assert imported(path)[0].startswith(first.format(path=path))


def test_a_prototxt_nested_3000_deep_is_a_located_error(tmp_path):
    """caffe.proto has no message that holds itself, so protobuf's parser stops at the first field it lacks."""
    path = tmp_path / "model.prototxt"
    path.write_text("layer { " * 3000 + "}" * 3000)
    assert imported(path)[0] == (
        f'{path}:1:9: error: not a valid Caffe prototxt: Message type "caffe.LayerParameter" has no field named '
        '"layer".'
    )


def test_a_batchnorm_without_a_bottom_is_a_located_error(tmp_path):
    """Found by bench/fuzz_importers.py (seeds 2034 and 3701): a BatchNorm whose `bottom` line was moved away
    ended in an IndexError."""
    path = tmp_path / "model.prototxt"
    path.write_text(
        'input: "data"\ninput_shape { dim: 1 dim: 3 dim: 8 dim: 8 }\n'
        'layer { name: "bn" type: "BatchNorm" top: "data" }\n'
        'layer { name: "scale" type: "Scale" bottom: "data" top: "data" scale_param { bias_term: true } }\n'
    )
    assert imported(path)[:2] == [
        f"{path}:3:1: error: layer `bn` (BatchNorm): needs one bottom and one top",
        '    layer { name: "bn" type: "BatchNorm" top: "data" }',
    ]


def test_a_route_of_no_layers_is_a_located_error(tmp_path):
    """Found by bench/fuzz_importers.py (seed 7737): `layers=,` read as no layer ended in an IndexError."""
    path = tmp_path / "model.cfg"
    path.write_text("[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=4\nsize=1\n[route]\nlayers=,\n")
    assert imported(path)[:2] == [f"{path}:9:1: error: [route] names no layer in `layers`", "    layers=,"]
