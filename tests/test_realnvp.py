"""`realnvp`: the log-density of 2-D points under Pose26's RealNVP flow model. Expected values from Ultralytics'
own RealNVP (installed with --no-deps by scripts/test) and, for the count, a hand count."""

from __future__ import annotations

import subprocess
import sys

import pytest

import cnndsl
from cnndsl.core.errors import CnnDslError

torch = pytest.importorskip("torch")
block = pytest.importorskip("ultralytics.nn.modules.block", reason="scripts/test installs ultralytics (pip --no-deps)")

FLOW = "network flow {\n    errors: input 2\n    density: realnvp(6, 64)\n}\n"
# 6 scale and 6 translation MLPs, Linear 2-64, 64-64, 64-2 each: weights and biases
PARAMS = 12 * ((2 * 64 + 64) + (64 * 64 + 64) + (64 * 2 + 2))


@pytest.fixture(scope="module")
def ultralytics_flow():
    """Ultralytics' RealNVP with random non-trivial weights (its own init scales them by 0.01)."""
    flow = block.RealNVP()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in flow.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return flow.eval()


def test_realnvp_holds_ultralytics_tensors_and_counts_its_parameters(ultralytics_flow):
    net = cnndsl.parse(FLOW)
    assert net.params == PARAMS == sum(p.numel() for p in ultralytics_flow.parameters()) == 53_784
    assert net.macs == 12 * (2 * 64 + 64 * 64 + 64 * 2)  # per row: the MLPs' multiply-accumulates
    ours = net.to_torch(seed=0).state_dict()
    theirs = ultralytics_flow.state_dict()
    assert [key.removeprefix("realnvp.") for key in ours] == list(theirs)
    for key, value in theirs.items():
        if key in ("loc", "cov", "mask"):  # the buffers a fresh flow starts with
            torch.testing.assert_close(ours[f"realnvp.{key}"], value, rtol=0, atol=0)


def test_realnvp_computes_ultralytics_log_prob_in_torch_python_and_onnx(ultralytics_flow, tmp_path):
    net = cnndsl.parse(FLOW)
    module = net.to_torch(weights={f"realnvp.{key}": value for key, value in ultralytics_flow.state_dict().items()})
    x = torch.randn(40, 2, generator=torch.Generator().manual_seed(1)) * 2
    with torch.no_grad():
        expected = ultralytics_flow.log_prob(x)
        mine = module.eval()(x)
        by_itself = module.realnvp.log_prob(x)
    assert expected.std() > 0.1  # not a flat density
    assert tuple(mine.shape) == (40, 1)
    torch.testing.assert_close(mine[:, 0], expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(by_itself, expected, rtol=1e-5, atol=1e-5)
    from cnndsl.backends.torch import standalone_source

    source = standalone_source(net)  # the class RealNVP written into the file, which needs only torch
    (tmp_path / "flow.py").write_text(source)
    for command in (["check", "--isolated"], ["format", "--isolated", "--check"]):
        done = subprocess.run([sys.executable, "-m", "ruff", *command, str(tmp_path / "flow.py")], capture_output=True)
        assert done.returncode == 0, done.stdout
    assert "        self.realnvp = RealNVP(6, 64)\n" in source and "import ultralytics" not in source
    namespace: dict = {}
    exec(compile(source, "flow.py", "exec"), namespace)  # noqa: S102  (the source just generated)
    written = namespace["Flow"]()
    written.load_state_dict(module.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(written(x)[:, 0], expected, rtol=1e-5, atol=1e-5)
    ort = pytest.importorskip("onnxruntime")
    net.to_onnx(tmp_path / "flow.onnx", weights=module)
    (got,) = ort.InferenceSession(str(tmp_path / "flow.onnx")).run(None, {"errors": x.numpy()})
    torch.testing.assert_close(torch.from_numpy(got)[:, 0], expected, rtol=1e-4, atol=1e-4)


def test_realnvp_reads_rows_of_two():
    with pytest.raises(CnnDslError) as caught:
        cnndsl.parse(FLOW.replace("input 2", "input 3"), file="net.cnn")
    assert (
        str(caught.value).splitlines()[0]
        == "net.cnn:3:14: error: `realnvp` reads rows of 2 values (a point's x and y), not 3"
    )
    assert caught.value.hint == "give it an N×2 tensor: `errors: train input 2`"
