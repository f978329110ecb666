"""`cnndsl import`: Darknet cfgs become .cnn files with darknet's own parameter counts, MACs and shapes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import darknet_reference
import numpy as np
import pytest
from docs_pages import run_page

import cnndsl
from cnndsl.core.errors import CnnDslError
from cnndsl.graph import ir

DARKNET = Path(__file__).parent / "data" / "importers" / "darknet"

# From /work/shared/corpus/importers/README.md: darknet's own parse_network_cfg, summed per layer
# (params: conv weights + biases/BN beta + BN gamma; darknet prints BFLOPs = 2 x MACs to three decimals).
CORPUS = [
    ("pjreddie__yolov3-tiny.cfg", 8_852_366, 5.565, {"output": (84, 3 * (13 * 13 + 26 * 26))}),
    ("pjreddie__darknet19.cfg", 20_842_376, 7.291, {"output": (1000, 1, 1)}),
    ("pjreddie__resnet18.cfg", 11_515_688, 4.688, {"output": (1000, 1, 1)}),
    ("AlexeyAB__yolov4-tiny.cfg", 6_056_606, 6.908, {"output": (84, 3 * (13 * 13 + 26 * 26))}),
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
    assert {tap: ir.layer(net.graph, node).shape for tap, node in net.outputs} == outputs


def test_yolo_sections_import_as_yolo_decoders_with_their_masks_strides_and_scale(tmp_path):
    tiny = imported(tmp_path, "pjreddie__yolov3-tiny.cfg").read_text()
    anchors = "anchors=[10, 14, 23, 27, 37, 58, 81, 82, 135, 169, 344, 319]"
    assert f"    l16: yolo({anchors}, mask=[3, 4, 5], stride=32)  # cfg lines 132-140" in tiny
    assert f"    yolo(@l16, {anchors}, mask=[0, 1, 2], stride=16)  # cfg lines 174-182" in tiny
    v4 = imported(tmp_path, "AlexeyAB__yolov4-tiny.cfg").read_text()
    assert f"yolo(@l30, {anchors}, mask=[1, 2, 3], stride=16, scale_xy=1.05)" in v4  # AlexeyAB's scale_x_y


def test_every_layer_shape_follows_darknets_rules(tmp_path):
    """Darknet19 at 256: five 2x2 maxpools halve 256 to 8; yolov4-tiny's route groups halve the channels."""
    net = cnndsl.load(str(imported(tmp_path, "pjreddie__darknet19.cfg")))
    shapes = [layer.shape for _, layer in ir.layers(net.graph) if layer.op == "maxpool"]
    assert shapes == [(32, 128, 128), (64, 64, 64), (128, 32, 32), (256, 16, 16), (512, 8, 8)]
    tiny = cnndsl.load(str(imported(tmp_path, "AlexeyAB__yolov4-tiny.cfg")))
    chunks = [layer.shape for _, layer in ir.layers(tiny.graph) if layer.op == "chunk"]
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
    assert lengths == {
        "pjreddie__yolov3-tiny.cfg": 18,
        "pjreddie__darknet19.cfg": 15,
        "pjreddie__resnet18.cfg": 22,
        "AlexeyAB__yolov4-tiny.cfg": 25,
    }


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


def test_yolov3_tiny_maxpool_pads_only_after_the_input(tmp_path):
    """size=2 stride=1 pads `size-1` = 1, all of it after the input: maxpool(p_end=1) keeps 13x13."""
    text = imported(tmp_path, "pjreddie__yolov3-tiny.cfg").read_text()
    assert (
        "    maxpool(k=2, s=1, p_end=1), conv_bn_leaky(1024), l13: conv_bn_leaky(256, 1)  # cfg lines 93-113\n" in text
    )


def test_maxpool_padding_beyond_half_the_window_is_refused(tmp_path):
    assert refusal(tmp_path, NET + "[maxpool]\nsize=2\nstride=2\npadding=5\n") == (
        "net.cfg:5:1: error: [maxpool] padding 5 puts more than half the window before the input"
    )


def test_maxpool_p_end_equals_torch_functional_and_onnxruntime(tmp_path):
    """The kind option the import needs: F.pad with -inf at the bottom and right, then max_pool2d."""
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    ort = pytest.importorskip("onnxruntime")
    net = cnndsl.parse("network mp { input 4x13x13, maxpool(k=3, s=2, p=1, p_end=1) }")
    image = torch.randn(1, 4, 13, 13)
    expected = functional.max_pool2d(functional.pad(image, (0, 1, 0, 1), value=float("-inf")), 3, 2, 1)
    assert ir.layer(net.graph, net.outputs[0][1]).shape == tuple(expected.shape[1:]) == (4, 7, 7)
    assert torch.equal(net.to_torch().eval()(image), expected)
    net.to_onnx(str(tmp_path / "mp.onnx"))
    session = ort.InferenceSession(str(tmp_path / "mp.onnx"))
    got = session.run(None, {session.get_inputs()[0].name: image.numpy()})[0]
    assert np.array_equal(got, expected.numpy())
    with pytest.raises(CnnDslError, match="p_end or ceil=true, not both"):
        cnndsl.parse("network mp { input 4x13x13, maxpool(k=2, ceil=true, p_end=1) }")
    with pytest.raises(CnnDslError, match=r"p \+ p_end \(3\) must be less than the kernel \(3\)"):
        cnndsl.parse("network mp { input 4x13x13, maxpool(k=3, p=1, p_end=2) }")


def test_cli_writes_the_file(tmp_path):
    target = tmp_path / "d19.cnn"
    result = subprocess.run(
        [sys.executable, "-m", "cnndsl", "import", str(DARKNET / "pjreddie__darknet19.cfg"), "-o", str(target)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert cnndsl.load(str(target)).params == 20_842_376


# --- numerics: weights in darknet's own layout, outputs against tests/darknet_reference.py ----------

SMALL_CFG = """[net]
width=20
height=20
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=8
size=1
stride=1
pad=1
activation=mish

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=linear

[shortcut]
from=-3
activation=leaky

[route]
layers=-1
groups=2
group_id=1

[convolutional]
filters=8
size=3
stride=2
pad=1
activation=linear

[route]
layers=-1

[upsample]
stride=2

[route]
layers=-1,5

[convolutional]
batch_normalize=1
filters=32
size=3
stride=2
pad=1
activation=leaky

[shortcut]
from=-7
activation=linear

[maxpool]
size=2
stride=2

[maxpool]
size=3
stride=1

[maxpool]
size=2
stride=1

[avgpool]

[connected]
output=5
activation=linear
"""


def random_layers(rng):
    """Per tensor-holding layer: (filters, inputs, size, batch-normed) and its tensors, in cfg order."""
    specs = [
        (8, 3, 3, True),
        (16, 8, 3, True),
        (8, 16, 1, True),
        (16, 8, 3, True),
        (8, 8, 3, False),
        (32, 24, 3, True),
        (5, 32, 0, False),
    ]
    layers = []
    for filters, inputs, size, normed in specs:
        shape = (filters, inputs, size, size) if size else (filters, inputs)
        tensors = {
            "biases": rng.normal(0, 0.5, filters),
            "weights": rng.normal(0, 1 / np.sqrt(inputs * max(size, 1) ** 2), shape),
        }
        if normed:
            tensors |= {
                "scales": rng.uniform(0.5, 1.5, filters),
                "mean": rng.normal(0, 0.3, filters),
                "variance": rng.uniform(0.2, 2, filters),
            }
        layers.append({name: value.astype(np.float32) for name, value in tensors.items()})
    return layers


def darknet_weights(layers, major=0, minor=2) -> bytes:
    """A .weights file as darknet's save_weights writes it."""
    seen = np.array([12345], dtype="<u8" if major * 10 + minor >= 2 else "<i4")
    chunks = [np.array([major, minor, 0], dtype="<i4").tobytes(), seen.tobytes()]
    for tensors in layers:
        if tensors["weights"].ndim == 4:
            order = ["biases", "scales", "mean", "variance", "weights"]
        else:
            order = ["biases", "weights", "scales", "mean", "variance"]
        chunks += [tensors[name].astype("<f4").tobytes() for name in order if name in tensors]
    return b"".join(chunks)


def reference_forward(image, layers):
    """The small cfg run by the NumPy Darknet: every layer's output."""
    dn = darknet_reference
    w = iter(layers)

    def conv_layer(x, stride, pad, activation):
        t = next(w)
        y = dn.conv(x, t["weights"].astype(np.float64), pad, stride)
        if "scales" in t:
            y = dn.batchnorm(y, t["scales"], t["biases"], t["mean"], t["variance"])
        else:
            y = y + t["biases"][:, None, None]
        return dn.activate(y, activation)

    out = []
    out.append(conv_layer(image, 1, 1, "leaky"))  # 0
    out.append(dn.maxpool(out[-1], 2, 2))  # 1
    out.append(conv_layer(out[-1], 1, 1, "leaky"))  # 2
    out.append(conv_layer(out[-1], 1, 0, "mish"))  # 3
    out.append(conv_layer(out[-1], 1, 1, "linear"))  # 4
    out.append(dn.activate(dn.shortcut(out[4], out[2]), "leaky"))  # 5: from=-3
    out.append(dn.route([out[5]], 2, 1))  # 6
    out.append(conv_layer(out[-1], 2, 1, "linear"))  # 7
    out.append(dn.route([out[7]]))  # 8
    out.append(dn.upsample(out[-1], 2))  # 9
    out.append(dn.route([out[9], out[5]]))  # 10
    out.append(conv_layer(out[-1], 2, 1, "leaky"))  # 11
    out.append(dn.shortcut(out[11], out[5]))  # 12: from=-7, 16x10x10 onto 32x5x5
    out.append(dn.maxpool(out[-1], 2, 2))  # 13
    out.append(dn.maxpool(out[-1], 3, 1))  # 14
    out.append(dn.maxpool(out[-1], 2, 1))  # 15: padding 1, all after the input
    out.append(dn.avgpool(out[-1]))  # 16
    t = next(w)
    out.append(dn.connected(out[-1], t["weights"].astype(np.float64), t["biases"]))  # 17
    return out


@pytest.mark.parametrize(("major", "minor"), [(0, 1), (0, 2)], ids=["32-bit seen", "64-bit seen"])
def test_darknet_weights_give_darknets_outputs(tmp_path, major, minor):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    layers = random_layers(rng)
    (tmp_path / "small.cfg").write_text(SMALL_CFG)
    (tmp_path / "small.weights").write_bytes(darknet_weights(layers, major, minor))
    text = cnndsl.import_file(
        tmp_path / "small.cfg", weights=tmp_path / "small.weights", weights_out=tmp_path / "small.safetensors"
    )
    assert "    l5: (residual { conv_bn_mish(8, 1), conv_bn(16) }, leakyrelu(0.1))  # cfg lines 26-44\n" in text
    assert "    chunk(2, 1), conv(8, k=3, s=2), upsample(2)  # cfg lines 46-62\n" in text
    assert "    @l5, maxpool(k=1, s=2), branch { identity | mul(0) }, add(@l11), maxpool(k=2, ceil=true)" in text
    model = cnndsl.parse(text).to_torch(weights=str(tmp_path / "small.safetensors")).eval()
    image = rng.normal(0, 1, (3, 20, 20)).astype(np.float32)
    with torch.no_grad():
        got = model(torch.from_numpy(image)[None]).numpy()[0]
    expected = reference_forward(image.astype(np.float64), layers)[-1]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert np.abs(expected).max() > 0.1  # the outputs carry signal


def test_weights_file_too_short_or_too_long_is_refused_with_both_counts(tmp_path):
    layers = random_layers(np.random.default_rng(1))
    (tmp_path / "small.cfg").write_text(SMALL_CFG)
    whole = darknet_weights(layers)
    needed = (len(whole) - 20) // 4
    for name, data in [("short", whole[:-8]), ("long", whole + bytes(4))]:
        (tmp_path / f"{name}.weights").write_bytes(data)
    with pytest.raises(CnnDslError) as short:
        cnndsl.import_file(
            tmp_path / "small.cfg", weights=tmp_path / "short.weights", weights_out=tmp_path / "w.safetensors"
        )
    assert str(short.value.pos) == f"{tmp_path / 'small.cfg'}:{SMALL_CFG.splitlines().index('[connected]') + 1}:1"
    assert short.value.message == (
        f"short.weights holds {needed - 2} floats after its 20-byte header; the cfg's layers need {needed}, and it ends inside this layer"
    )
    with pytest.raises(CnnDslError) as long:
        cnndsl.import_file(
            tmp_path / "small.cfg", weights=tmp_path / "long.weights", weights_out=tmp_path / "w.safetensors"
        )
    assert str(long.value.pos) == f"{tmp_path / 'small.cfg'}:1:1"
    assert long.value.message == (
        f"long.weights holds {needed + 1} floats after its 20-byte header, 1 more than the cfg's layers take ({needed}): the file belongs to another cfg"
    )
    assert not (tmp_path / "w.safetensors").exists()


def test_every_example_in_the_import_page_runs(cli, tmp_path, monkeypatch):
    """docs/import.md: its python blocks in one namespace, its commands print what it shows."""
    monkeypatch.chdir(tmp_path)
    assert run_page("import.md", cli) == {"python": 7, "console": 6}
    assert cnndsl.load("tiny.cnn").params == 3426
    assert (tmp_path / "tiny.safetensors").stat().st_size > 3426 * 4


# --- YOLOv3: the structure of pjreddie's cfg/yolov3.cfg, generated here (no download in tests) -------


def conv_section(filters, size=3, stride=1, normed=True, activation="leaky"):
    lines = ["[convolutional]"] + ["batch_normalize=1"] * normed
    return lines + [f"filters={filters}", f"size={size}", f"stride={stride}", "pad=1", f"activation={activation}", ""]


def yolov3_cfg() -> str:
    """Darknet-53 and the three-scale head of yolov3.cfg, layer for layer (80 classes, 416x416)."""
    lines = ["[net]", "batch=1", "width=416", "height=416", "channels=3", "momentum=0.9", ""]
    lines += conv_section(32)
    for filters, blocks in [(64, 1), (128, 2), (256, 8), (512, 8), (1024, 4)]:
        lines += conv_section(filters, stride=2)
        for _ in range(blocks):
            lines += (
                conv_section(filters // 2, 1)
                + conv_section(filters)
                + ["[shortcut]", "from=-3", "activation=linear", ""]
            )
    yolo = [
        "[yolo]",
        "mask=0,1,2",
        "anchors=10,13,16,30,33,23",
        "classes=80",
        "num=9",
        "jitter=.3",
        "ignore_thresh=.7",
        "",
    ]
    for width, skip in [(512, None), (256, 61), (128, 36)]:
        if skip is not None:
            lines += ["[route]", "layers=-4", ""] + conv_section(width, 1) + ["[upsample]", "stride=2", ""]
            lines += ["[route]", f"layers=-1,{skip}", ""]
        for _ in range(2):
            lines += conv_section(width, 1) + conv_section(2 * width)
        lines += (
            conv_section(width, 1) + conv_section(2 * width) + conv_section(255, 1, normed=False, activation="linear")
        )
        lines += yolo
    return "\n".join(lines)


def darknet_params(cfg: str) -> int:
    """Darknet's count from the cfg text alone: per conv, filters*c*size^2 plus 2*filters with batch norm
    (beta, gamma) or filters biases, with c followed through routes as darknet's parser does."""
    channels, outputs, total = [3], [], 0
    for section in cfg.split("\n\n"):
        keys = dict(line.split("=", 1) for line in section.splitlines()[1:] if "=" in line)
        kind = section.strip().splitlines()[0] if section.strip() else ""
        if kind == "[convolutional]":
            filters, size = int(keys["filters"]), int(keys["size"])
            total += filters * channels[-1] * size * size + (2 if keys.get("batch_normalize") else 1) * filters
            channels.append(filters)
        elif kind == "[route]":
            here = len(outputs)
            picked = [int(i) + here if int(i) < 0 else int(i) for i in keys["layers"].split(",")]
            channels.append(sum(outputs[i] for i in picked))
        elif kind in ("[shortcut]", "[upsample]", "[yolo]"):
            channels.append(channels[-1])
        else:
            continue
        outputs.append(channels[-1])
    return total


def test_yolov3_imports_in_at_most_60_lines_with_darknets_counts(tmp_path):
    cfg = tmp_path / "yolov3.cfg"
    cfg.write_text(yolov3_cfg())
    text = cnndsl.import_file(cfg)
    (tmp_path / "yolov3.cnn").write_text(text)
    net = cnndsl.load(str(tmp_path / "yolov3.cnn"))
    assert darknet_params(yolov3_cfg()) == 61_949_149  # the figure darknet's ports publish for yolov3.cfg
    assert net.params == 61_949_149
    # the three [yolo] heads decoded, in darknet's order: 3 anchors on 13x13, 26x26 and 52x52 cells
    assert {tap: ir.layer(net.graph, node).shape for tap, node in net.outputs} == {
        "output": (84, 3 * (13 * 13 + 26 * 26 + 52 * 52))
    }
    assert (
        "    l94: yolo(@l82, anchors=[10, 13, 16, 30, 33, 23], mask=[0, 1, 2], stride=16)  # cfg lines 651-657" in text
    )
    assert len(text.splitlines()) == 26  # the readability bound: at most 60
    assert round(2 * net.macs / 1e9, 3) == 65.864  # darknet's BFLOPs for yolov3.cfg at 416
    assert (
        "    l36: residual { conv_bn_leaky(128, 1), conv_bn_leaky(256) } x8, conv_bn_leaky(512, 3, 2)  # cfg lines"
        in text
    )


def test_cli_refusal_is_a_located_error_and_writes_nothing(tmp_path):
    (tmp_path / "bad.cfg").write_text(NET + "[local]\nfilters=4\n")
    result = subprocess.run(
        [sys.executable, "-m", "cnndsl", "import", "bad.cfg", "-o", "bad.cnn"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        "bad.cfg:5:1: error: [local] is a locally connected layer (unshared weights per position), "
        "which cnndsl cannot express exactly"
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "bad.cnn").exists()


def test_import_is_deterministic_and_its_output_keeps_the_figures(tmp_path):
    """Importing twice gives the same text; the written file, loaded again, has the same params and shapes."""
    for name, *_ in CORPUS:
        first, second = cnndsl.import_file(DARKNET / name), cnndsl.import_file(DARKNET / name)
        assert first == second
        net = cnndsl.parse(first)
        again = cnndsl.load(str(imported(tmp_path, name)))
        assert (again.params, again.macs) == (net.params, net.macs)
        assert [layer.shape for _, layer in ir.layers(again.graph)] == [
            layer.shape for _, layer in ir.layers(net.graph)
        ]


def test_startup_imports_nothing_heavy():
    code = "import sys, cnndsl.cli, cnndsl.importers; print(sorted(m for m in ('numpy', 'torch', 'safetensors') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr
