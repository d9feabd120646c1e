"""Atomic file writes: a reader never sees a half-written report or evidence file."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def writable_problem(path: Path) -> str | None:
    """Why `write_atomic(path, ...)` would fail now (its directory cannot take a file), or None."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    Path(tmp_name).unlink(missing_ok=True)
    return None


def write_atomic(path: Path, text: str) -> None:
    """Write text to path via a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


LOCK_WAIT_SECONDS = 10.0
LOCK_POLL_SECONDS = 0.05


@contextlib.contextmanager
def locked_directory(path: Path, seconds: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    """Create `path` if needed and hold an exclusive lock on it: concurrent writers of one
    report directory take turns, so its files always come from one run."""
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        deadline = time.monotonic() + seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise OSError(
                        errno.EBUSY, f"another pooldoctor is still writing it after {seconds:g}s"
                    ) from None
                time.sleep(LOCK_POLL_SECONDS)
        yield
    finally:
        os.close(fd)  # closing releases the lock
