"""Single key presses from the terminal while `watch` waits between rounds."""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from types import TracebackType
from typing import Any, TextIO


class KeyReader:
    """Reads one key at a time in cbreak mode (Ctrl-C still interrupts); restores on exit.

    Disabled, or without a terminal on `stream`, it only waits: piped runs behave the same.
    """

    def __init__(self, stream: TextIO | None = None, enabled: bool = True) -> None:
        self._stream = stream if stream is not None else sys.stdin
        self._enabled = enabled
        self._fd: int | None = None
        self._saved: list[Any] | None = None

    def __enter__(self) -> KeyReader:
        if not self._enabled:
            return self
        try:
            fd = self._stream.fileno()
        except (OSError, ValueError, AttributeError):
            return self
        if os.isatty(fd):
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
            self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._fd is not None and self._saved is not None:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
        self._fd = None

    def wait(self, seconds: float) -> str | None:
        """The key pressed within `seconds`, else None after waiting that long."""
        seconds = max(0.0, seconds)
        if self._fd is None:
            time.sleep(seconds)
            return None
        ready, _, _ = select.select([self._fd], [], [], seconds)
        if not ready:
            return None
        data = os.read(self._fd, 1)
        return data.decode("utf-8", errors="ignore").lower() or None
