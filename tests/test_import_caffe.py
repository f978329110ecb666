"""`cnndsl import` of Caffe prototxts: the corpus's own figures, Caffe's shape rules, a hand-written
caffemodel run against tests/caffe_reference.py (a NumPy Caffe), and the refusals with file and line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import caffe_reference as cr
import numpy as np
import pytest

import cnndsl
from cnndsl.core.errors import CnnDslError
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
    assert "    (fc(4096), relu, dropout) x2, fc(1000), softmax  # fc6 … prob (lines 191-277)\n" in (
        imported(tmp_path, CAFFE / CORPUS[0][0]).read_text()
    )  # each conv or fc with the layers after it, so that runs repeat at layer boundaries
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


# --- numerics: a caffemodel in Caffe's own wire layout, outputs against tests/caffe_reference.py -------


def conv_layer(name, bottom, top, outputs, options, bias=True):
    bias_term = "" if bias else " bias_term: false"
    return (
        f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{top}"\n'
        f"  convolution_param {{ num_output: {outputs} {options}{bias_term} }} }}\n"
    )


def bn_layers(name, blob):
    return (
        f'layer {{ name: "bn_{name}" type: "BatchNorm" bottom: "{blob}" top: "{blob}"\n'
        "  batch_norm_param { use_global_stats: true } }\n"
        f'layer {{ name: "scale_{name}" type: "Scale" bottom: "{blob}" top: "{blob}" scale_param {{ bias_term: true }} }}\n'
    )


def simple_layer(name, kind, bottoms, top, param=""):
    bottom = " ".join(f'bottom: "{b}"' for b in bottoms)
    return f'layer {{ name: "{name}" type: "{kind}" {bottom} top: "{top}" {param}}}\n'


SMALL = (
    'name: "Small"\ninput: "data"\ninput_shape { dim: 1 dim: 3 dim: 12 dim: 12 }\n'
    + conv_layer("conv1", "data", "conv1", 8, "kernel_size: 3 pad: 1")
    + bn_layers("conv1", "conv1")
    + simple_layer("relu1", "ReLU", ["conv1"], "conv1", "relu_param { negative_slope: 0.1 } ")
    + simple_layer("pool1", "Pooling", ["conv1"], "pool1", "pooling_param { pool: MAX kernel_size: 3 stride: 2 } ")
    + conv_layer("mix_1x1", "pool1", "mix_1x1", 4, "kernel_size: 1")
    + conv_layer("mix_3x1", "pool1", "mix_3x1", 4, "kernel_h: 3 kernel_w: 1 pad_h: 1 pad_w: 0")
    + simple_layer("mix_relu", "ReLU", ["mix_3x1"], "mix_3x1")
    + conv_layer("mix_dil", "pool1", "mix_dil", 8, "kernel_size: 3 pad: 2 dilation: 2 group: 2", bias=False)
    + simple_layer("mix", "Concat", ["mix_1x1", "mix_3x1", "mix_dil"], "mix")
    + simple_layer("norm1", "LRN", ["mix"], "norm1", "lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 } ")
    + conv_layer("res_a1", "norm1", "res_a1", 16, "kernel_size: 3 pad: 1", bias=False)
    + bn_layers("res_a1", "res_a1")
    + simple_layer("res_a1_relu", "ReLU", ["res_a1"], "res_a1")
    + conv_layer("res_a2", "res_a1", "res_a2", 16, "kernel_size: 3 pad: 1", bias=False)
    + bn_layers("res_a2", "res_a2")
    + simple_layer("res_a", "Eltwise", ["norm1", "res_a2"], "res_a")
    + simple_layer("res_a_relu", "ReLU", ["res_a"], "res_a")
    + conv_layer("gate", "res_a", "gate", 16, "kernel_size: 1")
    + simple_layer("gate_sigmoid", "Sigmoid", ["gate"], "gate")
    + simple_layer("gated", "Eltwise", ["res_a", "gate"], "gated", "eltwise_param { operation: PROD } ")
    + simple_layer(
        "pool2", "Pooling", ["gated"], "pool2", "pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } "
    )
    + conv_layer("res_b_branch1", "pool2", "res_b_branch1", 24, "kernel_size: 1 stride: 2", bias=False)
    + bn_layers("res_b_branch1", "res_b_branch1")
    + conv_layer("res_b_branch2", "pool2", "res_b_branch2", 24, "kernel_size: 3 stride: 2 pad: 1", bias=False)
    + bn_layers("res_b_branch2", "res_b_branch2")
    + simple_layer("res_b_branch2_relu", "ReLU", ["res_b_branch2"], "res_b_branch2")
    + conv_layer("res_b_branch2b", "res_b_branch2", "res_b_branch2b", 24, "kernel_size: 3 pad: 1", bias=False)
    + bn_layers("res_b_branch2b", "res_b_branch2b")
    + simple_layer("res_b", "Eltwise", ["res_b_branch1", "res_b_branch2b"], "res_b")
    + simple_layer("res_b_relu", "ReLU", ["res_b"], "res_b")
    + simple_layer("pool3", "Pooling", ["res_b"], "pool3", "pooling_param { pool: MAX global_pooling: true } ")
    + simple_layer("drop", "Dropout", ["pool3"], "pool3", "dropout_param { dropout_ratio: 0.3 } ")
    + simple_layer("fc1", "InnerProduct", ["pool3"], "fc1", "inner_product_param { num_output: 10 } ")
    + simple_layer("fc1_relu", "ReLU", ["fc1"], "fc1")
    + simple_layer("fc2", "InnerProduct", ["fc1"], "fc2", "inner_product_param { num_output: 5 } ")
    + simple_layer("prob", "Softmax", ["fc2"], "prob")
)

CONVS = {"conv1": (8, 3, 3, 3, True), "mix_1x1": (4, 8, 1, 1, True), "mix_3x1": (4, 8, 3, 1, True),
         "mix_dil": (8, 4, 3, 3, False), "res_a1": (16, 16, 3, 3, False), "res_a2": (16, 16, 3, 3, False),
         "gate": (16, 16, 1, 1, True), "res_b_branch1": (24, 16, 1, 1, False), "res_b_branch2": (24, 16, 3, 3, False),
         "res_b_branch2b": (24, 24, 3, 3, False)}  # fmt: skip
NORMED = {"conv1": 8, "res_a1": 16, "res_a2": 16, "res_b_branch1": 24, "res_b_branch2": 24, "res_b_branch2b": 24}


def random_blobs(rng) -> dict[str, list[np.ndarray]]:
    """Every layer's blobs as Caffe stores them, BN's statistics scaled by a moving-average factor of 0.8-1.6."""
    blobs = {}
    for name, (outputs, inputs, kh, kw, bias) in CONVS.items():
        blobs[name] = [rng.normal(0, 1 / np.sqrt(inputs * kh * kw), (outputs, inputs, kh, kw))]
        blobs[name] += [rng.normal(0, 0.5, outputs)] * bias
    for name, channels in NORMED.items():
        factor = rng.uniform(0.8, 1.6, 1)
        mean, variance = rng.normal(0, 0.3, channels), rng.uniform(0.3, 2, channels)
        blobs[f"bn_{name}"] = [mean * factor, variance * factor, factor]
        blobs[f"scale_{name}"] = [rng.uniform(0.5, 1.5, channels), rng.normal(0, 0.3, channels)]
    blobs["fc1"] = [rng.normal(0, 0.3, (10, 24)), rng.normal(0, 0.3, 10)]
    blobs["fc2"] = [rng.normal(0, 0.5, (5, 10)), rng.normal(0, 0.3, 5)]
    return {
        name: [np.asarray(a, dtype=np.float32).astype(np.float64) for a in arrays] for name, arrays in blobs.items()
    }


def reference(image, b):
    """The small net by the NumPy Caffe, layer for layer."""

    def conv(name, x, **options):
        weight, *bias = b[name]
        return cr.conv(x, weight, bias[0] if bias else None, **options)

    def norm(name, x):
        return cr.scale(cr.batch_norm(x, *b[f"bn_{name}"]), *b[f"scale_{name}"])

    x = cr.relu(norm("conv1", conv("conv1", image, pad=(1, 1))), 0.1)
    pool1 = cr.pool(x, "MAX", 3, 2)
    mix = np.concatenate([
        conv("mix_1x1", pool1), cr.relu(conv("mix_3x1", pool1, pad=(1, 0))),
        conv("mix_dil", pool1, pad=(2, 2), dilation=2, group=2),
    ])  # fmt: skip
    norm1 = cr.lrn(mix, 3, 0.5, 0.75, 2)
    body = norm("res_a2", conv("res_a2", cr.relu(norm("res_a1", conv("res_a1", norm1, pad=(1, 1)))), pad=(1, 1)))
    res_a = cr.relu(norm1 + body)
    gated = res_a * (1 / (1 + np.exp(-conv("gate", res_a))))
    pool2 = cr.pool(gated, "AVE", 3, 2, 1)
    branch1 = norm("res_b_branch1", conv("res_b_branch1", pool2, stride=(2, 2)))
    branch2 = cr.relu(norm("res_b_branch2", conv("res_b_branch2", pool2, stride=(2, 2), pad=(1, 1))))
    res_b = cr.relu(branch1 + norm("res_b_branch2b", conv("res_b_branch2b", branch2, pad=(1, 1))))
    pool3 = res_b.max(axis=(1, 2))
    fc1 = cr.relu(cr.inner_product(pool3, *b["fc1"]))
    return cr.softmax(cr.inner_product(fc1, *b["fc2"])), pool1, pool2


def test_caffemodel_weights_give_caffes_outputs(tmp_path):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    blobs = random_blobs(rng)
    (tmp_path / "small.prototxt").write_text(SMALL)
    (tmp_path / "small.caffemodel").write_bytes(cr.caffemodel(blobs))
    text = cnndsl.import_file(
        tmp_path / "small.prototxt", weights=tmp_path / "small.caffemodel", weights_out=tmp_path / "small.safetensors"
    )
    net = cnndsl.parse(text)
    image = rng.normal(0, 1, (3, 12, 12)).astype(np.float32)
    expected, pool1, pool2 = reference(image.astype(np.float64), blobs)
    assert pool1.shape == (8, 6, 6) and pool2.shape == (16, 4, 4)  # both rounded up: 5 and 3 rounding down
    assert shapes(net, "maxpool", "avgpool") == [(8, 6, 6), (16, 4, 4), (24, 1, 1)]
    model = net.to_torch(weights=str(tmp_path / "small.safetensors")).eval()
    with torch.no_grad():
        got = model(torch.from_numpy(image)[None]).numpy()[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert expected.max() - expected.min() > 0.1  # the class scores carry signal


def refusal(tmp_path: Path, prototxt: str) -> str:
    source = tmp_path / "net.prototxt"
    source.write_text(prototxt)
    with pytest.raises(CnnDslError) as caught:
        cnndsl.import_file(source)
    return caught.value.render().splitlines()[0].replace(str(tmp_path) + "/", "")


HEAD = 'name: "n"\ninput: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n'


def test_a_python_layer_is_refused_at_its_type(tmp_path):
    layer = 'layer {\n  name: "proposal"\n  type: "Python"\n  bottom: "data"\n  top: "rois"\n}\n'
    assert refusal(tmp_path, HEAD + layer) == (
        "net.prototxt:9:1: error: layer `proposal` (Python): runs Python code that the prototxt does not hold:"
        " cnndsl cannot express it exactly"
    )


def test_an_unknown_layer_type_is_refused_at_its_type(tmp_path):
    layer = 'layer {\n  name: "x"\n  type: "Telepathy"\n  bottom: "data"\n  top: "x"\n}\n'
    assert refusal(tmp_path, HEAD + layer) == (
        "net.prototxt:9:1: error: layer `x` (Telepathy): `Telepathy` is a layer type cnndsl does not import"
    )


def test_a_key_caffe_proto_lacks_is_refused_with_line_and_column(tmp_path):
    layer = 'layer {\n  name: "c"\n  type: "Convolution"\n  bottom: "data"\n  top: "c"\n  convolution_param { fliters: 4 }\n}\n'
    assert refusal(tmp_path, HEAD + layer) == (
        'net.prototxt:12:23: error: not a valid Caffe prototxt: Message type "caffe.ConvolutionParameter" has no'
        ' field named "fliters".'
    )


def test_a_key_the_import_does_not_follow_is_refused_at_its_line(tmp_path):
    layer = 'layer {\n  name: "c"\n  type: "Convolution"\n  bottom: "data"\n  top: "c"\n  convolution_param {\n    num_output: 4\n    kernel_size: 3\n    axis: 2\n  }\n}\n'
    assert refusal(tmp_path, HEAD + layer) == (
        "net.prototxt:15:1: error: layer `c` (Convolution): `axis` is not imported: it changes what Caffe computes"
    )


def test_an_invalid_prototxt_is_refused_with_line_and_column(tmp_path):
    assert refusal(tmp_path, HEAD + 'layer {\n  name: "c"\n  type: Convolution\n') == (
        "net.prototxt:9:9: error: not a valid Caffe prototxt: Expected string but found: 'Convolution'"
    )


def test_a_caffemodel_blob_of_the_wrong_size_is_refused(tmp_path):
    blobs = random_blobs(np.random.default_rng(5))
    blobs["res_a2"][0] = blobs["res_a2"][0][:, :, :2]  # 16x16x2x3 where the layer needs 16x16x3x3
    (tmp_path / "small.prototxt").write_text(SMALL)
    (tmp_path / "bad.caffemodel").write_bytes(cr.caffemodel(blobs))
    with pytest.raises(CnnDslError) as caught:
        cnndsl.import_file(
            tmp_path / "small.prototxt", weights=tmp_path / "bad.caffemodel", weights_out=tmp_path / "w.safetensors"
        )
    line = next(n for n, text in enumerate(SMALL.splitlines(), 1) if 'name: "res_a2"' in text)
    assert str(caught.value.pos) == f"{tmp_path / 'small.prototxt'}:{line}:1"
    assert caught.value.message == (
        "bad.caffemodel: blob 0 of layer `res_a2` holds 1536 values, the prototxt's layer needs 2304 (16x16x3x3)"
    )
    del blobs["res_a2"]
    (tmp_path / "short.caffemodel").write_bytes(cr.caffemodel(blobs))
    with pytest.raises(CnnDslError, match="short.caffemodel holds no layer `res_a2`: its weights are missing"):
        cnndsl.import_file(
            tmp_path / "small.prototxt", weights=tmp_path / "short.caffemodel", weights_out=tmp_path / "w.safetensors"
        )
    assert not (tmp_path / "w.safetensors").exists()


def test_cli_refusal_is_a_located_error_and_writes_nothing(tmp_path):
    (tmp_path / "bad.prototxt").write_text(HEAD + 'layer { name: "p" type: "Python" bottom: "data" top: "p" }\n')
    result = subprocess.run(
        [sys.executable, "-m", "cnndsl", "import", "--from", "caffe", "bad.prototxt", "-o", "bad.cnn"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("bad.prototxt:7:1: error: layer `p` (Python)")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "bad.cnn").exists()


KAIMING = {50: ([3, 4, 6, 3], True), 101: ([3, 4, 23, 3], False), 152: ([3, 8, 36, 3], False)}


def kaiming_resnet_figures(depth: int) -> tuple[int, int]:
    """Params and conv + fc MACs of torchvision's ResNet with the stride moved to each stage's first 1x1, as
    Kaiming's Caffe models have it (torchvision strides the 3x3), and conv1 biased where the prototxt has it."""
    import oracles
    import torch

    model = getattr(oracles.torchvision_models(), f"resnet{depth}")()
    for stage in (model.layer2, model.layer3, model.layer4):
        stage[0].conv1.stride, stage[0].conv2.stride = (2, 2), (1, 1)
    macs = []

    def count(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            macs.append(output.numel() * module.in_channels // module.groups * kh * kw)
        elif isinstance(module, torch.nn.Linear):
            macs.append(module.in_features * module.out_features)

    for module in model.modules():
        module.register_forward_hook(count)
    with torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    params = sum(p.numel() for p in model.parameters()) + 64 * KAIMING[depth][1]
    return params, sum(macs)


@pytest.mark.parametrize("depth", [50, 101, 152])
def test_kaimings_resnets_are_one_family_differing_only_in_depths(tmp_path, depth):
    """ResNet-50/101/152 import as the same family text, 29 lines each, but for conv1's bias, the stage depths
    and the comments' line numbers; params and MACs equal torchvision's ResNet with Caffe's stride placement."""
    target = imported(tmp_path, CAFFE / f"KaimingHe__ResNet-{depth}-deploy.prototxt")
    text = target.read_text()
    net = cnndsl.load(str(target))
    assert (net.params, net.macs) == kaiming_resnet_figures(depth)
    assert len(text.splitlines()) == 29  # the readability bound: at most 40
    depths, biased = KAIMING[depth]
    keys = ", ".join(f"res{stage}={n}" for stage, n in zip(range(2, 6), depths, strict=True))
    assert f"network resnet_{depth}({keys}) {{\n" in text
    reference = imported(tmp_path, CAFFE / "KaimingHe__ResNet-50-deploy.prototxt").read_text()

    def skeleton(text: str) -> list[str]:
        return [
            re.sub(r"  # .*|\(\d+ lines\)|resnet_\d+\(.*\)|ResNet-\d+|, bias=false", "", line)
            for line in text.splitlines()
        ]

    assert skeleton(text) == skeleton(reference)
    assert ("conv(64, k=7, s=2), bn" in text) == biased


def test_googlenet_imports_as_one_inception_block_with_the_papers_widths(tmp_path):
    """BVLC/caffe models/bvlc_googlenet/deploy.prototxt (9b89154018): the block's arguments are Table 1 of
    Szegedy et al. 2015 (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj), as are the output sizes."""
    target = imported(tmp_path, CAFFE / "BVLC__bvlc_googlenet__deploy.prototxt")
    text = target.read_text()
    net = cnndsl.load(str(target))
    assert len(text.splitlines()) == 23
    assert text.count("block inception(") == 1
    table_1 = [(64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64), (192, 96, 208, 16, 48, 64),
               (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64), (112, 144, 288, 32, 64, 64),
               (256, 160, 320, 32, 128, 128), (256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)]  # fmt: skip
    assert re.findall(r"inception\((\d+), (\d+), (\d+), (\d+), (\d+), (\d+)\)", text) == [
        tuple(map(str, row)) for row in table_1
    ]
    assert shapes(net, "concat") == [
        (256, 28, 28), (480, 28, 28), (512, 14, 14), (512, 14, 14), (512, 14, 14), (528, 14, 14), (832, 14, 14),
        (832, 7, 7), (1024, 7, 7),
    ]  # fmt: skip
    assert shapes(net, "maxpool")[:2] == [(64, 56, 56), (192, 28, 28)]  # 112 and 56 halved only by rounding up
    assert net.params == 6_998_552  # the figure published for BVLC GoogLeNet (Caffe's own net.params sum)
    check = subprocess.run([sys.executable, "-m", "cnndsl", "check", "--strict", str(target)], capture_output=True)
    assert check.returncode == 0, check.stderr


def test_v1_layers_import_like_the_new_format(tmp_path):
    """CaffeNet's deploy.prototxt as BVLC/caffe had it at a66100181b (2014, V1 `layers` with enum types):
    AlexNet's layers with pooling before normalisation, so AlexNet's params and MACs."""
    target = imported(tmp_path, CAFFE / "BVLC__bvlc_reference_caffenet__deploy_v1.prototxt")
    net = cnndsl.load(str(target))
    assert (net.params, net.macs) == (60_965_224, 724_406_816)
    assert shapes(net, "maxpool", "lrn") == [(96, 27, 27), (96, 27, 27), (256, 13, 13), (256, 13, 13), (256, 6, 6)]
    assert (
        "    conv(96, k=11, s=4, p=0), relu, maxpool(k=3, s=2), lrn(k=1)  # conv1 … norm1 (lines 7-45)\n"
        in target.read_text()
    )


SMALL_V1 = """name: "v1"
input: "data"
input_dim: 1
input_dim: 2
input_dim: 9
input_dim: 9
layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv"
  convolution_param { num_output: 6 kernel_size: 3 stride: 2 } }
layers { name: "relu" type: RELU bottom: "conv" top: "conv" }
layers { name: "pool" type: POOLING bottom: "conv" top: "pool" pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layers { name: "norm" type: LRN bottom: "pool" top: "norm" lrn_param { local_size: 5 alpha: 2 beta: 0.6 } }
layers { name: "fc" type: INNER_PRODUCT bottom: "norm" top: "fc" inner_product_param { num_output: 3 } }
"""


def test_v1_caffemodel_with_legacy_blob_shapes_gives_caffes_outputs(tmp_path):
    """V1 `layers` in the caffemodel too, with blobs shaped by num/channels/height/width (an fc's 1x1xOxI)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    blobs = {
        "conv": [rng.normal(0, 0.4, (6, 2, 3, 3)), rng.normal(0, 0.5, 6)],
        "fc": [rng.normal(0, 0.3, (3, 24)), rng.normal(0, 0.3, 3)],
    }
    blobs = {name: [a.astype(np.float32).astype(np.float64) for a in arrays] for name, arrays in blobs.items()}
    (tmp_path / "v1.prototxt").write_text(SMALL_V1)
    (tmp_path / "v1.caffemodel").write_bytes(cr.caffemodel(blobs, v1=True))
    text = cnndsl.import_file(
        tmp_path / "v1.prototxt", weights=tmp_path / "v1.caffemodel", weights_out=tmp_path / "v1.safetensors"
    )
    assert (
        "    conv(6, k=3, s=2, p=0), relu, avgpool(k=3, s=2, ceil=true), lrn(alpha=2, beta=0.6, k=1)  # conv … norm"
        in text
    )
    image = rng.normal(0, 1, (2, 9, 9)).astype(np.float32)
    x = cr.relu(cr.conv(image.astype(np.float64), *blobs["conv"], stride=(2, 2)))
    x = cr.lrn(cr.pool(x, "AVE", 3, 2), 5, 2.0, 0.6, 1.0)  # 4x4 -> 2x2: rounding down gives 1x1
    expected = cr.inner_product(x, *blobs["fc"])
    model = cnndsl.parse(text).to_torch(weights=str(tmp_path / "v1.safetensors")).eval()
    with torch.no_grad():
        got = model(torch.from_numpy(image)[None]).numpy()[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ('layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param { kernel_size: 2 stride: 0 } }',
         "net.prototxt:7:1: error: layer `p` (Pooling): needs a positive kernel and stride"),
        ('layer { name: "e" type: "Eltwise" top: "e" }', "net.prototxt:7:1: error: layer `e` (Eltwise): needs a bottom and a top"),
        ('layer { name: "r" type: "ReLU" bottom: "x" top: "r" }',
         "net.prototxt:7:1: error: layer `r` (ReLU): reads the blob `x`, which no earlier layer makes"),
        ('layer { name: "m" type: "Eltwise" bottom: "data" bottom: "data" top: "m" eltwise_param { coeff: 1 coeff: -1 } }',
         "net.prototxt:7:1: error: layer `m` (Eltwise): a weighted sum (coeff other than 1) is not imported"),
        ('layer { name: "b" type: "BatchNorm" bottom: "data" top: "data" }',
         "net.prototxt:7:1: error: layer `b` (BatchNorm): is not followed by a Scale on its output: cnndsl's bn always learns γ and β"),
        ('layer { name: "d" type: "Data" top: "data2" }',
         "net.prototxt:7:1: error: layer `d` (Data): reads a database: its shape is not in the prototxt"),
        ('layer { name: "n" type: "LRN" bottom: "data" top: "n" lrn_param { norm_region: WITHIN_CHANNEL } }',
         "net.prototxt:7:1: error: layer `n` (LRN): WITHIN_CHANNEL normalisation is not imported: cnndsl's lrn runs across channels"),
    ],
    ids=["zero stride", "no bottom", "unknown blob", "weighted sum", "bn without scale", "data layer", "lrn within"],
)  # fmt: skip
def test_layers_caffe_would_compute_otherwise_are_refused(tmp_path, layer, message):
    assert refusal(tmp_path, HEAD + layer + "\n") == message


def test_a_prototxt_with_only_an_input_is_refused(tmp_path):
    assert refusal(tmp_path, HEAD) == "net.prototxt:1:1: error: the prototxt declares no layer after its input"


def test_import_is_deterministic_and_the_small_net_passes_strict_check(tmp_path):
    (tmp_path / "small.prototxt").write_text(SMALL)
    first = cnndsl.import_file(tmp_path / "small.prototxt")
    assert first == cnndsl.import_file(tmp_path / "small.prototxt")
    target = imported(tmp_path, tmp_path / "small.prototxt")
    assert "    lrn(size=3, alpha=0.5), basic, gated, avgpool(k=3, s=2, p=1, ceil=true), basic_proj" in first
    assert "      | conv(8, k=3, d=2, g=2, bias=false)\n" in first  # pad 2 = `same` for dilation 2
    result = subprocess.run([sys.executable, "-m", "cnndsl", "check", "--strict", str(target)], capture_output=True)
    assert result.returncode == 0, result.stderr


UPSAMPLE = HEAD + (
    'layer { name: "up" type: "Deconvolution" bottom: "data" top: "up"\n'
    "  convolution_param { num_output: 4 kernel_size: 4 stride: 2 pad: 1 group: 1 } }\n"
    'layer { name: "act" type: "PReLU" bottom: "up" top: "up" }\n'
    'layer { name: "down" type: "Deconvolution" bottom: "up" top: "down"\n'
    "  convolution_param { num_output: 2 kernel_size: 3 stride: 1 pad: 1 group: 2 bias_term: false } }\n"
    'layer { name: "act2" type: "PReLU" bottom: "down" top: "down" prelu_param { channel_shared: true } }\n'
)


def test_deconvolution_and_prelu_weights_give_caffes_outputs(tmp_path):
    """Deconvolution's blobs are (in, out/group, kh, kw); 8 -> (8 - 1)·2 - 2 + 4 = 16; PReLU per channel or shared."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    blobs = {
        "up": [rng.normal(0, 0.4, (3, 4, 4, 4)), rng.normal(0, 0.3, 4)],
        "act": [rng.uniform(0.05, 0.5, 4)],
        "down": [rng.normal(0, 0.4, (4, 1, 3, 3))],
        "act2": [rng.uniform(0.05, 0.5, 1)],
    }
    blobs = {name: [a.astype(np.float32).astype(np.float64) for a in arrays] for name, arrays in blobs.items()}
    (tmp_path / "up.prototxt").write_text(UPSAMPLE)
    (tmp_path / "up.caffemodel").write_bytes(cr.caffemodel(blobs))
    text = cnndsl.import_file(
        tmp_path / "up.prototxt", weights=tmp_path / "up.caffemodel", weights_out=tmp_path / "up.safetensors"
    )
    assert "    deconv(4, k=4, s=2, p=1), prelu(per_channel=true)  # up … act (lines 7-9)\n" in text
    assert "    deconv(2, k=3, s=1, p=1, g=2, bias=false), prelu  # down … act2 (lines 10-12)\n" in text
    net = cnndsl.parse(text)
    assert net.params == 3 * 4 * 16 + 4 + 4 + 4 * 9 + 1
    image = rng.normal(0, 1, (3, 8, 8)).astype(np.float32)
    x = cr.prelu(cr.deconv(image.astype(np.float64), *blobs["up"], stride=2, pad=1), blobs["act"][0])
    expected = cr.prelu(cr.deconv(x, blobs["down"][0], None, stride=1, pad=1, group=2), blobs["act2"][0])
    assert expected.shape == (2, 16, 16)
    model = net.to_torch(weights=str(tmp_path / "up.safetensors")).eval()
    with torch.no_grad():
        got = model(torch.from_numpy(image)[None]).numpy()[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def torchvision_figures(name: str, size: int) -> tuple[int, int]:
    """Params and conv + fc MACs of a torchvision model at size x size, counted by forward hooks."""
    import oracles
    import torch

    model = getattr(oracles.torchvision_models(), name)()
    macs = []

    def count(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            macs.append(output.numel() * module.in_channels // module.groups * kh * kw)
        elif isinstance(module, torch.nn.Linear):
            macs.append(module.in_features * module.out_features)

    for module in model.modules():
        module.register_forward_hook(count)
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    return sum(p.numel() for p in model.parameters()), sum(macs)


def test_squeezenets_import_as_fire_blocks_with_torchvisions_counts(tmp_path):
    """forresti/SqueezeNet 51147dc068 (BSD): the fire module's squeeze joins its expands in one block named
    after the Caffe units; v1.1 has torchvision's params and MACs at 227, v1.0 its params (Caffe's conv10
    pads a 1x1 by 1, so 1000x15x15, where torchvision's does not)."""
    v11 = imported(tmp_path, CAFFE / "forresti__SqueezeNet_v1.1__deploy.prototxt")
    net = cnndsl.load(str(v11))
    assert (net.params, net.macs) == torchvision_figures("squeezenet1_1", 227)
    text = v11.read_text()
    assert "block fire(c) {\n    conv(c, k=1), relu\n    branch {\n        conv(4 * c, k=1), relu\n" in text
    assert (
        "    maxpool(k=3, s=2, ceil=true), fire(32) x2, maxpool(k=3, s=2, ceil=true), fire(48) x2"
        "  # pool3 … fire7/concat (lines 155-400)\n" in text
    )
    assert len(text.splitlines()) == 17
    v10 = cnndsl.load(str(imported(tmp_path, CAFFE / "forresti__SqueezeNet_v1.0__deploy.prototxt")))
    assert v10.params == torchvision_figures("squeezenet1_0", 227)[0]
    assert shapes(v10, "conv")[-1] == (1000, 15, 15)


def dense_prototxt() -> str:
    """A DenseNet block in Caffe: each layer's BN-Scale-ReLU-conv output concatenated after its input."""
    text = HEAD + conv_layer("conv0", "data", "conv0", 6, "kernel_size: 3 pad: 1")
    previous, channels = "conv0", 6
    for i in range(3):
        text += simple_layer(f"bn_{i}", "BatchNorm", [previous], f"bn_{i}")
        text += simple_layer(f"scale_{i}", "Scale", [f"bn_{i}"], f"bn_{i}", "scale_param { bias_term: true } ")
        text += simple_layer(f"relu_{i}", "ReLU", [f"bn_{i}"], f"bn_{i}")
        text += conv_layer(f"conv_{i}", f"bn_{i}", f"conv_{i}", 4, "kernel_size: 3 pad: 1", bias=False)
        text += simple_layer(f"concat_{i}", "Concat", [previous, f"conv_{i}"], f"concat_{i}")
        previous, channels = f"concat_{i}", channels + 4
    return text


def test_densenet_concatenation_becomes_dense_and_gives_caffes_outputs(tmp_path):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    blobs = {"conv0": [rng.normal(0, 0.3, (6, 3, 3, 3)), rng.normal(0, 0.3, 6)]}
    for i, channels in enumerate((6, 10, 14)):
        factor = rng.uniform(0.5, 2, 1)
        blobs[f"bn_{i}"] = [rng.normal(0, 0.3, channels) * factor, rng.uniform(0.3, 2, channels) * factor, factor]
        blobs[f"scale_{i}"] = [rng.uniform(0.5, 1.5, channels), rng.normal(0, 0.3, channels)]
        blobs[f"conv_{i}"] = [rng.normal(0, 0.3, (4, channels, 3, 3))]
    blobs = {name: [a.astype(np.float32).astype(np.float64) for a in arrays] for name, arrays in blobs.items()}
    (tmp_path / "dense.prototxt").write_text(dense_prototxt())
    (tmp_path / "dense.caffemodel").write_bytes(cr.caffemodel(blobs))
    text = cnndsl.import_file(
        tmp_path / "dense.prototxt", weights=tmp_path / "dense.caffemodel", weights_out=tmp_path / "d.safetensors"
    )
    assert "block dense_layer {\n    dense {\n        bn, relu, conv(4, k=3, bias=false)\n    }\n}\n" in text
    assert "    conv(6, k=3), dense_layer x3  # conv0 … concat_2 (lines 7-26)\n" in text
    image = rng.normal(0, 1, (3, 8, 8)).astype(np.float32)
    x = cr.conv(image.astype(np.float64), *blobs["conv0"], pad=(1, 1))
    for i in range(3):
        y = cr.relu(cr.scale(cr.batch_norm(x, *blobs[f"bn_{i}"]), *blobs[f"scale_{i}"]))
        x = np.concatenate([x, cr.conv(y, blobs[f"conv_{i}"][0], None, pad=(1, 1))])
    model = cnndsl.parse(text).to_torch(weights=str(tmp_path / "d.safetensors")).eval()
    with torch.no_grad():
        got = model(torch.from_numpy(image)[None]).numpy()[0]
    assert got.shape == x.shape == (18, 8, 8)
    np.testing.assert_allclose(got, x, rtol=1e-4, atol=1e-6)


NORMED_CONV = (
    HEAD
    + conv_layer("conv", "data", "conv", 4, "kernel_size: 3", bias=False)
    + bn_layers("conv", "conv")
    + simple_layer("fc", "InnerProduct", ["conv"], "fc", "inner_product_param { num_output: 2 bias_term: false } ")
)


def test_bn_with_a_zero_factor_and_a_training_caffemodels_extra_layers(tmp_path):
    """Caffe takes 0 for the running mean and variance where BN's third blob is 0; layers of the caffemodel the
    prototxt lacks (a training net's loss) are passed over; a blob count other than the layer's is refused."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    blobs = {
        "conv": [rng.normal(0, 0.3, (4, 3, 3, 3))],
        "bn_conv": [rng.normal(0, 1, 4), rng.uniform(1, 2, 4), np.zeros(1)],
        "scale_conv": [rng.uniform(0.5, 1.5, 4), rng.normal(0, 0.3, 4)],
        "fc": [rng.normal(0, 0.3, (2, 144))],
        "loss": [rng.normal(0, 1, 7)],
    }
    blobs = {name: [a.astype(np.float32).astype(np.float64) for a in arrays] for name, arrays in blobs.items()}
    (tmp_path / "n.prototxt").write_text(NORMED_CONV)
    (tmp_path / "n.caffemodel").write_bytes(cr.caffemodel(blobs))
    text = cnndsl.import_file(
        tmp_path / "n.prototxt", weights=tmp_path / "n.caffemodel", weights_out=tmp_path / "n.safetensors"
    )
    image = rng.normal(0, 1, (3, 8, 8)).astype(np.float32)
    x = cr.conv(image.astype(np.float64), blobs["conv"][0], None)
    x = cr.scale(cr.batch_norm(x, *blobs["bn_conv"]), *blobs["scale_conv"])
    expected = blobs["fc"][0] @ x.reshape(-1)
    model = cnndsl.parse(text).to_torch(weights=str(tmp_path / "n.safetensors")).eval()
    with torch.no_grad():
        got = model(torch.from_numpy(image)[None]).numpy()[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    blobs["fc"].append(np.zeros(2))  # a bias the prototxt's InnerProduct does not have
    (tmp_path / "biased.caffemodel").write_bytes(cr.caffemodel(blobs))
    with pytest.raises(CnnDslError) as caught:
        cnndsl.import_file(
            tmp_path / "n.prototxt", weights=tmp_path / "biased.caffemodel", weights_out=tmp_path / "b.safetensors"
        )
    assert caught.value.message == "biased.caffemodel: layer `fc` holds 2 blobs, the prototxt's layer takes 1"
    assert caught.value.pos.line == 12  # the InnerProduct: 6 lines of input, 2 of conv, 3 of BN and Scale


def test_forks_nested_too_deeply_are_a_located_error(tmp_path):
    """3,000 residuals each inside the next: an error at the file, not a RecursionError's traceback."""
    depth, lines = 3000, [HEAD]

    def bottom(d: int) -> str:  # r_d reads r_(d+1); the outermost reads the input
        return "data" if d == depth - 1 else f"r{d + 1}"

    lines += [
        f'layer {{ name: "r{d}" type: "ReLU" bottom: "{bottom(d)}" top: "r{d}" }}\n' for d in reversed(range(depth))
    ]
    for d in range(depth):
        inner = "r0" if d == 0 else f"e{d - 1}"
        lines.append(f'layer {{ name: "e{d}" type: "Eltwise" bottom: "{bottom(d)}" bottom: "{inner}" top: "e{d}" }}\n')
    assert refusal(tmp_path, "".join(lines)) == "net.prototxt:1:1: error: the net nests its forks too deeply to write"


MAXOUT = HEAD + (
    conv_layer("a", "data", "a", 4, "kernel_size: 3 pad: 1")
    + conv_layer("b", "data", "b", 4, "kernel_size: 1")
    + simple_layer("max", "Eltwise", ["a", "b"], "max", "eltwise_param { operation: MAX } ")
)


def test_eltwise_max_is_maximum_and_gives_caffes_outputs(tmp_path):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    blobs = {"a": [rng.normal(0, 0.4, (4, 3, 3, 3)), rng.normal(0, 0.3, 4)],
             "b": [rng.normal(0, 0.4, (4, 3, 1, 1)), rng.normal(0, 0.3, 4)]}  # fmt: skip
    blobs = {name: [a.astype(np.float32).astype(np.float64) for a in arrays] for name, arrays in blobs.items()}
    (tmp_path / "m.prototxt").write_text(MAXOUT)
    (tmp_path / "m.caffemodel").write_bytes(cr.caffemodel(blobs))
    text = cnndsl.import_file(
        tmp_path / "m.prototxt", weights=tmp_path / "m.caffemodel", weights_out=tmp_path / "m.safetensors"
    )
    assert "    data: input 3x8x8\n    a: conv(4, k=3)  # a (lines 7-8)\n    @data, conv(4, k=1), maximum(@a)" in text
    image = rng.normal(0, 1, (3, 8, 8)).astype(np.float32)
    x = image.astype(np.float64)
    expected = np.maximum(cr.conv(x, *blobs["a"], pad=(1, 1)), cr.conv(x, *blobs["b"]))
    model = cnndsl.parse(text).to_torch(weights=str(tmp_path / "m.safetensors")).eval()
    with torch.no_grad():
        got = model(torch.from_numpy(image)[None]).numpy()[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_cli_writes_the_network_and_the_weights(tmp_path):
    blobs = random_blobs(np.random.default_rng(9))
    (tmp_path / "small.prototxt").write_text(SMALL)
    (tmp_path / "small.caffemodel").write_bytes(cr.caffemodel(blobs))
    args = ["small.prototxt", "--weights", "small.caffemodel", "--weights-out", "small.safetensors", "-o", "small.cnn"]
    result = subprocess.run(
        [sys.executable, "-m", "cnndsl", "import", *args], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")
    from safetensors.numpy import load_file

    tensors = load_file(tmp_path / "small.safetensors")
    net = cnndsl.load(str(tmp_path / "small.cnn"))
    assert sum(t.size for name, t in tensors.items() if "running" not in name) == net.params
    first_bn = next(layer.name for _, layer in ir.layers(net.graph) if layer.op == "bn")
    factor = blobs["bn_conv1"][2][0]
    np.testing.assert_allclose(tensors[f"{first_bn}.running_mean"], blobs["bn_conv1"][0] / factor, rtol=1e-6)


def _key(body: str, name: str, default: int = 0) -> int:
    match = re.search(rf"\b{name}: (\d+)", body)
    return int(match.group(1)) if match else default


def caffe_shapes(text: str) -> dict[str, list]:
    """Every Convolution, Pooling, InnerProduct, Eltwise and Concat output shape by Caffe's own rules, from the
    prototxt text alone (a few regular expressions, not the importer): kind -> sorted shapes."""
    dims = [int(d) for d in re.findall(r"(?:input_dim|dim): (\d+)", text.split("layer")[0] or "")][1:] or None
    blobs, found = {}, {"conv": [], "pool": [], "fc": [], "add": [], "concat": []}
    for body in re.split(r"\n\s*layers? \{", text)[1:]:
        kind = re.search(r"type: \"?(\w+)", body).group(1).lower()
        bottoms, tops = re.findall(r'bottom: "([^"]+)"', body), re.findall(r'top: "([^"]+)"', body)

        if kind == "input":
            dims = [int(d) for d in re.findall(r"dim: (\d+)", body)][1:]
            blobs[tops[0]] = tuple(dims)
            continue
        shape = blobs.get(bottoms[0], tuple(dims or ())) if bottoms else None
        if kind == "convolution":
            k, s, p = _key(body, "kernel_size"), _key(body, "stride", 1), _key(body, "pad")
            shape = (_key(body, "num_output"), *[(n + 2 * p - k) // s + 1 for n in shape[1:]])
            found["conv"].append(shape)
        elif kind == "pooling":
            if "global_pooling: true" in body:
                shape = (shape[0], 1, 1)
            else:
                k, s, p = _key(body, "kernel_size"), _key(body, "stride", 1), _key(body, "pad")
                shape = (shape[0], *[cr.pooled_size(n, k, s, p) for n in shape[1:]])
            found["pool"].append(shape)
        elif kind in ("innerproduct", "inner_product"):
            shape = (_key(body, "num_output"),)
            found["fc"].append(shape)
        elif kind == "eltwise":
            found["add"].append(shape)
        elif kind == "concat":
            shape = (sum(blobs[b][0] for b in bottoms), *shape[1:])
            found["concat"].append(shape)
        blobs[tops[0]] = shape
    return {kind: sorted(shapes) for kind, shapes in found.items()}


@pytest.mark.parametrize(
    "name",
    ["BVLC__bvlc_alexnet__deploy", "BVLC__examples_mnist__lenet", "KaimingHe__ResNet-50-deploy",
     "KaimingHe__ResNet-152-deploy", "BVLC__bvlc_googlenet__deploy", "BVLC__bvlc_reference_caffenet__deploy_v1",
     "forresti__SqueezeNet_v1.0__deploy", "forresti__SqueezeNet_v1.1__deploy"],
)  # fmt: skip
def test_every_conv_pool_fc_and_join_has_caffes_output_shape(tmp_path, name):
    source = CAFFE / f"{name}.prototxt"
    net = cnndsl.load(str(imported(tmp_path, source)))
    ops = {
        "conv": ("conv",),
        "pool": ("maxpool", "avgpool", "gap"),
        "fc": ("fc",),
        "add": ("add",),
        "concat": ("concat",),
    }
    got = {kind: sorted(shapes(net, *names)) for kind, names in ops.items()}
    assert got == caffe_shapes(source.read_text())


def basic_resnet_prototxt(depths: list[int]) -> str:
    """A ResNet of basic blocks written as Kaiming's prototxts name and lay out their layers (branch1 the
    projection, branch2a/2b the body, BatchNorm + Scale after each convolution)."""
    text = 'name: "ResNet-18"\ninput: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 224\ninput_dim: 224\n'

    def conv_bn(name, bottom, outputs, kernel, stride, relu):
        block = conv_layer(
            name, bottom, name, outputs, f"kernel_size: {kernel} stride: {stride} pad: {kernel // 2}", False
        )
        block += bn_layers(name, name)
        return block + (simple_layer(f"{name}_relu", "ReLU", [name], name) if relu else "")

    text += conv_bn("conv1", "data", 64, 7, 2, True)
    text += simple_layer(
        "pool1", "Pooling", ["conv1"], "pool1", "pooling_param { pool: MAX kernel_size: 3 stride: 2 } "
    )
    bottom = "pool1"
    for stage, (width, count) in enumerate(zip([64, 128, 256, 512], depths, strict=True), start=2):
        for unit in range(count):
            name = f"res{stage}{'abcdefghij'[unit]}"
            stride = 2 if unit == 0 and stage > 2 else 1
            shortcut = bottom
            if unit == 0 and stage > 2:
                text += conv_bn(f"{name}_branch1", bottom, width, 1, 2, False)
                shortcut = f"{name}_branch1"
            text += conv_bn(f"{name}_branch2a", bottom, width, 3, stride, True)
            text += conv_bn(f"{name}_branch2b", f"{name}_branch2a", width, 3, 1, False)
            text += simple_layer(name, "Eltwise", [shortcut, f"{name}_branch2b"], name)
            text += simple_layer(f"{name}_relu", "ReLU", [name], name)
            bottom = name
    text += simple_layer("pool5", "Pooling", [bottom], "pool5", "pooling_param { pool: AVE kernel_size: 7 stride: 1 } ")
    return text + simple_layer(
        "fc1000", "InnerProduct", ["pool5"], "fc1000", "inner_product_param { num_output: 1000 } "
    )


def test_a_basic_block_resnet_is_a_family_whose_first_stage_is_one_run(tmp_path):
    """ResNet-18's stage res2 keeps its shape, so it is `basic(64) x res2`; the others start with a projection;
    params and MACs are torchvision's resnet18 (which also strides the first 3x3)."""
    source = tmp_path / "resnet18.prototxt"
    source.write_text(basic_resnet_prototxt([2, 2, 2, 2]))
    target = imported(tmp_path, source)
    text = target.read_text()
    net = cnndsl.load(str(target))
    assert (net.params, net.macs) == torchvision_figures("resnet18", 224)
    assert "network resnet_18(res2=2, res3=2, res4=2, res5=2) {\n" in text
    assert "    stage res2 { basic(64) x res2 }  # res2a_branch2a … res2b_relu" in text
    assert "    stage res3 { basic_proj(128), basic(128) x (res3 - 1) }  # res3a_branch1 … res3b_relu" in text
    assert "    shortcut { conv(c, k=1, s=2, bias=false), bn }\n" in text  # every projection strides by 2
    source.write_text(basic_resnet_prototxt([1, 2, 2, 2]))  # a lone unit is no stage: the family has three
    text = imported(tmp_path, source).read_text()
    assert "network resnet_18(res3=2, res4=2, res5=2) {\n" in text
    assert "maxpool(k=3, s=2, ceil=true), basic(64)  # conv1 … res2a_relu (lines 7-26)\n" in text
    source.write_text(basic_resnet_prototxt([2, 1, 1, 1]))  # one stage is no family: its count written out
    text = imported(tmp_path, source).read_text()
    assert "network resnet_18 {\n" in text
    assert "    stage res2 { basic x2 }  # res2a_branch2a … res2b_relu (lines 14-39)\n" in text
