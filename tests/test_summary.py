"""The summary answers what torchinfo answers: folded tables, batch and dtype, trainable and buffer counts,
training memory, and JSON that carries the graph. Expected values come from torch, torchvision or by hand."""

from __future__ import annotations

import json

import pytest
import torch
from oracles import torchvision_models

import cnndsl


def test_depth_folds_densenet_to_its_blocks_with_their_sums(cli):
    full = cli("summary", "densenet121").stdout.splitlines()
    folded = cli("summary", "densenet121", "--depth", "1").stdout.splitlines()
    assert len(full) > 500 and len(folded) < 30
    # dense block 1 by hand: six layers, each bn(c) + conv1x1(c -> 128) + bn(128) + conv3x3(128 -> 32), c = 64 + 32i
    block1 = sum(2 * c + c * 128 + 2 * 128 + 128 * 32 * 9 for c in range(64, 64 + 6 * 32, 32))
    (row,) = [line for line in folded if line.strip().startswith("denseblock1 (folded)")]
    assert row.split()[2:4] == ["256×56×56", f"{block1:,}"]
    rule_lines = [index for index, line in enumerate(folded) if set(line) == {"-"}]
    rows = [line.split() for line in folded[rule_lines[1] + 1 : rule_lines[2]] if len(line.split()) >= 5]
    assert sum(int(cells[-5].replace(",", "")) for cells in rows) == 7_978_856  # torchvision's densenet121


def test_depth_applies_to_the_table_only(cli):
    result = cli("summary", "resnet18", "--depth", "1", "--format", "json")
    assert result.exit_code == 2 and "folds the table only" in result.stderr


def test_batch_and_dtype_scale_the_memory_figures():
    net = cnndsl.load("resnet18")
    base, scaled = net.summary(), net.summary(batch=8, dtype="bfloat16")
    assert scaled.totals["memory_bytes"] == base.totals["memory_bytes"] * 8 // 2
    assert scaled.layers[0]["memory_bytes"] == 64 * 112 * 112 * 2 * 8
    assert scaled.totals["param_bytes"] == 11_689_512 * 2
    mib = base.totals["memory_bytes"] * 8 / 2 / 2**20
    assert f"Activation memory: {mib:.1f} MiB for a batch of 8 (bfloat16 outputs of every layer)" in str(scaled)
    with pytest.raises(cnndsl.CnnDslError, match="unknown dtype `int8`"):
        net.summary(dtype="int8")


@pytest.mark.parametrize("name", ["resnet50", "densenet121", "mobilenet_v2"])
def test_trainable_and_buffer_counts_are_torchvisions(name):
    model = getattr(torchvision_models(), name)()
    totals = cnndsl.load(name).summary().totals
    assert totals["trainable_params"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert totals["non_trainable_params"] == sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert totals["buffers"] == sum(b.numel() for b in model.buffers())


def test_the_buffer_total_says_what_the_buffers_hold_and_none_where_there_are_none():
    """Batch norm's running statistics (8 means, 8 variances, one batch count) and the depth head's calibration
    (cal_a, cal_b): the values torch's module holds, each named by what it is."""
    net = cnndsl.parse("network n {\n input 3x8x8\n conv3x3(8), bn, calibrate\n}\n")
    held = {name: tensor.numel() for name, tensor in net.to_torch().named_buffers()}
    assert sum(held.values()) == net.summary().totals["buffers"] == 8 + 8 + 1 + 2
    assert "; buffers: 19 values (76 B, 17 batch-norm running statistics, 2 depth calibration)\n" in str(net.summary())
    assert "; buffers: none\n" in str(cnndsl.load("lenet5").summary())


def _saved_for_backward(module, x) -> int:
    """Bytes autograd keeps for backward, measured: the storages its saved-tensor hooks see, weights left out."""
    weights = {t.untyped_storage().data_ptr() for t in [*module.parameters(), *module.buffers()]}
    kept: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            kept[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        module(x)
    return sum(kept.values())


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "densenet121", "googlenet"])
def test_training_memory_estimate_is_within_35_percent_of_what_autograd_keeps(name):
    """The estimate of activations kept for backward, against a measurement; 35 % is the stated tolerance
    (the estimate ignores what each layer's backward keeps beyond its output, such as a dropout mask)."""
    net = cnndsl.load(name, input=(3, 64, 64))
    batch, params = 2, net.params
    measured = _saved_for_backward(net.to_torch(seed=0).train(), torch.randn(batch, 3, 64, 64))
    sgd = net.summary(batch=batch).totals["training_bytes"]["sgd"]
    estimated = sgd - 2 * 4 * params  # less weights and gradients
    assert 0.65 <= estimated / measured <= 1.35


def test_optimizer_state_in_the_training_estimate_is_what_adam_and_momentum_keep():
    net = cnndsl.load("lenet5")
    module = net.to_torch(seed=0)
    training = net.summary().totals["training_bytes"]
    for optimizer, extra in (
        (torch.optim.Adam(module.parameters()), "adam"),
        (torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9), "sgd-momentum"),
    ):
        module(torch.randn(1, *net.input_shape)).sum().backward()
        optimizer.step()
        kept = sum(
            value.numel() * value.element_size()
            for state in optimizer.state.values()
            for key, value in state.items()
            if key != "step"
        )
        assert training[extra] - training["sgd"] == kept


def test_json_carries_the_graph(cli):
    data = json.loads(cli("summary", "resnet18", "--format", "json").stdout)
    layers = {layer["name"]: layer for layer in data["layers"]}
    # read off library/resnet.cnn: the first basic block adds its body to the stem's output
    assert layers["layer1.basic1.add"]["inputs"] == [
        {"name": "layer1.basic1.bn2", "edge": "sequence"},
        {"name": "stem.maxpool", "edge": "skip"},
    ]
    assert all(
        source["name"] in layers or source["name"] == "input" for layer in data["layers"] for source in layer["inputs"]
    )


@pytest.mark.needs_dot
def test_str_of_a_summary_is_the_table_and_draw_writes_a_diagram(tmp_path, cli):
    net = cnndsl.load("lenet5")
    assert str(net.summary()) == cli("summary", "lenet5").stdout.rstrip("\n")
    path = net.draw(tmp_path / "lenet.svg", depth=1)
    assert path.read_text().lstrip().startswith("<?xml") and "<svg" in path.read_text()
    with pytest.raises(cnndsl.CnnDslError, match="not 'lenet.txt'"):
        net.draw(tmp_path / "lenet.txt")


def test_list_filters_by_pattern(cli):
    names = [line.split()[0] for line in cli("list", "vgg1?").stdout.splitlines()[1:]]
    assert names == ["vgg11", "vgg13", "vgg16", "vgg19"]
    assert {line.split()[0] for line in cli("list", "densenet").stdout.splitlines()[1:]} == {
        "densenet121",
        "densenet161",
        "densenet169",
        "densenet201",
    }
    done = cli("list", "vgg9*")
    assert done.exit_code == 2
    assert done.stderr.splitlines()[-1] == (
        "Error: Invalid value for PATTERN: no library network's name matches 'vgg9*' (`cnndsl list` shows them all)"
    )


def test_every_public_method_has_a_docstring():
    public = [getattr(cnndsl.Network, name) for name in dir(cnndsl.Network) if not name.startswith("_")]
    assert all((member.fget if isinstance(member, property) else member).__doc__ for member in public)
