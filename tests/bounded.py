"""`cnndsl` as a whole process under the bounds docs/errors.md promises for a `.cnn` under 10 kB: 5 s of CPU
and 1 GiB of address space (the wall clock only catches a process that waits, as CPU time is what a shared
machine's load does not stretch)."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys

import pytest

CPU_SECONDS, BYTES, WALL_SECONDS = 5, 2**30, 60


def _bounded() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (BYTES, BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


def cnndsl(*args: str) -> subprocess.CompletedProcess:
    """`cnndsl ARGS` as a bounded process; the test fails if it passes its CPU time or waits past the wall clock."""
    command = f"cnndsl {' '.join(map(str, args))}"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "cnndsl", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=WALL_SECONDS,
            preexec_fn=_bounded,
            env={"CNNDSL_NO_CACHE": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)},
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{command} waited for more than {WALL_SECONDS} s")
    if done.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        pytest.fail(f"{command} ran for more than {CPU_SECONDS} s of CPU")
    return done


def cpu_of(*args: str, cpu_seconds: int = 120) -> tuple[subprocess.CompletedProcess, float]:
    """`cnndsl ARGS` under 1 GiB of address space and a generous CPU bound (a hang fails, not the run), and the
    CPU seconds it took, user and system: for tests that hold a command's time as a ratio to another's."""

    def bounded() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (BYTES, BYTES))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-m", "cnndsl", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=10 * cpu_seconds,
        preexec_fn=bounded,
        env={"CNNDSL_NO_CACHE": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path), "OMP_NUM_THREADS": "1"},
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return done, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
