"""bench/mutants.py stays applicable as the code moves: every mutant's text occurs exactly once in its file, and
every test named as a killer is still defined (a refactor that moves either turns the mutant stale, and the
mutation score would silently count fewer bugs)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def mutants():
    spec = importlib.util.spec_from_file_location("bench_mutants", ROOT / "bench" / "mutants.py")
    module = sys.modules["bench_mutants"] = importlib.util.module_from_spec(spec)  # its dataclasses look it up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench_mutants", None)


def test_every_mutants_text_occurs_once_in_its_file(mutants):
    counts = {
        (mutant.name, file): (ROOT / file).read_text().count(old) if (ROOT / file).is_file() else 0
        for mutant in mutants.MUTANTS
        for file, old, _ in mutant.edits
    }
    assert {key: count for key, count in counts.items() if count != 1} == {}
    assert len(mutants.MUTANTS) >= 60


def test_every_named_killer_is_a_test_that_exists(mutants):
    missing = []
    for killer in sorted({test for mutant in mutants.MUTANTS for test in mutant.killers}):
        file, _, name = killer.partition("::")
        function = re.sub(r"\[.*\]$", "", name)
        path = ROOT / file
        if not path.is_file() or not re.search(rf"^def {re.escape(function)}\(", path.read_text(), re.MULTILINE):
            missing.append(killer)
    assert missing == []
