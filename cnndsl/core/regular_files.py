"""Opening a file named by a stranger: only a regular one, so that a FIFO cannot hang the reader nor a device
(/dev/zero) feed it without end."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_SPECIAL = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def open_regular(path: Path, refusal: Callable[[str], Exception]) -> BinaryIO:
    """`path` opened for reading if stat shows a regular file, checked again on the open descriptor (the name may
    have been swapped between); opened without blocking. Otherwise `refusal(what it is)` is raised, e.g. with
    "a FIFO"."""
    _require_regular(path.stat(), refusal)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        _require_regular(os.fstat(fd), refusal)
    except Exception:
        os.close(fd)
        raise
    return open(fd, "rb")


def _require_regular(info: os.stat_result, refusal: Callable[[str], Exception]) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise refusal(next((name for test, name in _SPECIAL if test(info.st_mode)), "a special file"))
