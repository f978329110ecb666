"""`cnndsl import model.yaml`: Ultralytics' own YAMLs become one .cnn family whose every scale has the
parameters and layer shapes of the model Ultralytics builds from the same file, and whose outputs, given
Ultralytics' weights, are Ultralytics' outputs.

The references are Ultralytics' DetectionModel and ClassificationModel (installed with --no-deps by
scripts/test), built here: on the meta device for the counts and shapes (no weights allocated), on the CPU
with random weights for the outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

import cnndsl
from cnndsl.core.errors import CnnDslError
from cnndsl.graph import ir

torch = pytest.importorskip("torch")
yaml = pytest.importorskip("yaml")
ultralytics = pytest.importorskip("ultralytics", reason="scripts/test installs ultralytics (pip --no-deps)")
from ultralytics.nn.modules.head import Detect  # noqa: E402
from ultralytics.nn.tasks import ClassificationModel, DetectionModel  # noqa: E402
from ultralytics.utils import LOGGER  # noqa: E402

LOGGER.setLevel(50)
MODELS = Path(ultralytics.__file__).parent / "cfg" / "models"

# Every detect and classify YAML shipped with ultralytics; the ones cnndsl expresses are compared at every
# scale, the others must be refused at the row that needs what cnndsl lacks.
IMPORTED = ["v3/yolov3.yaml", "v3/yolov3-spp.yaml", "v5/yolov5.yaml", "v5/yolov5-p6.yaml", "v6/yolov6.yaml",
            "v8/yolov8.yaml", "v8/yolov8-p2.yaml", "v8/yolov8-cls.yaml"]  # fmt: skip
REFUSED = {
    "v3/yolov3-tiny.yaml": (26, "nn.ZeroPad2d (module 11) is zero padding"),
    "11/yolo11.yaml": (30, "C2PSA (module 10) is position-sensitive attention"),
    "11/yolo11-cls.yaml": (29, "C2PSA (module 9) is position-sensitive attention"),
    "11/yolo11-cls-resnet18.yaml": (13, "TorchVision (module 0) is a torchvision model loaded by name"),
    "12/yolo12.yaml": (26, "A2C2f (module 6) is area attention"),
    "12/yolo12-cls.yaml": (26, "A2C2f (module 6) is area attention"),
    "26/yolo26.yaml": (31, "SPPF (module 9) with `n` or `shortcut`"),
    "26/yolo26-cls.yaml": (29, "C2PSA (module 9) is position-sensitive attention"),
    "v10/yolov10n.yaml": (20, "SCDown (module 5) is a module cnndsl does not import"),
    "v9/yolov9t.yaml": (15, "ELAN1 (module 2) is a module cnndsl does not import"),
    "v9/yolov9c.yaml": (15, "RepNCSPELAN4 (module 2) is a module cnndsl does not import"),
    "v8/yolov8-ghost.yaml": (22, "GhostConv (module 1) is a module cnndsl does not import"),
    "v8/yolov8-p6.yaml": (37, "C2 (module 14) is a module cnndsl does not import"),
    "v8/yolov8-cls-resnet50.yaml": (20, "ResNetLayer (module 0) is a module cnndsl does not import"),
    "v8/yolov8-cls-resnet101.yaml": (20, "ResNetLayer (module 0) is a module cnndsl does not import"),
    "v8/yolov8-ghost-p2.yaml": (22, "GhostConv (module 1) is a module cnndsl does not import"),
    "v8/yolov8-ghost-p6.yaml": (22, "GhostConv (module 1) is a module cnndsl does not import"),
    "v9/yolov9s.yaml": (15, "ELAN1 (module 2) is a module cnndsl does not import"),
    "v9/yolov9m.yaml": (15, "RepNCSPELAN4 (module 2) is a module cnndsl does not import"),
    "v9/yolov9e.yaml": (16, "RepNCSPELAN4 (module 3) is a module cnndsl does not import"),
    "26/yolo26-p2.yaml": (31, "SPPF (module 9) with `n` or `shortcut`"),
    "26/yolo26-p6.yaml": (33, "SPPF (module 11) with `n` or `shortcut`"),
    **{f"v10/yolov10{s}.yaml": (20, "SCDown (module 5) is a module cnndsl does not import") for s in "smblx"},
}
OTHER_TASKS = ("seg", "pose", "obb", "world", "rtdetr", "yoloe", "depth", "sem")  # not detect or classify
SIZE = 64  # the input side for the shape comparison: every stride of these models divides it


def network_name(stem: str, scale: str) -> str:
    from cnndsl.importers.ultralytics import _scaled
    from cnndsl.importers.writing import identifier

    return _scaled(identifier(stem), scale) if scale else identifier(stem)


def ultralytics_model(config: dict, scale: str, device: str = "meta"):
    """Ultralytics' own model for the config at `scale`, as `YOLO("yolov8n.yaml")` builds it."""
    config = dict(config, scale=scale)
    model_class = ClassificationModel if config["head"][-1][2] == "Classify" else DetectionModel
    with pytest.MonkeyPatch.context() as patch, torch.device(device):
        if device == "meta":
            patch.setattr(Detect, "bias_init", lambda self: None)  # it reads the stride's values
        return model_class(config, verbose=False)


def row_shapes(model) -> dict[int, tuple]:
    """Each module's output shape (C, H, W) for a SIZE x SIZE input; Detect's, per level, box beside class maps."""
    shapes: dict[int, tuple] = {}
    hooks = [
        module.register_forward_hook(lambda m, a, out, i=i: shapes.__setitem__(i, getattr(out, "shape", None)))
        for i, module in enumerate(model.model)
    ]
    head = model.model[-1]
    if isinstance(head, Detect):
        hooks.append(head.register_forward_pre_hook(lambda m, args: shapes.__setitem__("levels", args[0])))
    model.train()
    model(torch.zeros(2, 3, SIZE, SIZE, device=next(model.parameters()).device))
    for hook in hooks:
        hook.remove()
    found = {i: tuple(shape[1:]) for i, shape in shapes.items() if i != "levels" and shape is not None}
    if "levels" in shapes:
        found[len(model.model) - 1] = [(head.no, *level.shape[2:]) for level in shapes["levels"]]
    return found


def cnn_shapes(net) -> dict[int, tuple]:
    """The shape at each `l<index>` tap, and the Detect levels' shapes under the last index."""
    taps = {layer.tap: layer.shape for _, layer in ir.layers(net.graph) if layer.tap}
    found = {int(tap[1:]): shape for tap, shape in taps.items() if tap[0] == "l" and tap[1:].isdigit()}
    levels = sorted(tap for tap in taps if tap.startswith("level"))
    if levels:
        found[max(found) + 1] = [taps[tap] for tap in levels]
    return found


def test_every_shipped_detect_and_classify_yaml_is_imported_or_refused():
    shipped = {
        str(path.relative_to(MODELS))
        for path in MODELS.glob("*/*.yaml")
        if not any(task in path.stem for task in OTHER_TASKS)
    }
    assert shipped == set(IMPORTED) | set(REFUSED)


@pytest.mark.parametrize("name", IMPORTED)
def test_every_scale_has_ultralytics_params_and_layer_shapes(tmp_path, name):
    text = (MODELS / name).read_text()
    cnn = cnndsl.import_file(MODELS / name)
    config = yaml.safe_load(text)
    for scale in config.get("scales") or [""]:
        model = ultralytics_model(config, scale)
        dfl = sum(p.numel() for key, p in model.named_parameters() if ".dfl." in key)
        net = cnndsl.parse(cnn, name, network=network_name(Path(name).stem, scale), input=(3, SIZE, SIZE))
        # Detect's DFL is a fixed 1x1 conv of reg_max weights that the raw-map import leaves out
        assert net.params == sum(p.numel() for p in model.parameters()) - dfl, scale
        assert dfl == (16 if net.outputs and len(net.outputs) > 1 else 0)
        assert cnn_shapes(net) == row_shapes(model), scale


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_files_cnndsl_cannot_express_are_refused_at_their_row(name):
    line, message = REFUSED[name]
    with pytest.raises(CnnDslError) as refused:
        cnndsl.import_file(MODELS / name)
    assert str(refused.value.pos) == f"{MODELS / name}:{line}:1"
    assert refused.value.message.startswith(message)
