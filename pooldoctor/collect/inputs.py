"""Files named on the command line: regular files or stdin only, read within byte/time caps."""

from __future__ import annotations

import os
import select
import stat
import sys
import time
from collections.abc import Callable
from typing import BinaryIO

STDIN_PATH = "-"
READ_CHUNK_BYTES = 1024 * 1024
# Seconds a whole small input (config, evidence) may take to arrive; a pipe that stalls longer
# is a source error, not a hang.
READ_SECONDS = 30.0


class InputError(OSError):
    """An input that is refused or could not be read in bounds; the message is one line."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(path: str) -> BinaryIO:
    """Open `path` for reading; anything but a regular file is refused without blocking.

    O_NONBLOCK keeps open() of a FIFO with no writer from hanging; it is cleared again for a
    regular file, where it means nothing anyway.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InputError(exc.errno, exc.strerror or str(exc)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise InputError(f"{_kind(mode)}, not a regular file (give a file, or - for stdin)")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def stdin_binary() -> BinaryIO | None:
    """Standard input as a binary stream, or None when it is a terminal or closed."""
    if sys.stdin is None or sys.stdin.isatty():
        return None
    return sys.stdin.buffer


def read_capped(handle: BinaryIO, limit: int, seconds: float = READ_SECONDS) -> bytes:
    """All of `handle`, refusing more than `limit` bytes or more than `seconds` of waiting."""
    deadline = time.monotonic() + seconds
    regular = _is_regular(handle)
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or (not regular and not _readable_within(handle, remaining)):
            raise InputError(f"not read within {seconds:g}s ({size} bytes arrived)")
        chunk = handle.read1(READ_CHUNK_BYTES) if hasattr(handle, "read1") else handle.read()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise InputError(f"larger than {_human(limit)}; not the expected kind of file")
        chunks.append(chunk)


class DeadlineReader:
    """A binary stream whose reads wait for data at most until a deadline, then raise
    InputError: a pipe that stalls ends the read instead of hanging it."""

    def __init__(self, stream: BinaryIO, seconds: float) -> None:
        self._stream = stream
        self._seconds = seconds
        self._deadline = time.monotonic() + seconds

    def read(self, size: int = -1) -> bytes:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0 or not _readable_within(self._stream, remaining):
            raise InputError(f"no more data within {self._seconds:g}s")
        if size < 0:
            return self._stream.read()
        # read1: whatever one read() of the pipe gives, without waiting for `size` bytes
        read: Callable[[int], bytes] = getattr(self._stream, "read1", self._stream.read)
        return read(size)


def read_input(path: str, limit: int, seconds: float = READ_SECONDS) -> bytes:
    """The bytes of a file named on the command line (`-` is stdin), within the caps."""
    if path == STDIN_PATH:
        stream = stdin_binary()
        if stream is None:
            raise InputError("stdin is a terminal; pipe the file into it")
        return read_capped(stream, limit, seconds)
    with open_regular(path) as handle:
        return read_capped(handle, limit, seconds)


def _is_regular(handle: BinaryIO) -> bool:
    try:
        return stat.S_ISREG(os.fstat(handle.fileno()).st_mode)
    except (OSError, ValueError):
        return False


def _readable_within(handle: BinaryIO, seconds: float) -> bool:
    try:
        ready, _, _ = select.select([handle], [], [], seconds)
    except (OSError, ValueError, TypeError):
        return True  # not selectable (a test's BytesIO): read it directly
    return bool(ready)


def _human(size: int) -> str:
    if size >= 1024 * 1024 * 1024:
        return f"{size / 1024**3:g} GiB"
    if size >= 1024 * 1024:
        return f"{size / 1024**2:g} MiB"
    return f"{size / 1024:g} KiB"
