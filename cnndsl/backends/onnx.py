"""The ONNX backend: the graph IR written with `onnx.helper`, one emitting rule per layer kind (`OpKind.onnx`).

Nothing is traced: each kind's rule emits its nodes from the attributes and shapes the analysis already
knows. Values are named after IR nodes (`layer1.bottleneck1.conv1`), initializers after the torch backend's
state_dict keys (`layer1.bottleneck1.conv1.weight`), the input and outputs as the .cnn names them; the batch
dimension is dynamic and named `batch`. Fresh or `.safetensors` weights never import torch.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import EncodeError
from onnx import TensorProto, external_data_helper, helper

from ..core.atomic import write_atomically, write_together
from ..core.errors import CnnDslError, LimitProblem, NameProblem, ValueProblem
from ..core.resources import memory_bytes
from ..core.source_map import origin, source_name
from ..core.version import __version__
from ..figures.report import format_bytes
from ..graph import ir
from ..graph.ir import walk
from ..ops import format_shape
from .onnx_fold import fold_batchnorm
from .onnx_tensors import Pending, memory_for, ready, serialized_size
from .onnx_weights import Weights, weights_for

OLDEST_OPSET = 7  # onnxruntime runs nothing older
BATCH = "batch"
ONNX_BYTES = 2**31  # protobuf serializes a message only while it is smaller than 2 GiB
EXTERNAL_BYTES = 1024  # with external data, smaller tensors stay in the model (onnx.save_model's default)
ALIGNMENT = 4096  # external tensors start at page boundaries, so that a runtime may map them from the file


def export_onnx(
    network,
    path: str | Path,
    weights: Any = None,
    opset: int | None = None,
    fold_bn: bool = False,
    strict: bool = True,
    external_data: bool | None = None,
    seed: int | None = None,
) -> list[Path]:
    """Write the network as an ONNX file, whole or not at all; returns the files written. With external data
    (forced, or by default where one file cannot hold the model) the tensors go to `<file>.data` beside it,
    and the two are written as a pair. Without weights they are drawn at random, from `seed` where given."""
    path = Path(path)
    data = external_data_path(path)
    model, emitter = _planned_model(network, weights, opset, fold_bn, strict, seed)
    if not _choose_storage(network, model, emitter.initializers, external_data, path.parent):
        _fill_initializers(model.graph, emitter)
        return [write_atomically(path, _serialized(network, model))]
    return write_together([path, data], lambda folder: _write_external(model, emitter, folder / path.name, data.name))


def build_model(
    network,
    weights: Any = None,
    opset: int | None = None,
    fold_bn: bool = False,
    strict: bool = True,
    external_data: bool | None = None,
) -> onnx.ModelProto:
    """The network as an ONNX model: weights from a checkpoint (cnndsl.weights), else fresh.

    With external data (True; None: where one protobuf cannot hold the model) every tensor of 1 KiB or more is
    marked to be saved in `<network>.onnx.data` and still holds its bytes, so that `onnx.save_model(model, path)`
    writes the pair. The size is checked before any tensor is made: under 2 GiB in one protobuf, else at
    most half of this machine's memory.
    """
    model, emitter = _planned_model(network, weights, opset, fold_bn, strict)
    external = _choose_storage(network, model, emitter.initializers, external_data, None)
    large = {name for name, tensor in emitter.initializers.items() if tensor.nbytes >= EXTERNAL_BYTES}
    _fill_initializers(model.graph, emitter)
    for tensor in model.graph.initializer:
        if external and tensor.name in large:
            external_data_helper.set_external_data(tensor, f"{network.name}.onnx.data")
    return model


def _serialized(network, model: onnx.ModelProto) -> bytes:
    """The model's bytes; protobuf failing to allocate them is a LimitProblem, not a traceback."""
    try:
        return model.SerializeToString()
    except (MemoryError, EncodeError):
        raise LimitProblem(
            f"not enough memory to serialize the ONNX model of `{network.name}` "
            f"({sum(len(tensor.raw_data) for tensor in model.graph.initializer):,} bytes of tensors)",
            hint="give cnndsl more memory, or write the weights beside the model with --external-data",
        ) from None


def external_data_path(path: Path) -> Path:
    """Where the tensors of the ONNX file `path` go when they are written beside it."""
    return path.with_name(path.name + ".data")


def _planned_model(
    network, weights: Any, opset: int | None, fold_bn: bool, strict: bool = True, seed: int | None = None
) -> tuple[onnx.ModelProto, Emitter]:
    """The model with every node, its initializers declared but not yet made (they wait in the emitter)."""
    opset = _checked_opset(opset) if opset is not None else min(default_opset(), _newest_run(network))
    emitter = Emitter(opset, weights_for(network, weights, strict, seed))
    values = emit_nodes(network, emitter)
    outputs = [emitter.name_output(values[node], name, _origin(network, node)) for name, node in network.outputs]
    nodes = fold_batchnorm(emitter.nodes, emitter.initializers, keep=set(outputs)) if fold_bn else emitter.nodes
    graph = helper.make_graph(
        nodes,
        network.name,
        [_value_info(name, shape) for name, shape in network.eval_inputs],
        [_value_info(name, ir.layer(network.graph, node).shape) for name, node in network.outputs],
        value_info=_layer_values(network, values, nodes, set(outputs)),
    )
    imports = [helper.make_opsetid("", opset)]
    model = helper.make_model(
        graph,
        opset_imports=imports,
        ir_version=helper.find_min_ir_version_for(imports),
        producer_name="cnndsl",
        producer_version=__version__,
    )
    helper.set_model_props(
        model,
        {
            "source": source_name(network.file, network.file),
            "cnndsl_version": __version__,
            "input_shape": ", ".join(
                (f"{name}=" if len(network.eval_inputs) > 1 else "") + format_shape(shape).replace("×", "x")
                for name, shape in network.eval_inputs
            ),
        },
    )
    for name, tensor in emitter.initializers.items():
        proto = model.graph.initializer.add()
        proto.name = name
        proto.data_type = helper.np_dtype_to_tensor_dtype(np.dtype(tensor.dtype))
        proto.dims.extend(tensor.shape)
    return model, emitter


def _choose_storage(
    network, model: onnx.ModelProto, pending: dict[str, Pending], external_data: bool | None, folder: Path | None
) -> bool:
    """Whether the tensors go to external data; a model that cannot be built is refused before any tensor is
    made, pointing at the layer with the largest tensor."""
    size = serialized_size(model, pending)
    largest = max(pending.values(), key=lambda tensor: tensor.nbytes, default=None)
    where, hint = (largest.pos, "the largest tensor is made here: check its size") if largest else (None, None)
    external = size >= ONNX_BYTES if external_data is None else external_data
    if not external and size >= ONNX_BYTES:
        raise LimitProblem(
            f"`{network.name}` makes an ONNX model of {size:,} bytes, more than one ONNX file holds "
            f"(protobuf's limit: under {ONNX_BYTES:,} bytes, 2 GiB)",
            where,
            f"{hint}, or let the weights go to a separate file (external_data=True)",
        )
    tensors, memory = sum(tensor.nbytes for tensor in pending.values()), memory_bytes() // 2
    if tensors > memory:
        raise LimitProblem(
            f"`{network.name}` makes ONNX tensors of {tensors / 2**30:,.1f} GiB, more than half of "
            f"this machine's memory holds ({memory / 2**30:,.1f} GiB)",
            where,
            hint,
        )
    if folder is not None and folder.is_dir() and (free := shutil.disk_usage(folder).free) < size:
        raise LimitProblem(
            f"`{network.name}` makes an ONNX model of {format_bytes(size)}, more than the {format_bytes(free)} "
            f"free in {folder}",
            where,
            hint,
        )
    return external


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


def _newest_run(network) -> int:
    """The newest opset at which onnxruntime runs every layer of the network (OpKind.onnx_newest)."""
    return min([kind.onnx_newest for _, _, kind, _, _ in walk(network.graph) if kind.onnx_newest] or [10**6])


def _probe(opset: int) -> onnx.ModelProto:
    info = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1]) for name in ("x", "y")]
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", info[:1], info[1:])
    imports = [helper.make_opsetid("", opset)]
    return helper.make_model(graph, opset_imports=imports, ir_version=helper.find_min_ir_version_for(imports))


def _checked_opset(opset: int | None) -> int:
    if opset is None:
        return default_opset()
    newest = onnx.defs.onnx_opset_version()
    if not OLDEST_OPSET <= opset <= newest:
        raise ValueProblem(
            f"ONNX opset {opset} is not one this installation can write",
            hint=f"choose {OLDEST_OPSET} to {newest}, or leave --opset out for {default_opset()}",
        )
    return opset


def emit_nodes(network, emitter: Emitter) -> dict[int, str]:
    """Each IR node's rule, in node order; returns the value that holds each node's output. The model is the
    eval forward: the layers only `train output`s need are left out, as are their tensors."""
    graph = network.graph
    output_names = {node: name for name, node in reversed(network.outputs)}
    values = {node: name for node, (name, _) in zip(ir.eval_inputs(graph), network.eval_inputs)}
    emitter.used.update(values.values())
    training = ir.training_only(graph)
    for node, layer, kind, sources, shapes in walk(graph):
        if node in values or node in training:
            continue
        arguments = [values[source] for source in sources]
        try:
            owner = None if layer.shares is None else ir.layer(graph, layer.shares).name
            values[node] = emitter.emit(
                kind, layer, arguments, shapes, output_names.get(node, layer.name), _origin(network, node), owner
            )
        except CnnDslError as error:
            raise error.at(layer.pos)
    return values


def _origin(network, node: int) -> str:
    """Where the node's layer is written, as each ONNX node's doc_string says it."""
    layer = ir.layer(network.graph, node)
    return origin(layer.pos, layer.group, network.file)


def _fill_initializers(graph: onnx.GraphProto, emitter: Emitter) -> None:
    """Make each tensor in turn and move its bytes straight into the model (through `numpy_helper.from_array`
    each would be copied twice more, which for VGG's half a gigabyte costs seconds); the recipe is dropped
    as soon as it is used, so the model's weights are held about once."""
    for proto in graph.initializer:
        with memory_for(proto.name, emitter.initializers[proto.name]):
            proto.raw_data = _little_endian(emitter.initializers.pop(proto.name).array()).tobytes()


def _write_external(model: onnx.ModelProto, emitter: Emitter, path: Path, location: str) -> None:
    """The model at `path` and its tensors of EXTERNAL_BYTES or more in `location` beside it, each written
    straight from its array (no copy of the weights is made) at an offset aligned to ALIGNMENT."""
    with open(path.parent / location, "wb") as stream:
        for proto in model.graph.initializer:
            with memory_for(proto.name, emitter.initializers[proto.name]):
                array = _little_endian(emitter.initializers.pop(proto.name).array())
            if array.nbytes < EXTERNAL_BYTES:
                proto.raw_data = array.tobytes()
                continue
            offset = -(-stream.tell() // ALIGNMENT) * ALIGNMENT
            stream.seek(offset)
            stream.write(np.ascontiguousarray(array).data)
            proto.raw_data = b""  # onnx's set_external_data marks only a tensor that has data
            external_data_helper.set_external_data(proto, location, offset, array.nbytes)
            proto.ClearField("raw_data")
    path.write_bytes(model.SerializeToString())


def _little_endian(array: np.ndarray) -> np.ndarray:
    return array.astype(array.dtype.newbyteorder("<"), copy=False)  # ONNX stores tensors little-endian


def _layer_values(network, values: dict[int, str], nodes: list, outputs: set[str]) -> list[onnx.ValueInfoProto]:
    """Each layer's output with its analysed shape and the batch's name, so that a viewer (Netron) shows the
    summary's shapes on the graph's edges without inferring them; the outputs are declared already."""
    made = {value for node in nodes for value in node.output}
    shapes = {value: ir.layer(network.graph, node).shape for node, value in values.items()}  # dropout's is its input's
    return [_value_info(value, shape) for value, shape in shapes.items() if value in made and value not in outputs]


def _value_info(name: str, shape: tuple) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH, *shape])


class Emitter:
    """What a kind's `onnx` rule calls to add nodes, weights and constants for the IR node being emitted.

    A rule's last node is renamed after the IR node, so values read like the source; the nodes before
    it are named `<IR node>/<operator>`.
    """

    def __init__(self, opset: int, weights: Weights):
        self.opset = opset
        self.supply = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, Pending] = {}
        self.used: set[str] = set()
        self.scope, self.pos, self.declared = "", None, []
        self.weight_scope = ""

    def emit(
        self,
        kind,
        layer: ir.Layer,
        arguments: list[str],
        shapes: list[tuple],
        name: str,
        source: str,
        owner: str | None = None,
    ) -> str:
        """Run the kind's rule for one IR node and name its result `name`; returns the output value. Each node
        it adds has the layer's origin in the `.cnn` text as its doc_string (Netron shows it)."""
        if name in self.used:
            raise NameProblem(
                f"two values of the ONNX graph would be called `{name}`",
                hint="rename the tap or output so that it differs from the layer names",
            )
        self.scope, self.pos, first = layer.name, layer.pos, len(self.nodes)
        self.weight_scope = layer.name if owner is None else owner  # `shared(@t)` reads the initializers of t
        self.declared = kind.tensors(layer.attrs, shapes)
        result = kind.onnx(layer.attrs, shapes, arguments, self)
        for node in self.nodes[first:]:
            node.doc_string = source
        produced = [node for node in self.nodes[first:] if result in node.output]
        if not produced:
            return result  # the layer passes its input on (dropout, an identity pool)
        if name in self.initializers:
            return result  # the layer is one tensor (layer scale) that holds the name: its output keeps `<name>/Mul`
        produced[0].output[0] = produced[0].name = name
        self.used.add(name)
        return name

    def name_output(self, value: str, name: str, source: str) -> str:
        """A graph output called `name`: the value itself, or an Identity where it carries another name."""
        if value != name:
            self.nodes.append(helper.make_node("Identity", [value], [name], name=name, doc_string=source))
        return name

    # ---- for the kinds' rules ---------------------------------------------------
    def op(self, op_type: str, inputs: list[str], **attributes: Any) -> str:
        """Add one operator; returns its output value."""
        output = self._fresh(f"{self.scope}/{op_type}")
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attributes))
        return output

    def weight(self, param: str) -> str:
        """The tensor `param` the layer's kind declares, as the initializer `<IR node>.<param>` (`<IR node>` for
        a layer that is one tensor): given, or drawn as the declaration says once the model is known to fit."""
        spec = next((spec for spec in self.declared if spec.name == param), None)
        if spec is None:
            raise KeyError(f"layer `{self.scope}` declares no tensor `{param}`")
        name = spec.key(self.weight_scope)
        given = self.supply.given.get(name)
        self.initializers[name] = (
            ready(given, self.pos)
            if given is not None
            else Pending(spec.shape, np.dtype(np.float32), lambda: self.supply.fresh(spec), self.pos)
        )
        self.used.add(name)
        return name

    def weights(self) -> list[str]:
        """Every floating-point tensor the layer's kind declares, in its order (a step count is not read)."""
        return [self.weight(spec.name) for spec in self.declared if spec.floating]

    def ints(self, label: str, values: Any) -> str:
        return self._constant(label, ready(np.asarray(values, dtype=np.int64), self.pos))

    def floats(self, label: str, values: Any) -> str:
        return self._constant(label, ready(np.asarray(values, dtype=np.float32), self.pos))

    def computed(self, label: str, shape: tuple, make: Callable[[], np.ndarray]) -> str:
        """A float32 constant of `shape` that may be large (an averaging matrix): `make()` runs only once
        the model is known to fit."""
        return self._constant(label, Pending(tuple(shape), np.dtype(np.float32), make, self.pos))

    def require(self, opset: int, what: str) -> None:
        """Refuse an opset in which this layer cannot be expressed."""
        if self.opset < opset:
            raise ValueProblem(
                f"{what} needs ONNX opset {opset} or newer, not {self.opset}",
                hint=f"use --opset {opset} or newer, or leave --opset out",
            )

    def _constant(self, label: str, tensor: Pending) -> str:
        name = self._fresh(f"{self.scope}/{label}")
        self.initializers[name] = tensor
        return name

    def _fresh(self, base: str) -> str:
        name, count = base, 1
        while name in self.used:
            count += 1
            name = f"{base}_{count}"
        self.used.add(name)
        return name
