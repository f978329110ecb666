"""`cnndsl serve FILE`: a local page with the file in an editor beside its diagram and summary, redrawn
as the user types; errors are underlined where they are, and a click on a layer shows its figures
worked out by hand. See docs/serve.md.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import uvicorn

from ..core.errors import FileProblem
from .app import create_app
from .document import Document
from .guard import cookie_name, new_token
from .worker import TIME_LIMIT_S, AnalysisWorker

LOOPBACK = "127.0.0.1"


def serve(
    path: Path,
    host: str = LOOPBACK,
    port: int = 8765,
    network: str | None = None,
    input_shape: tuple | None = None,
    depth: int | None = None,
    announce: Callable[[str], None] = print,
    time_limit: float = TIME_LIMIT_S,
) -> None:
    """Bind first (so that port 0 picks a free port and the printed URL is the real one), then serve.
    A script that calls it needs `if __name__ == "__main__":`, as multiprocessing does (the analysis worker)."""
    sock = _bind(host, port)
    actual = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    names = {f"{name}:{actual}" for name in _names(host)}
    token = new_token()
    worker = AnalysisWorker(path, network, input_shape, time_limit)
    app = create_app(Document(path), worker, names, token, cookie_name(actual), depth)
    try:  # from the moment the URL is out, Ctrl-C is the way to stop
        announce(f"cnndsl serve: editing {path} at http://{shown}:{actual}/?token={token}  (Ctrl-C stops)")
        if host != LOOPBACK:
            announce(
                f"warning: listening on {host}: whoever reaches this address and learns the URL above "
                f"can read and overwrite {path.name} (the token travels unencrypted)"
            )
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=GRACE_S
        )
        _StoppingServer(config, worker).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down on Ctrl-C, then passes the signal on: stopping is no error
        announce("cnndsl serve: stopped")
    finally:
        worker.close()


GRACE_S = 3  # seconds an answer being sent may take once the server is told to stop


class _StoppingServer(uvicorn.Server):
    """Stops the analyses first as it shuts down: a request waiting on one would hold the shutdown up."""

    def __init__(self, config: uvicorn.Config, worker: AnalysisWorker):
        super().__init__(config)
        self.worker = worker

    async def shutdown(self, sockets=None):
        self.worker.close()
        await super().shutdown(sockets)


def _names(host: str) -> set[str]:
    """The names a browser may put in the Host header for this address: a wildcard address
    (0.0.0.0, ::) is reached by the machine's names and addresses, which it then accepts."""
    names = {f"[{host}]" if ":" in host else host}
    if host in (LOOPBACK, "0.0.0.0", "::"):
        names |= {"localhost", LOOPBACK}
    if host in ("0.0.0.0", "::"):
        machine = socket.gethostname()
        try:
            found = {info[4][0] for info in socket.getaddrinfo(machine, None)}
        except OSError:
            found = set()
        names |= {machine, socket.getfqdn()} | {f"[{a}]" if ":" in a else a for a in found}
    return names


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise FileProblem(
            f"cannot listen on {host}:{port}: {error.strerror}",
            hint="choose another port with --port, or --port 0 for any free one",
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
