"""Outputs are written whole or not at all: a temp file (or, for files that belong together, a temp folder)
beside the target, then renames.

An interrupted write removes its temp: SIGINT raises KeyboardInterrupt, and SIGTERM, whose default would end
the process on the spot, is turned into an exception while a write runs and delivered again once the temp is
gone. The renames of files written together run with both signals held off, so they land as a pair.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import FileProblem


class _Terminated(BaseException):
    """SIGTERM arrived during a write (a BaseException, so `except Exception` cannot swallow it)."""


def write_atomically(target: str | Path, content: bytes | str | Callable[[Path], None]) -> Path:
    """Write bytes, text, or whatever `content(temp_path)` writes, then move it into place."""
    target = Path(target)
    folder = _folder_of(target)
    with _sigterm_raises():
        temp = _temp_name(target, folder)  # named before it exists, so an interruption at any point removes it
        try:
            handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(handle, "wb") as stream:
                if isinstance(content, str):
                    stream.write(content.encode("utf-8"))
                elif isinstance(content, bytes):
                    stream.write(content)
            if callable(content):
                content(temp)
            os.chmod(temp, 0o666 & ~_umask())  # created private; an output has the usual mode
            os.replace(temp, target)
        except OSError as error:
            raise FileProblem(f"cannot write {target}: {error.strerror or error}") from None
        finally:
            if temp.exists():
                temp.unlink()
    return target


def write_together(targets: list[Path], content: Callable[[Path], None]) -> list[Path]:
    """Write files that belong together (a model and its data) in one folder: `content(temp_folder)` writes
    each under its target's name in a temp folder beside them; then all are moved into place at once."""
    folder = _folder_of(targets[0])
    for target in targets:
        if target.is_dir():
            raise FileProblem(f"cannot write {target}: it is a folder")
    with _sigterm_raises():
        temp = _temp_name(targets[0], folder)
        try:
            os.mkdir(temp, 0o700)
            content(temp)
            with _signals_held():
                for target in targets:
                    os.replace(temp / target.name, target)
        except OSError as error:
            raise FileProblem(f"cannot write {targets[0]}: {error.strerror or error}") from None
        finally:
            shutil.rmtree(temp, ignore_errors=True)
    return targets


def _temp_name(target: Path, folder: Path) -> Path:
    """A hidden name beside the target that nothing else uses (created with O_EXCL, so a clash is an error)."""
    return folder / f".{target.name}.{secrets.token_hex(6)}.part"


def _folder_of(target: Path) -> Path:
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise FileProblem(f"cannot write {target}: folder {folder} does not exist")
    return folder


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Within the block SIGTERM raises _Terminated, so that `finally` clauses remove temps; afterwards the
    signal is sent again, to end the process as it would have. Only where SIGTERM has its default action
    and this is the main thread (the only one that may set handlers)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def raise_terminated(signum, frame):
        raise _Terminated

    try:
        signal.signal(signal.SIGTERM, raise_terminated)
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        raise
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done: meanwhile their handlers only note them, and they are
    raised again at its end. (A signal mask would not do: another of the process's threads would take the
    signal, and Python runs handlers in the main thread regardless.)"""
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.getsignal(number) for number in signals}
    if threading.current_thread() is not threading.main_thread() or None in previous.values():
        yield  # handlers can be set only from the main thread, and only over handlers Python set
        return
    noted: list[int] = []
    for number in signals:
        signal.signal(number, lambda number, frame: noted.append(number))
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number in noted:
            signal.raise_signal(number)


def _umask() -> int:
    """The process umask; reading it means setting it, so set it straight back."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
