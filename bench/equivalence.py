"""Every artefact cnndsl writes for the library, as files to compare before and after a refactor.

    python bench/equivalence.py OUT [--only resnet18 ...] [--weights-under 15000000]

For each library network: `summary --format json`, the DOT text (default, `--depth 1`, `--shapes
--cost`), the `--to python` file, and the ONNX file's graph with its initializers' bytes replaced by
their names, dtypes and shapes; for networks under `--weights-under` parameters also the whole ONNX
file's sha256 with weights given (drawn once, with a fixed seed, into OUT/../equivalence-weights and
reused by every later run, so both sides read the same values). For each library file and each
file of tests/data/broken: `check`'s output and exit code. Compare two runs with `diff -r`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
from pathlib import Path

from click.testing import CliRunner

from cnndsl.cli import main

try:
    from cnndsl.core.resources import library_dir
    from cnndsl.front.load import library_index
except ImportError:  # the layout before 2026-12-06, to write the "before" side
    from cnndsl.load import library_index
    from cnndsl.resources import library_dir

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout + "\n--- stderr\n" + result.stderr


def write(out: Path, name: str, text: str) -> None:
    out.joinpath(name).write_text(text, encoding="utf-8")


def onnx_structure(path: Path) -> str:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
        shape = "x".join(map(str, tensor.dims))
        digest = hashlib.sha256(tensor.raw_data).hexdigest()[:0]  # values are drawn at random without weights
        tensor.ClearField("raw_data")
        tensor.ClearField("float_data")
        tensor.doc_string = f"{shape}{digest}"
    model.producer_version = ""
    return str(model)


def seeded_weights(name: str, folder: Path) -> Path:
    """The network's weights drawn once with a fixed seed (torch's init under manual_seed(0))."""
    import torch
    from safetensors.torch import save_file

    import cnndsl

    path = folder / f"{name}.safetensors"
    if not path.exists():
        torch.manual_seed(0)
        module = cnndsl.load(name).to_torch()
        partial = path.with_name(f"{path.name}.{os.getpid()}")
        save_file({key: value.contiguous() for key, value in module.state_dict().items()}, str(partial))
        os.replace(partial, path)
    return path


def network_artefacts(name: str, out: Path, tmp: Path, weights_folder: Path, weights_under: int) -> None:
    code, text = run("summary", name, "--format", "json")
    write(out, f"{name}.summary.json", f"{code}\n{text}")
    for suffix, extra in (("", ()), (".depth1", ("--depth", "1")), (".shapes", ("--shapes", "--cost"))):
        target = tmp / f"{name}{suffix}.dot"
        code, text = run("compile", name, "--to", "dot", "-o", str(target), *extra)
        write(out, f"{name}{suffix}.dot", f"{code}\n{text}\n" + (target.read_text() if target.exists() else ""))
    target = tmp / f"{name}.py"
    code, text = run("compile", name, "--to", "python", "-o", str(target))
    write(out, f"{name}.py.txt", f"{code}\n{text}\n" + (target.read_text() if target.exists() else ""))
    target = tmp / f"{name}.onnx"
    code, text = run("compile", name, "--to", "onnx", "-o", str(target))
    write(out, f"{name}.onnx.txt", f"{code}\n{text}\n" + (onnx_structure(target) if target.exists() else ""))
    import cnndsl

    if cnndsl.load(name).params < weights_under:
        weights = seeded_weights(name, weights_folder)
        target = tmp / f"{name}.weighted.onnx"
        code, text = run("compile", name, "--to", "onnx", "--weights", str(weights), "-o", str(target))
        digest = hashlib.sha256(target.read_bytes()).hexdigest() if target.exists() else "none"
        write(out, f"{name}.weighted.onnx.sha256", f"{code}\n{text}\n{digest}\n")


def main_(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--weights-under", type=int, default=15_000_000)
    args = parser.parse_args(argv)
    out = args.out.resolve()
    tmp, weights_folder = out.with_name(out.name + "-tmp"), out.parent / "equivalence-weights"
    for folder in (out, tmp, weights_folder):
        folder.mkdir(parents=True, exist_ok=True)
    os.chdir(tmp)  # outputs are named relative to it, so both sides print the same paths
    for name in args.only or sorted(library_index()):
        print(name, flush=True)
        network_artefacts(name, out, Path("."), weights_folder, args.weights_under)
    os.chdir(ROOT)
    shutil.rmtree(tmp)  # the compiled files themselves: about 20 GB for the whole library
    if args.only is None:
        files = sorted(library_dir().glob("*.cnn")) + sorted((ROOT / "tests/data/broken").glob("*.cnn"))
        for path in files:
            code, text = run("check", str(path.relative_to(ROOT)))
            write(out, f"check.{path.parent.name}.{path.stem}.txt", f"{code}\n{text}")


if __name__ == "__main__":
    main_(sys.argv[1:])
