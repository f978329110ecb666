"""Fuzzing in the normal suite: hypothesis drives bench/fuzz.py's grammar-aware generator and its
mutator of valid sources; every input must end, within a time bound, in a graph that keeps the IR
contract or in a CnnDslError. `python bench/fuzz.py` runs the same check on 100,000 inputs.
"""
from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

BENCH = Path(__file__).resolve().parent.parent / "bench" / "fuzz.py"
_spec = importlib.util.spec_from_file_location("cnndsl_fuzz", BENCH)
fuzz = sys.modules["cnndsl_fuzz"] = importlib.util.module_from_spec(_spec)  # dataclasses look it up there
_spec.loader.exec_module(fuzz)

# Bounded so the three searches take well under a minute together (about 10 s of CPU on 2 cores);
# the longer search is bench/fuzz.py. derandomize: the suite stays reproducible.
FUZZ_SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _choices(data) -> "fuzz.Choices":
    """The generator's decisions drawn by hypothesis, so a failing program shrinks."""
    return fuzz.Choices(lambda options: data.draw(st.sampled_from(list(options))),
                        lambda low, high: data.draw(st.integers(low, high)))


def _ends_well(text: str, network=None) -> None:
    start = time.perf_counter()
    escaped = fuzz.run(text, network)
    seconds = time.perf_counter() - start
    assert escaped is None, f"{escaped}\n--- input ---\n{text}"
    assert seconds < fuzz.TIME_BOUND, f"took {seconds:.2f} s\n--- input ---\n{text}"


@FUZZ_SETTINGS
@given(st.data())
def test_generated_programs_end_in_a_graph_or_a_located_error(data):
    _ends_well(fuzz.Generator(_choices(data)).program(), "net")


@FUZZ_SETTINGS
@given(st.data())
def test_mutated_sources_end_in_a_graph_or_a_located_error(data):
    choices = _choices(data)
    name, text = choices.pick(fuzz.SEEDS)
    networks = fuzz.NETWORK.findall(text)
    _ends_well(fuzz.mutate(text, choices), choices.pick(networks) if networks else None)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(list("(){}[]@:,x*^\n")), max_size=200))
def test_arbitrary_text_ends_in_a_graph_or_a_located_error(text):
    _ends_well(text)


def test_the_generator_reaches_valid_networks_and_every_error_kind():
    """The fuzzer is only as good as its reach: it must build networks and raise each error class."""
    expected = {"Network", "SyntaxProblem", "NameProblem", "ShapeProblem", "ValueProblem", "LimitProblem",
                "FileProblem"}
    seen = set()
    for seed in range(1000):  # until every class is reached: each new layer kind or example reshuffles the draws
        label, text, network = fuzz.fuzz_input(fuzz.Choices.seeded(seed))
        try:
            fuzz.cnndsl.parse(text, network=network, max_nodes=fuzz.MAX_NODES)
            seen.add("Network")
        except fuzz.CnnDslError as error:
            seen.add(type(error).__name__)
        if seen == expected:
            break
    assert seen == expected
