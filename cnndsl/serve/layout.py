"""One long-running Graphviz `dot -Tsvg` that lays out the page's diagrams one after another.

`dot` reads graph after graph from its input and answers each as soon as its closing brace arrives,
so the server starts it once: starting a `dot` for every keystroke costs 30-50 ms on this project's
machine, a third of the time from an edit to the new diagram.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import threading
import time

from ..core.errors import FileProblem

TIMEOUT_S = 30.0
END = b"</svg>"  # the last line of every SVG dot writes; labels are escaped, so no text can end with it
_PAGE = re.compile(r'id="page\d+,\d+_')  # a graph after the first in one run has its ids prefixed as a page


class DotProcess:
    """`svg(dot_source)` through one `dot` process, restarted when it dies or stalls."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.lock = threading.Lock()

    def svg(self, source: str) -> str:
        with self.lock:
            try:
                return self._layout(source.encode("utf-8"))
            except (OSError, EOFError, TimeoutError) as error:
                self.close()
                if isinstance(error, FileNotFoundError):
                    raise FileProblem(
                        "drawing needs the Graphviz program `dot`, which is not installed",
                        hint="install Graphviz (apt install graphviz, brew install graphviz)",
                    ) from None
                raise FileProblem(
                    f"Graphviz could not lay out the diagram ({error or type(error).__name__})",
                    hint="a smaller --depth draws fewer boxes",
                ) from None

    def _layout(self, source: bytes) -> str:
        if self.process is not None and self.process.poll() is not None:
            self.close()  # it died: its pipes are closed before a new one starts
        if self.process is None:
            self.process = subprocess.Popen(
                ["dot", "-Tsvg"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
            )
        self.process.stdin.write(source + b"\n")
        self.process.stdin.flush()
        output, deadline = bytearray(), time.monotonic() + TIMEOUT_S
        while not output.rstrip().endswith(END):
            ready, _, _ = select.select([self.process.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError(f"no answer in {TIMEOUT_S:.0f} s")
            chunk = os.read(self.process.stdout.fileno(), 1 << 16)
            if not chunk:
                raise EOFError("dot stopped")
            output += chunk
        return _PAGE.sub('id="', output.decode("utf-8"))

    def close(self) -> None:
        if self.process is not None:
            with self.process:  # closes its pipes as it waits for it
                self.process.kill()
            self.process = None
