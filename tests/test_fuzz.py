"""Fuzzing in the normal suite: hypothesis drives bench/fuzz.py's grammar-aware generator and its
mutator of valid sources; every input, run in a worker process under a time and a memory limit,
must end in a CnnDslError or in a graph that keeps the IR contract and that the backends build and
run alike (torch forward, onnxruntime, DOT). `python bench/fuzz.py` runs the same check on 100,000 inputs.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

BENCH = Path(__file__).resolve().parent.parent / "bench" / "fuzz.py"
_spec = importlib.util.spec_from_file_location("cnndsl_fuzz", BENCH)
fuzz = sys.modules["cnndsl_fuzz"] = importlib.util.module_from_spec(_spec)  # dataclasses look it up there
_spec.loader.exec_module(fuzz)

# Bounded so the module takes under a minute on the shared 2-core machine (23 s at a load of 4, 48 s at 9,
# most of it waiting for the CPU); the longer search is bench/fuzz.py. derandomize: the suite stays reproducible.
FUZZ_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _choices(data) -> fuzz.Choices:
    """The generator's decisions drawn by hypothesis, so a failing program shrinks."""
    return fuzz.Choices(
        lambda options: data.draw(st.sampled_from(list(options))), lambda low, high: data.draw(st.integers(low, high))
    )


@pytest.fixture(scope="module")
def worker():
    """One worker process for the module's inputs (it loads torch and onnxruntime once)."""
    started = fuzz.Worker()
    yield started
    started.stop()


def _ends_well(worker, text: str, network=None) -> None:
    escaped = worker.run(text, network)[0]
    assert escaped is None, f"{escaped}\n--- input ---\n{text}"


@FUZZ_SETTINGS
@given(data=st.data())
def test_generated_programs_end_in_a_graph_or_a_located_error(worker, data):
    _ends_well(worker, fuzz.Generator(_choices(data)).program(), "net")


@FUZZ_SETTINGS
@given(data=st.data())
def test_mutated_sources_end_in_a_graph_or_a_located_error(worker, data):
    choices = _choices(data)
    name, text = choices.pick(fuzz.SEEDS)
    networks = fuzz.NETWORK.findall(text)
    _ends_well(worker, fuzz.mutate(text, choices), choices.pick(networks) if networks else None)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(text=st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(list("(){}[]@:,x*^\n")), max_size=200))
def test_arbitrary_text_ends_in_a_graph_or_a_located_error(worker, text):
    _ends_well(worker, text)


def test_the_generator_reaches_the_backends_and_every_error_kind():
    """The fuzzer is only as good as its reach: it must build networks that torch and onnxruntime run,
    raise each error class, and import each kind of file."""
    import torch

    torch.set_num_threads(1)
    expected = {
        "backends",
        "graph",
        "SyntaxProblem",
        "NameProblem",
        "ShapeProblem",
        "ValueProblem",
        "LimitProblem",
        "FileProblem",
    }
    seen, imported = set(), set()
    with tempfile.TemporaryDirectory() as root:
        folder = fuzz.make_files(Path(root))
        for seed in range(1000):  # until every outcome is reached: each new layer kind or example reshuffles the draws
            label, text, network = fuzz.fuzz_input(fuzz.Choices.seeded(seed))
            escaped, outcome = fuzz.run(text, network, folder)
            assert escaped is None, f"{escaped}\n--- input ---\n{text}"
            seen.add(outcome.split()[1] if outcome.startswith("error") else outcome.split()[0])
            if seen >= expected:
                break
    assert seen - {"refused"} == expected
    for seed in range(400):
        imported |= {line for line in fuzz.IMPORTS if line in fuzz.fuzz_input(fuzz.Choices.seeded(seed))[1]}
    assert imported == set(fuzz.IMPORTS), sorted(set(fuzz.IMPORTS) - imported)


def test_every_form_of_checkpoint_file_loads_or_ends_in_a_located_error_within_the_bounds(worker):
    """bench/fuzz_checkpoints.py's forms (a recipe's first draw): plain, wrapped, a recompressed view of 128 MiB,
    recompressed, damaged bytes, broken state_dicts, safetensors; each one recipe, in the worker's bounds."""
    import random

    recipes = {}
    for recipe in range(3, 100_000, 20):  # the seeds bench/fuzz.py sends to checkpoints
        recipes.setdefault(random.Random(recipe).randrange(10), recipe)
        if len(recipes) == 10:
            break
    outcomes = set()
    for form, recipe in sorted(recipes.items()):
        escaped, _, outcome = worker.run("", None, surface=("checkpoint", recipe))
        assert escaped is None, f"form {form}, recipe {recipe}: {escaped}"
        outcomes.add(outcome)
    assert {"loaded", "error FileProblem"} <= outcomes


def test_importer_inputs_of_each_format_import_or_end_in_a_located_error_within_the_bounds(worker):
    """bench/fuzz_importers.py's files, mutated and made whole, of each format: the seeds bench/fuzz.py sends
    there (4 modulo 20), the first 60, in the worker's bounds; some import, some are refused."""
    outcomes = set()
    for seed in range(4, 1204, 20):
        escaped, _, outcome = worker.run("", None, surface=("importer", seed))
        assert escaped is None, f"seed {seed}: {escaped}"
        outcomes.add(outcome.split()[0])
    assert outcomes == {"imported", "imported-refused", "error"}


# ---- the worker's limits: a hang, a CPU-bound loop or a blow-up of memory is an escape, not a stall ------
SLOW = "let v = [x * 2 for x in range(1000000)]\nnetwork net {\n    input 3x8x8\n    relu\n}\n"
GREEDY = "let v = [range(1000000), range(1000000)]\nnetwork net {\n    input 3x8x8\n    relu\n}\n"
FINE = "network net {\n    input 3x8x8\n    conv3x3(4), relu\n}\n"


def test_an_input_past_the_cpu_bound_is_an_escape(worker):
    escaped, _, outcome = worker.run(SLOW, "net", cpu_bound=0.05)
    assert (escaped, outcome) == ("still running after 0.05 s of CPU", "escape")
    assert worker.run(FINE, "net")[::2] == (None, "backends")


def test_an_input_past_the_memory_bound_is_an_escape():
    """In a fresh worker: one that has run other inputs may hold freed memory that the lists fit in, and then
    cnndsl's own bound on the values an expression touches refuses them (LimitProblem) before Python runs out."""
    worker = fuzz.Worker()
    try:
        _memory_escape(worker)
    finally:
        worker.stop()


def _memory_escape(worker) -> None:
    escaped, _, outcome = worker.run(GREEDY, "net", memory_bound=40 * 2**20)
    assert (escaped, outcome) == (f"MemoryError: more than {40 * 2**20:,} bytes", "escape")
    assert worker.run(FINE, "net")[::2] == (None, "backends")


def test_a_worker_that_does_not_answer_is_an_escape_and_is_replaced(worker):
    worker.hang_bound = 0.01
    try:
        escaped, _, outcome = worker.run(SLOW, "net")
    finally:
        worker.hang_bound = fuzz.HANG_BOUND
    assert (escaped, outcome) == ("no answer within 0.01 s (a hang, or the worker died)", "escape")
    assert worker.process is None
    assert worker.run(FINE, "net")[::2] == (None, "backends")


# ---- an escape of the 100,000-input run (docs/benchmarks.md), fixed -----------------------------------
def test_an_activation_after_an_add_of_one_input_leaves_that_input_alone():
    """Seed 88975: `add` of one input passes that input on, so a SiLU after it must not run in place:
    torch's output differed from onnxruntime's (and from the formula) by 1.28."""
    import torch
    import torch.nn.functional as F

    network = fuzz.cnndsl.parse("network net {\n    input 4\n    scale { scale { add, silu } }\n}")
    images = torch.randn(2, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(network.to_torch().eval()(images.clone()), images * (images * F.silu(images)))
