"""`train output @a`: layers that exist (weights, parameters, checkpoints) but that only the training forward
computes. Expected values are hand counts and torch.nn.functional / onnxruntime computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cnndsl
from cnndsl.embed import summary_table

HEADS = """network seg {
    input 3x32x32
    conv3x3(8), f: relu
    gap, logits: fc(10)
    @f
    conv1x1(5), sem: bn
    output @logits
    train output @sem
}
"""
EVAL_ONLY = HEADS.replace("    train output @sem\n", "")  # the same layers, `sem` a path that reaches no output

# by hand: conv3x3 3->8: 8*3*9 + 8; fc 8->10: 8*10 + 10; conv1x1 8->5: 5*8 + 5; bn(5): weight and bias
EVAL_PARAMS = (8 * 3 * 9 + 8) + (8 * 10 + 10)
TRAINING_PARAMS = (5 * 8 + 5) + 2 * 5
EVAL_MACS = 8 * 27 * 32 * 32 + 8 * 10  # the 1x1 convolution's 5*8*32*32 are left out


@pytest.fixture(scope="module")
def net():
    return cnndsl.parse(HEADS)


def _reference(x: torch.Tensor, sd: dict, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The network by torch.nn.functional: the logits, and the training-only head."""
    f = F.relu(F.conv2d(x, sd["conv1.weight"], sd["conv1.bias"], padding=1))
    logits = F.linear(f.mean((2, 3)), sd["fc.weight"], sd["fc.bias"])
    sem = F.conv2d(f, sd["conv2.weight"], sd["conv2.bias"])
    mean, var = sd["bn.running_mean"].clone(), sd["bn.running_var"].clone()
    sem = F.batch_norm(sem, mean, var, sd["bn.weight"], sd["bn.bias"], training=training)
    return logits, sem


def test_params_count_every_layer_while_macs_and_memory_are_the_eval_forward(net):
    assert net.params == EVAL_PARAMS + TRAINING_PARAMS == 369
    assert net.totals.eval_params == EVAL_PARAMS
    assert net.macs == EVAL_MACS
    # float32 outputs of conv, relu (8x32x32 each), gap (8) and fc (10); not the 5x32x32 of conv2 and bn
    assert net.totals.memory_bytes == 4 * (2 * 8 * 32 * 32 + 8 + 10)
    summary = net.summary()
    assert summary.totals["memory_bytes"] == net.totals.memory_bytes
    table = str(summary)
    assert "conv2: conv 1×1, 5 (training only)" in table and "bn: bn (training only)" in table
    assert "relu: relu     " in table  # an eval layer is not marked
    assert f"Params: 369 (1.4 KiB as float32); eval forward: {EVAL_PARAMS} (55 training only)" in table
    assert "Activation memory: 64.1 KiB per image (float32 outputs of every layer the eval forward runs)" in table
    assert "eval forward" not in str(cnndsl.parse(EVAL_ONLY).summary())
    html = summary_table(summary)  # the docs' embedded table and the live page's
    assert '<tr data-layer="conv2"><td style="padding-left:0em">conv2: conv 1×1, 5 (training only)</td>' in html
    assert '<tr data-layer="relu"><td style="padding-left:0em">relu: relu</td>' in html


def test_a_folded_group_keeps_its_training_only_layers_in_a_row_of_their_own():
    """At --depth 0 a block's eval layers fold into one row and its training-only layers into another, so that the
    eval rows add up to the eval forward's totals (by hand: conv3x3 3->4 is 112 params and 4*27*64 MACs; the head's
    conv1x1 4->4 and 4->3 are 20 + 15 params and (4*4 + 3*4)*64 MACs; its training-only conv1x1 4->5, 25 and 5*4*64)."""
    net = cnndsl.parse(
        "block head(c) {\n    x: conv1x1(c)\n    @x, conv1x1(5), aux: relu\n    @x, conv1x1(3)\n}\n"
        "network t {\n    input 3x8x8\n    conv3x3(4)\n    h: head(4)\n    output @h\n    train output @h.aux\n}\n"
    )
    rows = str(net.summary(depth=0)).splitlines()[4:7]
    assert [row.split()[-5:-1] for row in rows] == [
        ["112", f"{4 * 27 * 64:,}", "1", "KiB"],  # 4·4·64 float32 values
        [f"{20 + 15}", f"{(4 * 4 + 3 * 4) * 64:,}", "1.8", "KiB"],  # 4·(4 + 3)·64 values
        ["25", f"{5 * 4 * 64:,}", "2.5", "KiB"],  # 4·(5 + 5)·64 values
    ]
    assert [row.split("  ")[0] for row in rows] == [
        "conv: conv 3×3, 4",
        "head (folded)",
        "head (folded, training only)",
    ]
    assert net.totals.eval_params == 112 + 35 and net.macs == 4 * 27 * 64 + 28 * 64


def test_check_strict_counts_a_train_output_as_reached(net):
    assert net.warnings == []
    (unreached,) = cnndsl.parse(EVAL_ONLY).warnings
    assert "begins a path that reaches no output" in unreached.message


def test_eval_returns_the_eval_outputs_and_train_adds_the_train_outputs_after_them(net):
    module = net.to_torch(seed=0)
    sd = {key: value.clone() for key, value in module.state_dict().items()}
    assert list(sd) == [
        "conv1.weight",
        "conv1.bias",
        "fc.weight",
        "fc.bias",
        "conv2.weight",
        "conv2.bias",
        "bn.weight",
        "bn.bias",
        "bn.running_mean",
        "bn.running_var",
        "bn.num_batches_tracked",
    ]
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        evaluated = module.eval()(x)
        assert "conv2" not in module.code and "bn" not in module.code  # the eval forward does not run them
        expected_logits, _ = _reference(x, sd, training=False)
        torch.testing.assert_close(evaluated, expected_logits, rtol=1e-5, atol=1e-6)
        # today's module (the head a path that reaches no output) gives the same eval output
        today = cnndsl.parse(EVAL_ONLY).to_torch(weights=sd).eval()
        torch.testing.assert_close(today(x), evaluated, rtol=0, atol=0)
        assert torch.equal(module.state_dict()["bn.running_mean"], sd["bn.running_mean"])  # untouched in eval
        logits, sem = module.train()(x)
    expected_logits, expected_sem = _reference(x, sd, training=True)
    torch.testing.assert_close(logits, expected_logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sem, expected_sem, rtol=1e-5, atol=1e-5)
    assert int(module.state_dict()["bn.num_batches_tracked"]) == 1  # the training forward ran the head's BN


def test_weights_load_into_the_training_only_layers(net):
    source = net.to_torch(seed=3).state_dict()
    module = net.to_torch(weights=source)
    assert all(torch.equal(module.state_dict()[key], value) for key, value in source.items())
    assert not torch.equal(net.to_torch(seed=4).state_dict()["conv2.weight"], source["conv2.weight"])


def test_python_source_runs_the_head_under_self_training(net):
    module = net.to_torch(seed=0)
    from cnndsl.backends.torch import standalone_source

    text = standalone_source(net)  # what `cnndsl compile --to python` writes
    assert "        if self.training:\n" in text
    namespace: dict = {}
    exec(compile(text, "<generated>", "exec"), namespace)  # noqa: S102  (the source just generated)
    written = namespace["Seg"]()
    written.load_state_dict(module.state_dict())
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(written.eval()(x), module.eval()(x), rtol=0, atol=0)
        for got, expected in zip(written.train()(x), module.train()(x), strict=True):
            torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_onnx_is_the_eval_forward(net):
    ort = pytest.importorskip("onnxruntime")
    module = net.to_torch(seed=0).eval()
    model = net.to_onnx(weights=module.state_dict())
    assert [tensor.name for tensor in model.graph.initializer] == ["conv1.weight", "conv1.bias", "fc.weight", "fc.bias"]
    assert [output.name for output in model.graph.output] == ["logits"]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    (logits,) = session.run(None, {session.get_inputs()[0].name: x})
    with torch.no_grad():
        np.testing.assert_allclose(logits, module(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6)


def test_the_diagram_draws_the_training_only_layers_dashed(net):
    from cnndsl.backends.graphviz import to_digraph

    dot = to_digraph(net).source
    dashed = [line for line in dot.splitlines() if "rounded,filled,dashed" in line]
    assert len(dashed) == 2 and "conv 1×1, 5" in dashed[0] and "<i>sem:</i> bn" in dashed[1]
    assert 'train_output0 [label=<sem 5×32×32<font color="#555555" point-size="9"> (training only)</font>>' in dot
    assert "-> train_output0" in dot


def test_cnndsl_train_refuses_a_network_with_train_outputs_at_the_head(net):
    from cnndsl.core.errors import ShapeProblem
    from cnndsl.train.prepare import task_of

    with pytest.raises(ShapeProblem) as caught:
        task_of(net, None)
    assert str(caught.value).startswith("<string>:6:22: error: `seg` has a train output, `sem`, for which")


def test_a_copy_keeps_its_training_forward_over_its_own_modules(net):
    import copy

    module = net.to_torch(seed=0)
    copied = copy.deepcopy(module)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        copied.conv2.weight.zero_()  # in the copy alone: the head's map is then constant, normalised to 0
        copied.bn.bias.copy_(torch.arange(5.0))  # so the train output is the norm's bias at every pixel
        _, sem = copied.train()(x)
        torch.testing.assert_close(sem, torch.arange(5.0).view(1, 5, 1, 1).expand(2, 5, 32, 32), rtol=0, atol=1e-4)
        assert module.train()(x)[1].abs().sum() > 1  # the original's head is untouched


def test_a_pickled_module_keeps_its_training_forward_and_its_state_dict(net, tmp_path):
    """torch.save of the whole module, loaded back (weights_only=False: the caller's own file): the same
    state_dict, each tensor once, the eval forward's code, and in training mode the train output."""
    module = net.to_torch(seed=0)
    torch.save(module, tmp_path / "whole.pt")
    loaded = torch.load(tmp_path / "whole.pt", weights_only=False)
    assert list(loaded.state_dict()) == list(module.state_dict())
    assert all(torch.equal(loaded.state_dict()[key], value) for key, value in module.state_dict().items())
    assert loaded.code == module.code and loaded.training == module.training
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        logits, sem = loaded.train()(x)
        reference = _reference(x, module.state_dict(), training=True)
    torch.testing.assert_close(logits, reference[0])
    torch.testing.assert_close(sem, reference[1])


def test_torch_export_is_the_eval_forward(net):
    from cnndsl.backends.torch import export_program

    module = net.to_torch(seed=0)
    program = export_program(net, module)
    calls = [str(node.target) for node in program.graph.nodes if node.op == "call_function"]
    assert calls.count("aten.conv2d.default") == 1 and "aten.batch_norm" not in " ".join(calls)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), module.eval()(x), rtol=0, atol=0)
