"""The page's analyses in a process of their own, which the server can stop (a thread cannot be stopped).

An edit supersedes the analysis still running for the text before it: the process is killed and a fresh
one, forked from a server of warm processes (multiprocessing's forkserver, with this package imported),
takes the new text. An analysis that runs past its time limit (TIME_LIMIT_S unless `serve --time-limit` gives
another) is stopped, and one that needs more than
MEMORY_LIMIT_BYTES fails with MemoryError in its own process. So no text can freeze the page, grow the
server's memory or hold up its shutdown. Messages are JSON both ways: nothing from the worker is unpickled.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import signal
import threading
import time
from pathlib import Path

from .analysis import Analyser, Request

TIME_LIMIT_S = 10.0
MEMORY_LIMIT_BYTES = 1 << 30  # beyond what the process holds when it starts
SUPERSEDED = {"ok": False, "superseded": True}
BUG_HINT = (
    "this is a bug in cnndsl: please report it with the text"  # the page ignores it: the newer text's answer follows
)


def failure(message: str, hint: str | None = None) -> dict:
    """An analysis that did not end, in the form of the page's errors (not in the text: nothing to underline)."""
    rendered = f"error: {message}" + (f"\nhint: {hint}" if hint else "")
    where = {"here": False, "line": None, "column": None, "where": None, "rendered": rendered}
    return {"ok": False, "error": {"message": message, "hint": hint, **where}}


class AnalysisWorker:
    """`analyse` and `explain` as the Analyser answers them, in a process that an edit or a time limit stops."""

    def __init__(self, path: Path, network: str | None, input_shape: tuple | None, time_limit: float = TIME_LIMIT_S):
        self.arguments, self.time_limit = (path, network, input_shape), time_limit
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload([__name__])
        self.turn = threading.Condition()  # one message in the process at a time
        self.busy: _Process | None = None
        self.process: _Process | None = None
        self.latest = 0  # the newest analysis asked for; an older one still waiting is superseded
        self.closed = False
        with self.turn:
            self.process = _Process(
                self.context, self.arguments, self.time_limit
            )  # started now: the first text is fast

    def analyse(self, request: Request) -> dict:
        return self._ask({"analyse": request.to_message()}, supersede=True)

    def explain(self, network_id: int, layer: str) -> dict | None:
        return self._ask({"explain": [network_id, layer]}, supersede=False).get("found")

    def close(self) -> None:
        """Stop the process and answer every waiting request (the server calls it as it shuts down)."""
        with self.turn:
            self.closed = True
            for process in {self.busy, self.process} - {None}:
                process.stop()
            self.turn.notify_all()
        if self.process is not None:
            self.process.reap()

    def _ask(self, message: dict, supersede: bool) -> dict:
        with self.turn:
            if supersede:
                self.latest += 1
                ticket = self.latest
                if self.busy is not None:
                    self.busy.stop()  # its request answers SUPERSEDED at once
            while self.busy is not None and not self.closed:
                self.turn.wait()
            if self.closed or (supersede and ticket != self.latest):
                return SUPERSEDED
            if not self.process.alive():
                self.process.reap()
                self.process = _Process(self.context, self.arguments, self.time_limit)
            self.busy = process = self.process
        try:
            return process.ask(message)
        finally:
            with self.turn:
                self.busy = None
                self.turn.notify_all()


class _Process:
    """One worker process and the server's end of its pipe."""

    def __init__(self, context, arguments: tuple, time_limit: float):
        self.time_limit = time_limit
        ours, theirs = context.Pipe()
        self.process = context.Process(target=_work, args=(theirs, *arguments), name="cnndsl-analysis", daemon=True)
        self.process.start()
        theirs.close()  # so that the worker's death reads as the end of the pipe here
        self.connection = ours
        self.stopped = False

    def alive(self) -> bool:
        return not self.stopped and self.process.is_alive()

    def ask(self, message: dict) -> dict:
        try:
            self.connection.send_bytes(json.dumps(message).encode("utf-8"))
            if not self.connection.poll(self.time_limit):
                self.stop()
                return failure(
                    f"the analysis took longer than {self.time_limit:g} s and was stopped",
                    hint="a smaller input shape or fewer layers, or a longer `cnndsl serve --time-limit`; "
                    "`cnndsl check` on the file says more",
                )
            answer = json.loads(self.connection.recv_bytes())
        except (EOFError, OSError):
            if self.stopped:
                return SUPERSEDED
            self.stopped = True
            return failure(f"the analysis stopped unexpectedly (exit code {self.process.exitcode})")
        if answer.pop("last", False):  # the worker leaves after this answer: the next text needs a new one
            self.stop()
        return answer

    def stop(self) -> None:
        """Kill the worker and the `dot` it started (its process group); safe from any thread, at any time."""
        self.stopped = True
        for kill in (os.killpg, os.kill):
            try:
                kill(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, TypeError):
                pass

    def reap(self) -> None:
        self.stop()
        self.process.join(5)


def _work(connection, path: Path, network: str | None, input_shape: tuple | None) -> None:
    """The worker's loop: a message in, its answer out, until the server closes the pipe or memory runs out."""
    os.setpgid(0, 0)  # its own group: stopped with its `dot`, and deaf to the terminal's Ctrl-C (the server stops it)
    _bound_memory()
    _leave_with_the_server()
    analyser = Analyser(path, network, input_shape)
    try:
        while True:
            try:
                message = json.loads(connection.recv_bytes())
            except EOFError:
                return
            try:
                answer = _answer(analyser, message)
            except MemoryError:
                answer = failure(
                    f"the analysis needed more than {MEMORY_LIMIT_BYTES >> 30} GiB of memory and was stopped",
                    hint="a smaller input shape or fewer layers",
                )
                answer["last"] = True
                connection.send_bytes(json.dumps(answer).encode("utf-8"))
                return  # a fresh process takes the next text
            except Exception as error:  # noqa: BLE001 - a bug of cnndsl's: said on the page, the worker lives on
                answer = failure(f"cnndsl failed on this text ({type(error).__name__}: {error})", hint=BUG_HINT)
            connection.send_bytes(json.dumps(answer).encode("utf-8"))
    finally:
        analyser.close()


def _answer(analyser: Analyser, message: dict) -> dict:
    if "analyse" in message:
        return analyser.analyse(Request.from_json(message["analyse"]))
    network_id, layer = message["explain"]
    return {"found": analyser.explain(network_id, layer)}


def _bound_memory() -> None:
    """Limit the address space to what the process holds now plus MEMORY_LIMIT_BYTES (Linux: /proc)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            held = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return
    resource.setrlimit(resource.RLIMIT_AS, (held + MEMORY_LIMIT_BYTES, held + MEMORY_LIMIT_BYTES))


def _leave_with_the_server() -> None:
    """Exit when the server is gone (killed outright, it closes nothing): the forkserver, our parent, leaves with it."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="cnndsl-watch", daemon=True).start()
