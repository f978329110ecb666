"""`errors: train input 2`: an input only the training forward takes (a loss's tensor, as the keypoint errors
Pose26's flow model reads). Expected values are hand counts and torch.nn.functional / onnxruntime computations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import cnndsl
from cnndsl.core.errors import CnnDslError

FLOW = """network flow {
    image: input 3x16x16
    errors: train input 2
    @image, conv3x3(4), f: relu
    @errors
    density: fc(1)
    output @f
    train output @density
}
"""
# by hand: conv3x3 3->4: 4*27 + 4; fc 2->1: 2 + 1 (counted, though only training runs it)
PARAMS = (4 * 27 + 4) + (2 + 1)


@pytest.fixture(scope="module")
def net():
    return cnndsl.parse(FLOW)


def _reference(image: torch.Tensor, errors: torch.Tensor, state: dict) -> tuple[torch.Tensor, torch.Tensor]:
    features = F.relu(F.conv2d(image, state["conv.weight"], state["conv.bias"], padding=1))
    return features, F.linear(errors, state["fc.weight"], state["fc.bias"])


def test_the_eval_forward_takes_the_other_inputs_and_training_takes_the_train_input_last(net):
    assert net.params == PARAMS
    assert net.macs == 4 * 27 * 16 * 16  # the fc on the errors is training only
    assert net.inputs == [("image", (3, 16, 16)), ("errors", (2,))]
    assert net.eval_inputs == [("image", (3, 16, 16))]
    module = net.to_torch(seed=0)
    image, errors = torch.randn(2, 3, 16, 16), torch.randn(5, 2)  # the errors' rows are not the images
    features, density = _reference(image, errors, module.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(module.eval()(image), features)
        module.train()
        given, without = module(image, errors), module(image)
    torch.testing.assert_close(given[0], features)
    torch.testing.assert_close(given[1], density)
    assert tuple(given[1].shape) == (5, 1)
    torch.testing.assert_close(without[0], features)
    assert without[1] is None
    with torch.no_grad():
        torch.testing.assert_close(module.fc(errors), density)  # the layer's module called alone, as a loss would
    assert "fc: fc 1 (training only)" in str(net.summary())
    assert str(net.summary()).splitlines()[0] == "flow  (inputs image 3×16×16, errors 2 (training only))"
    assert net.summary().to_dict()["train_inputs"] == ["errors"]


def test_python_source_takes_the_train_input_as_an_optional_argument(net):
    from cnndsl.backends.torch import standalone_source

    source = standalone_source(net)  # what `cnndsl compile --to python` writes
    assert "    def forward(self, image, errors=None):\n" in source
    assert "            density = None\n            if errors is not None:\n" in source
    namespace: dict = {}
    exec(compile(source, "flow.py", "exec"), namespace)  # noqa: S102  (the source just generated)
    module = namespace["Flow"]()
    module.load_state_dict(net.to_torch(seed=1).state_dict())
    image, errors = torch.randn(2, 3, 16, 16), torch.randn(5, 2)
    features, density = _reference(image, errors, module.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(module.eval()(image), features)
        module.train()
        torch.testing.assert_close(module(image, errors)[1], density)
        assert module(image)[1] is None


def test_onnx_is_the_eval_forward_with_one_input(net, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    module = net.to_torch(seed=2).eval()
    net.to_onnx(tmp_path / "flow.onnx", weights=module)
    session = ort.InferenceSession(str(tmp_path / "flow.onnx"))
    assert [given.name for given in session.get_inputs()] == ["image"]
    image = torch.randn(2, 3, 16, 16)
    (got,) = session.run(None, {"image": image.numpy()})
    torch.testing.assert_close(torch.from_numpy(got), module(image), rtol=1e-5, atol=1e-5)


def test_a_bare_input_shape_is_the_eval_input_and_a_named_one_may_be_the_train_input():
    bigger = cnndsl.parse(FLOW, input=(3, 32, 32))
    assert bigger.inputs == [("image", (3, 32, 32)), ("errors", (2,))]
    named = cnndsl.parse(FLOW, input={"errors": (4,)})
    assert named.inputs == [("image", (3, 16, 16)), ("errors", (4,))]
    assert named.params == (4 * 27 + 4) + (4 + 1)


def test_the_eval_forward_may_not_read_a_train_input():
    bad = """network flow {
    image: input 3x16x16
    errors: train input 2
    @errors, scores: fc(10)
    @image, conv3x3(4), f: relu
    output @scores
    train output @f
}
"""
    with pytest.raises(CnnDslError) as caught:
        cnndsl.parse(bad, file="net.cnn")
    assert str(caught.value).splitlines()[0] == (
        "net.cnn:4:22: error: `errors` is a `train input`, yet `fc` reads it in the eval forward"
    )
    assert caught.value.hint == "read a train input only on the way to a `train output`, or declare it `input`"


def test_a_copy_takes_the_train_input_or_leaves_it_out_as_the_original(net):
    import copy

    module = copy.deepcopy(net.to_torch(seed=3)).train()
    image, errors = torch.randn(1, 3, 16, 16), torch.randn(3, 2)
    with torch.no_grad():
        torch.testing.assert_close(module(image, errors)[1], _reference(image, errors, module.state_dict())[1])
        assert module(image)[1] is None


def test_a_pickled_module_takes_the_train_input_or_leaves_it_out_as_the_original(net):
    import pickle

    module = pickle.loads(pickle.dumps(net.to_torch(seed=3))).train()
    assert list(module.state_dict()) == list(net.to_torch(seed=3).state_dict())
    image, errors = torch.randn(1, 3, 16, 16), torch.randn(3, 2)
    with torch.no_grad():
        torch.testing.assert_close(module(image, errors)[1], _reference(image, errors, module.state_dict())[1])
        assert module(image)[1] is None


def test_the_diagram_marks_the_train_input_as_the_layers_only_training_runs(net):
    from cnndsl.backends.graphviz import to_digraph

    dot = to_digraph(net).source.splitlines()
    assert '\tinput [label=<image 3×16×16> color="#333333" fillcolor="#ffffff" shape=plain style=""]' in dot
    assert (
        '\tinput1 [label=<errors 2<font color="#555555" point-size="9"> (training only)</font>> '
        'color="#333333" fillcolor="#ffffff" shape=plain style=""]'
    ) in dot
    dashed = [line for line in dot if "rounded,filled,dashed" in line]
    assert len(dashed) == 1 and "fc 1" in dashed[0]  # the layer on the errors, as a train output's
