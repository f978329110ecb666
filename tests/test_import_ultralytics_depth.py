"""YOLO26's depth head (Ultralytics' `Depth`, yolo26-depth.yaml), imported: its eval output equals Ultralytics'
DepthModel's at scale n given its state_dict through `cnndsl import`, in torch and in onnxruntime; its MACs are
what torch's FlopCounterMode counts of the eval forward; and the layers it needed (`upsample` with
align_corners, `clamp`, `calibrate`) compute what torch.nn.functional does.

Every scale's parameters and the shape of each module before the head are compared with Ultralytics' in
tests/test_import_ultralytics.py (IMPORTED); the head's eval output shape at every scale here."""

from __future__ import annotations

import pytest

import cnndsl
from cnndsl.core.errors import CnnDslError
from cnndsl.graph import ir
from cnndsl.importers.ultralytics_weights import forward_modules

torch = pytest.importorskip("torch")
yaml = pytest.importorskip("yaml")
pytest.importorskip("ultralytics", reason="scripts/test installs ultralytics (pip --no-deps)")
from test_import_ultralytics import MODELS, SIZE, imported_with_weights, network_name, randomised  # noqa: E402
from ultralytics.nn.tasks import DepthModel  # noqa: E402

NAME = "26/yolo26-depth.yaml"
CONFIG = yaml.safe_load((MODELS / NAME).read_text()) if (MODELS / NAME).is_file() else {}


def depth_model(scale: str, device: str = "meta"):
    with torch.device(device):
        return DepthModel(dict(CONFIG, scale=scale), verbose=False).eval()


@pytest.fixture(scope="module")
def depth_n(tmp_path_factory):
    """(Ultralytics' yolo26n-depth with random weights, the import given its state_dict, two images, the log-depth
    Ultralytics' head computed before its clamp). The last convolution is scaled so that the log-depth reaches
    past both clamp bounds and lies between them elsewhere, and the calibration is not the identity."""
    model = randomised(depth_model("n", "cpu"))
    head = model.model[-1]
    with torch.no_grad():
        head.head[-1].weight.mul_(0.01)
        head.head[-1].bias.fill_(2.5)
        head.cal_a.fill_(0.8)
        head.cal_b.fill_(0.3)
    ours = imported_with_weights(tmp_path_factory.mktemp("depth"), NAME, model)
    images = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    raw = []
    hook = head.head.register_forward_hook(lambda module, args, out: raw.append(out))
    with torch.no_grad():
        expected = model(images)
    hook.remove()
    return ours, images, expected, raw[0]


def test_yolo26n_depth_gives_ultralytics_eval_depth(depth_n):
    ours, images, expected, log_depth = depth_n
    assert (log_depth < -4).any() and (log_depth > 5).any()  # the clamp bites at both ends
    assert ((log_depth > -4) & (log_depth < 5)).float().mean() > 0.3  # and most values pass through it
    with torch.no_grad():
        mine = ours(images)
    assert tuple(mine.shape) == tuple(expected.shape) == (2, 1, SIZE // 4, SIZE // 4)
    torch.testing.assert_close(mine, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    calibrated = torch.exp(0.8 * log_depth.clamp(-4, 5) + 0.3)  # Ultralytics' output is exp(a · clamp + b)
    torch.testing.assert_close(expected, calibrated, rtol=1e-6, atol=0)


def test_yolo26n_depth_exports_to_onnx_with_the_outputs_of_its_torch_module(depth_n, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    ours, images, expected, _ = depth_n
    net = cnndsl.load(str(_written(tmp_path)), network="yolo26n_depth", input=(3, SIZE, SIZE))
    net.to_onnx(tmp_path / "depth.onnx", weights=ours)
    session = ort.InferenceSession(str(tmp_path / "depth.onnx"))
    (got,) = session.run(None, {session.get_inputs()[0].name: images.numpy()})
    with torch.no_grad():
        mine = ours(images)
    for reference in (mine, expected):  # the torch module's, and Ultralytics'
        torch.testing.assert_close(
            torch.from_numpy(got), reference, rtol=1e-4, atol=1e-4 * reference.abs().max().item()
        )


def _written(tmp_path):
    path = tmp_path / "depth.cnn"
    path.write_text(cnndsl.import_file(MODELS / NAME))
    return path


@pytest.mark.parametrize("scale", ["n", "x"])
def test_macs_are_what_flop_counter_mode_counts_of_the_eval_forward(scale):
    """At 640 px: the convolutions, the transposed one (counted over its input, as torch counts it) included."""
    from torch.utils.flop_counter import FlopCounterMode

    model = depth_model(scale)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 640, 640, device="meta"))
    net = cnndsl.parse(cnndsl.import_file(MODELS / NAME), network=network_name("yolo26-depth", scale))
    assert net.macs == counter.get_total_flops() // 2  # 16,256,307,200 at n, 104,618,854,400 at x


def test_every_scale_ends_at_the_eval_depth_map_with_depthmodels_params():
    """DepthModel (not only DetectionModel, as the shape comparison builds it) at each scale, on the meta device."""
    cnn = cnndsl.import_file(MODELS / NAME)
    for scale in CONFIG["scales"]:
        model = depth_model(scale)
        net = cnndsl.parse(cnn, network=network_name("yolo26-depth", scale), input=(3, SIZE, SIZE))
        assert net.params == sum(p.numel() for p in model.parameters()), scale
        with torch.no_grad():
            expected = model(torch.zeros(1, 3, SIZE, SIZE, device="meta"))
        assert (1, *ir.layer(net.graph, net.outputs[0][1]).shape) == tuple(expected.shape), scale


def test_checkpoint_modules_meet_the_layers_in_the_order_depths_forward_runs_them():
    """Depth.forward projects every level, refines from the coarsest level down (refine.1 before refine.0), runs
    its head, then calibrates with its own buffers."""
    state = depth_model("n").state_dict()
    order = [module for module, _ in forward_modules(state) if module.startswith("model.23")]
    assert order == [
        *(f"model.23.proj.{level}.{part}" for level in range(3) for part in ("conv", "bn")),
        *(f"model.23.refine.{level}.{conv}.{part}" for level in (1, 0) for conv in (0, 1) for part in ("conv", "bn")),
        "model.23.head.0.conv",
        "model.23.head.0.bn",
        "model.23.head.1",
        "model.23.head.2.conv",
        "model.23.head.2.bn",
        "model.23.head.3",
        "model.23",
    ]


def test_the_head_is_written_as_depths_forward_reads():
    cnn = cnndsl.import_file(MODELS / NAME)
    assert (
        "    @l16, proj0: conv_bn_silu(256)  # modules 23\n"
        "    @l19, proj1: conv_bn_silu(256)  # modules 23\n"
        "    @l22, proj2: conv_bn_silu(256)  # modules 23\n"
        "    upsample(2, mode=bilinear, align_corners=true), add(@proj1), (conv_bn_silu(256, 3) x 2)  # modules 23\n"
        "    upsample(2, mode=bilinear, align_corners=true), add(@proj0), (conv_bn_silu(256, 3) x 2)  # modules 23\n"
        "    depth_head(256)  # modules 23\n}\n"
    ) in cnn
    assert "    clamp(-4, 5), calibrate, exp\n" in cnn


@pytest.mark.parametrize(
    "row,message",
    [
        (
            "[[16, 19, 22], 1, Depth, [2]]",
            "takes its width c_mid as a whole number from 4 (the head quarters it), not `2`",
        ),
        ("[[16, 19, 22], 1, Depth, []]", "needs at least 1 argument(s)"),  # parse_model passes the channels as c_mid
        ("[[16, 22], 1, Depth, [256]]", "does not fit in yolo26n_depth: cannot add 256×80×80 to 256×40×40"),
    ],
)
def test_a_depth_head_ultralytics_cannot_build_is_refused_at_its_row(tmp_path, row, message):
    """Too narrow to quarter, without its width, or reading levels that are not each twice the next's size."""
    text = (MODELS / NAME).read_text()
    assert "[[16, 19, 22], 1, Depth, [256]]" in text
    (tmp_path / "yolo26-depth.yaml").write_text(text.replace("[[16, 19, 22], 1, Depth, [256]]", row))
    with pytest.raises(CnnDslError) as refused:
        cnndsl.import_file(tmp_path / "yolo26-depth.yaml")
    assert str(refused.value.pos) == f"{tmp_path / 'yolo26-depth.yaml'}:50:1"
    assert refused.value.message == f"Depth (module 23) {message}"


# --- the layers it needed, against torch.nn.functional and onnxruntime ------------------------------------------


def _run_both(tmp_path, body: str, shape: tuple, opset: int | None = None):
    """The network's torch output and onnxruntime's for one random input, with the reference input."""
    ort = pytest.importorskip("onnxruntime")
    net = cnndsl.parse(f"network k {{\n    input {'x'.join(map(str, shape))}\n    {body}\n}}\n")
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        mine = net.to_torch().eval()(x)
    net.to_onnx(tmp_path / "k.onnx", opset=opset)
    session = ort.InferenceSession(str(tmp_path / "k.onnx"))
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    return x, mine, torch.from_numpy(got)


def test_upsample_aligning_corners_is_f_interpolates(tmp_path):
    x, mine, onnx = _run_both(tmp_path, "upsample(3, mode=bilinear, align_corners=true)", (2, 4, 5))
    expected = torch.nn.functional.interpolate(x, scale_factor=3, mode="bilinear", align_corners=True)
    assert tuple(mine.shape) == (2, 2, 12, 15)
    torch.testing.assert_close(mine, expected, rtol=0, atol=0)
    torch.testing.assert_close(onnx, expected, rtol=1e-5, atol=1e-5)
    unaligned = torch.nn.functional.interpolate(x, scale_factor=3, mode="bilinear", align_corners=False)
    assert (expected - unaligned).abs().max() > 0.1  # the option changes the values


@pytest.mark.parametrize(
    "call,low,high,opset",
    [
        ("clamp(-0.5, 0.7)", -0.5, 0.7, None),
        ("clamp(low=-0.5)", -0.5, None, None),
        ("clamp(high=0.7)", None, 0.7, None),
        ("clamp(-0.5, 0.7)", -0.5, 0.7, 10),
        ("clamp(high=0.7)", None, 0.7, 10),
    ],  # opset 10: Clip's bounds as attributes
)
def test_clamp_is_torch_clamp(tmp_path, call, low, high, opset):
    x, mine, onnx = _run_both(tmp_path, call, (3, 4, 4), opset)
    expected = torch.clamp(x, min=low, max=high)
    assert (expected != x).any() and (expected == x).any()
    torch.testing.assert_close(mine, expected, rtol=0, atol=0)
    torch.testing.assert_close(onnx, expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    "call,message,column",
    [
        ("clamp", "`clamp` needs a bound", 5),
        ("clamp(5, -4)", "`clamp`'s low 5 is above its high -4", 5),
        ("upsample(2, align_corners=true)", "`upsample` aligns corners only in bilinear mode", 5),
    ],
)
def test_impossible_bounds_and_corners_are_located_errors(call, message, column):
    with pytest.raises(CnnDslError) as refused:
        cnndsl.parse(f"network k {{\n    input 3x4x4\n    {call}\n}}\n", "k.cnn")
    assert refused.value.message == message
    assert str(refused.value.pos) == f"k.cnn:3:{column}"
