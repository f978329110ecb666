"""`realnvp`: the log-density of 2-D points under a RealNVP flow (Dinh et al., 2017), as Ultralytics' Pose26
holds it (`flow_model`) for its keypoint loss, which reads each matched keypoint's error over its sigma.

One kind, because a coupling's masks and its log-determinant have no readable cnndsl form; its torch module is
flow_torch.RealNVP, whose state_dict is Ultralytics' RealNVP's, and `--to python` writes that class into its file."""

from __future__ import annotations

import math

from ..core.errors import ShapeProblem
from .base import OpKind, register, repeats, whole
from .rtdetr_onnx import Graph
from .tensors import BUFFER, ZEROS, Example, Table, TensorSpec, Uniform


@register
class RealNVPDensity(OpKind):
    """Per row (x, y): log p under `couplings` affine couplings with alternating masks, each a scale and a
    translation MLP 2 -> hidden -> hidden -> 2, over a standard normal."""

    name = "realnvp"
    family = "fc"
    signature = (("couplings", 6), ("hidden", 64))
    doc = "the log-density of each 2-D row under a RealNVP flow (Pose26's flow_model), N×2 -> N×1"
    ranks = (1,)
    example = Example("realnvp(2, 8)", (3, 4, 4), before="gap, fc(2)")  # a point per image

    def resolve(self, attrs, inputs):
        if inputs[0][0] != 2:
            raise ShapeProblem(
                f"`realnvp` reads rows of 2 values (a point's x and y), not {inputs[0][0]}",
                hint="give it an N×2 tensor: `errors: train input 2`",
            )
        return {"couplings": repeats(attrs["couplings"], "couplings"), "hidden": whole(attrs["hidden"], "hidden")}

    def shape(self, attrs, inputs):
        return (1,)

    def tensors(self, attrs, inputs):
        """Ultralytics' state_dict order: the buffers, then every scale MLP, then every translation MLP."""
        couplings, hidden = attrs["couplings"], attrs["hidden"]
        masks = ([0.0, 1.0, 1.0, 0.0] * couplings)[: 2 * couplings]
        held = [
            TensorSpec("loc", (2,), ZEROS, role=BUFFER),
            TensorSpec("cov", (2, 2), Table((1.0, 0.0, 0.0, 1.0)), role=BUFFER),
            TensorSpec("mask", (couplings, 2), Table(tuple(masks)), role=BUFFER),
        ]
        sizes = ((2, hidden), (hidden, hidden), (hidden, 2))
        for path in ("s", "t"):
            for coupling in range(couplings):
                for index, (given, made) in zip((0, 2, 4), sizes, strict=True):
                    prefix = f"{path}.{coupling}.{index}"
                    xavier = Uniform(0.01 * math.sqrt(6 / (given + made)))  # Ultralytics' init_weights, gain 0.01
                    held += [
                        TensorSpec(f"{prefix}.weight", (made, given), xavier),
                        TensorSpec(f"{prefix}.bias", (made,), Uniform(1 / math.sqrt(given))),
                    ]
        return held

    def macs(self, attrs, inputs, output):
        """Per row, each coupling's two MLPs: 2·h + h·h + h·2 multiply-accumulates each (the masks, exp and the
        sums not counted, as an activation's are not)."""
        hidden = attrs["hidden"]
        return attrs["couplings"] * 2 * (hidden * hidden + 4 * hidden)

    def label(self, attrs):
        return f"RealNVP log-density, {attrs['couplings']}×{attrs['hidden']}"

    def torch_module(self, attrs, inputs):
        from .flow_torch import RealNVP

        return RealNVP(attrs["couplings"], attrs["hidden"])

    def onnx(self, attrs, inputs, args, emit):
        """flow_torch.RealNVP.log_prob node for node; the row sums as products with a column of ones."""
        graph = Graph(emit)
        ones, one = emit.floats("ones", [[1.0], [1.0]]), emit.floats("one", 1.0)
        z, spread = args[0], None

        def mlp(x: str, prefix: str) -> str:
            for index in (0, 2):
                x = graph.linear(x, f"{prefix}.{index}.")
                x = graph.op("Mul", x, graph.op("Sigmoid", x))  # SiLU
            return graph.linear(x, f"{prefix}.4.")

        for coupling in reversed(range(attrs["couplings"])):
            row = graph.op("Gather", graph.weight["mask"], emit.ints("row", [coupling]), axis=0)  # 1 × 2
            free = graph.op("Sub", one, row)
            kept = graph.op("Mul", row, z)
            scale = graph.op("Mul", graph.op("Tanh", mlp(kept, f"s.{coupling}")), free)
            shift = graph.op("Mul", mlp(kept, f"t.{coupling}"), free)
            moved = graph.op(
                "Mul", graph.op("Mul", free, graph.op("Sub", z, shift)), graph.op("Exp", graph.op("Neg", scale))
            )
            z = graph.op("Add", moved, kept)
            summed = graph.op("MatMul", scale, ones)
            spread = summed if spread is None else graph.op("Add", spread, summed)
        squares = graph.op("MatMul", graph.op("Mul", z, z), ones)
        prior = graph.op(
            "Sub", graph.op("Mul", squares, emit.floats("half", -0.5)), emit.floats("log2pi", math.log(2 * math.pi))
        )
        return graph.op("Sub", prior, spread)
