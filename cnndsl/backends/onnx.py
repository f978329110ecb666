"""The ONNX backend: the graph IR written with `onnx.helper`, one emitting rule per layer kind (`OpKind.onnx`).

Nothing is traced: each kind's rule emits its nodes from the attributes and shapes the analysis already
knows. Values are named after IR nodes (`layer1.bottleneck1.conv1`), initializers after the torch backend's
state_dict keys (`layer1.bottleneck1.conv1.weight`), the input and outputs as the .cnn names them; the batch
dimension is dynamic and named `batch`. Fresh or `.safetensors` weights never import torch.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Optional

import numpy as np
import onnx
from onnx import TensorProto, helper

from .. import __version__
from ..atomic import write_atomically
from ..errors import CnnDslError, NameProblem, ValueProblem
from ..ir import input_shapes, inputs_of
from ..ops import REGISTRY, format_shape
from .onnx_fold import fold_batchnorm
from .onnx_weights import Weights, filled, uniform, weights_for

OLDEST_OPSET = 7  # onnxruntime runs nothing older
BATCH = "batch"


def export_onnx(network, path: "str | Path", weights: Any = None, opset: Optional[int] = None,
                fold_bn: bool = False, strict: bool = True) -> Path:
    """Write the network as an ONNX file, whole or not at all."""
    model = build_model(network, weights=weights, opset=opset, fold_bn=fold_bn, strict=strict)
    return write_atomically(path, model.SerializeToString())


def build_model(network, weights: Any = None, opset: Optional[int] = None, fold_bn: bool = False,
                strict: bool = True) -> onnx.ModelProto:
    """The network as an ONNX model: weights from a checkpoint (cnndsl.weights), else fresh."""
    network.require_weights_fit("onnx")  # protobuf holds at most 2 GiB: refuse before drawing the weights
    opset = _checked_opset(opset)
    emitter = Emitter(opset, weights_for(network, weights, strict))
    values = emit_nodes(network, emitter)
    outputs = [emitter.name_output(values[node], name) for name, node in network.outputs]
    nodes = fold_batchnorm(emitter.nodes, emitter.initializers, keep=set(outputs)) if fold_bn else emitter.nodes
    graph = helper.make_graph(
        nodes, network.name,
        [_value_info(network.input_name, network.input_shape)],
        [_value_info(name, network.graph.nodes[node]["shape"]) for name, node in network.outputs],
    )
    imports = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=imports, ir_version=helper.find_min_ir_version_for(imports),
                              producer_name="cnndsl", producer_version=__version__)
    _add_initializers(model.graph, emitter.initializers)
    helper.set_model_props(model, {"source": network.file, "cnndsl_version": __version__,
                                   "input_shape": format_shape(network.input_shape).replace("×", "x")})
    return model


@functools.lru_cache(maxsize=1)
def default_opset() -> int:
    """The newest opset the installed onnxruntime runs (asked by loading a one-node model), or without
    onnxruntime the newest the onnx package knows."""
    newest = onnx.defs.onnx_opset_version()
    try:
        import onnxruntime
    except ImportError:
        return newest
    for opset in range(newest, OLDEST_OPSET - 1, -1):
        try:
            onnxruntime.InferenceSession(_probe(opset).SerializeToString(), providers=["CPUExecutionProvider"])
            return opset
        except Exception:  # onnxruntime's Fail for an opset it does not know
            continue
    return OLDEST_OPSET


def _probe(opset: int) -> onnx.ModelProto:
    info = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1]) for name in ("x", "y")]
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", info[:1], info[1:])
    imports = [helper.make_opsetid("", opset)]
    return helper.make_model(graph, opset_imports=imports, ir_version=helper.find_min_ir_version_for(imports))


def _checked_opset(opset: Optional[int]) -> int:
    if opset is None:
        return default_opset()
    newest = onnx.defs.onnx_opset_version()
    if not OLDEST_OPSET <= opset <= newest:
        raise ValueProblem(f"ONNX opset {opset} is not one this installation can write",
                           hint=f"choose {OLDEST_OPSET} to {newest}, or leave --opset out for {default_opset()}")
    return opset


def emit_nodes(network, emitter: "Emitter") -> dict[int, str]:
    """Each IR node's rule, in node order; returns the value that holds each node's output."""
    graph = network.graph
    output_names = {node: name for name, node in reversed(network.outputs)}
    values = {graph.graph["input"]: network.input_name}
    emitter.used.add(network.input_name)
    for node, data in graph.nodes(data=True):
        if node in values:
            continue
        arguments = [values[source] for source in inputs_of(graph, node)]
        try:
            values[node] = emitter.emit(REGISTRY[data["op"]], data, arguments, input_shapes(graph, node),
                                        output_names.get(node, data["name"]))
        except CnnDslError as error:
            raise error.at(data["pos"])
    return values


def _add_initializers(graph: onnx.GraphProto, arrays: dict[str, np.ndarray]) -> None:
    """Weights straight into the model's graph: through `numpy_helper.from_array` and `make_graph` each would
    be copied twice more, which for VGG's half a gigabyte costs seconds."""
    for name, array in arrays.items():
        tensor = graph.initializer.add()
        tensor.name = name
        tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor.dims.extend(array.shape)
        tensor.raw_data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()  # ONNX is little-endian


def _value_info(name: str, shape: tuple) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH, *shape])


class Emitter:
    """What a kind's `onnx` rule calls to add nodes, weights and constants for the IR node being emitted.

    A rule's last node is renamed after the IR node, so values read like the source; the nodes before
    it are named `<IR node>/<operator>`.
    """

    def __init__(self, opset: int, weights: Weights):
        self.opset = opset
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, np.ndarray] = {}
        self.used: set[str] = set()
        self.scope = ""

    def emit(self, kind, data: dict, arguments: list[str], shapes: list[tuple], name: str) -> str:
        """Run the kind's rule for one IR node and name its result `name`; returns the output value."""
        if name in self.used:
            raise NameProblem(f"two values of the ONNX graph would be called `{name}`",
                              hint="rename the tap or output so that it differs from the layer names")
        self.scope, first = data["name"], len(self.nodes)
        result = kind.onnx(data["attrs"], shapes, arguments, self)
        produced = [node for node in self.nodes[first:] if result in node.output]
        if not produced:
            return result  # the layer passes its input on (dropout, an identity pool)
        if name in self.initializers:
            return result  # the layer is one tensor (layer scale) that holds the name: its output keeps `<name>/Mul`
        produced[0].output[0] = produced[0].name = name
        self.used.add(name)
        return name

    def name_output(self, value: str, name: str) -> str:
        """A graph output called `name`: the value itself, or an Identity where it carries another name."""
        if value != name:
            self.nodes.append(helper.make_node("Identity", [value], [name], name=name))
        return name

    # ---- for the kinds' rules ---------------------------------------------------
    def op(self, op_type: str, inputs: list[str], **attributes: Any) -> str:
        """Add one operator; returns its output value."""
        output = self._fresh(f"{self.scope}/{op_type}")
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attributes))
        return output

    def weight(self, param: str, shape: tuple, bound: Optional[float] = None, fill: Optional[float] = None) -> str:
        """The parameter `<IR node>.<param>` (`<IR node>` for a layer that is one tensor): given, or fresh as
        PyTorch draws it (U(-bound, bound) or `fill`)."""
        name = f"{self.scope}.{param}" if param else self.scope
        self.initializers[name] = self.weights.take(name, shape, uniform(bound) if fill is None else filled(fill))
        self.used.add(name)
        return name

    def skip(self, param: str) -> None:
        """A stored value of this layer that inference does not read."""
        self.weights.skip(f"{self.scope}.{param}")

    def ints(self, label: str, values: Any) -> str:
        return self._constant(label, np.asarray(values, dtype=np.int64))

    def floats(self, label: str, values: Any) -> str:
        return self._constant(label, np.asarray(values, dtype=np.float32))

    def require(self, opset: int, what: str) -> None:
        """Refuse an opset in which this layer cannot be expressed."""
        if self.opset < opset:
            raise ValueProblem(f"{what} needs ONNX opset {opset} or newer, not {self.opset}",
                               hint=f"use --opset {opset} or newer, or leave --opset out")

    def _constant(self, label: str, array: np.ndarray) -> str:
        name = self._fresh(f"{self.scope}/{label}")
        self.initializers[name] = array
        return name

    def _fresh(self, base: str) -> str:
        name, count = base, 1
        while name in self.used:
            count += 1
            name = f"{base}_{count}"
        self.used.add(name)
        return name
