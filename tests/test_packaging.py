"""grammar/ and library/ ship inside the wheel and are found the same way as from a checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("cnndsl-*.whl")
    return built


def test_the_wheel_carries_the_grammar_and_every_library_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "cnndsl/grammar/cnn.lark" in names
    shipped = {path.name for path in (ROOT / "library").glob("*.cnn")}
    assert shipped and {f"cnndsl/library/{name}" for name in shipped} <= names


def test_a_regular_install_finds_the_library_inside_the_package(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    code = (
        "import cnndsl, cnndsl.core.resources as r; n = cnndsl.load('resnet50'); "
        "print(cnndsl.__file__); print(r.library_dir()); print(n.params)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    module_file, library, params = result.stdout.split()
    assert module_file.startswith(str(target)) and library == str(target / "cnndsl" / "library")
    assert params == "25557032"
