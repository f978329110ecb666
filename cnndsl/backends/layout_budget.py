"""How long one drawing's layout may take: CPU seconds for all of its layout work, and a wall clock.

A program under 10 kB can keep Graphviz's `dot` busy for minutes (1,666 four-way branches: past a minute;
ninety branches nested in one another: 10 s), so without an explicit timeout a drawing gets `LAYOUT_CPU_S`
of CPU in all: the DOT text this process builds while it searches for the depth that fits a page, and every
`dot` it starts, each bounded by what is left through its RLIMIT_CPU (and to `LAYOUT_MEMORY_BYTES` of
address space). CPU time is what a busy machine does not stretch; the wall clock (`LAYOUT_TIMEOUT_S`) only
catches a `dot` that waits. An explicit timeout (`--timeout`, `timeout=`, the docs' settings) sets both.
Where the platform has no `resource` module (Windows) the wall clock alone bounds `dot`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field

from .diagram_options import LAYOUT_TIMEOUT_S

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None

LAYOUT_CPU_S = 2.0  # the library's largest figure takes `dot` 0.3 s at every level; 10 kB can take minutes
LAYOUT_MEMORY_BYTES = 2**30
STOPPED = {-signal.SIGKILL, -getattr(signal, "SIGXCPU", signal.SIGKILL), 137}  # how a bounded `dot` ends


def cpu_seconds() -> float:
    """CPU time of this process and of the children it has waited for."""
    if resource is None:  # pragma: no cover - Windows
        return time.process_time()
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class LayoutBudget:
    """`cpu_s` of CPU and `wall_s` of wall clock from the moment it is made; `explicit` when the user set it."""

    cpu_s: float
    wall_s: float
    explicit: bool = False
    cpu_start: float = field(default_factory=cpu_seconds)
    wall_start: float = field(default_factory=time.monotonic)
    running: subprocess.Popen | None = field(default=None, repr=False)  # the `dot` bound last, while it runs

    @classmethod
    def of(cls, timeout: float | None) -> LayoutBudget:
        """An explicit timeout bounds both CPU and wall clock; without one, LAYOUT_CPU_S of CPU within 30 s."""
        if timeout is None:
            return cls(LAYOUT_CPU_S, LAYOUT_TIMEOUT_S)
        return cls(timeout, timeout, explicit=True)

    def cpu_left(self) -> float:
        """What is left: a `dot` still running counts too (getrusage sees a child only once it is waited for)."""
        running = self.running if self.running is not None and self.running.poll() is None else None
        return self.cpu_s - (cpu_seconds() - self.cpu_start) - (_cpu_of(running.pid) if running else 0.0)

    def wall_left(self) -> float:
        return max(self.wall_s - (time.monotonic() - self.wall_start), 0.0)

    def spent(self) -> bool:
        return self.cpu_left() <= 0 or self.wall_left() <= 0

    def described(self) -> str:
        """`0.5 s` for a timeout the user gave, `2.5 s of CPU` for the default."""
        return f"{self.cpu_s:g} s" if self.explicit else f"{self.cpu_s:g} s of CPU"

    def bound(self, process: subprocess.Popen) -> None:
        """Give a started `dot` what is left of the CPU time (to the nearest second, at least 1) and 1 GiB;
        never above the limits it inherited, which an unprivileged process cannot raise."""
        if resource is None or not hasattr(resource, "prlimit"):  # pragma: no cover - macOS, Windows
            return
        self.running = process
        seconds = max(1, round(self.cpu_left()))
        try:
            for which, soft, hard in (
                (resource.RLIMIT_CPU, seconds, seconds + 1),
                (resource.RLIMIT_AS, LAYOUT_MEMORY_BYTES, LAYOUT_MEMORY_BYTES),
            ):
                _, ceiling = resource.getrlimit(which)
                if ceiling != resource.RLIM_INFINITY:
                    soft, hard = min(soft, ceiling), min(hard, ceiling)
                resource.prlimit(process.pid, which, (soft, hard))
        except (ProcessLookupError, PermissionError, OSError):  # `dot` has ended already
            pass


def _cpu_of(pid: int) -> float:
    """CPU seconds of a running process, from /proc (Linux); 0 where that cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14 and 15
    except (OSError, ValueError, IndexError):
        return 0.0
