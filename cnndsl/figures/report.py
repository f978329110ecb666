"""The per-layer summary users know from torchinfo and Keras, as table, JSON, CSV or Markdown."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from ..graph import ir
from ..graph.ir import walk
from ..ops import format_shape, numel
from ..ops.tensors import PARAMETER, count
from .costs import DTYPE_BYTES, OPTIMIZER_STATES, saved_activations, scalar, training_bytes

COLUMNS = ("name", "op", "group", "shape", "params", "macs", "memory_bytes", "rf", "jump")


@dataclass
class Summary:
    """A network's figures per layer and in total; `str()` is the table, `render(fmt)` any format.

    Memory figures are for `batch` images of `dtype` values; MACs are per image, as papers give them."""

    network: str
    input: list[int]
    layers: list[dict[str, Any]]
    labels: list[str]
    totals: dict[str, Any]
    depth: int | None = None
    batch: int = 1
    dtype: str = "float32"
    inputs: dict[str, list[int]] | None = None  # every input by name where there are several; `input` is the first
    train_inputs: list[str] | None = None  # the names among `inputs` that only the training forward takes

    @classmethod
    def of(cls, network, depth: int | None = None, batch: int = 1, dtype: str = "float32") -> Summary:
        """The summary of an expanded Network; `depth` folds the table's groups below that level into one row."""
        graph = network.graph
        value_bytes = DTYPE_BYTES[dtype]
        layers, labels, buffers, frozen = [], [], 0, 0
        buffers_hold: dict[str, int] = {}  # what the buffers are -> their values
        inputs, training = ir.network_info(graph).inputs, ir.training_only(graph)
        for node, layer, kind, sources, shapes in walk(graph):
            if node in inputs:
                continue
            if layer.shares is None:  # `shared(@t)` holds no tensors of its own
                held = kind.buffers(layer.attrs, shapes)
                buffers += held
                if held:
                    what = kind.buffers_hold or f"{kind.name} buffers"
                    buffers_hold[what] = buffers_hold.get(what, 0) + held
                frozen += count(kind.tensors(layer.attrs, shapes), PARAMETER, trainable=False)
            figures = layer.figures
            layers.append(
                {
                    "name": layer.name,
                    "op": layer.op,
                    "group": ".".join(layer.group),
                    "shape": list(layer.shape),
                    "params": figures.params,
                    "macs": figures.macs,
                    "memory_bytes": numel(layer.shape) * value_bytes * batch,
                    "rf": scalar(figures.rf),
                    "jump": scalar(figures.jump),
                    "inputs": [_input(graph, source, node) for source in sources],
                }
            )
            labels.append(ir.label(graph, node))
            if kind.data_dependent(layer.attrs):
                layers[-1]["data_dependent"] = kind.data_dependent(layer.attrs)
            if node in training:
                layers[-1]["training_only"] = True  # run only by the training forward (`train output`)
        t = network.totals
        activations = sum(layer["memory_bytes"] for layer in layers if "training_only" not in layer)
        saved = saved_activations(graph)
        totals = {
            "params": t.params,
            "eval_params": t.eval_params,
            "trainable_params": t.params - frozen,
            "non_trainable_params": frozen,
            "buffers": buffers,
            "buffers_hold": buffers_hold,
            "macs": t.macs,
            "flops": t.flops,
            "memory_bytes": activations,
            "param_bytes": t.params * value_bytes,
            "buffer_bytes": buffers * value_bytes,
            "training_bytes": {
                optimizer: training_bytes(saved, t.params, batch, dtype, optimizer) for optimizer in OPTIMIZER_STATES
            },
        }
        several = {name: list(shape) for name, shape in network.inputs} if len(inputs) > 1 else None
        eval_names = {name for name, _ in network.eval_inputs}
        training_inputs = [name for name in several or {} if name not in eval_names] or None
        return cls(
            network.name,
            list(network.input_shape),
            layers,
            labels,
            totals,
            depth,
            batch,
            dtype,
            several,
            training_inputs,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "input": self.input,
            **({"inputs": self.inputs} if self.inputs else {}),
            **({"train_inputs": self.train_inputs} if self.train_inputs else {}),
            "batch": self.batch,
            "dtype": self.dtype,
            "layers": self.layers,
            "totals": self.totals,
        }

    def inputs_text(self) -> str:
        """`input 3×224×224`, or `inputs left 3×16×16, right 3×16×16` where there are several (a `train input`
        marked `(training only)`)."""
        if not self.inputs:
            return f"input {format_shape(self.input)}"
        training = set(self.train_inputs or ())
        return "inputs " + ", ".join(
            f"{name} {format_shape(shape)}{' (training only)' * (name in training)}"
            for name, shape in self.inputs.items()
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for layer in self.layers:
            writer.writerow(
                {
                    **layer,
                    "shape": format_shape(layer["shape"]).replace("×", "x"),
                    "rf": format_axes(layer["rf"]),
                    "jump": format_axes(layer["jump"]),
                }
            )
        return out.getvalue()

    def to_markdown(self) -> str:
        lines = ["| layer | op | output | params | MACs | memory | RF |", "|---|---|---|---:|---:|---:|---:|"]
        for layer, label in zip(self.layers, self.labels):
            lines.append(
                f"| {layer['name']} | {marked_label(layer, label)} | {format_shape(layer['shape'])} | {layer['params']:,} "
                f"| {layer['macs']:,} | {format_bytes(layer['memory_bytes'])} | {format_axes(layer['rf'])} |"
            )
        lines += ["", *(f"- {line}" for line in self._total_lines())]
        return "\n".join(lines)

    def to_table(self) -> str:
        rows = [("Layer", "Output", "Params", "MACs", "Memory", "RF")]
        shown_groups: set[str] = set()
        for row in self._rows():
            parts = row["group"].split(".") if row["group"] else []
            for depth in range(len(parts)):
                path = ".".join(parts[: depth + 1])
                if path not in shown_groups:
                    shown_groups.add(path)
                    rows.append(("  " * depth + parts[depth], "", "", "", "", ""))
            rows.append(
                (
                    "  " * len(parts) + row["title"],
                    format_shape(row["shape"]),
                    f"{row['params']:,}",
                    f"{row['macs']:,}",
                    format_bytes(row["memory_bytes"]),
                    format_axes(row["rf"]),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        text = [f"{self.network}  ({self.inputs_text()})", rule]
        for index, row in enumerate(rows):
            cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
            text.append("  ".join(cells).rstrip())
            if index == 0:
                text.append(rule)
        return "\n".join(text + [rule, *self._total_lines()])

    def _rows(self) -> list[dict[str, Any]]:
        """One row per layer, or with `depth` one per group at that depth: its layers' sums, its last output and RF.
        A group's training-only layers fold into a row of their own, so that the rows of the eval forward add up to
        its totals."""
        rows: list[dict[str, Any]] = []
        folded: dict[tuple[str, bool], dict[str, Any]] = {}
        for layer, label in zip(self.layers, self.labels):
            parts = layer["group"].split(".") if layer["group"] else []
            if self.depth is None or len(parts) <= self.depth:
                rows.append({**layer, "title": f"{layer['name'].rsplit('.', 1)[-1]}: {marked_label(layer, label)}"})
                continue
            key = (".".join(parts[: self.depth + 1]), "training_only" in layer)
            if key not in folded:
                folded[key] = {
                    "group": ".".join(parts[: self.depth]),
                    "title": f"{parts[self.depth]} (folded{', training only' * key[1]})",
                    "params": 0,
                    "macs": 0,
                    "memory_bytes": 0,
                }
                rows.append(folded[key])
            row = folded[key]
            row.update(
                shape=layer["shape"],
                rf=layer["rf"],
                params=row["params"] + layer["params"],
                macs=row["macs"] + layer["macs"],
                memory_bytes=row["memory_bytes"] + layer["memory_bytes"],
            )
        return rows

    def _total_lines(self) -> list[str]:
        t = self.totals
        per = "per image" if self.batch == 1 else f"for a batch of {self.batch}"
        training = t["training_bytes"]
        varying = [
            f"Data-dependent: {row['name']}: {row['data_dependent']}" for row in self.layers if "data_dependent" in row
        ]
        training_only = t["params"] - t["eval_params"]
        eval_forward = f"; eval forward: {t['eval_params']:,} ({training_only:,} training only)" * bool(training_only)
        return [
            *varying,
            f"Params: {t['params']:,} ({format_bytes(t['param_bytes'])} as {self.dtype}){eval_forward}",
            f"MACs: {t['macs']:,} (FLOPs = 2 x MACs = {t['flops']:,})",
            f"Activation memory: {format_bytes(t['memory_bytes'])} {per} ({self.dtype} outputs of every layer"
            f"{' the eval forward runs' * bool(training_only)})",
            f"Trainable params: {t['trainable_params']:,}; non-trainable params: {t['non_trainable_params']:,}; "
            f"buffers: {_buffers(t)}",
            f"Training memory, estimated {per}: {format_bytes(training['sgd'])} with SGD, "
            f"{format_bytes(training['sgd-momentum'])} with SGD-momentum, {format_bytes(training['adam'])} with Adam "
            f"(activations kept for backward + weights + gradients + optimizer state)",
        ]

    def render(self, fmt: str) -> str:
        return {"table": self.to_table, "json": self.to_json, "csv": self.to_csv, "markdown": self.to_markdown}[fmt]()

    def __str__(self) -> str:
        return self.to_table()


def _buffers(totals: dict) -> str:
    """`53,173 values (207.7 KiB, batch-norm running statistics)`; what each holds where they are of several kinds."""
    held = totals["buffers_hold"]
    if not held:
        return "none"
    what = next(iter(held)) if len(held) == 1 else ", ".join(f"{count:,} {what}" for what, count in held.items())
    return f"{totals['buffers']:,} values ({format_bytes(totals['buffer_bytes'])}, {what})"


def marked_label(layer: dict[str, Any], label: str) -> str:
    """A layer's label in the table, marked where only the training forward runs it."""
    return f"{label} (training only)" if layer.get("training_only") else label


def format_axes(value) -> str:
    """A receptive field or jump as reports write it: `7`, or `7x5` where the axes differ; `—` where it has none."""
    if value is None:
        return "—"
    return "x".join(f"{v:g}" for v in value) if isinstance(value, list) else f"{value:g}"


def format_bytes(count: int) -> str:
    """A size in bytes in the largest binary unit it reaches: `512 B`, `1.5 KiB`, `98 MiB`."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.1f} {unit}" if count % size else f"{count // size} {unit}"
    return f"{count} B"


def _input(graph, source: int, node: int) -> dict[str, str]:
    """One input of a layer in the summary: its name (the input's is empty: its kind) and the edge's kind."""
    layer = ir.layer(graph, source)
    return {"name": layer.name or layer.op, "edge": ir.edge(graph, source, node).kind}
