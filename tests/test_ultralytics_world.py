"""YOLO-World (yolov8-world.yaml, yolov8-worldv2.yaml) imported: the class text Ultralytics' WorldModel holds (`txt_feats`) is the
network's `textembed` buffer, given with the state_dict, and the outputs are WorldModel's eval outputs.

The reference is Ultralytics' own WorldModel (installed with --no-deps by scripts/test) with random weights and
random text embeddings in place of CLIP's; no download."""

from __future__ import annotations

from pathlib import Path

import pytest

import cnndsl
from cnndsl.core.errors import CnnDslError

torch = pytest.importorskip("torch")
yaml = pytest.importorskip("yaml")
pytest.importorskip("ultralytics", reason="scripts/test installs ultralytics (pip --no-deps)")
from test_import_ultralytics import MODELS, SIZE, network_name, randomised, ultralytics_model  # noqa: E402


def world_model(name: str | Path, scale: str = "n", seed: int = 0):
    """WorldModel of the file (a shipped one by its name) at `scale`, randomised, holding random class text."""
    model = randomised(ultralytics_model(yaml.safe_load((MODELS / name).read_text()), scale, "cpu"), seed)
    generator = torch.Generator().manual_seed(seed + 7)
    model.txt_feats = torch.randn(model.txt_feats.shape, generator=generator)
    with torch.no_grad():  # similarities scaled by about e^2, as a trained head's are (its start: 1 / 0.07)
        for key, tensor in model.state_dict().items():
            if key.endswith("logit_scale"):
                tensor.copy_(2 + torch.rand((), generator=generator))
    return model


def imported(tmp_path, name: str | Path, state: dict, scale: str = "n") -> torch.nn.Module:
    """cnndsl's import of the file (a shipped one by its name) at `scale`, with the state's weights and text."""
    torch.save(state, tmp_path / "state.pt")
    text = cnndsl.import_file(MODELS / name, weights=tmp_path / "state.pt", weights_out=tmp_path / "w.safetensors")
    (tmp_path / "net.cnn").write_text(text)
    net = cnndsl.load(str(tmp_path / "net.cnn"), network=network_name(Path(name).stem, scale), input=(3, SIZE, SIZE))
    return net.to_torch(weights=str(tmp_path / "w.safetensors")).eval()


@pytest.mark.parametrize(
    ("name", "scale"), [("v8/yolov8-world.yaml", "n"), ("v8/yolov8-world.yaml", "s"), ("v8/yolov8-worldv2.yaml", "n")]
)
def test_yolo_world_gives_world_models_outputs_for_its_text(tmp_path, name, scale):
    model = world_model(name, scale)
    state = {**model.state_dict(), "txt_feats": model.txt_feats}
    ours = imported(tmp_path, name, state, scale)
    images = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, _ = model(images)
        mine = ours(images)
    assert tuple(mine.shape) == (2, 4 + 80, 64 + 16 + 4)  # boxes and 80 class scores at each anchor
    assert expected[:, 4:].std() > 0.05  # the scores differ between classes and anchors
    torch.testing.assert_close(mine, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    other = torch.randn(model.txt_feats.shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():  # other text: other scores, as WorldModel's
        ours.get_buffer("textembed.txt_feats").copy_(other)
        model.txt_feats = other
        torch.testing.assert_close(ours(images), model(images)[0], rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_a_state_dict_without_the_text_is_refused_with_how_to_add_it(tmp_path):
    name = "v8/yolov8-worldv2.yaml"
    model = world_model(name)
    with pytest.raises(CnnDslError) as refused:
        imported(tmp_path, name, model.state_dict())
    assert "holds no `txt_feats`" in refused.value.message
    assert "state['txt_feats'] = model.txt_feats" in refused.value.message
    state = {**model.state_dict(), "txt_feats": torch.zeros(1, 3, 512)}  # as after set_classes(three names)
    with pytest.raises(CnnDslError) as refused:
        imported(tmp_path, name, state)
    assert refused.value.message.endswith(": its txt_feats hold the text of 3 classes, the file's nc is 80")


@pytest.mark.parametrize("name", ["v8/yolov8-world.yaml", "v8/yolov8-worldv2.yaml"])
def test_imported_yolo_world_exports_to_onnx_and_python_that_compute_the_same(tmp_path, name):
    """The text kinds in ONNX (onnxruntime) and in `--to python`'s class (its buffer and named tensors)."""
    import numpy as np
    import onnxruntime

    from cnndsl.backends.onnx import build_model
    from cnndsl.backends.torch import standalone_source
    from cnndsl.backends.torch_source import class_name

    model = world_model(name)
    ours = imported(tmp_path, name, {**model.state_dict(), "txt_feats": model.txt_feats})
    stem = name.split("/")[1].removesuffix(".yaml")
    net = cnndsl.load(str(tmp_path / "net.cnn"), network=network_name(stem, "n"), input=(3, SIZE, SIZE))
    images = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = ours(images)
    session = onnxruntime.InferenceSession(
        build_model(net, weights=ours).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    (got,) = session.run(None, {net.input_name: images.numpy()})
    assert np.abs(got - expected.numpy()).max() <= 1e-5 * expected.abs().max().item()
    namespace: dict = {}
    exec(compile(standalone_source(net), "generated.py", "exec"), namespace)  # noqa: S102  (our own output)
    rebuilt = namespace[class_name(net.name)]().eval()
    rebuilt.load_state_dict(ours.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(images), expected, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["v8/yolov8-world.yaml", "v8/yolov8-worldv2.yaml"])
def test_imported_yolo_world_has_the_macs_torch_counts_in_world_models_forward(name):
    """MACs against torch's own count of WorldModel's forward (torch.utils.flop_counter: its convolutions and
    matrix products, C2fAttn's, ImagePoolingAttn's and the contrastive heads' included), at 640 pixels."""
    from torch.utils.flop_counter import FlopCounterMode

    model = world_model(name)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 640, 640))
    stem = name.split("/")[1].removesuffix(".yaml")
    net = cnndsl.parse(cnndsl.import_file(MODELS / name), network=network_name(stem, "n"))
    assert net.macs == counter.get_total_flops() // 2  # 5,552,497,664 for v1, 5,343,380,480 for v2


def test_a_pickled_world_checkpoint_is_refused_with_how_to_export_its_state_dict_and_text(tmp_path):
    from cnndsl.core.errors import FileProblem

    name = "v8/yolov8-worldv2.yaml"
    model = world_model(name)
    torch.save({"model": model}, tmp_path / "best.pt")  # as Ultralytics saves it: the whole model pickled
    with pytest.raises(FileProblem) as refused:
        cnndsl.import_file(MODELS / name, weights=tmp_path / "best.pt", weights_out=tmp_path / "w.safetensors")
    assert not (tmp_path / "w.safetensors").exists()
    assert refused.value.hint == (
        'export the state_dict and the class text with Ultralytics once: python -c "import torch; from '
        "ultralytics import YOLO; m = YOLO('best.pt').model.float(); s = m.state_dict(); s['txt_feats'] = "
        "m.txt_feats; torch.save(s, 'best-state.pt')\""
    )
    state = model.float().state_dict()  # what the hint's line saves
    state["txt_feats"] = model.txt_feats
    imported(tmp_path, name, state)


SMALL_WORLD = """nc: 80 # WorldModel builds its placeholder text for 80 classes
scales:
  n: [0.33, 0.25, 1024]
backbone:
  - [-1, 1, Conv, [64, 3, 2]]
  - [-1, 1, Conv, [128, 3, 2]]
  - [-1, 1, Conv, [256, 3, 2]]
head:
  - [-1, 1, C2fAttn, [256, 128, 4]]
  - [[1, 3], 1, WorldDetect, [nc, 512, True]]
"""


def refused(tmp_path, text: str) -> CnnDslError:
    (tmp_path / "world.yaml").write_text(text)
    with pytest.raises(CnnDslError) as refusal:
        cnndsl.import_file(tmp_path / "world.yaml")
    return refusal.value


def test_small_world_file_has_world_models_params(tmp_path):
    (tmp_path / "world.yaml").write_text(SMALL_WORLD)
    net = cnndsl.parse(cnndsl.import_file(tmp_path / "world.yaml"), network="world_n", input=(3, SIZE, SIZE))
    model = ultralytics_model(yaml.safe_load(SMALL_WORLD), "n")
    assert net.params == sum(p.numel() for p in model.parameters())


def test_rows_that_read_an_earlier_module_and_the_pooled_text_give_world_models_outputs(tmp_path):
    """ImagePoolingAttn and a C2fAttn that each read a module other than the row before, the C2fAttn the text
    the pooling updated."""
    text = SMALL_WORLD.replace("head:\n", "head:\n  - [[1, 2], 1, ImagePoolingAttn, [256]]\n")
    text = text.replace("[-1, 1, C2fAttn", "[2, 1, C2fAttn").replace(
        "[[1, 3], 1, WorldDetect", "[[1, 4], 1, WorldDetect"
    )
    (tmp_path / "world.yaml").write_text(text)
    model = world_model(tmp_path / "world.yaml")
    ours = imported(tmp_path, tmp_path / "world.yaml", {**model.state_dict(), "txt_feats": model.txt_feats})
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in model.parameters())
    images = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, _ = model(images)
        mine = ours(images)
    assert expected[:, 4:].std() > 0.05
    torch.testing.assert_close(mine, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


@pytest.mark.parametrize(
    ("row", "replaced", "message"),
    [
        (
            "[256, 128, 4]",
            "[256, 128, 4, 256]",
            "C2fAttn (module 3) with guide channels 256 is not imported: WorldModel holds 512-dim class text",
        ),
        (
            "[nc, 512, True]",
            "[nc, 256, True]",
            "WorldDetect (module 4) with embed 256 is not imported: WorldModel holds 512-dim class text",
        ),
        ("[256, 128, 4]", "[256, 128, 4, 512, False, 1, 0.0]", "C2fAttn (module 3) takes an expansion e in (0, 1]"),
        # 12 heads scale to 3, which do not divide the 32 hidden channels: parse_model raises a ValueError
        ("[256, 128, 4]", "[256, 128, 12]", "C2fAttn (module 3) does not fit in world_n: "),
    ],
)
def test_world_rows_cnndsl_cannot_build_are_refused_at_their_row(tmp_path, row, replaced, message):
    error = refused(tmp_path, SMALL_WORLD.replace(row, replaced))
    line = 1 + SMALL_WORLD.splitlines().index(next(text for text in SMALL_WORLD.splitlines() if row in text))
    assert str(error.pos) == f"{tmp_path / 'world.yaml'}:{line}:1"
    assert error.message.startswith(message)
    if "does not fit" in message:
        assert error.message.endswith("`maxsigmoid` cannot cut 32 channels into 3 heads")
        with pytest.raises(ValueError, match="must be divisible by nh=3"):
            ultralytics_model(yaml.safe_load(SMALL_WORLD.replace(row, replaced)), "n")
