"""Standalone PyTorch source for a network: one class, its modules in `__init__`, its forward in data-flow order.

The forward keeps the running tensor in `x` and gives a new name (`x1`, or the tap's label) only to a
value that a later layer still needs, as hand-written PyTorch does.
"""

from __future__ import annotations

import ast
import inspect
import math
import struct
from collections.abc import Mapping
from functools import cache

import networkx as nx
import torch
from torch import nn

from ..core.errors import ValueProblem
from ..core.source_map import source_name
from ..core.version import __version__
from ..graph import ir
from ..graph.ir import input_shapes, inputs_of, walk
from ..ops import format_shape, torch_functions
from ..ops.tensors import PARAMETER, Ramp
from ..ops.torch_code import Expr, namespaces, passes_through, written
from . import python_names
from .python_layout import laid_out
from .python_names import Namespace, assignment, attribute, module_path, value_name
from .source_excerpt import network_text


def python_source(network, root: nn.Module) -> str:
    """The file's text; `root` holds the network's modules at their IR names (as build_module makes them).
    It passes `ruff check` and is left unchanged by `ruff format`."""
    modules = dict(root.named_modules())
    parameters = dict(root.named_parameters())
    init, settings = _init_lines(modules, network)
    body = [
        f"class {class_name(network.name)}(nn.Module):",
        *init,
        "",
        *_forward_lines(network, set(modules) | set(parameters)),
    ]
    scales = any(
        next(module.parameters(recurse=False), None) is not None
        for module in modules.values()
        if type(module) is nn.Module
    )  # a layer that is one tensor (layer scale), built with torch.full
    inputs = ir.network_info(network.graph).inputs
    trees = (forward_tree(network.graph, node) for node in network.graph if node not in inputs)
    uses = {"nn", *(["torch"] if scales or settings else []), *(name for tree in trees for name in namespaces(tree))}
    uses |= {type(module).__name__ for module in modules.values() if written_class(module)}
    return python_file(network, "\n".join(body), uses)


def python_file(network, code: str, uses: set | frozenset, kept: dict | None = None) -> str:
    """Header, the imports of the names the code `uses` and the code, laid out as ruff format lays it out."""
    code = "\n".join(part for line in code.split("\n") for part in laid_out(line))
    functions = torch_functions.source(uses)  # cnndsl's own, for the layers torch has no op for
    if functions:
        uses, functions = {*uses, "torch"}, f"\n{functions}\n"
    return header(network, kept) + "\n" + _imports(uses) + "\n" + functions + "\n" + code + "\n"


IMPORTS = {"torch": "import torch", "F": "import torch.nn.functional as F", "nn": "from torch import nn"}


def _imports(uses: set | frozenset) -> str:
    """The imports of the names the code uses, and no other: an unused one would fail `ruff check`."""
    lines = "".join(f"{line}\n" for name, line in IMPORTS.items() if name in uses)
    return ("from collections import OrderedDict\n\n" if "OrderedDict" in uses else "") + lines


def header(network, kept: dict | None = None) -> str:
    """The module docstring: where the file comes from, its figures, which network parameters the class
    takes (`kept`) and which are fixed. Every text from the source is escaped, so a file or network name
    cannot end the docstring or start a line of code."""
    fixed = [
        f"{name}={text}" for name, text in ir.network_info(network.graph).params.items() if name not in (kept or {})
    ]
    lines = [
        f"{network.name}, compiled from {source_name(network.file, network.file)} by cnndsl {__version__}.",
        "",
        (f"{_inputs_line(network)}; {network.params:,} parameters; {network.macs:,} multiply-accumulates per image."),
        "Needs only torch. Its state_dict keys are those of `cnndsl.load(...).to_torch()`.",
        *(
            [
                f"{class_name(network.name)}({', '.join(kept)}) takes the network's parameters that set widths "
                "and counts."
            ]
            if kept
            else []
        ),
        *([f"Fixed at their values: {', '.join(fixed)}."] if fixed else []),
        "",
        f"Its source, from {source_name(network.file, network.file)}:",
        "",
        *(f"    {line}".rstrip() for line in network_text(network).splitlines()),
    ]
    return '"""' + "\n".join(docstring_text(line) for line in lines) + '\n"""\n'


def docstring_text(text: str) -> str:
    """`text` as it may stand inside a triple-quoted docstring: backslashes, a quote that follows a quote
    (so no three can stand together) and every character that is not printable (line breaks of any kind, bidi controls)
    escaped."""
    return "".join(
        "\\" + char if char == "\\" or char == '"' == before else _printable(char)
        for before, char in zip(" " + text, text)
    )


def comment_text(text: str) -> str:
    """`text` as it may follow `#` on one line: no character can end the comment."""
    return "".join(_printable(char) for char in text)


def _printable(char: str) -> str:
    if char.isprintable():
        return char
    return char.encode("unicode_escape").decode("ascii")


def class_name(network_name: str) -> str:
    """The network's class: `resnet50` -> `Resnet50`; `None` or `F` -> `NoneNetwork`, `FNetwork`."""
    return python_names.class_name(network_name, "Network")


def _inputs_line(network) -> str:
    """`Input 3×224×224`, or `Inputs left 3×16×16, right 3×16×16` (the forward's arguments in order)."""
    inputs = network.inputs
    if len(inputs) == 1:
        return f"Input {format_shape(inputs[0][1])}"
    return "Inputs " + ", ".join(f"{name} {format_shape(shape)}" for name, shape in inputs)


def input_names(network) -> dict[int, str]:
    """The forward's arguments, by input node in order: each input's label where it makes a good Python name,
    else `x` (numbered where several would share it)."""
    names = Namespace()
    return {
        node: names.fresh(value_name(ir.layer(network.graph, node).tap)) for node in ir.forward_inputs(network.graph)
    }


def _init_lines(modules: dict[str, nn.Module], network) -> tuple[list[str], bool]:
    """`__init__`'s lines, and whether they set fixed values (with torch)."""
    lines = ["    def __init__(self):", "        super().__init__()"]
    fixing = False
    layers = {layer.name: node for node, layer in ir.layers(network.graph)}
    whole = [path + "." for path, module in modules.items() if written_class(module)]
    for path, module in modules.items():
        if path.startswith(tuple(whole)):
            continue  # inside a module whose class the file writes (its constructor builds it)
        if path:
            *parents, leaf = path.split(".")
            owner = module_path("self", ".".join(parents)) if parents else "self"
            node = layers.get(path)
            if written_class(module):
                lines.append(f"        {assignment(owner, leaf, written_constructor(module))}")
                continue
            if node is not None and getattr(nn, type(module).__name__, None) is not type(module):
                _refuse_own_module(ir.layer(network.graph, node), module)
            frozen, settings = (
                (False, []) if node is None else fixed_tensors(network.graph, node, module_path("self", path))
            )
            constructor = _constructor(module, None if node is None else ir.layer(network.graph, node).attrs)
            lines.append(f"        {assignment(owner, leaf, constructor + FROZEN * frozen)}")
            lines += [f"        {line}" for line in settings]
            fixing = fixing or bool(settings)
        if type(module) is nn.Module:  # a group, holding the layers that are one tensor (layer scale)
            for name, parameter in module.named_parameters(recurse=False):
                fill = initial_value(network, f"{path}.{name}" if path else name)
                lines.append(
                    f"        {module_path('self', path) if path else 'self'}.{name} = "
                    f"{parameter_constructor([str(size) for size in parameter.shape], fill)}"
                )
            for name, buffer in module.named_buffers(recurse=False):  # a tensor a layer keeps (textembed's)
                fill = initial_value(network, f"{path}.{name}" if path else name)
                sizes = ", ".join(str(size) for size in buffer.shape) + "," * (buffer.dim() == 1)
                lines.append(
                    f"        {module_path('self', path) if path else 'self'}.register_buffer("
                    f"{name!r}, torch.full(({sizes}), {float32_text(fill)}))"
                )
    return lines, fixing


FROZEN = ".requires_grad_(False)"


def written_class(module: nn.Module) -> bool:
    """A module of cnndsl's own that the file writes the class of (torch_functions.CLASSES: RealNVP)."""
    return torch_functions.CLASSES.get(type(module).__name__) is type(module)


def written_constructor(module: nn.Module) -> str:
    """`RealNVP(6, 64)`: such a class keeps each constructor argument under its name."""
    arguments = signature_parameters(type(module))
    return f"{type(module).__name__}({', '.join(repr(getattr(module, name)) for name in arguments)})"


def _refuse_own_module(layer, module: nn.Module) -> None:
    """A layer whose torch module is cnndsl's own class (RT-DETR's aifi, rtdetrdecoder), which a file that
    needs only torch cannot build: refused at the layer."""
    raise ValueProblem(
        f"`{layer.op}` has no --to python form: its torch module is cnndsl's own {type(module).__name__}",
        layer.pos,
        "compile to pt2 or onnx instead, or build it with Network.to_torch()",
    )


def fixed_tensors(graph, node: int, held: str) -> tuple[bool, list[str]]:
    """What the layer's constructor call leaves out, from the tensors its kind declares: whether its module
    is never trained (every parameter kept from training: `FROZEN` follows the call), and the statements
    that give the module `held` the values it always starts from (DFL's bins 0, 1, ..., reg_max - 1), so
    the class computes as `to_torch()` builds it even before a state_dict is loaded."""
    layer = ir.layer(graph, node)
    specs = layer.kind.tensors(layer.attrs, input_shapes(graph, node))
    parameters = [spec for spec in specs if spec.role == PARAMETER]
    frozen = bool(parameters) and not any(spec.trainable for spec in parameters)
    lines = []
    for spec in specs:
        if isinstance(spec.init, Ramp):
            shape = ", ".join(str(size) for size in spec.shape)
            values = f"torch.arange({float(math.prod(spec.shape))}).view({shape})"
            tensor = attribute(held, spec.name) if spec.name else held
            copy = f"{tensor}.copy_({values})"
            lines += [copy] if not spec.trainable else ["with torch.no_grad():", f"    {copy}"]
    return frozen, lines


def parameter_constructor(sizes: list[str], fill: float) -> str:
    """A layer that is one tensor, as torchvision's ConvNeXt writes its layer scale."""
    return "".join(parameter_parts(sizes, fill))


def parameter_parts(sizes: list, fill: float) -> list:
    """`nn.Parameter(torch.full((sizes), fill))` as fragments: each size is text or a slot of a class's code."""
    shape = ["(", sizes[0], ",)"] if len(sizes) == 1 else ["(", *_separated(sizes, ", "), ")"]
    return ["nn.Parameter(torch.full(", *shape, f", {float32_text(fill)}))"]


def _separated(items: list, separator: str) -> list:
    return [part for index, item in enumerate(items) for part in ([separator, item] if index else [item])]


def float32_text(value: float) -> str:
    """The shortest decimal that is `value` in float32 (`1e-06`, not 9.999999974752427e-07)."""
    for digits in range(1, 18):
        text = f"{value:.{digits}g}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == value:  # no tensor: callers may be on meta
            return repr(float(text))
    return repr(value)


def initial_value(network, name: str) -> float:
    """The value a layer that is one tensor (layer scale) starts from, built afresh on the CPU: the
    modules the source is written from live on the meta device, which holds no values."""
    graph = network.graph
    found = next(((node, layer) for node, layer in ir.layers(graph) if layer.name == name), None)
    if found is None:  # a tensor a layer holds under its own name (contrast's bias): the start it declares
        owner, _, tensor = name.rpartition(".")
        node, layer = next((node, layer) for node, layer in ir.layers(graph) if layer.name == owner)
        specs = layer.kind.tensors(layer.attrs, input_shapes(graph, node))
        return next(spec.init.value for spec in specs if spec.name == tensor)
    node, layer = found
    with torch.device("cpu"):
        fresh = layer.kind.torch_module(layer.attrs, input_shapes(graph, node))
    return fresh.flatten()[0].item()


def _constructor(module: nn.Module, attrs: dict | None = None) -> str:
    """The layer's constructor call as text (`nn.Conv2d(64, 128, kernel_size=3, ...)`)."""
    call = constructor_call(module, attrs)
    return "nn.Module()" if call is None else f"nn.{ast.unparse(call)}"


def constructor_call(module: nn.Module, attrs: dict | None = None) -> ast.Call | None:
    """A torch.nn layer's repr is its constructor call (torch's text, read with ast); arguments left at their
    defaults are dropped, which reads as hand-written code and keeps the file valid for torch versions with
    fewer arguments. An argument the repr leaves out (PReLU's `init`) comes from the layer's `attrs` in the
    IR. None for a plain container (`nn.Module()`)."""
    cls = type(module)
    if cls is nn.Module:
        return None
    if getattr(nn, cls.__name__, None) is not cls or next(module.children(), None) is not None:
        raise TypeError(f"{cls.__name__} is not a torch.nn layer; --to python can only write those")
    call = ast.parse(repr(module), mode="eval").body
    defaults = signature_parameters(cls)
    if cls is nn.PReLU and attrs is not None:  # its repr shows num_parameters only
        call.keywords.append(ast.keyword("init", ast.Constant(attrs["init"])))
    call.keywords = [
        argument
        for argument in call.keywords
        if argument.arg not in defaults or not _is_default(argument.value, defaults[argument.arg])
    ]
    return call


@cache
def signature_parameters(cls: type) -> Mapping[str, inspect.Parameter]:
    """A layer class's constructor parameters, read once per class (inspect is slow, and a network has
    thousands of layers of a few classes)."""
    return inspect.signature(cls).parameters


def _is_default(value: ast.expr, parameter: inspect.Parameter) -> bool:
    try:
        return ast.literal_eval(value) == parameter.default
    except ValueError:
        return False


def _forward_lines(network, owned: set[str]) -> list[str]:
    """The forward's body; the layers only `train output`s need go last, under `if self.training:`, which returns
    the eval outputs and then the train outputs."""
    graph = network.graph
    uses = {node: graph.out_degree(node) for node in graph}
    info = ir.network_info(graph)
    for _, node in info.outputs + info.train_outputs:
        uses[node] += 1  # outputs stay alive until the return
    names = input_names(network)
    live = Namespace()
    for name in names.values():
        live.fresh(name)
    arguments = [f"{name}=None" if node in info.train_inputs else name for node, name in names.items()]
    lines = [f"    def forward(self, {', '.join(arguments)}):"]
    training = ir.training_only(graph)
    group: tuple = ()
    for node, layer, *_ in walk(graph):
        if node in info.inputs or node in training:
            continue
        if layer.group != group:
            lines += _group_comment(graph, group, layer.group)[len(lines) == 1 :]  # no blank line after `def`
            group = layer.group
        lines.append(f"        {_assignment(graph, node, owned, names, uses, live)}")
    results = [names[node] for _, node in info.outputs]
    if training:
        lines.append("        if self.training:")
        given = set().union(*(nx.descendants(graph, node) for node in info.train_inputs))  # from a train input
        for node in sorted(training - given - set(info.inputs)):
            lines.append(f"            {_assignment(graph, node, owned, names, uses, live)}")
        lines += _given_lines(graph, sorted(given), owned, names, uses, live)
        returned = results + [names[node] for _, node in info.train_outputs]
        lines.append(f"            return {', '.join(returned)}")
    lines.append(f"        return {', '.join(results)}")
    return lines


def _given_lines(graph, nodes: list[int], owned: set[str], names: dict, uses: dict, live: Namespace) -> list[str]:
    """The layers computed from `train input`s, run where those were given; the train outputs they make are None
    where not."""
    if not nodes:
        return []
    info = ir.network_info(graph)
    computed = [_assignment(graph, node, owned, names, uses, live) for node in nodes]
    unset = [f"            {names[node]} = None" for _, node in info.train_outputs if node in nodes]
    given = " and ".join(f"{names[node]} is not None" for node in info.train_inputs)
    return [*unset, f"            if {given}:", *(f"                {line}" for line in computed)]


def _assignment(graph, node: int, owned: set[str], names: dict, uses: dict, live: Namespace) -> str:
    """`name = expression` of the node; names its inputs no longer need are released for reuse."""
    layer, sources = ir.layer(graph, node), inputs_of(graph, node)
    held = ir.layer(graph, ir.owner(graph, node)).name  # `shared(@t)` calls the module of t
    module = module_path("self", held) if held in owned else None
    expression = forward_expression(graph, node, [names[source] for source in sources], module)
    for source in sources:
        uses[source] -= 1
        if uses[source] == 0:
            live.release(names[source])
    names[node] = live.fresh(value_name(layer.tap))
    if not uses[node]:
        live.release(names[node])
    return f"{names[node]} = {expression}"


def forward_expression(graph, node: int, args: list[str], module: str | None) -> str:
    """The node's forward as Python text over the names `args` and its module's `module`."""
    return written(forward_tree(graph, node), args, module)


def forward_tree(graph, node: int) -> Expr:
    """The node's forward expression (cnndsl.ops.torch_code): the kind's in-place form where it has one and
    its first input may be overwritten, else its ordinary one."""
    layer, sources = ir.layer(graph, node), inputs_of(graph, node)
    shapes = [ir.layer(graph, source).shape for source in sources]
    kind = layer.kind
    in_place = kind.torch_forward_in_place(layer.attrs, shapes) if sources and overwritable(graph, sources[0]) else None
    return in_place or kind.torch_forward(layer.attrs, shapes)


def overwritable(graph, node: int) -> bool:
    """The node's value may be overwritten by the layer that reads it: a fresh tensor that backward does
    not keep (not its input passed on, as by an `add` of one input), with one reader and not an output
    (as torchvision's in-place ReLU and `out += identity`)."""
    info = ir.network_info(graph)
    outputs = {output for _, output in info.outputs + info.train_outputs}
    layer, sources = ir.layer(graph, node), inputs_of(graph, node)
    kind = layer.kind
    if not kind.torch_overwritable or graph.out_degree(node) != 1 or node in outputs:
        return False
    shapes = [ir.layer(graph, source).shape for source in sources]
    return len(sources) != 1 or not passes_through(kind.torch_forward(layer.attrs, shapes))  # `add` of one input


def _group_comment(graph, previous: tuple, current: tuple) -> list[str]:
    """A comment naming a stage or block where the code enters it; a blank line where it leaves to the top."""
    if previous[: len(current)] == current:  # back out to an enclosing group
        return [] if current else [""]
    label = ir.network_info(graph).groups[current].label
    named = current[-1].rstrip("0123456789") == label  # `layer2` needs no `: layer`
    return ["", f"        # {comment_text('.'.join(current))}{'' if named else f': {comment_text(label)}'}"]
