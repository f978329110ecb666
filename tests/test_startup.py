"""Start-up kept honest: the commands that need neither torch nor ONNX import neither (nor numpy, whose 0.1 s
alone would break the start-up goal of docs/benchmarks.md), and a warm parse cache keeps Lark out too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "onnx", "onnxruntime", "ml_dtypes", "numpy")

# In a fresh interpreter: run the command line in process, then list the top-level packages it imported.
PROBE = """
import json, sys
from cnndsl.cli import main
try:
    main(sys.argv[1:], prog_name="cnndsl")
except SystemExit as stop:
    code = stop.code or 0
print(json.dumps({"code": code, "packages": sorted({name.partition(".")[0] for name in sys.modules})}))
"""


def imported(args: list[str], cache: Path) -> tuple[int, set[str]]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "CNNDSL_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)},
    )
    report = json.loads(result.stdout.splitlines()[-1])
    return report["code"], set(report["packages"])


@pytest.mark.parametrize(
    "args",
    [
        ["summary", "resnet50"],
        ["check", "library/resnet.cnn"],
        ["list", "resnet"],
        ["draw", "resnet50", "-o", "{tmp}/resnet50.dot"],
    ],
    ids=["summary", "check", "list", "draw"],
)
def test_commands_without_a_backend_import_no_torch_and_no_onnx(args, tmp_path):
    code, packages = imported([arg.format(tmp=tmp_path) for arg in args], tmp_path / "cache")
    assert code == 0
    assert {"cnndsl", "click", "networkx"} <= packages  # the probe sees what the command imported
    assert packages.isdisjoint(HEAVY), sorted(packages & set(HEAVY))


def test_a_warm_parse_cache_keeps_lark_out_of_summary(tmp_path):
    first = imported(["summary", "resnet50"], tmp_path / "cache")
    second = imported(["summary", "resnet50"], tmp_path / "cache")
    assert first[0] == second[0] == 0
    assert "lark" in first[1] and "lark" not in second[1]


def test_the_onnx_command_does_import_onnx(tmp_path):
    """The other side of the probe: a command that needs the backend is seen importing it."""
    code, packages = imported(["compile", "resnet18", "--to", "onnx", "-o", str(tmp_path / "r.onnx")], tmp_path)
    assert code == 0 and (tmp_path / "r.onnx").stat().st_size > 11_000_000 * 4  # ResNet-18's 11.7M float32 weights
    assert {"onnx", "numpy"} <= packages
