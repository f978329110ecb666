"""How much tracing `--to pt2` asks of torch.export, counted before it starts, so that a network whose export
would run past docs/errors.md's 5 s is refused at once, at the layer where the count passes the bound.

torch.export's non-strict trace costs 2 to 4.5 ms of CPU per ATen operator it records (fake tensors and the
symbolic batch; measured under load), saving the program as much again, on top of about 4 s of importing torch
and torch._dynamo and exporting at all (docs/errors.md, "Time and memory"); the operators are counted by
running the forward on the meta device (no values, microseconds each) under a dispatch mode that counts them,
layer by layer. A kind whose traced forward runs more than its shape-only run (nms unrolls max_det rounds,
which a meta run skips) says how many more through `OpKind.traced_steps`.
"""

from __future__ import annotations

import torch
from torch import fx
from torch.utils._python_dispatch import TorchDispatchMode

from ..core.errors import LimitProblem
from ..graph import ir
from ..graph.ir import walk


class _Counting(TorchDispatchMode):
    """Counts every ATen operator dispatched while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


class _PerLayer(fx.Interpreter):
    """Runs the forward graph, adding each IR node's operators to `steps[node]`: an IR node's expression is
    several fx nodes in a row (`x.permute(...)`, its module, `.permute(...)`), the last one marked with its id."""

    def __init__(self, module: fx.GraphModule, counting: _Counting) -> None:
        super().__init__(module)
        self.counting, self.steps, self.counted = counting, {}, 0

    def run_node(self, node: fx.Node):
        result = super().run_node(node)
        owner = node.meta.get("cnndsl_node")
        if owner is not None:
            self.steps[owner] = self.steps.get(owner, 0) + self.counting.count - self.counted
            self.counted = self.counting.count
        return result


def traced_steps(network, meta: fx.GraphModule) -> dict[int, int]:
    """ATen operators each IR node's forward records when traced, by node id: counted on `meta`, the network's
    forward with its modules on the meta device, plus what each kind declares its trace runs beyond that."""
    counting, examples = _Counting(), [torch.empty(2, *shape, device="meta") for _, shape in network.eval_inputs]
    interpreter = _PerLayer(meta.eval(), counting)
    with torch.no_grad(), counting:
        interpreter.run(*examples)
    steps = interpreter.steps
    for node, layer, kind, _, shapes in walk(network.graph):
        extra = kind.traced_steps(layer.attrs, shapes)
        if extra:
            steps[node] = steps.get(node, 0) + extra
    return steps


def require_export_fits(network, meta: fx.GraphModule, limit: int) -> None:
    """A located LimitProblem at the first layer (in data-flow order) where the operators traced pass `limit`."""
    steps, total = traced_steps(network, meta), 0
    for node in sorted(steps):
        total += steps[node]
        if total > limit:
            raise LimitProblem(
                f"exporting this network with torch.export traces more than {limit:,} operators "
                f"({total:,} by this layer, {sum(steps.values()):,} in all), past the 5 s bound of `--to pt2`",
                ir.layer(network.graph, node).pos,
                "compile --to onnx or --to python instead, or raise the bound with --max-nodes",
            )
