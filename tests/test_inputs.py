"""Networks with several inputs: shapes and figures, the torch module, `--to python`, ONNX, the diagram and
`--input`, each against torch.nn.functional or onnxruntime; serve's analysis; and the located refusals (an
unlabelled or late input, an input in a block, a bare `--input`, train and predict)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cnndsl
from cnndsl.core.errors import CnnDslError

# the two inputs differ in size and `sub` is not symmetric, so inputs fed in the other order show
SIAMESE = """network siamese {
    left: input 3x16x16
    right: input 3x12x12
    @left, embed: conv3x3(8), relu, gap, a: flatten
    @right, shared(@embed), relu, gap, flatten
    sub(@a)
}
"""
# two inputs of different channels: a 1x1 conv of the image, gated by the prompts
GATED = """network gated {
    image: input 3x8x8
    prompts: input 4x8x8
    @image, conv1x1(4), mul(@prompts)
}
"""


def _siamese_reference(state: dict, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    weight, bias = state["conv1.weight"], state["conv1.bias"]

    def embed(x):
        return F.relu(F.conv2d(x, weight, bias, padding=1)).mean((2, 3))

    return embed(right) - embed(left)


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 16, 16, generator=generator), torch.randn(2, 3, 12, 12, generator=generator)


def test_shapes_and_figures_count_both_branches_and_no_input():
    network = cnndsl.parse(SIAMESE)
    assert network.inputs == [("left", (3, 16, 16)), ("right", (3, 12, 12))]
    assert network.params == 8 * 3 * 9 + 8  # one conv, used twice
    assert network.macs == 8 * 3 * 9 * (16 * 16 + 12 * 12)  # a 3x3 conv at each size: C_out·C_in·9·H·W
    summary = network.summary()
    assert str(summary).splitlines()[0] == "siamese  (inputs left 3×16×16, right 3×12×12)"
    assert summary.to_dict()["inputs"] == {"left": [3, 16, 16], "right": [3, 12, 12]}
    assert [row["name"] for row in summary.layers][:1] == ["conv1"]  # neither input is a row of the table
    # activation memory counts the layers' outputs, not the two inputs
    outputs = 4 * (2 * 8 * 16 * 16 + 2 * 8 * 12 * 12 + 2 * 8 + 2 * 8 + 8)
    assert network.totals.memory_bytes == outputs


def test_torch_module_takes_the_inputs_in_order():
    network = cnndsl.parse(SIAMESE)
    module = network.to_torch().eval()
    left, right = _pair()
    with torch.no_grad():
        got = module(left, right)
    torch.testing.assert_close(got, _siamese_reference(module.state_dict(), left, right), rtol=0, atol=1e-6)
    assert got.abs().min() > 0  # `sub` is not symmetric: the inputs swapped would give -got


def test_python_source_defines_forward_of_each_input(tmp_path):
    network = cnndsl.parse(GATED)
    path = tmp_path / "gated.py"
    from cnndsl.backends.torch import write_python

    write_python(network, path)
    text = path.read_text()
    assert "    def forward(self, image, prompts):" in text
    assert "Inputs image 3×8×8, prompts 4×8×8;" in text
    namespace: dict = {}
    exec(compile(text, str(path), "exec"), namespace)  # noqa: S102  (the source just written)
    written = namespace["Gated"]()
    state = network.to_torch().state_dict()
    written.load_state_dict(state)
    image, prompts = torch.randn(2, 3, 8, 8), torch.randn(2, 4, 8, 8)
    expected = F.conv2d(image, state["conv.weight"], state["conv.bias"]) * prompts
    torch.testing.assert_close(written(image, prompts), expected, rtol=0, atol=1e-6)


def test_python_names_of_inputs_that_python_reserves():
    from cnndsl.backends.torch import standalone_source

    text = "network kw {\n    self: input 3x8x8\n    torch: input 3x8x8\n    add(@self), conv1x1(4)\n}\n"
    source = standalone_source(cnndsl.parse(text))
    assert "    def forward(self, x, x1):" in source
    assert "x = x1 + x" in source  # `add(@self)`: the cursor (torch, the second) plus self (the first)


def test_onnx_has_one_graph_input_per_label_and_matches_onnxruntime(tmp_path):
    import onnxruntime as ort

    network = cnndsl.parse(SIAMESE)
    state = network.to_torch().state_dict()
    path = tmp_path / "siamese.onnx"
    network.to_onnx(path, weights=state)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [(each.name, each.shape[1:]) for each in session.get_inputs()] == [
        ("left", [3, 16, 16]),
        ("right", [3, 12, 12]),
    ]
    left, right = _pair()
    got = session.run(None, {"left": left.numpy(), "right": right.numpy()})[0]
    np.testing.assert_allclose(got, _siamese_reference(state, left, right).numpy(), rtol=0, atol=1e-5)


def test_diagram_draws_each_input_at_the_top():
    from cnndsl.backends.graphviz import to_digraph

    source = to_digraph(cnndsl.parse(SIAMESE)).source
    assert "\tinput [label=<left 3×16×16>" in source
    assert "\tinput1 [label=<right 3×12×12>" in source
    assert "\t\tinput\n\t\tinput1\n" in source  # both on the rank of the legend
    assert "\tinput -> n2 " in source and "\tinput1 -> n6 " in source  # each feeds its own conv


def test_block_figure_titles_each_input_with_its_label(tmp_path):
    written = cnndsl.parse(SIAMESE).draw(tmp_path / "siamese.svg", style="blocks")
    svg = written.read_text()
    assert ">left<" in svg and ">right<" in svg  # the boxes of the two inputs, told apart


def test_input_names_the_input_it_replaces(cli, tmp_path):
    path = tmp_path / "siamese.cnn"
    path.write_text(SIAMESE)
    result = cli("summary", path, "--input", "right=3x20x20")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "siamese  (inputs left 3×16×16, right 3×20×20)"
    both = cnndsl.load(path, input={"left": (3, 8, 8), "right": (3, 4, 4)})
    assert both.inputs == [("left", (3, 8, 8)), ("right", (3, 4, 4))]
    assert both.macs == 8 * 3 * 9 * (8 * 8 + 4 * 4)
    assert cnndsl.parse("network one {\n    input 3x8x8, conv1x1(4)\n}\n", input={"input": (3, 5, 5)}).inputs == [
        ("input", (3, 5, 5))
    ]  # an unlabelled input is `input`


@pytest.mark.parametrize(
    "given,message,hint",
    [
        (
            "3x20x20",
            "--input 3x20x20 does not say which of the 2 inputs (left, right) it replaces",
            "name it: --input right=3x20x20",
        ),
        (
            "rigth=3x20x20",
            "--input names `rigth`, which is not an input of `siamese` (its inputs: left, right)",
            "did you mean `right`?",
        ),
    ],
)
def test_input_refuses_what_names_no_input(cli, tmp_path, given, message, hint):
    path = tmp_path / "siamese.cnn"
    path.write_text(SIAMESE)
    result = cli("summary", path, "--input", given)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == f"{path}:1:9: error: {message}"
    assert result.stderr.splitlines()[-1] == f"hint: {hint}"


def test_input_refuses_a_repeated_name(cli):
    result = cli("summary", "lenet5", "--input", "a=3x8x8,a=3x8x8")
    assert result.exit_code == 2
    assert "expected NAME=CxHxW, each name once, like image=3x640x640, got 'a=3x8x8'" in result.stderr


@pytest.mark.parametrize(
    "text,where,message",
    [
        (
            "network a {\n    left: input 3x8x8\n    input 3x8x8\n}\n",
            (3, 5),
            "a network with 2 inputs labels each: the label names it to torch, ONNX and --input",
        ),
        (
            "network a {\n    left: input 3x8x8\n    conv1x1(4)\n    right: input 3x8x8\n}\n",
            (4, 12),
            "a network's inputs are declared before its first layer",
        ),
        (
            "block b {\n    c: input 3x8x8\n}\nnetwork a {\n    left: input 3x8x8\n    b()\n}\n",
            (2, 8),
            "a network's inputs are declared before its first layer",
        ),
    ],
)
def test_misplaced_inputs_are_located_errors(text, where, message):
    with pytest.raises(CnnDslError) as caught:
        cnndsl.parse(text, file="net.cnn")
    assert (caught.value.pos.line, caught.value.pos.column) == where
    assert caught.value.message == message


def test_train_and_predict_refuse_several_inputs_at_the_second(cli, tmp_path):
    path = tmp_path / "gated.cnn"
    path.write_text(GATED)
    (tmp_path / "data").mkdir()
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"")
    for args in (("train", path, tmp_path / "data"), ("predict", path, tmp_path / "x.png", "--weights", weights)):
        result = cli(*args)
        assert result.exit_code == 1
        command = f"cnndsl {args[0]}"
        assert result.stderr.splitlines()[0] == (
            f"{path}:3:14: error: {command} feeds a network one input, and `gated` has 2 (image, prompts)"
        )
        assert (
            result.stderr.splitlines()[-1]
            == "hint: compile it (--to python, onnx or pt2) and feed its inputs from your own code"
        )


def test_serve_analyses_a_network_of_several_inputs(tmp_path):
    """`cnndsl serve` only analyses and draws, so it takes several inputs: its table heads with both."""
    from cnndsl.serve.analysis import Analyser, Request

    analyser = Analyser(tmp_path / "net.cnn", None, None)
    try:
        result = analyser.analyse(Request(SIAMESE))
    finally:
        analyser.close()
    assert result["ok"] and result["params"] == 8 * 3 * 9 + 8
    assert "(inputs left 3×16×16, right 3×12×12)</caption>" in result["table"]
    assert result["svg"].count("right 3×12×12") == 1  # the second input's box
