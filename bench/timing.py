"""Timing helpers shared by the benchmarks: the best of several runs, in process or as whole processes, and
the pair of timed runs (ours, the anchor's) that bench/all.py interleaves."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pair:
    """One timed run of ours and one of the anchor's, each returning seconds: what bench/all.py pairs."""

    ours: Callable[[], float]
    anchor: Callable[[], float]


def best_of(function, repeats: int = 20) -> float:
    """Best wall time of several runs, in seconds: the least disturbed measurement."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def user_env(extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """This environment as a user's shell has it: bytecode written and read (a development shell may forbid
    writing it, which would make every process compile every module afresh)."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"} | (extra_env or {})


def cnndsl_command() -> str:
    """The console script itself, not a version manager's shim in front of it."""
    script = Path(sysconfig.get_path("scripts")) / "cnndsl"
    if not script.exists():
        sys.exit("cnndsl is not installed")
    return str(script)


def timed_process(command: list[str], extra_env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    """Wall seconds of one whole process, output discarded; a failure stops the benchmark with its stderr."""
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, env=user_env(extra_env), cwd=cwd)
    elapsed = time.perf_counter() - start
    if result.returncode:
        sys.exit(f"{' '.join(command)[:200]} failed:\n{result.stderr.decode(errors='replace')[-2000:]}")
    return elapsed


def whole_process(command: list[str], repeats: int = 5, extra_env: dict[str, str] | None = None) -> float:
    """Best of several runs, after one that warms the file cache and writes bytecode, as a user's would."""
    timed_process(command, extra_env)
    return best_of(lambda: timed_process(command, extra_env), repeats)
