"""Timing helpers shared by the benchmarks: the best of several runs, in process or as whole processes."""

from __future__ import annotations

import os
import subprocess
import time


def best_of(function, repeats: int = 20) -> float:
    """Best wall time of several runs, in seconds: the least disturbed measurement."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def whole_process(command: list[str], repeats: int = 5, extra_env: dict[str, str] | None = None) -> float:
    """Best of several runs, after one that warms the file cache and writes bytecode, as a user's would."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"} | (extra_env or {})
    subprocess.run(command, check=True, capture_output=True, env=env)
    return best_of(lambda: subprocess.run(command, check=True, capture_output=True, env=env), repeats)
