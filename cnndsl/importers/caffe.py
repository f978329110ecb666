"""Caffe .prototxt -> .cnn: the layers as Caffe's Net builds them for the TEST phase, shapes by its rules.

Blobs are followed by name (in-place layers overwrite them), BatchNorm and the Scale after it become one
`bn`, and caffe_structure.py turns forks and joins back into `residual`, `branch` and blocks."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import CnnDslError, SourcePos
from .caffe_layers import DATA_LAYERS, SINGLE, Holder, Layer, Node, concat, eltwise, number
from .caffe_proto import LayerLines, layer_lines, read_prototxt
from .caffe_structure import write

NO_EQUIVALENT = {
    "Python": "runs Python code that the prototxt does not hold",
    "Slice": "splits its input into several tops",
    "Reshape": "reshapes by Caffe's own dimension rules",
    "Crop": "crops at Caffe's offsets",
    "Power": "raises to a power element-wise",
    "BNLL": "computes log(1 + e^x) element-wise",
    "AbsVal": "takes absolute values element-wise",
    "MVN": "normalises mean and variance per image",
    "Bias": "adds a learned bias on its own",
    "Scale": "scales without a BatchNorm before it",
}
LOSS_LAYERS = {"SoftmaxWithLoss", "Accuracy", "EuclideanLoss", "HingeLoss", "SigmoidCrossEntropyLoss",
               "InfogainLoss", "MultinomialLogisticLoss", "ContrastiveLoss", "SOFTMAX_LOSS", "ACCURACY"}  # fmt: skip


class _Converter:
    def __init__(self, net, lines: dict[str, list[LayerLines]], file: str):
        self.net, self.file = net, file
        if net.layer and net.layers:
            raise CnnDslError(
                "the prototxt mixes `layer` and V1 `layers`", SourcePos(file, lines["layers"][0].first, 1)
            )
        v1 = not net.layer
        messages = net.layers if v1 else net.layer
        spans = lines["layers" if v1 else "layer"]
        if len(spans) != len(messages):  # a layout the line scanner misread: errors point at the file's start
            spans = [LayerLines(1, 1) for _ in messages]
        self.layers = [Layer(message, span, file, v1) for message, span in zip(messages, spans, strict=True)]
        self.nodes: list[Node] = []
        self.blobs: dict[str, int] = {}

    def run(self) -> list[Node]:
        self._net_input()
        layers = [layer for layer in self.layers if self._in_test_phase(layer)]
        at = 0
        while at < len(layers):
            layer = layers[at]
            if layer.type == "BatchNorm":
                self._batch_norm(layer, layers[at + 1] if at + 1 < len(layers) else None)
                at += 2
                continue
            self._layer(layer)
            at += 1
        if len(self.nodes) < 2:
            what = "no input" if not self.nodes else "no layer after its input"
            raise CnnDslError(f"the prototxt declares {what}", SourcePos(self.file, 1, 1))
        return self.nodes

    # --- inputs -------------------------------------------------------------------------------------
    def _net_input(self) -> None:
        net = self.net
        if not net.input:
            return
        if len(net.input) > 1:
            raise CnnDslError("a net with several inputs is not imported", SourcePos(self.file, 1, 1))
        dims = list(net.input_shape[0].dim) if net.input_shape else list(net.input_dim)
        self._input(net.input[0], dims, 1, 1, None)

    def _input(self, blob: str, dims: list[int], first: int, last: int, layer: Layer | None) -> None:
        where = layer.error if layer else (lambda message: CnnDslError(message, SourcePos(self.file, first, 1)))
        if self.nodes:
            raise where("a net with several inputs is not imported")
        if len(dims) != 4 or min(dims) < 1:
            raise where(f"the input must be N×C×H×W with positive sizes, not {dims}")
        self._add(Node("Input", "input", tuple(dims[1:]), [], [layer.name if layer else blob], first, last), [blob])

    def _in_test_phase(self, layer: Layer) -> bool:
        """Caffe's StateMeetsRule for phase TEST; stage and level rules are not followed, so they are refused."""
        message = layer.message
        for rule in [*message.include, *message.exclude]:
            if rule.stage or rule.not_stage or rule.HasField("min_level") or rule.HasField("max_level"):
                raise layer.error("include/exclude rules by stage or level are not imported", "include")
        phase = "TEST"
        if message.include:
            return any(not rule.HasField("phase") or _phase(rule) == phase for rule in message.include)
        return not any(rule.HasField("phase") and _phase(rule) == phase for rule in message.exclude)

    # --- layers -------------------------------------------------------------------------------------
    def _bottoms(self, layer: Layer) -> list[int]:
        missing = [blob for blob in layer.message.bottom if blob not in self.blobs]
        if missing:
            raise layer.error(f"reads the blob `{missing[0]}`, which no earlier layer makes", "bottom")
        return [self.blobs[blob] for blob in layer.message.bottom]

    def _add(self, node: Node, tops) -> None:
        self.nodes.append(node)
        node.top = tops[0] if tops else ""
        for top in tops:
            self.blobs[top] = len(self.nodes) - 1

    def _node(self, layer: Layer, text: str, shape, inputs, holders=(), join: str = "") -> None:
        node = Node(layer.type, text, shape, inputs, [layer.name], layer.lines.first, layer.lines.last)
        node.holders, node.join = list(holders), join
        self._add(node, list(layer.message.top))

    def _layer(self, layer: Layer) -> None:
        kind = layer.type
        if kind == "Input":
            shapes = layer.param("input_param", {"shape"}).shape
            if len(layer.message.top) != 1 or len(shapes) > 1:
                raise layer.error("a net with several inputs is not imported", "top")
            self._input(layer.message.top[0], list(shapes[0].dim) if shapes else [], layer.lines.first,
                        layer.lines.last, layer)  # fmt: skip
            return
        if kind in DATA_LAYERS:
            raise layer.error("reads a database: its shape is not in the prototxt",
                              hint="import the deploy prototxt (with an Input layer or input_dim)")  # fmt: skip
        if kind in LOSS_LAYERS:
            raise layer.error("is a training loss or metric", hint="import the deploy prototxt")
        if kind in NO_EQUIVALENT:
            raise layer.error(f"{NO_EQUIVALENT[kind]}: cnndsl cannot express it exactly",
                              "type", "the import refuses rather than approximate it")  # fmt: skip
        inputs = self._bottoms(layer)
        if not inputs or not layer.message.top:
            raise layer.error("needs a bottom and a top")
        if kind == "Split":
            for top in layer.message.top:
                self.blobs[top] = inputs[0]
            return
        if kind in ("Eltwise", "Concat"):
            join, shape = (eltwise if kind == "Eltwise" else concat)(layer, [self.nodes[i].shape for i in inputs])
            if len(inputs) == 1:  # Caffe passes a lone bottom through
                self._node(layer, "identity", shape, inputs)
            else:
                self._node(layer, join, shape, inputs, join=join)
            return
        if kind not in SINGLE:
            raise layer.error(f"`{kind}` is a layer type cnndsl does not import", "type",
                              "the import refuses rather than approximate it")  # fmt: skip
        if len(inputs) != 1 or len(layer.message.top) != 1:
            raise layer.error("needs one bottom and one top")
        text, shape, holders = SINGLE[kind](layer, self.nodes[inputs[0]].shape)
        self._node(layer, text, shape, inputs, holders)

    def _batch_norm(self, norm: Layer, scale: Layer | None) -> None:
        """BatchNorm (mean, variance, moving-average factor) and the Scale after it (γ, β): one `bn`."""
        param = norm.param("batch_norm_param", {"use_global_stats", "moving_average_fraction", "eps"})
        if param.HasField("use_global_stats") and not param.use_global_stats:
            raise norm.error("normalises by the batch's own statistics (use_global_stats: false)", "use_global_stats",
                             "a deploy net uses the stored statistics: use_global_stats: true")  # fmt: skip
        top = list(norm.message.top)
        if scale is None or scale.type != "Scale" or list(scale.message.bottom) != top:
            raise norm.error("is not followed by a Scale on its output: cnndsl's bn always learns γ and β",
                             hint="Caffe's BatchNorm has no learned parameters; cnndsl imports BatchNorm + Scale")  # fmt: skip
        scale_param = scale.param("scale_param", {"axis", "num_axes", "bias_term"})
        if scale_param.axis != 1 or scale_param.num_axes != 1 or len(scale.message.bottom) != 1:
            raise scale.error("only a per-channel Scale (axis 1, one axis, one bottom) is imported", "axis")
        if not scale_param.bias_term:
            raise scale.error("a Scale without bias_term after BatchNorm is not imported: cnndsl's bn learns β",
                              "bias_term")  # fmt: skip
        inputs = self._bottoms(norm)
        if len(inputs) != 1 or len(top) != 1:
            raise norm.error("needs one bottom and one top")
        shape = self.nodes[inputs[0]].shape
        channels = shape[0]
        eps = param.eps
        text = "bn" if abs(eps - 1e-5) < 1e-12 else f"bn(eps={number(eps)})"
        node = Node("BatchNorm", text, shape, inputs, [norm.name, scale.name], norm.lines.first, scale.lines.last)
        shapes = [(channels,), (channels,), (1,)]
        node.holders = [Holder("bn", norm.name, shapes, norm.lines.first, scale.name)]
        self._add(node, list(scale.message.top))


def _phase(rule) -> str:
    return rule.DESCRIPTOR.fields_by_name["phase"].enum_type.values_by_number[rule.phase].name


def convert(text: str, file: str) -> tuple[str, list[Holder]]:
    """The .cnn text for a prototxt, and the layers that take weights, in the order the network holds them."""
    net = read_prototxt(text, file)
    nodes = _Converter(net, layer_lines(text), file).run()
    try:
        return write(nodes, net.name or Path(file).stem, Path(file).name, len(text.splitlines()))
    except RecursionError:
        raise CnnDslError("the net nests its forks too deeply to write", SourcePos(file, 1, 1)) from None
