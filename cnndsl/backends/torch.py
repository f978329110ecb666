"""The PyTorch backend: a network becomes an fx GraphModule, a standalone source file, or a torch.export program.

Every layer with a module form lives at its IR name (`layer1.bottleneck1.conv1`), so state_dict keys
are `<IR node name>.<parameter>`. The forward is an fx graph generated once, in data-flow order.
"""

from __future__ import annotations

import copy
import functools
import io
from pathlib import Path

import networkx as nx
import torch
import torch.nn.functional as F
from torch import fx, nn

from ..core.atomic import write_atomically
from ..core.errors import CnnDslError, LimitProblem, ValueProblem
from ..core.source_map import source_name
from ..figures.report import format_bytes
from ..graph import ir
from ..graph.ir import inputs_of, walk
from ..ops import torch_functions
from ..ops.torch_code import evaluated
from ..weights.checkpoint import load_into
from .class_family import compact_source, remember
from .meta_norms import ShapeOnlyNorms
from .torch_source import class_name, forward_tree, input_names, overwritable, python_file, python_source

INITS = ("default", "kaiming")
EXPORT_BATCH = 2  # torch.export specialises a batch of 1, so the example input has 2
NAMESPACES = {
    "torch": torch,
    "F": F,
    "": torch_functions.TORCH,
}  # the namespaces a kind's `Call` names (ops/torch_code)


def build_module(
    network,
    init: str = "default",
    zero_init_residual: bool = False,
    seed: int | None = None,
    weights=None,
    strict: bool = True,
) -> fx.GraphModule:
    """The network as an nn.Module; a `seed` makes initialisation reproducible without touching the global RNG.

    `weights` (cnndsl.weights) replace the initialisation: all of it, or with strict=False what they match.
    """
    if init not in INITS:
        raise ValueProblem(f"unknown initialisation `{init}`", hint=f"choose one of {', '.join(INITS)}")
    if weights is not None and strict:
        root = _loaded(network, weights, init != "default" or zero_init_residual or seed is not None)
        return graph_module(network, root)
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        root = _modules(network)
        if init == "kaiming":
            _kaiming(root)
        if zero_init_residual:
            _zero_residual_norms(network.graph, root)
    if weights is not None:
        load_into(root, network, weights, strict=False)
    return graph_module(network, root)


def _loaded(network, weights, initialising: bool) -> nn.Module:
    """Modules holding every tensor of the checkpoint: built without drawing weights (on the meta device)
    unless a layer keeps buffers no state_dict holds."""
    if initialising:
        raise ValueProblem(
            "`init`, `zero_init_residual` and `seed` do not apply when every weight comes from the checkpoint",
            hint="leave them out, or load with strict=False to initialise what the checkpoint lacks",
        )
    with torch.device("meta"):
        root = _modules(network)
    if not load_into(root, network, weights, strict=True):
        root = _modules(network)
        load_into(root, network, weights, strict=True)
    return root


def write_python(network, path: str | Path) -> Path:
    """One standalone PyTorch source file defining the network as a class; it needs only torch."""
    return write_atomically(path, standalone_source(network))


def standalone_source(network) -> str:
    """The compact source (a class per block, loops, the network's count and width parameters), where it
    rebuilds exactly the modules to_torch() builds, also with those parameters changed; else the unrolled
    source (also for several inputs, which the class layout does not take). Modules are built on the meta
    device: the source needs their form, not their weights."""
    root = _meta_modules(network)
    if ir.network_info(network.graph).train_outputs or len(network.inputs) > 1:
        return python_source(network, root)  # `if self.training:` and several inputs: the unrolled form only

    def rebuild(changes: dict, modules: bool = True):  # each once: the search and the checks ask for the same
        return _built_once(network, changes, modules)

    try:
        code, kept, uses, checked, made = compact_source(network, dict(root.named_modules()), rebuild)
    except Exception:  # noqa: BLE001  (a shape the compact layout does not foresee: the unrolled one is exact)
        return python_source(network, root)
    text = python_file(network, code, uses, kept)
    if _rebuilds(text, network, root, checked, rebuild):
        remember(network, made)
        return text
    return python_source(network, root)


def meta_forward(network) -> fx.GraphModule:
    """The network's forward with its modules on the meta device: shapes without values or weights."""
    return graph_module(network, _meta_modules(network))


def _meta_modules(network) -> nn.Module:
    with torch.device("meta"):
        return _modules(network)


# The latest builds of networks with changed parameters, by file, source, input and all parameters: a family's
# networks (yolov8n ... yolov8x) share theirs, and a network's own search and check ask for the same ones.
BUILDS: dict = {}
BUILDS_HELD = 16


def _built_once(network, changes: dict, modules: bool = True):
    """(network, its modules by name) with some parameters changed (the network's own `with_params` expands it
    again; its modules None where not asked for), or None where it does not expand."""
    overrides = {**ir.network_info(network.graph).param_values, **changes}
    key = (network.file, network.source, tuple(network.input_shape), repr(sorted(overrides.items())))
    if key not in BUILDS or (modules and BUILDS[key] is not None and BUILDS[key][1] is None):
        try:
            other = BUILDS[key][0] if BUILDS.get(key) else network.with_params(**changes)
            BUILDS[key] = other, dict(_meta_modules(other).named_modules()) if modules else None
        except CnnDslError:
            BUILDS[key] = None
        while len(BUILDS) > BUILDS_HELD:
            del BUILDS[next(iter(BUILDS))]
    return BUILDS[key]


def _rebuilds(text: str, network, root: nn.Module, checked: list, rebuild) -> bool:
    """The source's class builds the same state_dict shapes and outputs as `root`, and with each of the
    `checked` arguments (kept parameters changed), as the network expanded with them (`rebuild`)."""
    namespace: dict = {}
    exec(compile(text, "<generated>", "exec"), namespace)  # noqa: S102  (the text just generated)
    network_class = namespace[class_name(network.name)]
    cases = [(network, root, {})]
    for arguments in checked:
        rebuilt = rebuild(arguments)
        if rebuilt is None:
            return False
        cases.append((rebuilt[0], rebuilt[1][""], arguments))
    for expected_network, expected, arguments in cases:
        try:
            with torch.device("meta"):
                written = network_class(**arguments).eval()
            with ShapeOnlyNorms():  # the forward's meta tensors stay on meta without the device's mode
                outputs = written(torch.empty(2, *expected_network.input_shape, device="meta"))
        except Exception:  # noqa: BLE001  (any failure means: use the unrolled form)
            return False
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        shapes = [tuple(output.shape[1:]) for output in outputs]
        if shapes != [ir.layer(expected_network.graph, node).shape for _, node in expected_network.outputs]:
            return False
        if _shapes(written) != _shapes(expected):
            return False
    return True


def _shapes(module: nn.Module) -> list:
    return [(key, tuple(tensor.shape)) for key, tensor in module.state_dict().items()]


def write_pt2(network, path: str | Path, module: nn.Module | None = None) -> Path:
    """A torch.export program of `module` (default: a freshly built one) in eval mode, with a dynamic batch;
    the archive records the source by name only (cnndsl.source_map), and is saved through memory so that it
    holds no temp file's name."""
    program = export_program(network, module if module is not None else build_module(network))
    for node in program.graph.nodes:
        node.meta.pop("from_node", None)  # provenance keyed by Python object ids: other bytes on every run
    archive = io.BytesIO()
    torch.export.save(program, archive, extra_files={"source": source_name(network.file, network.file)})
    return write_atomically(path, archive.getvalue())


def export_program(network, module: nn.Module) -> torch.export.ExportedProgram:
    """`torch.export` of the module for inference: eval mode, the batch dimension dynamic."""
    for _, layer, kind, _, _ in walk(network.graph):
        reason = kind.torch_export_refusal(layer.attrs)
        if reason is not None:
            raise ValueProblem(
                f"{reason}: torch.export cannot write it",
                layer.pos,
                "give it a fixed sampling_ratio (2, as torchvision's detection heads), or compile to onnx or python",
            )
    # the archive keeps it: the same every time, and one value broadcast, so that a large input costs no memory
    examples = tuple(torch.zeros(()).expand(EXPORT_BATCH, *shape) for _, shape in network.eval_inputs)
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        return torch.export.export(module.eval(), examples, dynamic_shapes=tuple({0: batch} for _ in examples))


# ---- modules ------------------------------------------------------------------
def _modules(network) -> nn.Module:
    """Plain nested containers holding each kind's module at the node's dotted name."""
    network.require_weights_fit()  # refuse before allocating weights no machine here can hold
    graph = network.graph
    root = nn.Module()
    for node, layer, kind, _, shapes in walk(graph):
        if layer.shares is not None:
            continue  # `shared(@t)`: it calls the module of the layer at t
        module = _allocated(kind, layer, shapes)
        if kind.torch_in_place and module is not None:
            module.inplace = _may_overwrite_input(graph, node)
        if module is not None:
            *path, leaf = layer.name.split(".")
            parent = root
            for part in path:
                if not hasattr(parent, part):
                    parent.add_module(part, nn.Module())
                parent = getattr(parent, part)
            if isinstance(module, nn.Parameter):  # a layer that is one tensor (layer scale), as torchvision holds it
                parent.register_parameter(leaf, module)
            else:
                parent.add_module(leaf, module)
    return root


def _allocated(kind, layer, shapes: list):
    """The layer's module; running out of memory while building it is a located error naming the layer and the
    size of its parameters (torch reports it as a RuntimeError from its allocator)."""
    try:
        return kind.torch_module(layer.attrs, shapes)
    except (MemoryError, RuntimeError) as error:
        if not isinstance(error, MemoryError) and "allocate memory" not in str(error):
            raise
        params = layer.figures.params
        raise LimitProblem(
            f"not enough memory to build layer `{layer.name}` with {params:,} parameters "
            f"({format_bytes(4 * params)} as float32)",
            layer.pos,
            "check the layer's width, or give cnndsl more memory",
        ) from None


def _may_overwrite_input(graph: nx.DiGraph, node: int) -> bool:
    """An activation runs in place, as torchvision's `ReLU(inplace=True)`, where its one input may be overwritten."""
    sources = inputs_of(graph, node)
    return len(sources) == 1 and overwritable(graph, sources[0])


# ---- initialisation ---------------------------------------------------------------
def _kaiming(root: nn.Module) -> None:
    """He et al. 2015 for every convolution (fan_out, ReLU gain) and zero biases, as torchvision's ResNet."""
    for module in root.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def _zero_residual_norms(graph: nx.DiGraph, root: nn.Module) -> None:
    """Zero the scale of the BatchNorm that ends each residual body, so every block starts as the
    identity (Goyal et al. 2017, torchvision's `zero_init_residual`)."""
    modules = dict(root.named_modules())
    for _, _, kind, sources, _ in walk(graph):
        if not kind.residual_join:
            continue
        body, *shortcuts = sources
        shared = set(shortcuts).union(*(nx.ancestors(graph, source) for source in shortcuts))
        while body not in shared:
            layer = ir.layer(graph, body)
            module = modules.get(layer.name)
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.zeros_(module.weight)
                break
            if layer.figures.params or not graph.pred[body]:
                break  # a weighted layer other than a norm ends the body: nothing to zero
            body = inputs_of(graph, body)[0]


# ---- forward --------------------------------------------------------------------
def graph_module(network, root: nn.Module) -> fx.GraphModule:
    """The GraphModule of the network's forward over `root`'s modules; with `train output`s, a `TrainingOutputs`."""
    name = class_name(network.name)
    if not ir.network_info(network.graph).train_outputs:
        return fx.GraphModule(root, forward_graph(network, root), name)
    module = TrainingOutputs(root, forward_graph(network, root, training=True), name)  # holds every module
    module.graph = forward_graph(network, root)  # its own forward: the eval one, which leaves them out
    module.__dict__["training_forward"] = fx.GraphModule(module, forward_graph(network, root, training=True), name)
    module.__dict__["eval_inputs"] = len(ir.eval_inputs(network.graph))
    if ir.network_info(network.graph).train_inputs:  # called without them: the train outputs they make are None
        given = forward_graph(network, root, training=True, train_inputs=False)
        module.__dict__["training_forward_without"] = fx.GraphModule(module, given, name)
    return module


class TrainingOutputs(fx.GraphModule):
    """A network with `train output`s: in eval mode its forward is the eval graph (`.code`, export, ONNX); in
    training mode it runs `training_forward`, a second graph over the same modules that returns the tuple
    (eval outputs..., train outputs...). The second graph is kept out of the module tree, so the state_dict is
    the network's, each tensor once."""

    def recompile(self):
        generated = super().recompile()
        evaluating = type(self).forward  # GraphModule writes each instance's forward on its own class

        @functools.wraps(evaluating)  # its signature, the input's name, which torch.export reads
        def forward(self, *args):
            if self.training:
                without = len(args) == self.__dict__["eval_inputs"] and "training_forward_without" in self.__dict__
                return self.__dict__["training_forward_without" if without else "training_forward"](*args)
            return evaluating(self, *args)

        type(self).forward = forward
        return generated

    def __deepcopy__(self, memo):
        """The copy keeps its training forward, a graph over the copy's own modules."""
        copied = super().__deepcopy__(memo)
        for name in ("training_forward", "training_forward_without"):
            if name in self.__dict__:
                graph = copy.deepcopy(self.__dict__[name].graph)
                copied.__dict__[name] = fx.GraphModule(copied, graph, type(self).__name__)
        copied.__dict__["eval_inputs"] = self.__dict__["eval_inputs"]
        return copied

    def __reduce__(self):
        """Pickled (torch.save of the whole module) as it is built: GraphModule's own pickling keeps the eval
        forward alone and makes each training forward a submodule, every weight twice in the state_dict. The
        training forward calls every module, so it carries them; the eval forward is its own graph over them."""
        name = type(self).__name__
        trainings = {
            key: self.__dict__[key] for key in ("training_forward", "training_forward_without") if key in self.__dict__
        }
        evaluating = fx.GraphModule(self, copy.deepcopy(self.graph), name)
        return (_unpickled_training_outputs, (trainings, evaluating, self.__dict__["eval_inputs"], name, self.training))


def _unpickled_training_outputs(
    trainings: dict, evaluating: fx.GraphModule, eval_inputs: int, name: str, training: bool
):
    """The TrainingOutputs that `TrainingOutputs.__reduce__` pickled, built as `graph_module` builds it."""
    module = TrainingOutputs(trainings["training_forward"], copy.deepcopy(trainings["training_forward"].graph), name)
    module.graph = copy.deepcopy(evaluating.graph)
    for key, forward in trainings.items():
        module.__dict__[key] = fx.GraphModule(module, copy.deepcopy(forward.graph), name)
    module.__dict__["eval_inputs"] = eval_inputs
    module.training = training
    return module


def forward_graph(network, root: nn.Module, training: bool = False, train_inputs: bool = True) -> fx.Graph:
    """The forward as an fx graph: each node's expression (`torch_forward`, or its in-place form) applied to proxies.
    The eval forward leaves out the layers only `train output`s need, and the `train input`s; the `training` one
    returns those outputs too, after the eval ones, always as a tuple (without `train_inputs`: it takes the eval
    forward's inputs alone, and the train outputs computed from a train input are None).

    Each IR node's result carries `meta["cnndsl_node"]` (its id) for passes such as shape propagation.
    """
    graph = network.graph
    info = ir.network_info(graph)
    skipped = set() if training else ir.training_only(graph) | set(info.train_inputs)
    if not train_inputs:
        skipped = set(info.train_inputs).union(*(nx.descendants(graph, node) for node in info.train_inputs))
    code = fx.Graph()
    tracer = _NamingTracer(code)
    modules = dict(root.named_modules())
    parameters = dict(root.named_parameters())
    values = {
        node: tracer.create_proxy("placeholder", name, (), {})
        for node, name in input_names(network).items()
        if node not in skipped
    }
    for node, layer, _, sources, _ in walk(graph):
        if node in values or node in skipped:
            continue
        tracer.node_name = layer.name.replace(".", "_")
        own, held = None, ir.layer(graph, ir.owner(graph, node)).name  # `shared(@t)` uses the module of t
        if held in parameters:  # the layer's own tensor, read as `self.<name>`
            own = tracer.create_proxy("get_attr", held, (), {})
        elif held in modules:
            own = _ModuleCall(tracer, held)
        arguments = [values[source] for source in sources]
        values[node] = evaluated(forward_tree(graph, node), arguments, own, NAMESPACES)
        values[node].node.meta["cnndsl_node"] = node
    returned = info.outputs + info.train_outputs if training else info.outputs
    results = tuple(values[node].node if node in values else None for _, node in returned)
    code.output(results[0] if len(results) == 1 and not training else results)
    return code


class _NamingTracer(fx.proxy.GraphAppendingTracer):
    """Names every fx node after the IR node it computes, so the generated code reads like the source."""

    node_name: str | None = None

    def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
        return super().create_node(kind, target, args, kwargs, name or self.node_name, type_expr)


class _ModuleCall:
    """Stands for `self.<path>` in a kind's expression: calling it records a call_module node."""

    def __init__(self, tracer: fx.proxy.GraphAppendingTracer, target: str):
        self.tracer, self.target = tracer, target

    def __call__(self, *args):
        return self.tracer.create_proxy("call_module", self.target, args, {})

    def __getattr__(self, name: str):
        """`self.<path>.weight`: a tensor of the module read by the expression (deformable convolution)."""
        if name.startswith("__"):  # Python's own questions (copy, pickle, dispatch) are not the module's tensors
            raise AttributeError(name)
        return self.tracer.create_proxy("get_attr", f"{self.target}.{name}", (), {})
