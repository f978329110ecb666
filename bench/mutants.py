"""Mutation score: plant small bugs in a copy of cnndsl, one at a time, and see whether the tests notice.

Each mutant replaces exact text in one or more files of a temporary copy of the checkout (so a mutant
whose text no longer exists is reported as stale, not silently skipped), then runs, stopping at the first
failure, the tests named as its killers: single tests whose expected values come from outside cnndsl, the
likeliest first. Only when they all pass does it run the test files that should see the bug (reported as
"missed by its named tests": a killer to update). A mutant is killed when the tests fail (or time out), and
survives when they pass. Prints each mutant's fate, the score, the time and the machine's load.

    python bench/mutants.py              # every mutant
    python bench/mutants.py --list       # what each mutant plants, its killers and its test files
    python bench/mutants.py --stale      # which mutants' text or named tests no longer exist
    python bench/mutants.py -k concat    # the mutants whose name contains "concat"
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Test files by what they check; a mutant's killers missing it, the files that should see it run.
REFERENCE = ["tests/test_reference.py", "tests/test_layers.py"]
COUNTS = ["tests/test_library.py", "tests/test_language.py", "tests/test_summary.py"]
TORCH = ["tests/test_torch.py", "tests/test_torchvision.py"]
ONNX = ["tests/test_onnx.py"]
DIAGRAM = ["tests/test_graphviz.py", "tests/test_cli_options.py"]
DIAGRAM_OPTIONS_PY, FORMATS_PY = "cnndsl/backends/diagram_options.py", "cnndsl/backends/formats.py"
CHECK = ["tests/test_check.py", "tests/test_errors.py", "tests/test_language.py"]
CLI = ["tests/test_cli_options.py", "tests/test_language.py"]

# Killers: single tests, each with its expected values from outside cnndsl (torchvision, torch.nn.functional,
# a hand calculation).
CONCAT_ORDER = "tests/test_reference.py::test_concat_puts_the_current_tensor_first_then_the_taps_in_order"
CONV_REFERENCE = "tests/test_reference.py::test_conv_with_stride_padding_dilation_groups_and_bias"
DECONV_REFERENCE = "tests/test_reference.py::test_deconv_with_output_padding_and_groups"
BN_EPS = "tests/test_reference.py::test_batch_norm_uses_its_epsilon_and_running_statistics"
WEIGHTLESS = "tests/test_reference.py::test_weightless_layers"
TORCHVISION_COUNTS = "tests/test_library.py::test_summary_has_torchvisions_params_and_macs"
IN_PLACE = "tests/test_torch.py::test_a_kind_declares_in_place_exactly_where_torch_overwrites_its_input"
ORACLES = ["tests/test_oracles.py"]
FIELD_ORACLE = "tests/test_oracles.py::test_receptive_field_and_jump_by_autograd"
COST_ORACLE = "tests/test_oracles.py::test_costs_are_what_torch_counts_on_the_compiled_module"
FLOP_CONVENTIONS = (
    "tests/test_oracles.py::test_flop_counter_counts_two_flops_per_mac_and_nothing_but_convolutions_and_matmuls"
)


def weightless(layer: str) -> str:
    """The reference test of one weightless layer, by its call in that test's table."""
    return f"{WEIGHTLESS}[{layer}-<lambda>]"


def field_of(network: str) -> str:
    """The autograd test of one library network's receptive fields and jumps."""
    return f"{FIELD_ORACLE}[{network}]"


# An inferred projection shortcut (the library's residual blocks write theirs, so no library network infers one)
PROJECTION = "tests/test_language.py::test_residual_adds_a_projection_when_shapes_differ"


def counts_of(network: str) -> str:
    """The test of one library network's parameters and MACs against torchvision's constructor."""
    return f"{TORCHVISION_COUNTS}[{network}]"


@dataclass(frozen=True)
class Mutant:
    name: str
    edits: tuple[tuple[str, str, str], ...]  # (file, exact text, replacement)
    killers: tuple[str, ...]  # test ids that should fail, run first
    tests: tuple[str, ...]  # test files that should see the bug, run only when the killers pass


def mutant(
    name: str, file: str, old: str, new: str, killers: list[str], tests: list[str], *more: tuple[str, str, str]
) -> Mutant:
    return Mutant(name, ((file, old, new), *more), tuple(killers), tuple(dict.fromkeys(tests)))


MERGE, CONV, POOL, DENSE, NORM = (
    "cnndsl/ops/merge.py",
    "cnndsl/ops/conv.py",
    "cnndsl/ops/pool.py",
    "cnndsl/ops/dense.py",
    "cnndsl/ops/norm.py",
)
BASE, ACT, RESIZE = "cnndsl/ops/base.py", "cnndsl/ops/activation.py", "cnndsl/ops/resize.py"
RF, RF_TESTS = "cnndsl/figures/receptive_field.py", ["tests/test_receptive_field.py"]
PROBE = "tests/test_receptive_field.py::test_small_networks_match_the_probe"  # autograd on small networks
ANALYSIS, API, CLI_PY = "cnndsl/figures/costs.py", "cnndsl/api.py", "cnndsl/cli.py"
JOINS, FLOW, CALLS = "cnndsl/graph/expand_joins.py", "cnndsl/graph/expand_flow.py", "cnndsl/graph/expand_calls.py"
TORCH_PY, FOLD, GRAPHVIZ = "cnndsl/backends/torch.py", "cnndsl/backends/onnx_fold.py", "cnndsl/backends/graphviz.py"

MUTANTS = [
    # ---- the eight bugs of issue 19 ----
    mutant(
        "1 concat order reversed in torch and ONNX",
        MERGE,
        'return Call("torch", "cat", (Listed(tuple(parts)), attrs["axis"] + 1))',
        'return Call("torch", "cat", (Listed(tuple(parts[::-1])), attrs["axis"] + 1))',
        [CONCAT_ORDER],
        REFERENCE + TORCH,
        (
            MERGE,
            'return emit.op("Concat", parts, axis=attrs["axis"] + 1)',
            'return emit.op("Concat", parts[::-1], axis=attrs["axis"] + 1)',
        ),
    ),
    mutant(
        "2 kaiming init with fan_in",
        TORCH_PY,
        'mode="fan_out"',
        'mode="fan_in"',
        ["tests/test_reference.py::test_kaiming_init_uses_fan_out_as_torchvision_does"],
        REFERENCE + TORCH,
    ),
    mutant(
        "3a CLI ignores --rankdir",
        DIAGRAM_OPTIONS_PY,
        "        return {item.name: getattr(self, item.name) for item in FIGURE_OPTIONS}",
        '        return {item.name: getattr(self, item.name) for item in FIGURE_OPTIONS if item.name != "rankdir"}',
        ["tests/test_cli_options.py::test_rankdir_turns_the_diagram"],
        DIAGRAM,
    ),
    mutant(
        "3b CLI ignores --expand",
        DIAGRAM_OPTIONS_PY,
        "        return {item.name: getattr(self, item.name) for item in FIGURE_OPTIONS}",
        '        return {item.name: getattr(self, item.name) for item in FIGURE_OPTIONS if item.name != "expand"}',
        ["tests/test_cli_options.py::test_expand_draws_every_repeated_block"],
        DIAGRAM,
    ),
    mutant(
        "4a torch ignores dropout's p",
        NORM,
        'return nn.Dropout(attrs["p"])\n\n    def onnx(self, attrs, inputs, args, emit):\n        return args[0]  # the export',
        "return nn.Dropout()\n\n    def onnx(self, attrs, inputs, args, emit):\n        return args[0]  # the export",
        ["tests/test_reference.py::test_dropout_drops_at_its_rate_and_rescales"],
        REFERENCE + TORCH,
    ),
    mutant(
        "4b torch ignores batch norm's momentum",
        NORM,
        'eps=attrs["eps"], momentum=attrs["momentum"])',
        'eps=attrs["eps"])',
        ["tests/test_reference.py::test_batch_norm_running_statistics_follow_its_momentum"],
        REFERENCE + TORCH,
    ),
    mutant(
        "5 several networks: the last is taken",
        API,
        "    if len(defined) == 1:\n        return module.env.lookup(defined[0])",
        "    if defined:\n        return module.env.lookup(defined[-1])",
        ["tests/test_language.py::test_a_file_with_several_networks_needs_a_choice"],
        CLI + CHECK,
    ),
    mutant(
        "6 deconv output padding dropped from its shape",
        CONV,
        'attrs["k"][0] + attrs["op"][0]',
        'attrs["k"][0]',
        [DECONV_REFERENCE],
        REFERENCE + COUNTS,
    ),
    mutant(
        "7 torch concat reversed alone",
        MERGE,
        'return Call("torch", "cat", (Listed(tuple(parts)), attrs["axis"] + 1))',
        'return Call("torch", "cat", (Listed(tuple(parts[::-1])), attrs["axis"] + 1))',
        [CONCAT_ORDER],
        REFERENCE + TORCH,
    ),
    mutant(
        "8 batch-norm folding ignores eps",
        FOLD,
        "np.sqrt(var.array().astype(np.float64) + epsilon)",
        "np.sqrt(var.array().astype(np.float64))",
        [f"{BN_EPS}[True]"],
        REFERENCE + ONNX,
    ),
    # ---- ops: shapes, counts, torch and ONNX rules ----
    mutant(
        "conv params drop the bias",
        CONV,
        'return [TensorSpec("weight", shape, init), *bias]',
        'return [TensorSpec("weight", shape, init)]',
        [counts_of("alexnet")],
        COUNTS,
    ),
    mutant(
        "conv params ignore groups",
        CONV,
        'per_group = inputs[0][0] // attrs["g"]\n',
        "per_group = inputs[0][0]\n",
        [counts_of("convnext_base")],
        COUNTS,
    ),
    mutant(
        "conv MACs ignore groups",
        CONV,
        'attrs["k"][1] * (inputs[0][0] // attrs["g"])',
        'attrs["k"][1] * inputs[0][0]',
        [counts_of("convnext_base")],
        COUNTS,
    ),
    mutant(
        "conv same padding ignores dilation",
        CONV,
        "return (kernel[0] - 1) // 2 * dilation[0]",
        "return (kernel[0] - 1) // 2",
        ["tests/test_layers.py::test_a_dilated_stage_is_torchvisions_replace_stride_with_dilation"],
        REFERENCE + COUNTS,
    ),
    mutant(
        "conv torch module drops dilation",
        CONV,
        'attrs["k"], attrs["s"], attrs["p"], attrs["d"], attrs["g"], attrs["bias"]\n',
        'attrs["k"], attrs["s"], attrs["p"], 1, attrs["g"], attrs["bias"]\n',
        [CONV_REFERENCE],
        REFERENCE + TORCH,
    ),
    mutant(
        "conv ONNX drops the stride",
        CONV,
        'strides=attrs["s"],\n            pads=attrs["p"] * 2,\n            dilations',
        'strides=(1, 1),\n            pads=attrs["p"] * 2,\n            dilations',
        [CONV_REFERENCE],
        REFERENCE + ONNX,
    ),
    mutant(
        "deconv params ignore groups",
        CONV,
        'per_group = attrs["c"] // attrs["g"]  # PyTorch',
        'per_group = attrs["c"]  # PyTorch',
        [DECONV_REFERENCE],
        REFERENCE + COUNTS,
    ),
    mutant(
        "deconv MACs ignore the kernel",
        CONV,
        'return channels_in * height * width * attrs["k"][0] * attrs["k"][1]',
        "return channels_in * height * width",
        ["tests/test_language.py::test_transposed_convolution_shape_params_and_macs"],
        COUNTS,
    ),
    mutant(
        "sliding window drops dilation",
        BASE,
        "span = size + 2 * padding - dilation * (kernel - 1) - 1",
        "span = size + 2 * padding - (kernel - 1) - 1",
        [counts_of("deeplabv3_mobilenet_v3_large")],
        COUNTS + REFERENCE,
    ),
    mutant(
        "ceil mode keeps a window that starts in the padding",
        BASE,
        "        if (out - 1) * stride >= size + padding:\n            out -= 1\n",
        "",
        ["tests/test_language.py::test_ceil_mode_pooling_rounds_up_but_never_starts_a_window_in_the_padding"],
        COUNTS + REFERENCE,
    ),
    mutant(
        "pool stride defaults to 1",
        POOL,
        'stride = kernel if attrs["s"] is None',
        'stride = (1, 1) if attrs["s"] is None',
        [counts_of("densenet121")],
        COUNTS + REFERENCE,
    ),
    mutant(
        "pool torch module drops ceil mode",
        POOL,
        'attrs["p"], ceil_mode=attrs["ceil"])',
        'attrs["p"])',
        [weightless("maxpool(k=3, s=2, ceil=true)")],
        REFERENCE + TORCH,
    ),
    mutant(
        "pool ONNX drops ceil mode",
        POOL,
        '            options["ceil_mode"] = 1\n',
        "            pass\n",
        [weightless("maxpool(k=3, s=2, ceil=true)")],
        REFERENCE + ONNX,
    ),
    mutant(
        "fc params drop the bias",
        DENSE,
        'return [TensorSpec("weight", (attrs["n"], features), init), *bias]',
        'return [TensorSpec("weight", (attrs["n"], features), init)]',
        [counts_of("alexnet")],
        COUNTS,
    ),
    mutant(
        "fc MACs count the bias",
        DENSE,
        'return numel(inputs[0]) * attrs["n"]\n',
        'return (numel(inputs[0]) + 1) * attrs["n"]\n',
        [counts_of("alexnet")],
        COUNTS,
    ),
    mutant(
        "batch norm params count one vector",
        NORM,
        "*_scale_and_shift(channels),",
        "_scale_and_shift(channels)[0],",
        [counts_of("deeplabv3_mobilenet_v3_large")],
        COUNTS,
    ),
    mutant(
        "batch norm torch ignores eps",
        NORM,
        'eps=attrs["eps"], momentum=attrs["momentum"])',
        'momentum=attrs["momentum"])',
        [f"{BN_EPS}[False]"],
        REFERENCE + TORCH,
    ),
    mutant(
        "batch norm ONNX ignores eps",
        NORM,
        'return emit.op("BatchNormalization", [args[0], *emit.weights()], epsilon=attrs["eps"])',
        'return emit.op("BatchNormalization", [args[0], *emit.weights()])',
        [f"{BN_EPS}[False]"],
        REFERENCE + ONNX,
    ),
    mutant(
        "leaky relu slope ignored in torch",
        ACT,
        'return nn.LeakyReLU(attrs["slope"])',
        "return nn.LeakyReLU()",
        [weightless("leakyrelu(0.2)")],
        REFERENCE,
    ),
    mutant(
        "concat channels miss one input",
        MERGE,
        "return (*first[:axis], sum(shape[axis] for shape in inputs), *first[axis + 1 :])",
        "return (*first[:axis], sum(shape[axis] for shape in inputs[1:]), *first[axis + 1 :])",
        [counts_of("deeplabv3_mobilenet_v3_large")],
        COUNTS + REFERENCE,
    ),
    mutant(
        "concat crop off by one",
        MERGE,
        "top, left = (shape[1] - height) // 2, (shape[2] - width) // 2",
        "top, left = (shape[1] - height + 1) // 2, (shape[2] - width + 1) // 2",
        ["tests/test_reference.py::test_concat_crop_takes_the_centre_of_the_larger_tap"],
        REFERENCE + TORCH,
    ),
    mutant(
        "in-place residual add keeps only the body",
        MERGE,
        '            total = Method(total, "add_", (term,))',
        "            pass",
        ["tests/test_reference.py::test_residual_adds_the_shortcut_and_scale_gates_per_channel"],
        REFERENCE + TORCH,
    ),
    mutant(
        "nearest resizing rounds up in ONNX",
        RESIZE,
        'nearest_mode="floor")',
        'nearest_mode="ceil")',
        [weightless("upsample(3)")],
        REFERENCE + ONNX,
    ),
    mutant(
        "bilinear resizing aligns corners in torch",
        RESIZE,
        '(("align_corners", align_corners),) if mode == "bilinear"',
        '(("align_corners", not align_corners),) if mode == "bilinear"',
        [weightless("upsample(2, mode=bilinear)")],
        REFERENCE + TORCH,
    ),
    mutant(
        "upsample shape ignores the scale",
        RESIZE,
        'return (channels, height * attrs["scale"], width * attrs["scale"])',
        "return (channels, height * 2, width * 2)",
        [weightless("upsample(3)")],
        COUNTS + REFERENCE,
    ),
    # ---- what layer kinds declare, which the backends read ----
    mutant(
        "add is not a residual join",
        MERGE,
        "    torch_in_place = True\n    residual_join = True\n",
        "    torch_in_place = True\n",
        ["tests/test_torch.py::test_zero_init_residual_makes_each_block_start_as_its_shortcut"],
        TORCH,
    ),
    mutant(
        "dropout declared not in place",
        NORM,
        '    family = "reg"\n    torch_in_place = True\n',
        '    family = "reg"\n',
        [f"{IN_PLACE}[dropout]"],
        TORCH + COUNTS,
    ),
    mutant(
        "gelu declared in place",
        ACT,
        '(exact erf form)", _gelu)',
        '(exact erf form)", _gelu, in_place=True)',
        [f"{IN_PLACE}[gelu]"],
        TORCH + COUNTS,
    ),
    mutant(
        "joins drawn as boxes",
        GRAPHVIZ,
        "        elif kind.drawn_as_join:",
        "        elif False:",
        ["tests/test_graphviz.py::test_concat_edges_are_blue_dashed_into_a_small_parallel_node"],
        DIAGRAM,
    ),
    # ---- analysis ----
    mutant(
        "receptive field ignores dilation",
        RF,
        "(stride, (kernel - 1) * dilation - padding, 1)",
        "(stride, (kernel - 1) - padding, 1)",
        ["tests/test_receptive_field.py::test_small_networks_match_the_probe"],
        RF_TESTS + COUNTS,
    ),
    mutant(
        "jump ignores stride",
        RF,
        "return constant(self.values[0] + b * self.step, a * self.step)",
        "return constant(self.values[0] + b * self.step, self.step)",
        ["tests/test_receptive_field.py::test_unet_sees_204_pixels_as_the_probe_finds"],
        RF_TESTS + COUNTS,
    ),
    mutant(
        "merges take the narrowest receptive field",
        RF,
        "_merged(his, max, out_size, budget)",
        "_merged(his, min, out_size, budget)",
        ["tests/test_receptive_field.py::test_unet_sees_204_pixels_as_the_probe_finds"],
        RF_TESTS + COUNTS,
    ),
    mutant(
        "transposed conv reads k/s positions rounded down",
        RF,
        "(1, padding - (kernel - 1) * dilation + stride - 1, stride)",
        "(1, padding - (kernel - 1) * dilation, stride)",
        ["tests/test_receptive_field.py::test_unet_sees_204_pixels_as_the_probe_finds"],
        RF_TESTS,
    ),
    mutant(
        "activation memory counts 2 bytes",
        ANALYSIS,
        "BYTES_PER_VALUE = 4",
        "BYTES_PER_VALUE = 2",
        ["tests/test_language.py::test_alexnet_first_layer_by_hand"],
        COUNTS,
    ),
    mutant(
        "totals skip the last layer's params",
        ANALYSIS,
        "params = sum(each.params for each in figures)",
        "params = sum(each.params for each in figures[:-1])",
        [counts_of("alexnet")],
        COUNTS,
    ),
    # ---- each figure's rule for kinds the library uses rarely, against the oracles ----
    mutant(
        "receptive field reads a dilation above 2 as 2",
        RF,
        "(stride, (kernel - 1) * dilation - padding, 1)",
        "(stride, (kernel - 1) * min(dilation, 2) - padding, 1)",
        [field_of("deeplabv3_resnet50")],
        ORACLES + RF_TESTS,
    ),
    mutant(
        "conv window reads a dilation above 2 as 2",
        CONV,
        'return Window(attrs["k"], attrs["s"], attrs["d"], padding=attrs["p"])',
        'return Window(attrs["k"], attrs["s"], tuple(min(d, 2) for d in attrs["d"]), padding=attrs["p"])',
        [field_of("deeplabv3_resnet50")],
        ORACLES + RF_TESTS,
    ),
    mutant(
        "transposed conv field ignores its padding",
        RF,
        "(1, padding, stride)",
        "(1, 0, stride)",
        [PROBE + "[conv(4, k=3, s=2), deconv(4, k=3, s=2, p=1, op=1), conv3x3(4)]", field_of("fcn8s")],
        ORACLES + RF_TESTS,
    ),
    mutant(
        "transposed conv jump ignores the upsampling",
        RF,
        "stride = window.upsample[axis]",
        "stride = 1",
        [field_of("unet")],
        ORACLES + RF_TESTS,
    ),
    mutant(
        "bilinear resize to a tap reads one neighbour",
        RF,
        "(2 * in_size, in_size + out_size, 2 * out_size)",
        "(2 * in_size, in_size - out_size, 2 * out_size)",
        [PROBE + "[conv(4, k=5, s=2), upsample(2, mode=bilinear), conv3x3(4)]", field_of("fcn_resnet50")],
        ORACLES + RF_TESTS,
    ),
    mutant(
        "ceil mode dropped from a pool's rows",
        POOL,
        'out_h = sliding(height, attrs["k"][0], attrs["s"][0], attrs["p"][0], ceil=attrs["ceil"])',
        'out_h = sliding(height, attrs["k"][0], attrs["s"][0], attrs["p"][0])',
        [f"{COST_ORACLE}[googlenet]"],
        ORACLES + COUNTS,
    ),
    mutant(
        "transposed conv MACs ignore groups",
        CONV,
        'return channels_in * height * width * attrs["k"][0] * attrs["k"][1] * (attrs["c"] // attrs["g"])',
        'return channels_in * height * width * attrs["k"][0] * attrs["k"][1] * attrs["c"]',
        [f"{FLOP_CONVENTIONS}[deconv-groups]"],
        ORACLES + COUNTS,
    ),
    # ---- expansion ----
    mutant(
        "projection shortcut ignores the stride",
        JOINS,
        "stride = max(1, round(source[1] / target[1]))",
        "stride = 1",
        [PROJECTION],
        COUNTS + REFERENCE,
    ),
    mutant(
        "projection shortcut without batch norm",
        JOINS,
        '        norm = self.add_layer("bn", pos, frame)\n',
        "        norm = conv\n",
        [PROJECTION],
        COUNTS,
    ),
    mutant(
        "x n binds i from 1",
        FLOW,
        "env = frame.env.child(i=index) if stmt.binds_index",
        "env = frame.env.child(i=index + 1) if stmt.binds_index",
        ["tests/test_language.py::test_x_binds_the_index_and_star_does_not", counts_of("deeplabv3_resnet101")],
        COUNTS,
    ),
    mutant(
        "repetition runs once less",
        FLOW,
        'for index in self._turns(count, stmt.count.pos, "repetitions"):',
        'for index in self._turns(max(count - 1, 1), stmt.count.pos, "repetitions"):',
        [counts_of("convnext_base")],
        COUNTS,
    ),
    mutant(
        "defaults override explicit arguments",
        CALLS,
        "attrs = kind.bind(positional, {**frame.defaults.get(kind.name, {}), **keywords}, preset)",
        "attrs = kind.bind(positional, {**keywords, **frame.defaults.get(kind.name, {})}, preset)",
        [counts_of("deeplabv3_mobilenet_v3_large")],
        COUNTS,
    ),
    mutant(
        "if takes the else branch",
        FLOW,
        "            if self.evaluate._truth(condition, frame.env):",
        "            if not self.evaluate._truth(condition, frame.env):",
        ["tests/test_language.py::test_let_for_if_and_defaults"],
        COUNTS,
    ),
    # ---- backends and CLI ----
    mutant(
        "torch init ignores the seed",
        TORCH_PY,
        "            torch.manual_seed(seed)\n",
        "            pass\n",
        ["tests/test_torch.py::test_a_seed_reproduces_the_weights_and_leaves_the_global_generator_alone"],
        TORCH,
    ),
    mutant(
        "diagram ignores --shapes",
        DIAGRAM_OPTIONS_PY,
        "        return {item.name: getattr(self, item.name) for item in FIGURE_OPTIONS}",
        '        return {item.name: getattr(self, item.name) for item in FIGURE_OPTIONS if item.name != "shapes"}',
        ["tests/test_cli_options.py::test_shapes_and_cost_add_to_the_labels"],
        DIAGRAM,
    ),
    mutant(
        "diagram ignores --cost",
        DIAGRAM_OPTIONS_PY,
        "        return {item.name: getattr(self, item.name) for item in FIGURE_OPTIONS}",
        '        return {item.name: getattr(self, item.name) for item in FIGURE_OPTIONS if item.name != "cost"}',
        ["tests/test_cli_options.py::test_shapes_and_cost_add_to_the_labels"],
        DIAGRAM,
    ),
    mutant(
        "compile ignores --opset",
        FORMATS_PY,
        'opset=options.get("opset")',
        "opset=None",
        ["tests/test_cli_options.py::test_opset_is_the_files_opset"],
        CLI + ONNX,
    ),
    mutant(
        "compile ignores --fold-bn",
        FORMATS_PY,
        'fold_bn=options.get("fold_bn", False)',
        "fold_bn=False",
        ["tests/test_cli_options.py::test_fold_bn_removes_every_batch_norm"],
        CLI + ONNX,
    ),
    mutant(
        "summary ignores --input",
        CLI_PY,
        "    return load(source, network=network, input=input_shape,",
        "    return load(source, network=network, input=None,",
        ["tests/test_cli_options.py::test_summary_options"],
        CLI,
    ),
]


def run(mutant: Mutant, timeout: int) -> tuple[str, float, str]:
    """Plant the mutant in a fresh copy and run its killers, then (if they pass) its test files:
    ('killed' | 'survived' | 'timeout' | 'stale', seconds, detail)."""
    with tempfile.TemporaryDirectory(prefix="cnndsl-mutant-") as folder:
        copy = Path(folder) / "checkout"
        _copy_checkout(copy)
        for file, old, new in mutant.edits:
            path = copy / file
            text = path.read_text()
            if text.count(old) != 1:
                return "stale", 0.0, f"{file}: the text to replace occurs {text.count(old)} times"
            path.write_text(text.replace(old, new))
        env = {
            **os.environ,
            "PYTHONPATH": str(copy),
            "CNNDSL_CACHE_DIR": str(Path(folder) / "cache"),
            "OMP_NUM_THREADS": "1",
        }
        start = time.perf_counter()
        for missed, tests in (("", mutant.killers), ("missed by its named tests; ", mutant.tests)):
            left = timeout - (time.perf_counter() - start)
            try:
                result = subprocess.run(
                    [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", *tests],
                    cwd=copy,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=max(left, 1),
                )
            except subprocess.TimeoutExpired:
                return "timeout", time.perf_counter() - start, f"{missed}tests ran past {timeout} s"
            seconds = time.perf_counter() - start
            output = result.stdout + result.stderr
            if result.returncode == 4 and "not found:" in output:  # a named test that no longer exists
                return "stale", seconds, next(line for line in output.splitlines() if "not found:" in line)
            if result.returncode != 0:
                failed = [line for line in result.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
                return "killed", seconds, missed + (failed[0] if failed else output.strip().splitlines()[-1])
        return "survived", seconds, ""


def _copy_checkout(copy: Path) -> None:
    """The checkout's files as git sees them (tracked and untracked, not ignored), without build outputs."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)


def _text(file: str) -> str:
    """A source file's text; empty where the file no longer exists (its mutants are then stale)."""
    path = ROOT / file
    return path.read_text() if path.is_file() else ""


def stale(chosen: list[Mutant]) -> list[str]:
    """Mutants whose text no longer occurs once, and named tests that no longer exist (one collection)."""
    found = [
        f"stale: {m.name} ({file}: {_text(file).count(old)} matches)"
        for m in chosen
        for file, old, _ in m.edits
        if _text(file).count(old) != 1
    ]
    killers = sorted({test for m in chosen for test in m.killers})
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *killers],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    found += [f"stale: {line.strip()}" for line in (result.stdout + result.stderr).splitlines() if "not found:" in line]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", dest="pattern", help="only mutants whose name contains this text")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--stale", action="store_true", help="only say which mutants or named tests no longer apply")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per mutant's tests (default 600)")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.pattern or args.pattern in m.name]
    if args.list:
        for m in chosen:
            print(
                f"{m.name}: {', '.join(sorted({file for file, _, _ in m.edits}))}\n    killers: {' '.join(m.killers)}"
                f"\n    then: {' '.join(m.tests)}"
            )
        return
    if args.stale:
        print("\n".join(stale(chosen)) or "nothing stale")
        return
    fates: dict[str, list[str]] = {"killed": [], "timeout": [], "survived": [], "stale": []}
    started, load = time.perf_counter(), os.getloadavg()[0]
    for m in chosen:
        fate, seconds, detail = run(m, args.timeout)
        fates[fate].append(m.name)
        print(f"{fate:>8}  {seconds:6.1f} s  {m.name}{'  (' + detail + ')' if detail else ''}", flush=True)
    scored = len(chosen) - len(fates["stale"])
    killed = len(fates["killed"]) + len(fates["timeout"])
    print(
        f"\nmutation score: {killed}/{scored} killed = {100 * killed / max(scored, 1):.1f} %"
        f" ({len(fates['stale'])} stale) in {time.perf_counter() - started:.0f} s"
        f" (load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} cores)"
    )
    for name in fates["survived"]:
        print(f"  survived: {name}")
    for name in fates["stale"]:
        print(f"  stale: {name}")


if __name__ == "__main__":
    main()
