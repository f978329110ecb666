"""What a layer kind declares, once: arguments, shape rule, tensors, costs, window, label, torch code, an example.

Each kind is a small class registered by name. Backends never switch on op names; they ask
the kind. ONNX emitters live on the same classes (`onnx`), diagram colours come from `family`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from ..core.errors import LimitProblem, NameProblem, ShapeProblem, ValueProblem, did_you_mean
from ..core.records import FrozenRecord
from ..core.spellings import unknown_argument_hint
from ..front.evaluate import shown
from .registry import Registry
from .tensors import BUFFER, PARAMETER, Example, TensorSpec, count
from .torch_code import Arg, Expr, Method, applied

Shape = tuple[int, ...]
REQUIRED = object()
MAX_RANK = 6  # the most axes a tensor has, the batch not counted (torch and ONNX take more; no CNN needs them)
MOST_REPEATS = 1_000  # sub-layers one kind repeats inside itself (decoder layers, flow couplings), each
# declared as its own tensors: past this a hostile count would take minutes to list before any other bound


class Window(FrozenRecord):
    """Which input pixels an output pixel reads, for the receptive field (cnndsl/figures/receptive_field.py).

    `slide`: a window of kernel×dilation at stride, after padding; `transposed`: a transposed convolution,
    with an `upsample` factor instead of a stride; `nearest` and `linear`: resampling to the output's size;
    `adaptive`: adaptive pooling's bins, ⌊o·in/out⌋ to ⌈(o+1)·in/out⌉ − 1.
    """

    __slots__ = ("kernel", "stride", "dilation", "upsample", "padding", "mode")

    def __init__(
        self,
        kernel: tuple[int, int],
        stride: tuple[int, int],
        dilation: tuple[int, int] = (1, 1),
        upsample: tuple[int, int] = (1, 1),
        padding: tuple[int, int] = (0, 0),
        mode: str = "slide",
    ) -> None:
        object.__setattr__(self, "kernel", kernel)  # one per layer: as a frozen dataclass sets them
        object.__setattr__(self, "stride", stride)
        object.__setattr__(self, "dilation", dilation)
        object.__setattr__(self, "upsample", upsample)
        object.__setattr__(self, "padding", padding)
        object.__setattr__(self, "mode", mode)


class OpKind:
    """Base of every layer kind; subclasses override what differs from a pointwise op."""

    name: str = ""
    family: str = "other"  # conv, pool, norm, act, fc, merge, reshape, reg, io
    signature: tuple[tuple[str, Any], ...] = ()
    takes_taps: bool = False  # extra inputs given as `@tap` arguments (add, concat, mul)
    tap_edge: str = "skip"  # the IR edge kind of those extra inputs
    tap_values: bool = True  # False where a tap gives only its size (resize): it adds nothing to the receptive field
    torch_overwritable: bool = False  # its torch output is a new tensor backward does not keep: a next
    # activation may overwrite it in place when nothing else reads it
    torch_in_place: bool = False  # torch writes its result over its first input where that input is overwritable:
    # a module with `inplace` (ReLU(inplace=True)) or a `torch_forward_in_place`
    backward_keeps: int = 1  # output-sized float32 tensors backward keeps (an estimate): 3 for max pooling, whose
    # int64 indices are two float32 values each
    residual_join: bool = False  # adds shortcuts (its other inputs) to a body (its first): `zero_init_residual`
    # zeroes the norm that ends the body
    drawn_as_join: bool = False  # a diagram draws its sign (⊕, ∥, ⊗) in a small circle or oval, not a box
    onnx_newest: int | None = None  # the newest opset whose version of its operator onnxruntime runs (RoiAlign-16
    # up to opset 21, not RoiAlign-22): the default opset stays at or below it
    buffers_hold: str = ""  # what its buffers are, for the summary's total (batch-norm running statistics)
    called_by_name: bool = True  # False for the input, which only the `input` statement makes
    ranks: tuple[int, ...] | None = None  # the ranks of input it takes (the batch not counted); None: any
    doc: str = ""
    example: Example | None = None  # a call of it on an input, which the tests build (every kind called by name)

    # ---- arguments ------------------------------------------------------------
    def bind(self, positional: Sequence[Any], keywords: dict[str, Any], preset: dict[str, Any]) -> dict[str, Any]:
        """Match call arguments to the signature; unknown or missing ones are located errors."""
        attrs = dict(self.signature)
        attrs.update(preset)
        if positional:
            free = [name for name, _ in self.signature if name not in preset]
            if len(positional) > len(free):
                raise ValueProblem(
                    f"`{self.name}` takes at most {len(free)} positional argument(s), got {len(positional)}",
                    hint=f"its arguments are ({self.describe_signature()})",
                )
            attrs.update(zip(free, positional))
        for key, value in keywords.items():
            if key not in attrs:
                accepted = [name for name, _ in self.signature]
                raise NameProblem(
                    f"`{self.name}` has no argument `{key}`",
                    hint=unknown_argument_hint(key, accepted)
                    or did_you_mean(key, accepted)
                    or f"its arguments are ({self.describe_signature()})",
                )
            attrs[key] = value
        for name, value in attrs.items():
            if value is REQUIRED:
                raise ValueProblem(
                    f"`{self.name}` needs the argument `{name}`",
                    hint=f"its arguments are ({self.describe_signature()})",
                )
        return attrs

    def describe_signature(self) -> str:
        return ", ".join(name if default is REQUIRED else f"{name}={default}" for name, default in self.signature)

    def resolve(self, attrs: dict[str, Any], inputs: list[Shape]) -> dict[str, Any]:
        """Fill what depends on the incoming shape and check every value."""
        return attrs

    def check_rank(self, shape: Shape) -> None:
        """Refuse an input of a rank the kind (its torch and ONNX forms) does not take."""
        if self.ranks is not None and len(shape) not in self.ranks:
            taken = ", ".join(map(str, self.ranks[:-1])) + f" or {self.ranks[-1]}" if len(self.ranks) > 1 else "1"
            raise ShapeProblem(
                f"`{self.name}` takes a tensor of {taken} axes, not {format_shape(shape)} (the batch is not counted)",
                hint="reshape, permute or flatten it to such a tensor first",
            )

    def keeps_positions(self, attrs: dict[str, Any], inputs: list[Shape]) -> bool:
        """Whether an output pixel is where its input pixels were (or a vector's one position), so that the
        receptive field carries on; False for a kind that moves values between the spatial axes and the
        others (a reshape to another H×W, a permute): after it the receptive field is not defined."""
        return True

    # ---- shape and cost -----------------------------------------------------
    def shape(self, attrs: dict[str, Any], inputs: list[Shape]) -> Shape:
        return inputs[0]

    def tensors(self, attrs: dict[str, Any], inputs: list[Shape]) -> list[TensorSpec]:
        """The tensors the layer holds, in its torch module's state_dict order (cnndsl/ops/tensors.py)."""
        return []

    def params(self, attrs: dict[str, Any], inputs: list[Shape]) -> int:
        return count(self.tensors(attrs, inputs), PARAMETER)

    def buffers(self, attrs: dict[str, Any], inputs: list[Shape]) -> int:
        """Values kept in the state_dict that training does not learn (batch norm's running statistics)."""
        return count(self.tensors(attrs, inputs), BUFFER)

    def macs(self, attrs: dict[str, Any], inputs: list[Shape], output: Shape) -> int:
        return 0

    def window(self, attrs: dict[str, Any], inputs: list[Shape]) -> Window | None:
        return None

    def offsets(self, attrs: dict[str, Any], inputs: list[Shape]) -> list[tuple[int, int]]:
        """Where each input is read from, (top, left): a centre crop reads a larger input off its corner."""
        return [(0, 0)] * len(inputs)

    def label(self, attrs: dict[str, Any]) -> str:
        return self.name

    def data_dependent(self, attrs: dict[str, Any]) -> str | None:
        """What of its output depends on the data, and its bound (the boxes nms keeps); None for a static op."""
        return None

    # ---- torch ----------------------------------------------------------------
    def torch_module(self, attrs: dict[str, Any], inputs: list[Shape]):
        """An nn.Module for kinds with state or a module form; None for pure functions."""
        return None

    def torch_forward(self, attrs: dict[str, Any], inputs: list[Shape]) -> Expr:
        """The forward as an expression tree (cnndsl.ops.torch_code): its module on its input by default."""
        return applied(Arg(0))

    def torch_export_refusal(self, attrs: dict[str, Any]) -> str | None:
        """Why torch.export cannot write this layer (a size its data decides), or None."""
        return None

    def traced_steps(self, attrs: dict[str, Any], inputs: list[Shape]) -> int:
        """ATen operators torch.export traces for this layer beyond those its shape-only (meta) forward runs:
        the rounds of a loop that the meta run skips (backends/export_cost.py counts the rest)."""
        return 0

    def torch_forward_in_place(self, attrs: dict[str, Any], inputs: list[Shape]) -> Expr | None:
        """The expression that writes its result into its first input (`x.add_(y)`, torchvision's
        `out += identity`), for the backend to use where nothing else reads that input; None if none."""
        return None

    # ---- onnx -----------------------------------------------------------------
    def onnx(self, attrs: dict[str, Any], inputs: list[Shape], args: list[str], emit) -> str:
        """Add this layer's ONNX nodes through `emit` (cnndsl.backends.onnx.Emitter); returns its output value."""
        raise ValueProblem(
            f"`{self.name}` has no ONNX form yet",
            hint="compile to python or pt2 instead, or add an `onnx` rule to its kind",
        )


REGISTRY: Registry = Registry()  # name -> OpKind; its module imported on first lookup (registry.py)
_PATTERNS: list[tuple[Callable[[str], dict | None], str]] = []
_SPELLINGS: dict[str, list[str]] = {}  # kind -> the names it is also spelled by, for the layer table


def register(cls: type[OpKind]) -> type[OpKind]:
    REGISTRY[cls.name] = cls()
    return cls


def alias(name: str, kind: str, **preset: Any) -> None:
    """A spelled name for a kind with arguments filled in: `pool` = maxpool(k=2)."""
    _ALIASES[name] = (kind, preset)


_ALIASES: dict[str, tuple[str, dict[str, Any]]] = {}


def pattern(regex_match: Callable[[str], dict | None], kind: str, spelling: str) -> None:
    """A family of spelled names, e.g. convKxK, parsed by `regex_match` into a preset."""
    _PATTERNS.append((regex_match, kind))
    _SPELLINGS.setdefault(kind, []).append(spelling)


def layer_table() -> str:
    """The Markdown table of every layer kind, from what each declares: docs/language.md holds it verbatim."""
    rows = ["| layer | also spelled | what it does |", "|---|---|---|"]
    order = ("conv", "pool", "fc", "reshape", "act", "norm", "reg", "merge")
    for name, kind in sorted(
        REGISTRY.items(), key=lambda item: order.index(item[1].family) if item[1].family in order else len(order)
    ):
        if not kind.called_by_name:
            continue
        signature = ", ".join(
            key if default is REQUIRED or default is None else f"{key}={_value_text(default)}"
            for key, default in kind.signature
        )
        spelled = [
            f"`{alias}`" + _preset_text(preset) for alias, (target, preset) in _ALIASES.items() if target == name
        ]
        spelled += [f"`{spelling}`" for spelling in _SPELLINGS.get(name, [])]
        rows.append(f"| `{name}{f'({signature})' if signature else ''}` | {', '.join(spelled)} | {kind.doc} |")
    return "\n".join(rows)


def _value_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) else str(value)


def _preset_text(preset: dict) -> str:
    return f" ({', '.join(f'{key}={value}' for key, value in preset.items())})" if preset else ""


def lookup(name: str) -> tuple[OpKind, dict[str, Any]] | None:
    """The kind and preset arguments for a spelled layer name, or None."""
    found = _spelled(name)
    if found is None:  # not loaded yet: the module the table names for it (every module for a name it does not know)
        REGISTRY.load(name)
        found = _spelled(name)
    if found is None:  # declared where the table does not say: look again with every kind loaded
        REGISTRY.load_all()
        found = _spelled(name)
    return found


def _spelled(name: str) -> tuple[OpKind, dict[str, Any]] | None:
    if dict.__contains__(REGISTRY, name):
        return REGISTRY[name], {}
    if name in _ALIASES:
        kind, preset = _ALIASES[name]
        return REGISTRY[kind], dict(preset)
    for match, kind in _PATTERNS:
        preset = match(name)
        if preset is not None:
            return REGISTRY[kind], preset
    return None


def known_names() -> list[str]:
    return sorted(set(REGISTRY) | set(_ALIASES) | {"conv3x3", "conv1x1", "maxpool3x3", "dwconv3x3"})


# ---- value checks shared by kinds -----------------------------------------------
def whole(value: Any, what: str, minimum: int = 1) -> int:
    """A whole number >= minimum; integral floats (from `/`) are accepted."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueProblem(f"{what} must be a whole number, got {shown(value)}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueProblem(f"{what} must be a whole number, got {value:g}", hint="use // for floor division")
        value = int(value)
    if value < minimum:
        raise ValueProblem(f"{what} must be at least {minimum}, got {value}")
    return value


def repeats(value: Any, what: str) -> int:
    """A kind's count of the sub-layers it repeats (RT-DETR's decoder layers, RealNVP's couplings): a whole number
    of at most MOST_REPEATS, as `x n` is held by the node bound."""
    count = whole(value, what)
    if count > MOST_REPEATS:
        raise LimitProblem(
            f"{what} must be at most {MOST_REPEATS:,}, got {count:,}",
            hint="a published network repeats a few of them; write more as layers of their own",
        )
    return count


def pair(value: Any, what: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a (h, w) pair, as kernel sizes, strides and paddings are given."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueProblem(f"{what} must be one number or two (h, w), got {len(value)}")
        return whole(value[0], what, minimum), whole(value[1], what, minimum)
    number = whole(value, what, minimum)
    return number, number


def fraction(value: Any, what: str) -> float:
    """A probability or rate in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueProblem(f"{what} must be between 0 and 1, got {shown(value)}")
    return float(value)


def real(value: Any, what: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (positive and value <= 0):
        raise ValueProblem(f"{what} must be a {'positive ' if positive else ''}number, got {shown(value)}")
    return float(value)


def flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ValueProblem(f"{what} must be true or false, got {shown(value)}")
    return value


def choice(value: Any, what: str, options: Sequence[str]) -> str:
    if value not in options:
        raise ValueProblem(f"{what} must be one of {', '.join(options)}; got {shown(value)}")
    return value


def spatial(kind: OpKind, shape: Shape) -> Shape:
    """The input as C×H×W, or a clear error for a flat vector."""
    if len(shape) != 3:
        raise ShapeProblem(
            f"`{kind.name}` needs a C×H×W input, got {format_shape(shape)}",
            hint="it cannot follow a flatten or fully connected layer",
        )
    return shape


def sliding(size: int, kernel: int, stride: int, padding: int, dilation: int = 1, ceil: bool = False) -> int:
    """Output length of a sliding window, as PyTorch computes it (ceil mode included)."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if ceil:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + padding:
            out -= 1
    else:
        out = span // stride + 1
    return out


def stride_text(stride: tuple[int, int]) -> str:
    """A label's stride: nothing for 1, `, /2` for (2, 2), `, /2×1` for (2, 1)."""
    if stride == (1, 1):
        return ""
    return f", /{stride[0]}" if stride[0] == stride[1] else f", /{stride[0]}×{stride[1]}"


def channels_last(value: Expr, shape: Shape) -> Expr:
    """The torch call of a layer over the channels at every pixel: permuted to N×H×W×C and back, as ConvNeXt
    applies its LayerNorm and Linear; a vector needs no permute."""
    if len(shape) == 1:
        return applied(value)
    return Method(applied(Method(value, "permute", (0, 2, 3, 1))), "permute", (0, 3, 1, 2))


def axis_index(value: Any, shape: Shape, what: str = "axis") -> int:
    """An axis of `shape` as the `input` statement numbers them (0 the channels; the batch not counted), from
    its end where negative (-1 the last), as a non-negative index."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueProblem(f"{what} must be a whole number, got {shown(value)}")
    rank = len(shape)
    if not -rank <= value < rank:
        raise ValueProblem(
            f"{what} {value} does not exist in a {format_shape(shape)} tensor",
            hint=f"its axes are 0 to {rank - 1}, or -{rank} to -1 from the end (the batch is not counted)",
        )
    return value % rank


def ranked(kind: OpKind, shape: Shape) -> Shape:
    """A shape the kind makes, refused where it has more axes than any backend here is checked with."""
    if len(shape) > MAX_RANK:
        raise ShapeProblem(
            f"`{kind.name}` would make a tensor of {len(shape)} axes, {format_shape(shape)}",
            hint=f"a tensor has at most {MAX_RANK} axes, the batch not counted",
        )
    return shape


def broadcast(shapes: Sequence[Shape]) -> Shape | None:
    """The shape numpy (and torch, and ONNX) broadcasting gives these shapes, aligned from their last axis; None
    where two sizes along an axis differ and neither is 1."""
    rank = max(len(shape) for shape in shapes)
    result = []
    for axis in range(rank):
        sizes = {shape[axis - rank + len(shape)] for shape in shapes if axis - rank + len(shape) >= 0} - {1}
        if len(sizes) > 1:
            return None
        result.append(sizes.pop() if sizes else 1)
    return tuple(result)


def format_shape(shape: Shape) -> str:
    return "×".join(str(dim) for dim in shape)


def numel(shape: Shape) -> int:
    return math.prod(shape)


def shrunk(kind: OpKind, shape: Shape, out_h: int, out_w: int) -> None:
    """A window that no longer fits its input is an error, not a zero-sized tensor."""
    if out_h < 1 or out_w < 1:
        raise ShapeProblem(
            f"`{kind.name}` shrinks {format_shape(shape)} to nothing ({out_h}×{out_w})",
            hint="the input is too small here: use a larger input, padding, or fewer downsampling layers",
        )
