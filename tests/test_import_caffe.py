"""`cnndsl import` of Caffe prototxts: the corpus's own figures, Caffe's shape rules, a hand-written
caffemodel run against tests/caffe_reference.py (a NumPy Caffe), and the refusals with file and line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import cnndsl
from cnndsl.graph import ir

CAFFE = Path(__file__).parent / "data" / "importers" / "caffe"

# /work/shared/corpus/importers/README.md: params (learnable) and MACs (conv + fc) per image.
CORPUS = [
    ("BVLC__bvlc_alexnet__deploy.prototxt", 60_965_224, 724_406_816, 10),
    ("BVLC__examples_mnist__lenet.prototxt", 431_080, 2_293_000, 8),
    ("KaimingHe__ResNet-50-deploy.prototxt", 25_557_096, 3_857_973_248, 29),
]


def imported(tmp_path: Path, source: Path) -> Path:
    target = tmp_path / (source.stem + ".cnn")
    target.write_text(cnndsl.import_file(source))
    return target


@pytest.mark.parametrize(("name", "params", "macs", "lines"), CORPUS, ids=[row[0] for row in CORPUS])
def test_caffe_corpus_matches_the_readmes_figures(tmp_path, name, params, macs, lines):
    target = imported(tmp_path, CAFFE / name)
    net = cnndsl.load(str(target))
    assert (net.params, net.macs) == (params, macs)
    assert len(target.read_text().splitlines()) == lines
    result = subprocess.run(
        [sys.executable, "-m", "cnndsl", "check", "--strict", str(target)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def shapes(net, *ops) -> list:
    return [layer.shape for _, layer in ir.layers(net.graph) if layer.op in ops]


def test_every_layer_shape_follows_caffes_rules(tmp_path):
    """AlexNet's published sizes (55, 27, 13, 6), LeNet's (24, 12, 8, 4) and ResNet-50's pool1 of 56 at 224,
    which only Caffe's rounding up gives: (112 - 3) / 2 + 1 rounded down is 55."""
    alexnet = cnndsl.load(str(imported(tmp_path, CAFFE / CORPUS[0][0])))
    assert shapes(alexnet, "conv", "maxpool", "fc") == [
        (96, 55, 55), (96, 27, 27), (256, 27, 27), (256, 13, 13), (384, 13, 13), (384, 13, 13), (256, 13, 13),
        (256, 6, 6), (4096,), (4096,), (1000,),
    ]  # fmt: skip
    lenet = cnndsl.load(str(imported(tmp_path, CAFFE / CORPUS[1][0])))
    assert shapes(lenet, "conv", "maxpool", "fc") == [(20, 24, 24), (20, 12, 12), (50, 8, 8), (50, 4, 4), (500,), (10,)]
    resnet = cnndsl.load(str(imported(tmp_path, CAFFE / CORPUS[2][0])))
    assert shapes(resnet, "maxpool") == [(64, 56, 56)]
    adds = shapes(resnet, "add")
    assert adds == [(256, 56, 56)] * 3 + [(512, 28, 28)] * 4 + [(1024, 14, 14)] * 6 + [(2048, 7, 7)] * 3
    assert shapes(resnet, "gap", "fc") == [(2048, 1, 1), (1000,)]


RESNET_50 = """\
    stage res2 { bottleneck_proj(64), bottleneck(64) x (res2 - 1) }  # res2a_branch1 … res2c_relu (lines 60-485)
    stage res3 { bottleneck_proj(128, s=2), bottleneck(128) x (res3 - 1) }  # res3a_branch1 … res3d_relu (lines 487-1043)
"""


def test_resnet_50_is_one_family_with_its_stage_depths(tmp_path):
    text = imported(tmp_path, CAFFE / CORPUS[2][0]).read_text()
    assert "network resnet_50(res2=3, res3=4, res4=6, res5=3) {\n" in text
    assert RESNET_50 in text
    assert "    shortcut { conv(4 * c, k=1, s=s, bias=false), bn }\n" in text
