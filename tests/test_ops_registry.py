"""The registry loads a kind's module on the first lookup of one of its names: ops/__init__.py's table must say
where every name is declared, and a command must import only the modules of the kinds its network uses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cnndsl import ops
from cnndsl.ops import base

ROOT = Path(__file__).resolve().parent.parent
OPS = ROOT / "cnndsl" / "ops"


def test_every_kind_and_alias_is_in_the_row_of_the_module_that_declares_it():
    declared = {name: type(kind).__module__.rpartition(".")[2] for name, kind in base.REGISTRY.items()}
    # an alias is declared by a call `alias("name", ...)` in its module's source
    for module in ops.KINDS:
        source = (OPS / f"{module}.py").read_text()
        declared.update({name: module for name in base._ALIASES if f'alias("{name}"' in source})
    table = {name: module for module, names in ops.KINDS.items() for name in names}
    assert declared.keys() == table.keys() == base.REGISTRY.keys() | base._ALIASES.keys()
    assert table == declared


def test_every_spelling_family_has_a_prefix_of_its_module():
    for module in {module for module in ops.PREFIXES.values()}:
        source = (OPS / f"{module}.py").read_text()
        assert all(f'_preset("{prefix}")' in source for prefix, home in ops.PREFIXES.items() if home == module)
    spelled = [name for name in ("conv3x3", "dwconv3x3", "conv1x7", "maxpool3x3", "avgpool2x2")]
    assert [ops.lookup(name)[0].name for name in spelled] == ["conv", "conv", "conv", "maxpool", "avgpool"]


PROBE = """
import json, sys
from cnndsl.ops import lookup
found = lookup(sys.argv[1])
loaded = sorted(name.rpartition(".")[2] for name in sys.modules if name.startswith("cnndsl.ops."))
print(json.dumps([None if found is None else [found[0].name, found[1]], loaded]))
"""


def fresh_lookup(name: str) -> tuple[list | None, set[str]]:
    """`lookup(name)` in a fresh interpreter: what it finds, and which modules of cnndsl.ops it imported."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, name], capture_output=True, text=True, timeout=120, cwd=ROOT, check=True
    )
    found, loaded = json.loads(result.stdout)
    return found, set(loaded) - {"base", "registry", "tensors", "torch_code"}


@pytest.mark.parametrize(
    "name, kind, modules",
    [
        ("conv3x3", ["conv", {"k": 3}], {"conv"}),
        ("linear", ["fc", {}], {"dense"}),
        ("channelshuffle", ["channelshuffle", {}], {"channels", "layout"}),  # channels imports layout
        ("roialign", ["roialign", {}], {"roi"}),
    ],
)
def test_a_lookup_imports_only_the_module_of_the_name(name, kind, modules):
    assert fresh_lookup(name) == (kind, modules)


def test_an_unknown_name_is_looked_for_among_every_kind():
    found, loaded = fresh_lookup("conv_block")  # a conv spelling, but no kind: every module is asked
    assert found is None and loaded >= set(ops.KINDS)
