"""The shipped library is exact: torchvision's counts for the networks torchvision has, the papers'
for the others (recounted here layer by layer where a paper gives no total), the output each network's
torch module must give (tests/test_oracles.py runs them), a header on every file, `cnndsl list` and
docs/library.md."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from oracles import torchvision_models

import cnndsl
from cnndsl.check import check
from cnndsl.cli import main
from cnndsl.core.errors import CnnDslError
from cnndsl.core.resources import library_dir
from cnndsl.front import syntax as ast
from cnndsl.front.load import Loader
from cnndsl.graph import ir
from cnndsl.library import catalogue, network_names
from cnndsl.ops import format_shape

ROOT = Path(__file__).resolve().parent.parent

# torchvision 0.28's figures for all 74 of its convolutional networks, as the session's reference
# table lists them (tests/data/torchvision-all.md, copied from it): params (norm weights and
# biases included) and conv + linear MACs at the model's input size.
REFERENCE = ROOT / "tests" / "data" / "torchvision-all.md"


def _reference() -> dict[str, tuple[int, int, tuple[int, ...]]]:
    """name -> (params, MACs, input shape), read from the reference table's rows."""
    rows = {}
    for line in REFERENCE.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[1].isdigit():
            rows[cells[0]] = (int(cells[1]), int(cells[2]), tuple(int(n) for n in cells[3].split("x")))
    return rows


TORCHVISION = _reference()
SEGMENTATION = {
    "fcn_resnet50",
    "fcn_resnet101",
    "deeplabv3_resnet50",
    "deeplabv3_resnet101",
    "deeplabv3_mobilenet_v3_large",
    "lraspp_mobilenet_v3_large",
}

# What the library ships, by name: every network in torchvision's table and the papers' others.
REQUIRED = set(TORCHVISION) | {
    "lenet5",
    "alexnet_paper",
    "googlenet_aux",
    "mobilenet_v1",
    "xception",
    "se_resnet50",
    "fcn8s",
    "unet",
    "yolov1",
    "yolov3",
    "yolov3_tiny",
}
FASTER_RCNN = {"fasterrcnn_mobilenet_v3_large_320_fpn", "fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_resnet50_fpn"}
REQUIRED |= FASTER_RCNN  # torchvision's detection models (tests/test_fasterrcnn.py compares them with torchvision)
REQUIRED |= {"fasterrcnn_vgg16"}  # the seeds' Faster R-CNN (tests/test_fasterrcnn_vgg16.py counts it by hand)
# Ultralytics' detectors, every scale; their figures are checked against Ultralytics in test_yolo_ultralytics.py
ULTRALYTICS = {f"{family}{scale}" for family in ("yolov8", "yolo11") for scale in "nsmlx"}
REQUIRED |= ULTRALYTICS

# The output each network must produce for one image (tests/test_oracles.py runs every network's module on meta tensors).
OUTPUTS = (
    {name: [(1000,)] for name in REQUIRED}
    | {name: [(21, 520, 520)] for name in SEGMENTATION}
    | {
        "lenet5": [(10,)],
        "googlenet_aux": [(1000,)] * 3,
        "fcn8s": [(21, 224, 224)],
        "unet": [(2, 388, 388)],
        "yolov1": [(300, 6)],
        "yolov3": [(300, 6)],
        "yolov3_tiny": [(300, 6)],
    }
    | {name: [(300, 6)] for name in ULTRALYTICS}  # by default: 300 rows of x1, y1, x2, y2, score, label
    | {name: [(100, 6)] for name in FASTER_RCNN}  # box_detections_per_img rows: x1, y1, x2, y2, score, label
    | {"fasterrcnn_vgg16": [(100, 6)]}
)


def conv(c_in: int, c_out: int, k: int = 3, bias: bool = True) -> int:
    """A convolution's parameters, by the textbook formula."""
    return c_out * c_in * k * k + (c_out if bias else 0)


def figures(name: str) -> tuple[int, int]:
    network = cnndsl.load(name)
    return network.params, network.macs


# ---- what ships -------------------------------------------------------------------------
def test_the_library_ships_every_network_the_issue_names_and_no_family_twice():
    names = [name for name, _ in network_names()]
    assert set(names) == REQUIRED
    assert len(names) == len(set(names))


def test_variants_instantiate_one_family_instead_of_copying_it():
    targets = {}
    loader = Loader()
    for path in library_dir().glob("*.cnn"):
        for definition in loader.load_path(path).program.definitions:
            if isinstance(definition, ast.NetworkAlias):
                targets[definition.name] = definition.target
    for name in ("resnet18", "resnet152", "resnext50_32x4d", "wide_resnet50_2", "se_resnet50"):
        assert targets[name] == "resnet"
    assert {targets[name] for name in TORCHVISION if name.startswith("vgg")} == {"vgg"}
    assert {targets[name] for name in TORCHVISION if name.startswith("densenet")} == {"densenet"}
    assert targets["squeezenet1_0"] == targets["squeezenet1_1"] == "squeezenet"
    assert targets["googlenet"] == targets["googlenet_aux"] == "inception_v1"
    for prefix, family in [
        ("resnext101", "resnet"),
        ("wide_resnet101", "resnet"),
        ("efficientnet_", "efficientnet"),
        ("regnet_", "regnet"),
        ("convnext_", "convnext"),
        ("mnasnet", "mnasnet"),
        ("mobilenet_v3_", "mobilenet_v3"),
        ("shufflenet_v2_", "shufflenet_v2"),
        ("fcn_resnet", "fcn"),
        ("deeplabv3_resnet", "deeplabv3"),
    ]:
        names = [name for name in TORCHVISION if name.startswith(prefix)]
        assert names and {targets[name] for name in names} == {family}, prefix
    assert len([name for name in TORCHVISION if name.startswith("regnet_")]) == 15


# ---- torchvision's networks: exact params and MACs ----------------------------------------
def _summary_totals(run, name: str) -> tuple[int, int]:
    """`cnndsl summary NAME --input SIZE --format json`'s totals, through `run` (in process or not)."""
    size = "x".join(map(str, TORCHVISION[name][2]))
    totals = json.loads(run(["summary", name, "--input", size, "--format", "json"]))["totals"]
    return totals["params"], totals["macs"]


def _in_process(args: list[str]) -> str:
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def _subprocess(args: list[str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "from cnndsl.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_reference_table_lists_torchvisions_74_networks():
    assert len(TORCHVISION) == 74
    assert TORCHVISION["resnet50"] == (25557032, 4089184256, (3, 224, 224))  # torchvision's own num_params


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_summary_has_torchvisions_params_and_macs(name):
    assert _summary_totals(_in_process, name) == TORCHVISION[name][:2]


def test_summary_from_the_command_line_has_torchvisions_figures():
    assert _summary_totals(_subprocess, "efficientnet_b7") == TORCHVISION["efficientnet_b7"][:2]


def test_each_library_network_takes_torchvisions_input_size_by_default():
    assert {name: cnndsl.load(name).input_shape for name in TORCHVISION} == {
        name: shape for name, (_, _, shape) in TORCHVISION.items()
    }


# ---- the others: the papers' figures ---------------------------------------------------
def test_lenet5_reproduces_the_papers_c1_c5_and_f6_counts():
    network = cnndsl.load("lenet5")
    by_tap = {data.tap: data.figures.params for _, data in ir.layers(network.graph) if data.tap}
    # LeCun et al. 1998, section II.B: C1 156, C5 48,120, F6 10,164 trainable parameters.
    assert (by_tap["c1"], by_tap["c5"], by_tap["f6"]) == (156, 48120, 10164)
    assert by_tap["c3"] == conv(6, 16, 5)  # fully connected C3, not the paper's sparse 1,516
    assert network.params == 156 + conv(6, 16, 5) + 48120 + 10164 + (84 * 10 + 10) == 61706


def test_alexnet_paper_has_the_two_gpu_networks_count():
    params, _ = figures("alexnet_paper")
    expected = (
        conv(3, 96, 11)
        + conv(48, 256, 5)
        + conv(256, 384)
        + conv(192, 384)
        + conv(192, 256)
        + (256 * 6 * 6 * 4096 + 4096)
        + (4096 * 4096 + 4096)
        + (4096 * 1000 + 1000)
    )
    assert params == expected == 60965224  # the paper: "60 million parameters"


def test_googlenet_aux_adds_torchvisions_two_auxiliary_heads():
    head = conv(512, 128, 1, bias=False) + 2 * 128 + (2048 * 1024 + 1024) + (1024 * 1000 + 1000)
    assert figures("googlenet_aux")[0] == TORCHVISION["googlenet"][0] + head + (head + 16 * 128)


def test_mobilenet_v1_matches_the_papers_table_8():
    params, macs = figures("mobilenet_v1")
    assert round(params / 1e6, 1) == 4.2 and round(macs / 1e6) == 569  # "4.2 million", "569 million"
    assert params == 4231976  # Keras' MobileNet (alpha 1.0): its trainable parameters


def test_xception_has_the_papers_count():
    assert figures("xception")[0] == 22855952  # Chollet 2017, Table 3


def test_se_resnet50_adds_one_gate_per_bottleneck_to_resnet50():
    gates = sum(n * (2 * c * (c // 16) + c // 16 + c) for c, n in zip([256, 512, 1024, 2048], [3, 4, 6, 3]))
    params = figures("se_resnet50")[0]
    assert params == TORCHVISION["resnet50"][0] + gates == 28088024
    assert round(gates / 1e6, 1) == 2.5  # the paper: "~2.5 million additional parameters"


def test_fcn8s_is_vgg16_made_convolutional_with_three_score_layers_and_upsampling():
    vgg16_convs = TORCHVISION["vgg16"][0] - (512 * 7 * 7 * 4096 + 4096) - (4096 * 4096 + 4096) - (4096 * 1000 + 1000)
    head = conv(512, 4096, 7) + conv(4096, 4096, 1)
    scores = conv(4096, 21, 1) + conv(512, 21, 1) + conv(256, 21, 1)
    upsampling = 2 * 21 * 21 * 4 * 4 + 21 * 21 * 16 * 16
    params = figures("fcn8s")[0]
    assert params == vgg16_convs + head + scores + upsampling == 134489759
    assert round(params / 1e6) == 134  # Long et al. 2015, Table 1: FCN-VGG16 "134M"


def test_unet_has_the_count_of_the_papers_figure_1():
    widths = [64, 128, 256, 512, 1024]
    encoder = sum(conv(c_in, c) + conv(c, c) for c_in, c in zip([1, *widths], widths))
    decoder = sum(c * 2 * c * 2 * 2 + c + conv(2 * c, c) + conv(c, c) for c in [512, 256, 128, 64])
    assert figures("unet")[0] == encoder + decoder + conv(64, 2, 1) == 31030658


def test_yolov1_has_the_count_of_the_papers_figure_3():
    layers = (
        [(3, 64, 7), (64, 192, 3), (192, 128, 1), (128, 256, 3), (256, 256, 1), (256, 512, 3)]
        + [(512, 256, 1), (256, 512, 3)] * 4
        + [(512, 512, 1), (512, 1024, 3)]
        + [(1024, 512, 1), (512, 1024, 3)] * 2
        + [(1024, 1024, 3)] * 4
    )
    assert len(layers) == 24
    fully_connected = (7 * 7 * 1024 * 4096 + 4096) + (4096 * 7 * 7 * 30 + 7 * 7 * 30)
    assert figures("yolov1")[0] == sum(conv(*layer) for layer in layers) + fully_connected == 271703550


# From /work/shared/corpus/importers/README.md: darknet's own parse_network_cfg over pjreddie's cfgs at 416
# (yolov3.cfg's 61,949,149 parameters and 65.864 BFLOPs as tests/test_import.py counts them from the cfg).
@pytest.mark.parametrize(
    ("name", "params", "bflops"), [("yolov3", 61_949_149, 65.864), ("yolov3_tiny", 8_852_366, 5.565)]
)
def test_darknet_yolov3_has_darknets_count(name, params, bflops):
    network_params, macs = figures(name)
    assert network_params == params
    assert round(2 * macs / 1e9, 3) == bflops


@pytest.mark.parametrize(
    ("name", "input", "raw", "boxes"),
    [
        ("yolov1", None, [(7, 7, 30)], 98),
        ("yolov3", (3, 160, 160), [(255, 5, 5), (255, 10, 10), (255, 20, 20)], 3 * (25 + 100 + 400)),
        ("yolov3_tiny", (3, 160, 160), [(255, 5, 5), (255, 10, 10)], 3 * (25 + 100)),
    ],
)
def test_detectors_end_where_postprocess_says(name, input, raw, boxes):
    def outputs(postprocess, classes=None):
        params = {"postprocess": postprocess} | ({"classes": classes} if classes else {})
        network = cnndsl.load(name, input=input, **params)
        return [ir.layer(network.graph, node).shape for _, node in network.outputs]

    assert outputs("raw") == raw
    assert outputs("decoded") == [(4 + 20 if name == "yolov1" else 4 + 80, boxes)]
    assert outputs("nms") == [(300, 6)]
    if name != "yolov1":
        assert outputs("decoded", classes=3) == [(4 + 3, boxes)]
    with pytest.raises(CnnDslError, match=r"'boxes' is not one of 'raw', 'decoded', 'nms'") as caught:
        cnndsl.load(name, postprocess="boxes")
    assert caught.value.hint == "choose 'raw' or 'decoded' or 'nms'"


# ---- what eval mode cannot show: the stochastic depth rates --------------------------------------
@pytest.mark.parametrize("name", ["efficientnet_b3", "efficientnet_v2_s", "convnext_tiny"])
def test_stochastic_depth_rates_are_torchvisions_block_by_block(name):
    with torch.device("meta"):  # rates only: no weights to initialise
        model = getattr(torchvision_models(), name)()
    skipped = [
        module.stochastic_depth.p
        for module in model.modules()
        if hasattr(module, "stochastic_depth") and getattr(module, "use_res_connect", True)
    ]
    network = cnndsl.load(name)
    rates = [data.attrs["p"] for _, data in ir.layers(network.graph) if data.op == "stochasticdepth"]
    assert rates == skipped and len(rates) > 10


# ---- headers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(library_dir().glob("*.cnn")), ids=lambda path: path.name)
def test_every_file_opens_with_its_paper_and_year(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    text = " ".join(header)
    assert len(header) >= 4, "a header names the paper, what it introduced and any deviation"
    assert re.search(r"\b(19|20)\d\d\b", header[0] + header[1]), "the paper's year comes first"
    assert "Introduced" in text


def test_every_file_passes_check_strict_with_no_warning():
    """A shipped file states what it builds: no inferred projection, no path to nowhere, nothing `--strict` refuses."""
    report = check(sorted(str(path) for path in library_dir().glob("*.cnn")))
    assert [str(warning) for warning in report.warnings] == []
    assert not report.failed(strict=True)


# ---- cnndsl list ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def entries():
    """The library's catalogue, computed once for the tests of `cnndsl list` and the docs page."""
    return catalogue()


def test_list_shows_every_network_with_input_params_and_macs_without_importing_torch(entries):
    code = (
        "import sys\nfrom cnndsl.cli import main\n"
        "try:\n    main(['list'])\nexcept SystemExit as end:\n    assert not end.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines()[1:]}
    assert set(rows) == REQUIRED
    for entry in entries:
        assert rows[entry.name][1:4] == [format_shape(entry.input_shape), f"{entry.params:,}", f"{entry.macs:,}"]
    assert rows["resnet50"][1:] == ["3×224×224", "25,557,032", "4,089,184,256", "resnet.cnn"]


# ---- docs/library.md ---------------------------------------------------------------------------
def _make():
    spec = importlib.util.spec_from_file_location("library_make", ROOT / "docs" / "library" / "make.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_library_lists_every_network_with_its_figures_and_diagram():
    page = (ROOT / "docs" / "library.md").read_text(encoding="utf-8")
    table = {
        cells[0]: cells
        for cells in (
            re.findall(r"\|\s*([^|]*?)\s*(?=\|)", line) for line in page.splitlines() if line.startswith("| [")
        )
    }
    names = {re.match(r"\[(\w+)\]", key).group(1): cells for key, cells in table.items()}
    assert set(names) == REQUIRED
    for name, (params, macs, _) in TORCHVISION.items():
        assert names[name][3:5] == [f"{params:,}", f"{macs:,}"], name
    for name in REQUIRED:
        assert re.search(rf"!\[{name} at depth \d\]\(library/{name}\.svg\)", page), name
        assert "<svg" in (ROOT / "docs" / "library" / f"{name}.svg").read_text(encoding="utf-8")
    # a group that holds nearly the whole network (`features`, `backbone`) is drawn opened
    assert "![resnet50 at depth 1]" in page and "![efficientnet_b0 at depth 2]" in page


def test_docs_library_is_what_make_py_writes_today(entries):
    page = (ROOT / "docs" / "library.md").read_text(encoding="utf-8")
    make = _make()
    assert page == make.markdown(entries, make.diagram_depths(entries)), "run python docs/library/make.py"
