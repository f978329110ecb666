"""Mutation score: plant small bugs in a copy of cnndsl, one at a time, and see whether the tests notice.

Each mutant replaces exact text in one or more files of a temporary copy of the checkout (so a mutant
whose text no longer exists is reported as stale, not silently skipped), then runs the tests that
should catch it, stopping at the first failure. A mutant is killed when the tests fail (or time out),
and survives when they pass. Prints each mutant's fate and the score.

    python bench/mutants.py              # every mutant
    python bench/mutants.py --list       # what each mutant plants
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

# Test groups, by what they check; a mutant runs the groups that should see its bug.
REFERENCE = ["tests/test_reference.py", "tests/test_layers.py"]
COUNTS = ["tests/test_library.py", "tests/test_language.py", "tests/test_summary.py"]
TORCH = ["tests/test_torch.py", "tests/test_torchvision.py"]
ONNX = ["tests/test_onnx.py"]
DIAGRAM = ["tests/test_graphviz.py", "tests/test_cli_options.py"]
CHECK = ["tests/test_check.py", "tests/test_errors.py", "tests/test_language.py"]
CLI = ["tests/test_cli_options.py", "tests/test_language.py"]


@dataclass(frozen=True)
class Mutant:
    name: str
    edits: tuple[tuple[str, str, str], ...]  # (file, exact text, replacement)
    tests: tuple[str, ...]


def mutant(name: str, file: str, old: str, new: str, tests: list[str], *more: tuple[str, str, str]) -> Mutant:
    return Mutant(name, ((file, old, new), *more), tuple(dict.fromkeys(tests)))


MERGE, CONV, POOL, DENSE, NORM = ("cnndsl/ops/merge.py", "cnndsl/ops/conv.py", "cnndsl/ops/pool.py",
                                  "cnndsl/ops/dense.py", "cnndsl/ops/norm.py")
BASE, ACT, RESIZE = "cnndsl/ops/base.py", "cnndsl/ops/activation.py", "cnndsl/ops/resize.py"
RF, RF_TESTS = "cnndsl/receptive_field.py", ["tests/test_receptive_field.py"]
ANALYSIS, EXPAND, API, CLI_PY = "cnndsl/analysis.py", "cnndsl/expand.py", "cnndsl/api.py", "cnndsl/cli.py"
TORCH_PY, FOLD, GRAPHVIZ = "cnndsl/backends/torch.py", "cnndsl/backends/onnx_fold.py", "cnndsl/backends/graphviz.py"

MUTANTS = [
    # ---- the eight bugs of issue 19 ----
    mutant("1 concat order reversed in torch and ONNX", MERGE,
           "return f\"torch.cat([{', '.join(parts)}], 1)\"", "return f\"torch.cat([{', '.join(parts[::-1])}], 1)\"",
           REFERENCE + TORCH, (MERGE, 'return emit.op("Concat", parts, axis=1)', 'return emit.op("Concat", parts[::-1], axis=1)')),
    mutant("2 kaiming init with fan_in", TORCH_PY, 'mode="fan_out"', 'mode="fan_in"', REFERENCE + TORCH),
    mutant("3a CLI ignores --rankdir", CLI_PY, 'rankdir=options.get("rankdir", "TB")', 'rankdir="TB"', DIAGRAM),
    mutant("3b CLI ignores --expand", CLI_PY, 'expand=options.get("expand", False)', 'expand=False', DIAGRAM),
    mutant("4a torch ignores dropout's p", NORM, 'return nn.Dropout(attrs["p"])\n\n    def onnx(self, attrs, inputs, args, emit):\n        return args[0]  # the export',
           'return nn.Dropout()\n\n    def onnx(self, attrs, inputs, args, emit):\n        return args[0]  # the export', REFERENCE + TORCH),
    mutant("4b torch ignores batch norm's momentum", NORM, 'eps=attrs["eps"], momentum=attrs["momentum"])',
           'eps=attrs["eps"])', REFERENCE + TORCH),
    mutant("5 several networks: the last is taken", API,
           "    if len(defined) == 1:\n        return module.env.lookup(defined[0])",
           "    if defined:\n        return module.env.lookup(defined[-1])", CLI + CHECK),
    mutant("6 deconv output padding dropped from its shape", CONV,
           'attrs["k"][0] + attrs["op"][0]', 'attrs["k"][0]', REFERENCE + COUNTS),
    mutant("7 torch concat reversed alone", MERGE,
           "return f\"torch.cat([{', '.join(parts)}], 1)\"", "return f\"torch.cat([{', '.join(parts[::-1])}], 1)\"",
           REFERENCE + TORCH),
    mutant("8 batch-norm folding ignores eps", FOLD, "scale = gamma / np.sqrt(var + epsilon)",
           "scale = gamma / np.sqrt(var)", REFERENCE + ONNX),
    # ---- ops: shapes, counts, torch and ONNX rules ----
    mutant("conv params drop the bias", CONV, 'return weights + (attrs["c"] if attrs["bias"] else 0)\n\n    def macs(self, attrs, inputs, output):\n        channels, out_h',
           'return weights\n\n    def macs(self, attrs, inputs, output):\n        channels, out_h', COUNTS),
    mutant("conv params ignore groups", CONV, 'weights = attrs["c"] * (inputs[0][0] // attrs["g"])',
           'weights = attrs["c"] * inputs[0][0]', COUNTS),
    mutant("conv MACs ignore groups", CONV, 'attrs["k"][1] * (inputs[0][0] // attrs["g"])', 'attrs["k"][1] * inputs[0][0]',
           COUNTS),
    mutant("conv same padding ignores dilation", CONV, "return (kernel[0] - 1) // 2 * dilation[0]",
           "return (kernel[0] - 1) // 2", REFERENCE + COUNTS),
    mutant("conv torch module drops dilation", CONV,
           'attrs["k"], attrs["s"], attrs["p"], attrs["d"], attrs["g"], attrs["bias"])',
           'attrs["k"], attrs["s"], attrs["p"], 1, attrs["g"], attrs["bias"])', REFERENCE + TORCH),
    mutant("conv ONNX drops the stride", CONV, "kernel_shape=attrs[\"k\"], strides=attrs[\"s\"], pads=attrs[\"p\"] * 2,\n                       dilations",
           "kernel_shape=attrs[\"k\"], strides=(1, 1), pads=attrs[\"p\"] * 2,\n                       dilations", REFERENCE + ONNX),
    mutant("deconv params ignore groups", CONV, 'weights = inputs[0][0] * (attrs["c"] // attrs["g"])',
           'weights = inputs[0][0] * attrs["c"]', REFERENCE + COUNTS),
    mutant("deconv MACs ignore the kernel", CONV, 'return channels_in * height * width * attrs["k"][0] * attrs["k"][1]',
           'return channels_in * height * width', COUNTS),
    mutant("sliding window drops dilation", BASE, "span = size + 2 * padding - dilation * (kernel - 1) - 1",
           "span = size + 2 * padding - (kernel - 1) - 1", COUNTS + REFERENCE),
    mutant("ceil mode keeps a window that starts in the padding", BASE,
           "        if (out - 1) * stride >= size + padding:\n            out -= 1\n", "", COUNTS + REFERENCE),
    mutant("pool stride defaults to 1", POOL, 'stride = kernel if attrs["s"] is None', 'stride = (1, 1) if attrs["s"] is None',
           COUNTS + REFERENCE),
    mutant("pool torch module drops ceil mode", POOL, "attrs[\"p\"], ceil_mode=attrs[\"ceil\"])", "attrs[\"p\"])",
           REFERENCE + TORCH),
    mutant("pool ONNX drops ceil mode", POOL, '            options["ceil_mode"] = 1\n', "            pass\n", REFERENCE + ONNX),
    mutant("fc params drop the bias", DENSE, 'return self._features(attrs, inputs) * attrs["n"] + (attrs["n"] if attrs["bias"] else 0)',
           'return self._features(attrs, inputs) * attrs["n"]', COUNTS),
    mutant("fc MACs count the bias", DENSE, 'return numel(inputs[0]) * attrs["n"]\n', 'return (numel(inputs[0]) + 1) * attrs["n"]\n', COUNTS),
    mutant("batch norm params count one vector", NORM, "return 2 * inputs[0][0]\n\n    def buffers", "return inputs[0][0]\n\n    def buffers",
           COUNTS),
    mutant("batch norm torch ignores eps", NORM, 'eps=attrs["eps"], momentum=attrs["momentum"])',
           'momentum=attrs["momentum"])', REFERENCE + TORCH),
    mutant("batch norm ONNX ignores eps", NORM, 'return emit.op("BatchNormalization", operands, epsilon=attrs["eps"])',
           'return emit.op("BatchNormalization", operands)', REFERENCE + ONNX),
    mutant("leaky relu slope ignored in torch", ACT, 'return nn.LeakyReLU(attrs["slope"])', "return nn.LeakyReLU()",
           REFERENCE),
    mutant("concat channels miss one input", MERGE, "return (sum(shape[0] for shape in inputs), *first[1:])",
           "return (sum(shape[0] for shape in inputs[1:]), *first[1:])", COUNTS + REFERENCE),
    mutant("concat crop off by one", MERGE, "top, left = (shape[1] - height) // 2, (shape[2] - width) // 2",
           "top, left = (shape[1] - height + 1) // 2, (shape[2] - width + 1) // 2", REFERENCE + TORCH),
    mutant("in-place residual add keeps only the body", MERGE,
           'return args[0] + "".join(f".add_({arg})" for arg in args[1:])', "return args[0]", REFERENCE + TORCH),
    mutant("upsample nearest floors the other way in ONNX", RESIZE,
           'nearest_mode="floor")\n        else:\n            options = dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel")\n        return emit.op("Resize", [args[0], no_roi, scales]',
           'nearest_mode="ceil")\n        else:\n            options = dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel")\n        return emit.op("Resize", [args[0], no_roi, scales]',
           REFERENCE + ONNX),
    mutant("upsample bilinear aligns corners in torch", RESIZE,
           'corners = ", align_corners=False" if attrs["mode"] == "bilinear" else ""\n        return f"F.interpolate({args[0]}, scale_factor',
           'corners = ", align_corners=True" if attrs["mode"] == "bilinear" else ""\n        return f"F.interpolate({args[0]}, scale_factor',
           REFERENCE + TORCH),
    mutant("upsample shape ignores the scale", RESIZE, 'return (channels, height * attrs["scale"], width * attrs["scale"])',
           "return (channels, height * 2, width * 2)", COUNTS + REFERENCE),
    # ---- analysis ----
    mutant("receptive field ignores dilation", RF, "(stride, (kernel - 1) * dilation - padding, 1)",
           "(stride, (kernel - 1) - padding, 1)", RF_TESTS + COUNTS),
    mutant("jump ignores stride", RF, "return Periodic((self.table[0] + b * self.step,), a * self.step)",
           "return Periodic((self.table[0] + b * self.step,), self.step)", RF_TESTS + COUNTS),
    mutant("merges take the narrowest receptive field", RF, "_merged(his, max, out_size)", "_merged(his, min, out_size)",
           RF_TESTS + COUNTS),
    mutant("transposed conv reads k/s positions rounded down", RF,
           "(1, padding - (kernel - 1) * dilation + stride - 1, stride)", "(1, padding - (kernel - 1) * dilation, stride)",
           RF_TESTS),
    mutant("activation memory counts 2 bytes", ANALYSIS, "BYTES_PER_VALUE = 4", "BYTES_PER_VALUE = 2", COUNTS),
    mutant("totals skip the last layer's params", ANALYSIS,
           'params = sum(graph.nodes[n]["params"] for n in graph.nodes)',
           'params = sum(graph.nodes[n]["params"] for n in list(graph.nodes)[:-1])', COUNTS),
    # ---- expansion ----
    mutant("projection shortcut ignores the stride", EXPAND, "stride = max(1, round(source[1] / target[1]))",
           "stride = 1", COUNTS + REFERENCE),
    mutant("projection shortcut without batch norm", EXPAND, '        norm = self.add_layer("bn", pos, frame)\n',
           '        norm = conv\n', COUNTS),
    mutant("x n binds i from 1", EXPAND, "env = frame.env.child(i=index) if stmt.binds_index",
           "env = frame.env.child(i=index + 1) if stmt.binds_index", COUNTS),
    mutant("repetition runs once less", EXPAND, "for index in self._turns(count, stmt.count.pos, \"repetitions\"):",
           "for index in self._turns(max(count - 1, 1), stmt.count.pos, \"repetitions\"):", COUNTS),
    mutant("defaults override explicit arguments", EXPAND,
           "attrs = kind.bind(positional, {**frame.defaults.get(kind.name, {}), **keywords}, preset)",
           "attrs = kind.bind(positional, {**keywords, **frame.defaults.get(kind.name, {})}, preset)", COUNTS),
    mutant("if takes the else branch", EXPAND, "            if self.evaluate._truth(condition, frame.env):",
           "            if not self.evaluate._truth(condition, frame.env):", COUNTS),
    # ---- backends and CLI ----
    mutant("torch init ignores the seed", TORCH_PY, "            torch.manual_seed(seed)\n", "            pass\n", TORCH),
    mutant("diagram ignores --shapes", CLI_PY, 'shapes=options.get("shapes", False)', "shapes=False", DIAGRAM),
    mutant("diagram ignores --cost", CLI_PY, 'cost=options.get("cost", False)', "cost=False", DIAGRAM),
    mutant("compile ignores --opset", CLI_PY, 'opset=options.get("opset")', "opset=None", CLI + ONNX),
    mutant("compile ignores --fold-bn", CLI_PY, 'fold_bn=options.get("fold_bn", False)', "fold_bn=False", CLI + ONNX),
    mutant("summary ignores --input", CLI_PY, "    return load(source, network=network, input=input_shape,",
           "    return load(source, network=network, input=None,", CLI),
]


def run(mutant: Mutant, timeout: int) -> tuple[str, float, str]:
    """Plant the mutant in a fresh copy and run its tests: ('killed' | 'survived' | 'timeout' | 'stale', s, detail)."""
    with tempfile.TemporaryDirectory(prefix="cnndsl-mutant-") as folder:
        copy = Path(folder) / "checkout"
        files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.split("\n")
        for name in filter(None, files):
            if (ROOT / name).is_file():
                (copy / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, copy / name)
        for file, old, new in mutant.edits:
            path = copy / file
            text = path.read_text()
            if text.count(old) != 1:
                return "stale", 0.0, f"{file}: the text to replace occurs {text.count(old)} times"
            path.write_text(text.replace(old, new))
        tests = [test for test in mutant.tests if (copy / test).exists()]
        env = {**os.environ, "PYTHONPATH": str(copy), "CNNDSL_CACHE_DIR": str(Path(folder) / "cache"),
               "OMP_NUM_THREADS": "1"}
        start = time.perf_counter()
        try:
            result = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                                     *tests], cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "timeout", time.perf_counter() - start, f"tests ran past {timeout} s"
        seconds = time.perf_counter() - start
        failed = [line for line in result.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
        if result.returncode == 0:
            return "survived", seconds, ""
        return "killed", seconds, failed[0] if failed else result.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", dest="pattern", help="only mutants whose name contains this text")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--stale", action="store_true", help="only say which mutants no longer apply")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per mutant's tests (default 600)")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.pattern or args.pattern in m.name]
    if args.list:
        for m in chosen:
            print(f"{m.name}: {', '.join(sorted({file for file, _, _ in m.edits}))} -> {' '.join(m.tests)}")
        return
    if args.stale:
        for m in chosen:
            for file, old, _ in m.edits:
                if (ROOT / file).read_text().count(old) != 1:
                    print(f"stale: {m.name} ({file}: {(ROOT / file).read_text().count(old)} matches)")
        return
    fates: dict[str, list[str]] = {"killed": [], "timeout": [], "survived": [], "stale": []}
    started = time.perf_counter()
    for m in chosen:
        fate, seconds, detail = run(m, args.timeout)
        fates[fate].append(m.name)
        print(f"{fate:>8}  {seconds:6.1f} s  {m.name}{'  (' + detail + ')' if detail else ''}", flush=True)
    scored = len(chosen) - len(fates["stale"])
    killed = len(fates["killed"]) + len(fates["timeout"])
    print(f"\nmutation score: {killed}/{scored} killed = {100 * killed / max(scored, 1):.1f} %"
          f" ({len(fates['stale'])} stale) in {time.perf_counter() - started:.0f} s")
    for name in fates["survived"]:
        print(f"  survived: {name}")
    for name in fates["stale"]:
        print(f"  stale: {name}")


if __name__ == "__main__":
    main()
