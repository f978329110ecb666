"""The per-layer summary users know from torchinfo and Keras, as table, JSON, CSV or Markdown."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from .analysis import scalar
from .ops import REGISTRY, format_shape

COLUMNS = ("name", "op", "group", "shape", "params", "macs", "memory_bytes", "rf", "jump")


@dataclass
class Summary:
    network: str
    input: list[int]
    layers: list[dict[str, Any]]
    labels: list[str]
    totals: dict[str, int]

    @classmethod
    def of(cls, network) -> "Summary":
        graph = network.graph
        layers, labels = [], []
        for node in sorted(graph.nodes):
            data = graph.nodes[node]
            if data["op"] == "input":
                continue
            layers.append({
                "name": data["name"], "op": data["op"], "group": ".".join(data["group"]),
                "shape": list(data["shape"]), "params": data["params"], "macs": data["macs"],
                "memory_bytes": data["memory_bytes"], "rf": scalar(data["rf"]), "jump": scalar(data["jump"]),
            })
            labels.append(REGISTRY[data["op"]].label(data["attrs"]))
        t = network.totals
        totals = {"params": t.params, "macs": t.macs, "flops": t.flops, "memory_bytes": t.memory_bytes,
                  "param_bytes": t.param_bytes}
        return cls(network.name, list(network.input_shape), layers, labels, totals)

    def to_dict(self) -> dict[str, Any]:
        return {"network": self.network, "input": self.input, "layers": self.layers, "totals": self.totals}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for layer in self.layers:
            writer.writerow({**layer, "shape": format_shape(layer["shape"]).replace("×", "x"),
                             "rf": _axes(layer["rf"]), "jump": _axes(layer["jump"])})
        return out.getvalue()

    def to_markdown(self) -> str:
        lines = ["| layer | op | output | params | MACs | memory | RF |", "|---|---|---|---:|---:|---:|---:|"]
        for layer, label in zip(self.layers, self.labels):
            lines.append(f"| {layer['name']} | {label} | {format_shape(layer['shape'])} | {layer['params']:,} "
                         f"| {layer['macs']:,} | {_bytes(layer['memory_bytes'])} | {_axes(layer['rf'])} |")
        lines += ["", *(f"- {line}" for line in self._total_lines())]
        return "\n".join(lines)

    def to_table(self) -> str:
        rows = [("Layer", "Output", "Params", "MACs", "Memory", "RF")]
        shown_groups: set[str] = set()
        for layer, label in zip(self.layers, self.labels):
            parts = layer["group"].split(".") if layer["group"] else []
            for depth in range(len(parts)):
                path = ".".join(parts[: depth + 1])
                if path not in shown_groups:
                    shown_groups.add(path)
                    rows.append(("  " * depth + parts[depth], "", "", "", "", ""))
            leaf = layer["name"].rsplit(".", 1)[-1]
            rows.append(("  " * len(parts) + f"{leaf}: {label}", format_shape(layer["shape"]), f"{layer['params']:,}",
                         f"{layer['macs']:,}", _bytes(layer["memory_bytes"]), _axes(layer["rf"])))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        text = [f"{self.network}  (input {format_shape(self.input)})", rule]
        for index, row in enumerate(rows):
            cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
            text.append("  ".join(cells).rstrip())
            if index == 0:
                text.append(rule)
        return "\n".join(text + [rule, *self._total_lines()])

    def _total_lines(self) -> list[str]:
        t = self.totals
        return [
            f"Params: {t['params']:,} ({_bytes(t['param_bytes'])} as float32)",
            f"MACs: {t['macs']:,} (FLOPs = 2 x MACs = {t['flops']:,})",
            f"Activation memory: {_bytes(t['memory_bytes'])} per image (float32 outputs of every layer)",
        ]

    def render(self, fmt: str) -> str:
        return {"table": self.to_table, "json": self.to_json, "csv": self.to_csv, "markdown": self.to_markdown}[fmt]()

    def __str__(self) -> str:
        return self.to_table()


def _axes(value) -> str:
    return "x".join(f"{v:g}" for v in value) if isinstance(value, list) else f"{value:g}"


def _bytes(count: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.1f} {unit}" if count % size else f"{count // size} {unit}"
    return f"{count} B"
