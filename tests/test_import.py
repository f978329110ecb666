"""`cnndsl import`: Darknet cfgs become .cnn files with darknet's own parameter counts, MACs and shapes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import cnndsl
from cnndsl.core.errors import CnnDslError

DARKNET = Path(__file__).parent / "data" / "importers" / "darknet"

# From /work/shared/corpus/importers/README.md: darknet's own parse_network_cfg, summed per layer
# (params: conv weights + biases/BN beta + BN gamma; darknet prints BFLOPs = 2 x MACs to three decimals).
CORPUS = [
    ("pjreddie__darknet19.cfg", 20_842_376, 7.291, {"output": (1000, 1, 1)}),
    ("pjreddie__resnet18.cfg", 11_515_688, 4.688, {"output": (1000, 1, 1)}),
    ("AlexeyAB__yolov4-tiny.cfg", 6_056_606, 6.908, {"l29": (255, 13, 13), "l36": (255, 26, 26)}),
]


def imported(tmp_path: Path, name: str) -> Path:
    target = tmp_path / (Path(name).stem + ".cnn")
    target.write_text(cnndsl.import_file(DARKNET / name))
    return target


@pytest.mark.parametrize(("name", "params", "bflops", "outputs"), CORPUS, ids=[row[0] for row in CORPUS])
def test_darknet_corpus_matches_darknets_own_figures(tmp_path, name, params, bflops, outputs):
    net = cnndsl.load(str(imported(tmp_path, name)))
    assert net.params == params
    assert round(2 * net.macs / 1e9, 3) == bflops
    assert {tap: net.graph.nodes[node]["shape"] for tap, node in net.outputs} == outputs


def test_every_layer_shape_follows_darknets_rules(tmp_path):
    """Darknet19 at 256: five 2x2 maxpools halve 256 to 8; yolov4-tiny's route groups halve the channels."""
    net = cnndsl.load(str(imported(tmp_path, "pjreddie__darknet19.cfg")))
    shapes = [data["shape"] for _, data in net.graph.nodes(data=True) if data["op"] == "maxpool"]
    assert shapes == [(32, 128, 128), (64, 64, 64), (128, 32, 32), (256, 16, 16), (512, 8, 8)]
    tiny = cnndsl.load(str(imported(tmp_path, "AlexeyAB__yolov4-tiny.cfg")))
    chunks = [data["shape"] for _, data in tiny.graph.nodes(data=True) if data["op"] == "chunk"]
    assert chunks == [(32, 104, 104), (64, 52, 52), (128, 26, 26)]


def test_imported_files_are_short_and_pass_strict_check(tmp_path):
    lengths = {}
    for name, *_ in CORPUS:
        target = imported(tmp_path, name)
        lengths[name] = len(target.read_text().splitlines())
        result = subprocess.run(
            [sys.executable, "-m", "cnndsl", "check", "--strict", str(target)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr
    assert lengths == {"pjreddie__darknet19.cfg": 15, "pjreddie__resnet18.cfg": 22, "AlexeyAB__yolov4-tiny.cfg": 24}


def test_resnet18_folds_its_shortcuts_into_residual_blocks(tmp_path):
    text = imported(tmp_path, "pjreddie__resnet18.cfg").read_text()
    assert "l7: (residual { conv_bn_leaky(64), conv_bn(64) }, leakyrelu(0.1)) x2  # cfg lines 45-84" in text
    assert "@l7, maxpool(k=1, s=2), branch { identity | mul(0) }, add(@l9), leakyrelu(0.1)  # cfg lines 103-105" in text


def refusal(tmp_path: Path, cfg: str) -> str:
    source = tmp_path / "net.cfg"
    source.write_text(cfg)
    with pytest.raises(CnnDslError) as caught:
        cnndsl.import_file(source)
    return caught.value.render().splitlines()[0].replace(str(tmp_path) + "/", "")


NET = "[net]\nwidth=32\nheight=32\nchannels=3\n"


def test_unknown_section_is_refused_with_its_line(tmp_path):
    assert refusal(tmp_path, NET + "[telepathy]\nsize=3\n") == (
        "net.cfg:5:1: error: [telepathy] is a layer type cnndsl does not import"
    )


def test_layer_cnndsl_cannot_express_is_refused(tmp_path):
    assert refusal(tmp_path, NET + "[convolutional]\nfilters=4\n[sam]\nfrom=-1\n") == (
        "net.cfg:7:1: error: [sam] is the spatial attention multiply of AlexeyAB's builds, which cnndsl cannot express exactly"
    )


def test_unknown_key_is_refused_with_its_line(tmp_path):
    assert refusal(tmp_path, NET + "[convolutional]\nfilters=4\nsize=3\nfliters=8\n") == (
        "net.cfg:8:1: error: [convolutional] has an unknown key `fliters`: its meaning would be lost"
    )


def test_uneven_maxpool_padding_is_refused_not_approximated(tmp_path):
    """yolov3-tiny's size=2 stride=1 maxpool pads one pixel on the right only: cnndsl's maxpool pads evenly."""
    with pytest.raises(CnnDslError) as caught:
        cnndsl.import_file(DARKNET / "pjreddie__yolov3-tiny.cfg")
    assert str(caught.value.pos).endswith("pjreddie__yolov3-tiny.cfg:93:1")
    assert caught.value.message == "[maxpool] size=2 stride=1 pads 1 unevenly, which cnndsl's maxpool cannot express"


def test_cli_writes_the_file(tmp_path):
    target = tmp_path / "d19.cnn"
    result = subprocess.run(
        [sys.executable, "-m", "cnndsl", "import", str(DARKNET / "pjreddie__darknet19.cfg"), "-o", str(target)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert cnndsl.load(str(target)).params == 20_842_376
