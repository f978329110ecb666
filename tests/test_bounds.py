"""Answers bounded in time and memory whatever the input (issue 24): each hostile file runs as a whole
`cnndsl` process under 1 GiB of address space and a 5 s timeout, and ends in its figures or a located error.

The receptive fields expected here are worked out by hand from the index each output reads (docstring of
cnndsl/figures/receptive_field.py): nearest reads ⌊o·in/out⌋, bilinear ⌊(2·in·o + in ∓ out) / (2·out)⌋ and
its neighbour, a 3×3 convolution with padding 1 the positions o − 1 to o + 1 of its input.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from bounded import cnndsl, cpu_of


def network(tmp_path: Path, *lines: str, input: str = "3x8x8") -> str:
    path = tmp_path / "t.cnn"
    path.write_text("network t {\n    input " + input + "\n" + "".join(f"    {line}\n" for line in lines) + "}\n")
    return str(path)


def receptive_fields(tmp_path: Path, *lines: str, input: str = "3x8x8") -> list:
    done = cnndsl("summary", network(tmp_path, *lines, input=input), "--format", "json")
    assert done.returncode == 0, done.stderr
    return [(layer["rf"], layer["jump"]) for layer in json.loads(done.stdout)["layers"]]


# ---- one edit freezes everything: receptive fields follow position classes, not positions ----------------
def test_an_upsampling_by_2_to_the_40_is_analysed_at_once(tmp_path):
    # each output reads one input pixel (rf 1, jump 2^-40); a 3×3 conv at the edge of a run reads two
    assert receptive_fields(tmp_path, "upsample(scale=2^40), conv3x3(4)") == [(1, 2**-40), (2, 2**-40)]


def test_a_resize_to_2_to_the_53_is_analysed_at_once(tmp_path):
    # H: 8 → 1 reads pixel 8·o (jump 8), so the conv spans 1 + 2·8 = 17; W: 8 → 2^53, one pixel per run
    fields = receptive_fields(tmp_path, "resize(size=(1, 2^53), mode=nearest), conv3x3(4)")
    assert fields == [(1, [8, 2**-50]), ([17, 2], [8, 2**-50])]


def test_a_resize_to_100000007_is_analysed_at_once(tmp_path):
    # H, bilinear 8 → 7: the conv reads rows ⌊(16·o − 15) / 14⌋ to ⌊(16·o + 31) / 14⌋, 46/14 apart: 4 or 5 pixels,
    # 5 where (2·o − 1) mod 14 ≥ 10, which o = 6 reaches; W, 8 → 100000007: 2 or 3 pixels, 3 at some position
    fields = receptive_fields(tmp_path, "resize((7, 100000007)), conv3x3(3)")
    assert fields == [(2, [8 / 7, 8 / 100000007]), ([5, 3], [8 / 7, 8 / 100000007])]


def test_a_resize_between_large_coprime_sizes_is_a_located_limit(tmp_path):
    source = network(tmp_path, "resize((999999, 999999)), conv3x3(3)", input="3x1000000x1000000")
    done = cnndsl("check", source)
    assert done.returncode == 1
    assert done.stderr.splitlines()[:4] == [
        f"{source}:3:5: error: working out the receptive field takes more than 500,000 steps here",
        "        resize((999999, 999999)), conv3x3(3)",
        "        ^",
        "hint: resize by whole factors, or use a smaller input: each position class of a resize is a step",
    ]


# ---- outputs never replace an input, and random weights say so ------------------------------------------
def test_external_data_never_replaces_the_source(cli, tmp_path):
    source = tmp_path / "net.onnx.data"
    source.write_text("network net {\n    input 3x8x8\n    conv3x3(4), relu\n}\n")
    text = source.read_text()
    result = cli("compile", source, "--to", "onnx", "-o", tmp_path / "net.onnx", "--external-data")
    assert (result.exit_code, result.stderr) == (
        1,
        f"error: refusing to write {source}: it would overwrite the source\nhint: choose another output name with -o\n",
    )
    assert source.read_text() == text
    assert not (tmp_path / "net.onnx").exists()


def test_an_output_never_replaces_the_checkpoint(cli, tmp_path):
    import torch

    import cnndsl as api

    source = network(tmp_path, "conv3x3(4), relu")
    torch.save(api.load(source).to_torch().state_dict(), tmp_path / "w.pt")
    before = (tmp_path / "w.pt").read_bytes()
    result = cli("compile", source, "--to", "onnx", "--weights", tmp_path / "w.pt", "-o", tmp_path / "w.pt")
    assert result.exit_code == 1
    assert (
        result.stderr.splitlines()[0]
        == f"error: refusing to write {tmp_path / 'w.pt'}: it would overwrite the checkpoint"
    )
    assert (tmp_path / "w.pt").read_bytes() == before


def test_onnx_without_weights_says_they_are_random_and_a_seed_repeats_them(cli, tmp_path):
    source = network(tmp_path, "conv3x3(4), relu, gap, fc(2)")
    runs = [(seed, tmp_path / f"{index}.onnx") for index, seed in enumerate(["7", "7", "8"])]
    for seed, path in runs:
        result = cli("compile", source, "--to", "onnx", "-o", path, "--seed", seed)
        assert (result.exit_code, result.stderr) == (
            0,
            f"cnndsl: warning: without --weights, {path} holds random weights drawn from seed {seed}\n",
        )
    first, again, other = (path.read_bytes() for _, path in runs)
    assert first == again
    assert first != other
    result = cli("compile", source, "--to", "onnx", "-o", tmp_path / "fresh.onnx")
    assert result.stderr == (
        f"cnndsl: warning: without --weights, {tmp_path / 'fresh.onnx'} holds random weights, drawn anew on each run "
        "(--seed N draws the same ones every time)\n"
    )


# ---- check refuses what the backends cannot allocate; running out of memory is located --------------------
def test_an_lrn_wider_than_its_channels_need_is_refused_by_check(tmp_path):
    source = network(tmp_path, "conv3x3(16), lrn(size=2^53-1)")
    done = cnndsl("check", source)
    assert (done.returncode, done.stderr.splitlines()[:4]) == (
        1,
        [
            f"{source}:3:18: error: `lrn` of size 9,007,199,254,740,991 is wider than its 16 channels need: "
            "from size 31 the window reaches every channel from every channel",
            "        conv3x3(16), lrn(size=2^53-1)",
            "                     ^",
            "hint: use an odd size of at most 31 (the papers use 5); a wider window only divides alpha",
        ],
    )


@pytest.mark.parametrize(
    "layer, count",
    [
        ("rtdetrdecoder(3, @small, hidden=16, queries=10, points=2, heads=2, layers=10^8, ffn=32)", "layers"),
        ("realnvp(10^8, 4)", "couplings"),
    ],
)
def test_a_kind_repeating_more_sub_layers_than_a_thousand_is_refused_at_once(tmp_path, layer, count):
    """Each decoder layer or coupling is tensors to declare: 10^8 of them listed took minutes, not a located error."""
    lines = ("small: maxpool, conv1x1(4)", layer) if count == "layers" else ("gap, fc(2)", layer)
    source = network(tmp_path, *lines)
    done = cnndsl("check", source)
    assert (done.returncode, done.stderr.splitlines()[0], done.stderr.splitlines()[3]) == (
        1,
        f"{source}:4:5: error: {count} must be at most 1,000, got 100,000,000",
        "hint: a published network repeats a few of them; write more as layers of their own",
    )


def test_onnx_averaging_matrices_past_the_memory_limit_are_refused_before_they_are_made(tmp_path):
    # two 11999×12000 float32 matrices (1.1 GiB), against half of the process's 1 GiB
    source = network(tmp_path, "adaptiveavgpool((11999, 11999))", input="3x12000x12000")
    done = cnndsl("compile", source, "--to", "onnx", "-o", tmp_path / "t.onnx")
    assert (done.returncode, done.stderr.splitlines()[0]) == (
        1,
        f"{source}:3:5: error: `t` makes ONNX tensors of 1.1 GiB, more than half of this machine's memory holds "
        "(0.5 GiB)",
    )


def test_an_onnx_tensor_that_runs_out_of_memory_is_a_located_error_naming_it(tmp_path):
    # one 9999×10000 matrix (381 MiB) passes the estimate, but numpy's temporaries and the bytes' copy do not fit
    source = network(tmp_path, "adaptiveavgpool((9999, 8))", input="3x10000x8")
    done = cnndsl("compile", source, "--to", "onnx", "-o", tmp_path / "t.onnx")
    assert (done.returncode, done.stderr.splitlines()[0]) == (
        1,
        f"{source}:3:5: error: not enough memory to make the ONNX tensor `adaptiveavgpool/rows` "
        "(9999×10000 float32, 381.4 MiB)",
    )
    assert not (tmp_path / "t.onnx").exists()


def test_torch_weights_past_the_memory_limit_are_refused_at_the_largest_layer(tmp_path):
    source = network(tmp_path, "conv3x3(16384), conv3x3(8192)")
    done = cnndsl("compile", source, "--to", "pt2", "-o", tmp_path / "t.pt2")
    assert (done.returncode, done.stderr.splitlines()[0]) == (
        1,
        f"{source}:3:21: error: `t` has 1,208,426,496 parameters (4.5 GiB as float32), more than half of this "
        "machine's memory holds (0.5 GiB)",
    )


def test_torchs_allocator_running_out_is_a_located_error_naming_the_layer(tmp_path, monkeypatch):
    import cnndsl as api
    from cnndsl.core.errors import LimitProblem
    from cnndsl.ops import REGISTRY

    def refuse(self, attrs, inputs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(type(REGISTRY["conv"]), "torch_module", refuse)
    with pytest.raises(LimitProblem) as caught:
        api.load(network(tmp_path, "conv3x3(64)")).to_torch()
    assert (caught.value.message, str(caught.value.pos)) == (
        "not enough memory to build layer `conv` with 1,792 parameters (7 KiB as float32)",
        f"{tmp_path / 't.cnn'}:3:5",
    )


def test_predict_past_the_memory_limit_is_a_located_error_at_the_largest_output(tmp_path):
    """An upsampling by 1,000 makes outputs of 1 GB (4×8000×8000) and 2.56 GB (10×8000×8000) from an 8×8 image,
    past the process's 1 GiB: torch's allocator refuses, and predict names the largest."""
    import safetensors.torch
    from PIL import Image

    import cnndsl as api

    source = network(tmp_path, "conv1x1(4), upsample(scale=1000), conv1x1(10), globalavgpool, flatten")
    state = api.load(source).to_torch(seed=0).state_dict()
    safetensors.torch.save_file(state, str(tmp_path / "w.safetensors"))
    Image.new("RGB", (8, 8), (10, 200, 30)).save(tmp_path / "image.png")
    done = cnndsl("predict", source, tmp_path / "image.png", "--weights", tmp_path / "w.safetensors")
    assert (done.returncode, done.stderr.splitlines()) == (
        1,
        [
            f"{source}:3:39: error: not enough memory to run `t` on an image: layer `conv2` alone outputs "
            "10×8000×8000 (2.4 GiB as float32 an image), every layer 3.3 GiB",
            "        conv1x1(4), upsample(scale=1000), conv1x1(10), globalavgpool, flatten",
            "                                          ^",
            "hint: use a smaller --input, or give cnndsl more memory",
        ],
    )


def test_training_past_the_memory_limit_is_a_located_error_at_the_largest_output(tmp_path):
    """Two 8×8 images a batch, upsampled by 1,000: 4×8000×8000 floats are 1 GB an image, past the 1 GiB."""
    from PIL import Image

    for split, label, index in itertools.product(("train", "val"), ("a", "b"), range(2)):
        folder = tmp_path / "data" / split / label
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (50 * index, 100, 30)).save(folder / f"{index}.png")
    source = network(tmp_path, "conv1x1(4), upsample(scale=1000), conv1x1(2), globalavgpool, flatten")
    done, _ = cpu_of("train", source, tmp_path / "data", "--epochs", "1", "--batch", "2", "--out", tmp_path / "run")
    assert (done.returncode, done.stderr.splitlines()[-4:]) == (
        1,
        [
            f"{source}:3:17: error: not enough memory to train `t` on batches of 2: layer `upsample` alone outputs "
            "4×8000×8000 (976.6 MiB as float32 an image), every layer 1.4 GiB",
            "        conv1x1(4), upsample(scale=1000), conv1x1(2), globalavgpool, flatten",
            "                    ^",
            "hint: use a smaller --input, or give cnndsl more memory",
        ],
    )


# ---- a file of 150 bytes at the node limit: the worst shapes measured (docs/errors.md, "Time and memory") ----
# 1,666 four-way branches joined by concat, then three layers: 1 + 1,666 × 6 + 3 = 10,000 nodes, the default
# limit. Of the shapes measured (chains, nested repetitions, block calls, branches, dense blocks) this one
# took longest to summarise, to write as DOT and to export to ONNX.
WIDEST = "(branch { conv1x1(1) | conv1x1(1) | conv1x1(1) | conv1x1(1) }, relu) x 1666"


@pytest.mark.parametrize(
    "command",
    [("summary", "--format", "json"), ("draw", "-o", "{out}.dot"), ("compile", "--to", "onnx", "-o", "{out}.onnx")],
    ids=["summary", "dot", "onnx"],
)
def test_a_network_at_the_node_limit_answers_within_the_bounds(tmp_path, command):
    source = network(tmp_path, WIDEST, "conv1x1(1), relu, relu", input="4x8x8")
    done = cnndsl(*(part.format(out=tmp_path / "t") for part in command), source)
    assert done.returncode == 0, done.stderr
    if command[0] == "summary":
        assert len(json.loads(done.stdout)["layers"]) == 10_000 - 1  # the input is not a layer


def test_one_node_past_the_limit_is_a_located_error_saying_how_to_raise_it(tmp_path):
    source = network(tmp_path, WIDEST, "conv1x1(1), relu, relu, relu", input="4x8x8")
    done = cnndsl("check", source)
    assert done.returncode == 1
    assert done.stderr.splitlines()[:4] == [
        f"{source}:4:29: error: the network expands to more than 10,000 nodes",
        "        conv1x1(1), relu, relu, relu",
        "                                ^",
        "hint: check the repetition counts, or raise the limit with --max-nodes",
    ]


def test_python_source_has_a_lower_default_node_bound_and_answers_within_the_bounds_at_it(tmp_path):
    """--to python builds and checks a class per layer (docs/errors.md, "Every limit"): by default it takes at most
    1,000 nodes, and at 1,000 of the widest shape it answers within the bounds; --max-nodes raises it."""
    wide = WIDEST.replace("x 1666", "x 166")  # 1 + 166 × 6 + 3 = 1,000 nodes
    source = network(tmp_path, wide, "conv1x1(1), relu, relu", input="4x8x8")
    done = cnndsl("compile", "--to", "python", "-o", tmp_path / "t.py", source)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "t.py").read_text().count("nn.Conv2d(") >= 166 * 4
    over = network(tmp_path, wide, "conv1x1(1), relu, relu, relu", input="4x8x8")
    refused = cnndsl("compile", "--to", "python", "-o", tmp_path / "u.py", over)
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[0] == f"{over}:4:29: error: the network expands to more than 1,000 nodes"
    assert not (tmp_path / "u.py").exists()
