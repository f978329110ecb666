"""`cnndsl import model.yaml`: Ultralytics' own YAMLs become one .cnn family whose every scale has the
parameters and layer shapes of the model Ultralytics builds from the same file, and whose outputs, given
Ultralytics' weights, are Ultralytics' outputs.

The references are Ultralytics' DetectionModel and ClassificationModel (installed with --no-deps by
scripts/test), built here: on the meta device for the counts and shapes (no weights allocated), on the CPU
with random weights for the outputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import cnndsl
from cnndsl.backends.meta_norms import ShapeOnlyNorms
from cnndsl.check import check
from cnndsl.core.errors import CnnDslError, FileProblem
from cnndsl.graph import ir
from cnndsl.importers.ultralytics_yoloe import PROMPTS

torch = pytest.importorskip("torch")
yaml = pytest.importorskip("yaml")
ultralytics = pytest.importorskip("ultralytics", reason="scripts/test installs ultralytics (pip --no-deps)")
from oracles import torchvision_models  # noqa: E402
from ultralytics.nn.modules.head import Detect, RTDETRDecoder, SemanticSegment, YOLOEDetect  # noqa: E402
from ultralytics.nn.tasks import (  # noqa: E402
    ClassificationModel,
    DetectionModel,
    RTDETRDetectionModel,
    SemanticSegmentationModel,
    WorldModel,
    YOLOEModel,
)
from ultralytics.utils import LOGGER  # noqa: E402

LOGGER.setLevel(50)
MODELS = Path(ultralytics.__file__).parent / "cfg" / "models"

# Every YAML shipped with ultralytics, imported and compared at every scale (test_every_scale_...).
IMPORTED = [
    *("v3/yolov3.yaml", "v3/yolov3-tiny.yaml", "v3/yolov3-spp.yaml", "v5/yolov5.yaml", "v5/yolov5-p6.yaml"),
    "v6/yolov6.yaml",
    *(f"v8/yolov8{variant}.yaml" for variant in ("", "-p2", "-p6", "-ghost", "-ghost-p2", "-ghost-p6")),
    *("v8/yolov8-cls.yaml", "v8/yolov8-cls-resnet50.yaml", "v8/yolov8-cls-resnet101.yaml"),
    *(f"v9/yolov9{scale}.yaml" for scale in "tsmce"),
    *(f"v10/yolov10{scale}.yaml" for scale in "nsmblx"),  # PSA and C2fCIB
    *("11/yolo11.yaml", "11/yolo11-cls.yaml", "11/yolo11-cls-resnet18.yaml"),  # C2PSA; a TorchVision row
    *("12/yolo12.yaml", "12/yolo12-cls.yaml"),  # A2C2f
    *("26/yolo26.yaml", "26/yolo26-cls.yaml", "26/yolo26-p2.yaml", "26/yolo26-p6.yaml", "26/yolo26-obb.yaml"),
    *(f"{family}-{task}.yaml" for family in ("v8/yolov8", "11/yolo11", "12/yolo12") for task in ("seg", "pose", "obb")),
    *("v8/yolov8-seg-p6.yaml", "v8/yolov8-pose-p6.yaml", "v9/yolov9c-seg.yaml", "v9/yolov9e-seg.yaml"),
    "v8/yolov8-world.yaml",  # YOLO-World: C2fAttn, ImagePoolingAttn and WorldDetect read the class text
    "v8/yolov8-worldv2.yaml",
    # text and visual prompts (their outputs: test_import_yoloe)
    *(f"{name}{seg}.yaml" for name in ("v8/yoloe-v8", "11/yoloe-11", "26/yoloe-26") for seg in ("", "-seg")),
    *("26/yolo26-seg.yaml", "26/yolo26-pose.yaml", "26/yolo26-sem.yaml"),  # test_import_ultralytics_heads26
    "26/yolo26-depth.yaml",  # its head's eval output: tests/test_import_ultralytics_depth.py
    *(f"rt-detr/rtdetr-{model}.yaml" for model in ("l", "x", "resnet50", "resnet101")),
    "v8/yolov8-rtdetr.yaml",
]
SIZE = 64  # the input side for the shape comparison: every stride of these models divides it


def network_name(stem: str, scale: str) -> str:
    """yolov8 + n: yolov8n; yolov10n (whose one scale is n) + n: yolov10n."""
    from cnndsl.importers.ultralytics import _family, _scaled
    from cnndsl.importers.writing import identifier

    return _scaled(_family(identifier(stem), [scale]), scale) if scale else identifier(stem)


def ultralytics_model(config: dict, scale: str, device: str = "meta"):
    """Ultralytics' own model for the config at `scale`, as `YOLO("yolov8n.yaml")` builds it."""
    config = dict(config, scale=scale)
    classes = {
        "Classify": ClassificationModel,
        "WorldDetect": WorldModel,
        "YOLOEDetect": YOLOEModel,
        "YOLOESegment": YOLOEModel,
        "YOLOESegment26": YOLOEModel,
        "SemanticSegment": SemanticSegmentationModel,
        "RTDETRDecoder": RTDETRDetectionModel,
    }
    model_class = classes.get(config["head"][-1][2], DetectionModel)
    # its constructor runs a forward for the strides; on meta, batch norm by its shape rule (cnndsl.backends.meta_norms)
    with pytest.MonkeyPatch.context() as patch, torch.device(device), ShapeOnlyNorms():
        if any(row[2] == "TorchVision" for row in config["backbone"] + config["head"]):
            models = torchvision_models()  # no weights fetched: the test sets its own
            patch.setattr(models, "get_model", lambda name, weights, get=models.get_model: get(name, weights=None))
        if device == "meta":
            patch.setattr(Detect, "bias_init", lambda self: None)  # it reads the stride's values
            patch.setattr(YOLOEDetect, "bias_init", lambda self: None)
        model = model_class(config, verbose=False)
    if isinstance(model, YOLOEModel):  # the text's classes, then the import's visual prompts, as its head scores them
        model.pe = torch.zeros(1, config["nc"] + PROMPTS, 512, device=device)
    return model


def row_shapes(model) -> dict[int, tuple]:
    """Each module's output shape (C, H, W) for a SIZE x SIZE input; Detect's, per level, box beside class maps."""
    shapes: dict[int, tuple] = {}
    hooks = [
        module.register_forward_hook(lambda m, a, out, i=i: shapes.__setitem__(i, joined_shape(out)))
        for i, module in enumerate(model.model)
    ]
    head = model.model[-1]
    if isinstance(head, Detect):
        hooks.append(head.register_forward_pre_hook(lambda m, args: shapes.__setitem__("levels", args[0])))
    if isinstance(head, RTDETRDecoder):  # every query's box beside its class scores, where the import ends
        hooks.append(head.register_forward_hook(lambda m, args, out: shapes.__setitem__("queries", out[1].shape)))
    model.train()  # the heads' raw maps
    if isinstance(head, SemanticSegment):
        head.eval()  # its logits alone, not beside its training-only aux_head's
    for norm in (module for module in model.modules() if isinstance(module, torch.nn.BatchNorm2d)):
        norm.eval()  # on meta tensors, a training batch norm runs torch's decomposition, several times slower
    with ShapeOnlyNorms():  # and so does one in eval mode: there, norms by their shape rule
        model(torch.zeros(2, 3, SIZE, SIZE, device=next(model.parameters()).device))
    for hook in hooks:
        hook.remove()
    found = {i: tuple(shape[1:]) for i, shape in shapes.items() if i not in ("levels", "queries") and shape is not None}
    for i, module in enumerate(model.model):  # the class text, classes x dims, is held dims x classes x 1
        if type(module).__name__ == "ImagePoolingAttn":
            found[i] = (found[i][1], found[i][0], 1)

    if "queries" in shapes:  # the decoder layers' scores, layers x B x queries x classes
        found[len(model.model) - 1] = (shapes["queries"][2], 4 + shapes["queries"][3])
    if "levels" in shapes:
        levels = [level for level in shapes["levels"] if level.dim() == 4]  # YOLOE's class prompts follow them
        found[len(model.model) - 1] = [(head.no, *level.shape[2:]) for level in levels]
    return found


def joined_shape(out):
    """A module's output shape; CBLinear's parts (a tuple of maps) as the one convolution they were cut from."""
    if isinstance(out, tuple) and out and all(isinstance(part, torch.Tensor) for part in out):
        return (*out[0].shape[:1], sum(part.shape[1] for part in out), *out[0].shape[2:])
    return getattr(out, "shape", None)


def cnn_shapes(net) -> dict[int, tuple]:
    """The shape at each `l<index>` tap, and the Detect levels' shapes under the last index."""
    taps = {layer.tap: layer.shape for _, layer in ir.layers(net.graph) if layer.tap}
    found = {int(tap[1:]): shape for tap, shape in taps.items() if tap[0] == "l" and tap[1:].isdigit()}
    levels = sorted(tap for tap in taps if tap.startswith("level"))
    if levels:
        found[max(found) + 1] = [taps[tap] for tap in levels]
    return found


def test_every_shipped_yaml_is_imported():
    shipped = [str(path.relative_to(MODELS)) for path in MODELS.glob("*/*.yaml")]
    assert sorted(shipped) == sorted(IMPORTED)


def compare_every_scale(path: Path, tmp_path: Path) -> None:
    """The imported family's network at each scale against Ultralytics' model from the same file; the file
    passes `check --strict`."""
    text = path.read_text()
    cnn = cnndsl.import_file(path)
    (tmp_path / "imported.cnn").write_text(cnn)
    report = check([str(tmp_path / "imported.cnn")])
    assert not report.failed(strict=True), [str(d) for d in report.diagnostics]
    config = yaml.safe_load(text)
    for scale in config.get("scales") or [""]:
        model = ultralytics_model(config, scale)
        dfl = sum(p.numel() for key, p in model.named_parameters() if ".dfl." in key)
        yoloe = {"image": (3, SIZE, SIZE), "prompts": (PROMPTS, SIZE // 8, SIZE // 8)}  # YOLOE's two inputs
        shapes = yoloe if "prompts: input" in cnn else (3, SIZE, SIZE)
        net = cnndsl.parse(cnn, str(path), network=network_name(path.stem, scale), input=shapes)
        # Detect's DFL is a fixed 1x1 conv of reg_max weights, which an import ending at the raw maps leaves out
        head = config["head"][-1][2]
        detects = (
            head
            in ("Detect", "v10Detect", "Segment", "Pose", "OBB", "OBB26", "WorldDetect", "Segment26", "Pose26")
            + ("YOLOEDetect", "YOLOESegment")
            and config.get("reg_max", 16) > 1
        )
        assert dfl == (16 if detects else 0)  # reg_max 1 (YOLO26): DFL is nn.Identity
        raw = head in ("OBB", "OBB26")  # raw maps: no kind decodes rotated boxes
        # every parameter, the training-only modules' included (Pose26's RealNVP flow model: on a train input)
        assert net.params == sum(p.numel() for p in model.parameters()) - (dfl if raw else 0), scale
        assert cnn_shapes(net) == row_shapes(model), scale


@pytest.mark.parametrize("name", IMPORTED)
def test_every_scale_has_ultralytics_params_and_layer_shapes(tmp_path, name):
    compare_every_scale(MODELS / name, tmp_path)


def test_c3k2_and_the_depthwise_detect_head_at_every_scale(tmp_path):
    """YOLO11 with a Conv where C2PSA stands: C3k2 in both forms (C3k at scales m, l, x) and the head whose
    class path is depthwise, as parse_model builds them for any file with C3k2."""
    text = (MODELS / "11/yolo11.yaml").read_text()
    assert "  - [-1, 2, C2PSA, [1024]] # 10\n" in text
    (tmp_path / "yolo11.yaml").write_text(text.replace("[-1, 2, C2PSA, [1024]]", "[-1, 1, Conv, [1024, 1, 1]]"))
    compare_every_scale(tmp_path / "yolo11.yaml", tmp_path)
    cnn = cnndsl.import_file(tmp_path / "yolo11.yaml")
    assert "network yolo11m = yolo11(0.5, 1.0, 512, c3k=true)" in cnn
    assert "block detect_level_dw(" in cnn


def randomised(model, seed: int = 0):
    """Ultralytics' model with random non-trivial weights and norm statistics, in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if key.endswith(("running_var", "bn.weight")):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif tensor.dim() > 1:
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * (2 / fan_in) ** 0.5)
            elif ".dfl." not in key:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.2)
    return model.eval()


def imported_with_weights(tmp_path, name: str, model) -> torch.nn.Module:
    """The imported network at `scale`, its weights taken from the model's state_dict through `cnndsl import`."""
    torch.save(model.state_dict(), tmp_path / "state.pt")
    text = cnndsl.import_file(MODELS / name, weights=tmp_path / "state.pt", weights_out=tmp_path / "w.safetensors")
    (tmp_path / "net.cnn").write_text(text)
    scale = "n" if "scales" in yaml.safe_load((MODELS / name).read_text()) else ""
    net = cnndsl.load(str(tmp_path / "net.cnn"), network=network_name(Path(name).stem, scale), input=(3, SIZE, SIZE))
    return net.to_torch(weights=str(tmp_path / "w.safetensors")).eval()


def ultralytics_and_imported(tmp_path: Path, name: str, scale: str = "n", batch: int = 2):
    """(Ultralytics' model of the shipped file at `scale`, randomised; cnndsl's import of it with those weights;
    an image batch)."""
    model = randomised(ultralytics_model(yaml.safe_load((MODELS / name).read_text()), scale, "cpu"))
    images = torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    return model, imported_with_weights(tmp_path, name, model), images


def test_yolov8n_cls_gives_ultralytics_logits(tmp_path):
    name = "v8/yolov8-cls.yaml"
    model, ours, images = ultralytics_and_imported(tmp_path, name)
    with torch.no_grad():
        probabilities, logits = model(images)
        mine = ours(images)
    assert logits.abs().max() > 1  # not a trivially small output
    torch.testing.assert_close(mine, logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(mine.softmax(1), probabilities, rtol=1e-4, atol=1e-5)


def test_yolov8n_gives_ultralytics_outputs(tmp_path):
    name = "v8/yolov8.yaml"
    model, ours, images = ultralytics_and_imported(tmp_path, name)
    with torch.no_grad():
        decoded, _ = model(images)
        mine = ours(images)
    # Ultralytics' eval output: boxes in pixels and class scores for the 84 anchors
    assert tuple(mine.shape) == (2, 84, 64 + 16 + 4)
    assert decoded.std() > 0.1
    torch.testing.assert_close(mine, decoded, rtol=1e-4, atol=1e-4 * decoded.abs().max().item())


# --- refusals -------------------------------------------------------------------------------------
SMALL = """nc: 10
scales:
  n: [0.33, 0.25, 1024]
backbone:
  - [-1, 1, Conv, [64, 3, 2]]
  - [-1, 3, C2f, [64, True]]
head:
  - [-1, 1, Classify, [nc]]
"""


def refusal(tmp_path, text: str) -> CnnDslError:
    path = tmp_path / "model.yaml"
    path.write_text(text)
    with pytest.raises(CnnDslError) as refused:
        cnndsl.import_file(path)
    return refused.value


def test_small_file_imports_as_its_family(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text(SMALL)
    model = ultralytics_model(yaml.safe_load(SMALL), "n")
    net = cnndsl.parse(cnndsl.import_file(path), network="model_n", input=(3, SIZE, SIZE))
    # by hand: Conv 3->16 3x3 (432 + BN 32); C2f with one bottleneck (1x1 16->16: 256 + 32, two 3x3 8->8:
    # 2 x (576 + 16), 1x1 24->16: 384 + 32); Classify (1x1 16->1280: 20,480 + 2,560, fc 1280->10: 12,810)
    assert net.params == sum(p.numel() for p in model.parameters()) == 464 + 1_888 + 23_040 + 12_810


def test_unknown_module_is_refused_at_its_row(tmp_path):
    error = refusal(tmp_path, SMALL.replace("C2f, [64, True]", "C2ff, [64, True]"))
    assert str(error.pos) == f"{tmp_path / 'model.yaml'}:6:1"
    assert error.message == "C2ff (module 1) is a module cnndsl does not import"
    assert "C2f, C2fAttn, C2fCIB, C3, C3Ghost, C3k2" in error.hint


def test_a_transformer_block_is_refused_at_its_row_and_says_why(tmp_path):
    error = refusal(tmp_path, SMALL.replace("C2f, [64, True]", "C3TR, [64, True]"))
    assert str(error.pos) == f"{tmp_path / 'model.yaml'}:6:1"
    assert error.message == "C3TR (module 1) is a transformer block, which cnndsl cannot express"
    assert error.hint == "the import refuses rather than approximate it"


def test_unknown_key_is_refused_at_its_line(tmp_path):
    error = refusal(tmp_path, SMALL.replace("nc: 10", "nc: 10\ndepth_multiplier: 0.5"))
    assert str(error.pos) == f"{tmp_path / 'model.yaml'}:2:1"
    assert error.message == "unknown key `depth_multiplier`: its meaning would be lost"


@pytest.mark.parametrize(
    "scale, message",
    [
        ("n: [-1, -1, -1024]", "scale `n` is `[-1, -1, -1024]`"),  # widths of -8 and a repeat of -1 written
        ("n: [0.33, 0, 1024]", "scale `n` is `[0.33, 0, 1024]`"),
        ("n: [.inf, 0.25, 1024]", "scale `n` is `[inf, 0.25, 1024]`"),
        ("n: [0.33, 0.25, .nan]", "scale `n` is `[0.33, 0.25, nan]`"),
        ("n: [0.33, 0.25, 0.5]", "scale `n` is `[0.33, 0.25, 0.5]`"),
    ],
)
def test_a_scale_without_widths_is_refused_at_the_scales(tmp_path, scale, message):
    error = refusal(tmp_path, SMALL.replace("n: [0.33, 0.25, 1024]", scale))
    assert str(error.pos) == f"{tmp_path / 'model.yaml'}:2:1"
    assert error.message == (
        f"{message}: depth and width must be above 0 and max_channels at least 1, or its layers have no width"
    )
    assert error.hint == "as Ultralytics' own scales, e.g. `n: [0.50, 0.25, 1024]`"


@pytest.mark.parametrize("name", ["n-x", "1", "'n x'"])
def test_a_scale_that_cannot_name_a_network_is_refused_at_the_scales(tmp_path, name):
    error = refusal(tmp_path, SMALL.replace("n: [0.33", f"{name}: [0.33"))
    assert str(error.pos) == f"{tmp_path / 'model.yaml'}:2:1"
    assert error.message == f"scale `{name.strip(chr(39))}` is not a name: letters, digits and `_`"


def test_from_that_is_not_an_earlier_module_is_refused(tmp_path):
    error = refusal(tmp_path, SMALL.replace("[-1, 3, C2f", "[4, 3, C2f"))
    assert str(error.pos) == f"{tmp_path / 'model.yaml'}:6:1"
    assert error.message == "C2f (module 1): `from` 4 is not an earlier module"
    error = refusal(tmp_path, SMALL.replace("[-1, 3, C2f", "[-5, 3, C2f"))
    assert error.message == "C2f (module 1): `from` -5 is not an earlier module"


def test_concat_of_maps_of_different_sizes_is_refused_at_its_row(tmp_path):
    text = SMALL.replace("head:\n", "head:\n  - [[-1, 0], 1, Concat, [1]]\n")
    error = refusal(tmp_path.joinpath(), text.replace("[-1, 3, C2f, [64, True]]", "[-1, 1, Conv, [64, 3, 2]]"))
    assert str(error.pos) == f"{tmp_path / 'model.yaml'}:8:1"
    assert error.message.startswith("Concat (module 2) does not fit in model_n: ")


def test_yaml_anchors_are_refused(tmp_path):
    repeated = "nc: 10\nbackbone: [&row [-1, 1, Conv, [8, 3, 2]], *row, *row]\nhead: []\n"
    error = refusal(tmp_path, repeated)
    assert str(error.pos) == f"{tmp_path / 'model.yaml'}:2:1"
    assert error.message == "the file repeats values by YAML anchors or holds too many of them"


# --- checkpoints ----------------------------------------------------------------------------------
class Payload:
    """A pickle that would run code when loaded: it must never be."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_checkpoint_is_refused_with_how_to_export_its_state_dict(tmp_path):
    model = ultralytics_model(yaml.safe_load(SMALL), "n", "cpu")
    path = tmp_path / "model.yaml"
    path.write_text(SMALL)
    marker = tmp_path / "ran"
    torch.save({"model": model, "payload": Payload(marker)}, tmp_path / "best.pt")  # as Ultralytics saves, plus code
    with pytest.raises(FileProblem) as refused:
        cnndsl.import_file(path, weights=tmp_path / "best.pt", weights_out=tmp_path / "w.safetensors")
    assert not marker.exists()
    assert not (tmp_path / "w.safetensors").exists()
    assert refused.value.message.startswith(
        f"cannot read weights from {tmp_path / 'best.pt'} with torch.load(weights_only=True): "
    )
    assert refused.value.hint == (
        'export the state_dict with Ultralytics once: python -c "import torch; from ultralytics import YOLO; '
        "torch.save(YOLO('best.pt').model.float().state_dict(), 'best-state.pt')\""
    )
    torch.save(model.state_dict(), tmp_path / "best-state.pt")  # what the hint's line writes
    cnndsl.import_file(path, weights=tmp_path / "best-state.pt", weights_out=tmp_path / "w.safetensors")
    assert (tmp_path / "w.safetensors").exists()


def test_state_dict_of_another_scale_is_refused(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text(SMALL.replace("n: [0.33, 0.25, 1024]", "n: [0.33, 0.25, 1024]\n  s: [0.33, 0.5, 1024]"))
    other = ultralytics_model(yaml.safe_load(SMALL.replace("0.25", "0.75")), "n", "cpu")
    torch.save(other.state_dict(), tmp_path / "other.pt")
    with pytest.raises(CnnDslError) as refused:
        cnndsl.import_file(path, weights=tmp_path / "other.pt", weights_out=tmp_path / "w.safetensors")
    assert refused.value.message == f"{tmp_path / 'other.pt'} fits none of the networks of {path}"
    assert refused.value.hint.startswith("model_n: ")
    assert not (tmp_path / "w.safetensors").exists()


# --- the file ---------------------------------------------------------------------------------------
def test_yolov8_is_one_family_of_at_most_70_lines_that_passes_strict_check_and_reimports_identically(tmp_path):
    target = tmp_path / "yolov8.cnn"
    result = subprocess.run(
        [sys.executable, "-m", "cnndsl", "import", str(MODELS / "v8/yolov8.yaml"), "-o", str(target)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    text = target.read_text()
    assert len(text.splitlines()) == 53
    assert "network yolov8(depth=0.33, width=0.25, max_channels=1024, classes=80" in text
    assert text.count("\nnetwork yolov8") == 6  # the family and one network per scale
    assert ", l2: c2f(c128, n3, true)  # modules 0-2\n" in text  # module 2: C2f with its repeats as `n`
    check = subprocess.run(
        [sys.executable, "-m", "cnndsl", "check", "--strict", str(target)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    assert (check.stdout + check.stderr).strip() == "0 errors, 0 warnings in 6 networks of 1 file"
    assert cnndsl.import_file(MODELS / "v8/yolov8.yaml") == text


def test_from_ultralytics_names_the_format_of_another_suffix(cli, tmp_path):
    path = tmp_path / "model.txt"
    path.write_text(SMALL)
    result = cli("import", path, "--from", "ultralytics")
    assert result.exit_code == 0
    assert "network model(depth=0.33, width=0.25, max_channels=1024, classes=10) {" in result.stdout
    assert cli("import", path).exit_code == 1


@pytest.mark.parametrize("name", ["v5/yolov5.yaml", "v8/yolov8-ghost.yaml", "v9/yolov9t.yaml", "11/yolo11.yaml"])
def test_other_families_give_ultralytics_outputs(tmp_path, name):
    """C3 and SPPF (YOLOv5), GhostConv and C3Ghost, YOLOv9's RepConv, ELAN and ADown, and YOLO11's C3k2 and
    C2PSA at scale n (or the one scale), with the state_dict's modules in their forward order."""
    model, ours, images = ultralytics_and_imported(tmp_path, name)
    with torch.no_grad():
        decoded, _ = model(images)
        mine = ours(images)
    torch.testing.assert_close(mine, decoded, rtol=1e-4, atol=1e-4 * decoded.abs().max().item())
