"""Each Caffe layer as cnndsl items, with its output shape computed by Caffe's own rules (its layer sources).

A layer reads only the keys listed for it; any other key set in its parameter message changes what Caffe
computes in a way the import does not follow, so it is refused at its line rather than dropped."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..core.errors import CnnDslError, SourcePos
from .caffe_proto import LayerLines

HARMLESS = {"weight_filler", "bias_filler", "filler", "engine"}  # initialisation and the CPU/cuDNN choice
V1_TYPES = {"CONVOLUTION": "Convolution", "POOLING": "Pooling", "INNER_PRODUCT": "InnerProduct", "RELU": "ReLU",
            "LRN": "LRN", "DROPOUT": "Dropout", "SOFTMAX": "Softmax", "CONCAT": "Concat", "ELTWISE": "Eltwise",
            "SPLIT": "Split", "FLATTEN": "Flatten", "SIGMOID": "Sigmoid", "TANH": "TanH"}  # fmt: skip
DATA_LAYERS = {"Data", "ImageData", "HDF5Data", "MemoryData", "WindowData", "DummyData", "DATA", "IMAGE_DATA",
               "HDF5_DATA", "MEMORY_DATA", "WINDOW_DATA", "DUMMY_DATA"}  # fmt: skip


@dataclass
class Holder:
    """A cnndsl layer that takes tensors from the caffemodel: which Caffe layers hold them, in which shapes."""

    op: str  # conv, fc or bn
    layer: str  # the Caffe layer with the weights (bn: the BatchNorm)
    shapes: list[tuple[int, ...]]
    line: int
    scale: str = ""  # bn: the Scale layer with gamma and beta


@dataclass
class Node:
    """One Caffe layer (BatchNorm and its Scale: one node) as cnndsl items."""

    kind: str
    text: str
    shape: tuple[int, ...]
    inputs: list[int]
    names: list[str]
    first: int
    last: int
    holders: list[Holder] = field(default_factory=list)
    join: str = ""  # add, mul or concat: the node reads several inputs
    top: str = ""


class Layer:
    """A LayerParameter or V1LayerParameter with its lines: reading a key marks it read."""

    def __init__(self, message, lines: LayerLines, file: str, v1: bool):
        self.message, self.lines, self.file = message, lines, file
        self.type = V1_TYPES.get(_enum_name(message, "type"), _enum_name(message, "type")) if v1 else message.type
        self.name = message.name

    def error(self, message: str, key: str | None = None, hint: str | None = None) -> CnnDslError:
        line = self.lines.keys.get(key, self.lines.keys.get("type", self.lines.first)) if key else self.lines.first
        return CnnDslError(f"layer `{self.name}` ({self.type}): {message}", SourcePos(self.file, line, 1), hint)

    def param(self, field_name: str, read: set[str]):
        """The layer's parameter message; a key set there that is not in `read` is refused."""
        param = getattr(self.message, field_name)
        for descriptor, _ in param.ListFields():
            if descriptor.name not in read | HARMLESS:
                raise self.error(
                    f"`{descriptor.name}` is not imported: it changes what Caffe computes",
                    descriptor.name,
                    f"the keys cnndsl reads in {field_name}: {', '.join(sorted(read))}",
                )
        return param


def _enum_name(message, name: str) -> str:
    descriptor = message.DESCRIPTOR.fields_by_name[name]
    value = getattr(message, name)
    return descriptor.enum_type.values_by_number[value].name if descriptor.enum_type else str(value)


def number(value: float) -> str:
    """A float32 from the prototxt as the short decimal it was written as."""
    return f"{value:.7g}"


def pair_text(values: tuple[int, int]) -> str:
    return str(values[0]) if values[0] == values[1] else f"({values[0]}, {values[1]})"


def _pair(layer: Layer, param, repeated: str, single: str, default: int | None) -> tuple[int, int]:
    """Caffe's spatial option: `x_h`/`x_w`, else one or two values of the repeated `x`, else the default."""
    height, width = f"{single}_h", f"{single}_w"
    if height in param.DESCRIPTOR.fields_by_name and (param.HasField(height) or param.HasField(width)):
        return getattr(param, height), getattr(param, width)
    value = getattr(param, repeated)
    values = list(value) if not isinstance(value, int) else [value] if param.HasField(repeated) else []
    if not values:
        if default is None:
            raise layer.error(f"needs `{repeated}` or `{height}`/`{width}`")
        return default, default
    if len(values) > 2:
        raise layer.error(f"{len(values)} spatial dimensions are not imported (only 2-D)", repeated)
    return (values[0], values[-1])


def spatial(layer: Layer, shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise layer.error(f"needs a C×H×W input, not {shape}")
    return shape


def _convolution_param(layer: Layer, shape):
    """What Convolution and Deconvolution share: the keys read, the input and the window, checked."""
    keys = {"num_output", "bias_term", "pad", "kernel_size", "group", "stride", "dilation"}
    param = layer.param(
        "convolution_param", keys | {f"{k}_{side}" for k in ("pad", "kernel", "stride") for side in "hw"}
    )
    channels, height, width = spatial(layer, shape)
    kernel = _pair(layer, param, "kernel_size", "kernel", None)
    stride, pad = _pair(layer, param, "stride", "stride", 1), _pair(layer, param, "pad", "pad", 0)
    outputs, groups = param.num_output, param.group
    if min(outputs, groups, *kernel, *stride) < 1 or channels % groups or outputs % groups:
        raise layer.error(
            f"needs positive num_output, kernel, stride and a group that divides {channels} and {outputs}"
        )
    return param, channels, height, width, kernel, stride, pad


def convolution(layer: Layer, shape) -> tuple[str, tuple, list[Holder]]:
    param, channels, height, width, kernel, stride, pad = _convolution_param(layer, shape)
    outputs, groups = param.num_output, param.group
    dilation = _pair(layer, param, "dilation", "dilation", 1)
    if dilation[0] != dilation[1]:
        raise layer.error("different dilations for height and width are not imported", "dilation")
    if dilation[0] < 1:
        raise layer.error("needs a positive dilation", "dilation")
    reach = [dilation[0] * (k - 1) + 1 for k in kernel]
    out = [(n + 2 * p - r) // s + 1 for n, p, r, s in zip((height, width), pad, reach, stride, strict=True)]
    if min(out) < 1:
        raise layer.error(f"its {kernel[0]}x{kernel[1]} kernel does not fit its {height}x{width} input")
    options = [f"k={pair_text(kernel)}", f"s={pair_text(stride)}", f"p={pair_text(pad)}", f"d={dilation[0]}"]
    options += [f"g={groups}"] + ["bias=false"] * (not param.bias_term)
    shapes = [(outputs, channels // groups, *kernel)] + [(outputs,)] * param.bias_term
    holder = Holder("conv", layer.name, shapes, layer.lines.first)
    return f"conv({outputs}, {', '.join(options)})", (outputs, *out), [holder]


def deconvolution(layer: Layer, shape) -> tuple[str, tuple, list[Holder]]:
    """Caffe's Deconvolution: out = (in - 1)·stride - 2·pad + kernel, blobs (in, out/group, kh, kw) as PyTorch's."""
    param, channels, height, width, kernel, stride, pad = _convolution_param(layer, shape)
    outputs, groups = param.num_output, param.group
    if kernel[0] != kernel[1] or stride[0] != stride[1] or pad[0] != pad[1] or set(param.dilation) - {1}:
        raise layer.error("only a square deconvolution without dilation is imported")
    size = [(n - 1) * stride[0] - 2 * pad[0] + kernel[0] for n in (height, width)]
    if min(size) < 1:
        raise layer.error(f"its padding {pad[0]} leaves no output")
    options = [f"k={kernel[0]}", f"s={stride[0]}", f"p={pad[0]}"] + [f"g={groups}"] * (groups != 1)
    options += ["bias=false"] * (not param.bias_term)
    shapes = [(channels, outputs // groups, *kernel)] + [(outputs,)] * param.bias_term
    holder = Holder("deconv", layer.name, shapes, layer.lines.first)
    return f"deconv({outputs}, {', '.join(options)})", (outputs, *size), [holder]


def prelu(layer: Layer, shape) -> tuple[str, tuple, list[Holder]]:
    shared = layer.param("prelu_param", {"channel_shared"}).channel_shared
    holder = Holder("prelu", layer.name, [(1 if shared else shape[0],)], layer.lines.first)
    return ("prelu" if shared else "prelu(per_channel=true)"), shape, [holder]


def pooling(layer: Layer, shape) -> tuple[str, tuple, list[Holder]]:
    param = layer.param(
        "pooling_param",
        {"pool", "kernel_size", "stride", "pad", "global_pooling", "round_mode"}
        | {f"{key}_{side}" for key in ("pad", "kernel", "stride") for side in "hw"},
    )
    channels, height, width = spatial(layer, shape)
    method = _enum_name(param, "pool")
    if method == "STOCHASTIC":
        raise layer.error("stochastic pooling is not imported: cnndsl has no random pooling", "pool")
    if param.global_pooling:
        if method == "AVE":
            return "gap", (channels, 1, 1), []
        return f"maxpool(k={pair_text((height, width))})", (channels, 1, 1), []
    kernel = _pair(layer, param, "kernel_size", "kernel", None)
    stride, pad = _pair(layer, param, "stride", "stride", 1), _pair(layer, param, "pad", "pad", 0)
    if min(*kernel, *stride) < 1:
        raise layer.error("needs a positive kernel and stride")
    ceil = _enum_name(param, "round_mode") == "CEIL"
    caffe_out, floor_out, torch_out = [], [], []
    for size, k, s, p in zip((height, width), kernel, stride, pad, strict=True):
        span = size + 2 * p - k
        rounded = (-(-span // s) if ceil else span // s) + 1
        if (p and (rounded - 1) * s >= size + p) or span < 0:
            rounded -= 1  # Caffe clips the last window to start inside the image
        caffe_out.append(rounded)
        floor_out.append(span // s + 1)
        up = -(-span // s) + 1
        torch_out.append(up - 1 if (up - 1) * s >= size + p else up)
    if min(caffe_out) < 1:
        raise layer.error(f"its {kernel[0]}x{kernel[1]} window does not fit its {height}x{width} input")
    if method == "AVE" and kernel == (height, width) and pad == (0, 0):
        return "gap", (channels, 1, 1), []
    if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2:
        raise layer.error(f"padding {pair_text(pad)} beyond half the window is not imported", "pad")
    name = "maxpool" if method == "MAX" else "avgpool"
    options = [f"k={pair_text(kernel)}", f"s={pair_text(stride)}", f"p={pair_text(pad)}"]
    if caffe_out != floor_out:
        if caffe_out != torch_out:
            raise layer.error(
                f"Caffe's output {caffe_out[0]}x{caffe_out[1]} keeps a window that starts past the image, "
                "which no cnndsl pooling does"
            )
        options.append("ceil=true")
    return f"{name}({', '.join(options)})", (channels, *caffe_out), []


def inner_product(layer: Layer, shape) -> tuple[str, tuple, list[Holder]]:
    param = layer.param("inner_product_param", {"num_output", "bias_term", "axis"})
    if param.axis != 1:
        raise layer.error("an axis other than 1 is not imported", "axis")
    inputs = math.prod(shape)
    shapes = [(param.num_output, inputs)] + [(param.num_output,)] * param.bias_term
    text = f"fc({param.num_output}{', bias=false' * (not param.bias_term)})"
    return text, (param.num_output,), [Holder("fc", layer.name, shapes, layer.lines.first)]


def lrn(layer: Layer, shape) -> tuple[str, tuple, list[Holder]]:
    param = layer.param("lrn_param", {"local_size", "alpha", "beta", "norm_region", "k"})
    if _enum_name(param, "norm_region") != "ACROSS_CHANNELS":
        raise layer.error("WITHIN_CHANNEL normalisation is not imported: cnndsl's lrn runs across channels")
    if param.local_size % 2 == 0:
        raise layer.error("an even local_size is not imported (Caffe requires an odd one)", "local_size")
    spatial(layer, shape)
    values = {"size": param.local_size, "alpha": param.alpha, "beta": param.beta, "k": param.k}
    defaults = {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0}
    options = [f"{key}={number(value)}" for key, value in values.items() if float(number(value)) != defaults[key]]
    return "lrn" + (f"({', '.join(options)})" if options else ""), shape, []


def relu(layer: Layer, shape) -> tuple[str, tuple, list[Holder]]:
    slope = layer.param("relu_param", {"negative_slope"}).negative_slope
    return (f"leakyrelu({number(slope)})" if slope else "relu"), shape, []


def elu(layer: Layer, shape) -> tuple[str, tuple, list[Holder]]:
    alpha = layer.param("elu_param", {"alpha"}).alpha
    return ("elu" if alpha == 1 else f"elu({number(alpha)})"), shape, []


def dropout(layer: Layer, shape) -> tuple[str, tuple, list[Holder]]:
    ratio = layer.param("dropout_param", {"dropout_ratio", "scale_train"}).dropout_ratio
    return ("dropout" if ratio == 0.5 else f"dropout({number(ratio)})"), shape, []


def softmax(layer: Layer, shape) -> tuple[str, tuple, list[Holder]]:
    if layer.param("softmax_param", {"axis"}).axis != 1:
        raise layer.error("softmax over an axis other than the channels (1) is not imported", "axis")
    return "softmax", shape, []


def flatten(layer: Layer, shape) -> tuple[str, tuple, list[Holder]]:
    param = layer.param("flatten_param", {"axis", "end_axis"})
    if param.axis != 1 or param.end_axis != -1:
        raise layer.error("only flattening from axis 1 to the end is imported", "axis")
    return "flatten", (math.prod(shape),), []


def simple(text: str):
    def convert(layer: Layer, shape) -> tuple[str, tuple, list[Holder]]:
        return text, shape, []

    return convert


SINGLE = {"Convolution": convolution, "Deconvolution": deconvolution, "PReLU": prelu, "Pooling": pooling, "InnerProduct": inner_product, "LRN": lrn, "ReLU": relu,
          "ELU": elu, "Dropout": dropout, "Softmax": softmax, "Flatten": flatten, "Sigmoid": simple("sigmoid"),
          "TanH": simple("tanh")}  # fmt: skip


def eltwise(layer: Layer, shapes: list) -> tuple[str, tuple]:
    param = layer.param("eltwise_param", {"operation", "coeff", "stable_prod_grad"})
    operation = _enum_name(param, "operation")
    if any(shape != shapes[0] for shape in shapes):
        raise layer.error(f"joins blobs of different shapes {shapes}")
    if operation == "SUM" and any(coeff != 1 for coeff in param.coeff):
        raise layer.error("a weighted sum (coeff other than 1) is not imported", "coeff")
    return {"SUM": "add", "PROD": "mul", "MAX": "maximum"}[operation], shapes[0]


def concat(layer: Layer, shapes: list) -> tuple[str, tuple]:
    param = layer.param("concat_param", {"axis", "concat_dim"})
    axis = param.axis if param.HasField("axis") else param.concat_dim if param.HasField("concat_dim") else 1
    if axis != 1:
        raise layer.error("concatenation along an axis other than the channels (1) is not imported", "axis")
    if any(len(shape) != len(shapes[0]) or shape[1:] != shapes[0][1:] for shape in shapes):
        raise layer.error(f"concatenates blobs of different sizes {shapes}")
    return "concat", (sum(shape[0] for shape in shapes), *shapes[0][1:])
