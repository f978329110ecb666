"""Shared test helpers: run the CLI in process, and list the shipped library."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import pytest
from click.testing import CliRunner
from PIL import Image

from cnndsl.cli import main
from cnndsl.library import network_names

NO_DOT = "Graphviz's `dot` is not installed (scripts/test installs it as root: apt-get install graphviz)"


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_dot: renders with Graphviz's `dot` program; skipped without it")
    config.addinivalue_line("markers", "networks(names): runs for these networks of its fixture's parametrisation only")


def pytest_collection_modifyitems(config, items):
    """Without `dot`, the tests that render with it skip and say why; writing DOT text needs no program.

    A test marked `networks(NAMES)` keeps only the parametrisations of its module fixture (test_onnx_library's
    `built`) whose network is among NAMES: the rest are deselected. (An indirect parametrisation over NAMES would
    number them apart from the fixture's own, and pytest would build each of those networks a second time.)"""
    if shutil.which("dot") is None:
        for item in items:
            if item.get_closest_marker("needs_dot"):
                item.add_marker(pytest.mark.skip(reason=NO_DOT))
    kept, deselected = [], []
    for item in items:
        marker = item.get_closest_marker("networks")
        params = getattr(getattr(item, "callspec", None), "params", {})
        (deselected if marker and not set(params.values()) & set(marker.args[0]) else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


PILLOW_OPEN = Image.open


@pytest.fixture(autouse=True)
def _pillow_opens_images_as_it_ships():
    """Importing ultralytics replaces PIL.Image.open with a version that, on the first image Pillow cannot
    identify, pip-installs a HEIF plugin: a test that imported it must not change how later tests (cnndsl train's
    unreadable-image refusals) read images, nor reach the network."""
    Image.open = PILLOW_OPEN
    yield
    Image.open = PILLOW_OPEN


@pytest.fixture(autouse=True, scope="session")
def _parse_cache_in_temp(tmp_path_factory):
    """The suite's parsed-file cache lives in its own temp folder, never the user's ~/.cache."""
    os.environ["CNNDSL_CACHE_DIR"] = str(tmp_path_factory.mktemp("parse-cache"))
    os.environ.pop("CNNDSL_NO_CACHE", None)


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli():
    """Run `cnndsl ARGS...` in process; returns exit code, stdout and stderr."""

    def run(*args: str) -> CliResult:
        result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return run


def library_networks() -> list[str]:
    """Every network the library ships, for tests parametrised over the library; a family that other
    networks instantiate (`resnet`) is left out, since its defaults only repeat one of them."""
    return sorted(name for name, _ in network_names())
