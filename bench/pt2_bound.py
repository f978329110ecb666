"""`cnndsl compile --to pt2` at its operator bound (100 ATen operators traced, backends/formats.PT2_STEPS) beside a
one-layer export, in CPU seconds of whole processes (user and system: docs/errors.md's bounds are of CPU): what the
bound buys is that the costliest networks it lets through take at most 5/4 of what torch's import and export's
start cost anyway (docs/errors.md: 5 s against 4.0 s idle).

    python bench/pt2_bound.py

The networks at the bound (bench/pt2_networks.py) are the costliest shapes per operator measured: 99 operators of
four-way branches, and 33 layer norms (a permute, the norm and a permute each) and a ReLU.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pt2_networks import AT_THE_BOUND, ONE_LAYER
from timing import Pair, cnndsl_command, user_env


def _written(folder: Path, name: str, shape: str, line: str) -> list[str]:
    """The command exporting a one-network file written into `folder`."""
    source = folder / f"{name}.cnn"
    source.write_text(f"network {name} {{\n    input {shape}\n    {line}\n}}\n")
    return [cnndsl_command(), "compile", str(source), "--to", "pt2", "-o", str(folder / f"{name}.pt2")]


def cpu_seconds(command: list[str]) -> float:
    """User and system CPU seconds of one whole process; a failure stops the benchmark with its stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, env=user_env())
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        sys.exit(f"{' '.join(command)[:200]} failed:\n{done.stderr.decode(errors='replace')[-2000:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


@contextmanager
def bound_pair() -> Iterator[Pair]:
    """Ours: the slower of the two networks at the bound, each a whole `cnndsl compile --to pt2` process; the anchor:
    the one-layer network's."""
    with tempfile.TemporaryDirectory() as folder:
        commands = [_written(Path(folder), name, shape, line) for name, (shape, line, _) in AT_THE_BOUND.items()]
        anchor = _written(Path(folder), "one", *ONE_LAYER)
        yield Pair(lambda: max(cpu_seconds(command) for command in commands), lambda: cpu_seconds(anchor))


def main() -> None:
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    with bound_pair() as pair:
        pair.ours(), pair.anchor()  # bytecode written, files cached
        rounds = [(pair.ours(), pair.anchor()) for _ in range(3)]
    for ours, anchor in rounds:
        print(f"at the bound {ours:.2f} s of CPU, one layer {anchor:.2f} s: {ours / anchor:.2f}x")
    ratio = sorted(ours / anchor for ours, anchor in rounds)[1]
    print(f"goal: at most 1.25x one layer's export -> median {ratio:.2f}x ({'met' if ratio <= 1.25 else 'NOT met'})")


if __name__ == "__main__":
    main()
