"""Outbound text hygiene: control characters stripped from every string pooldoctor emits."""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from pooldoctor.redact import redact

# C0 controls except tab and newline, DEL, and C1 controls (ESC starts terminal escapes; CR
# rewrites a terminal line; NUL truncates C strings).
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# On a terminal, ESC and CR are pooldoctor's own: styling, and live views redrawn in place
# (a rich Live region returns to column 0 with CR). Data reaching a terminal is stripped first.
_CONTROLS_KEEP_ESC = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f-\x9f]")


def strip_controls(text: str) -> str:
    """Text without control characters (tab and newline kept)."""
    return _CONTROLS.sub("", text)


def strip_controls_keep_esc(text: str) -> str:
    """Like strip_controls, but ESC and CR kept: for terminal output pooldoctor itself styled
    or redraws (progress bars, the watch view)."""
    return _CONTROLS_KEEP_ESC.sub("", text)


def outbound_text(text: str) -> str:
    """A string as it may leave the process: control characters stripped, secrets redacted."""
    return redact(strip_controls(text))


def clean_tree(value: Any) -> Any:
    """A JSON-ready tree with every string (keys included) made outbound_text."""
    if isinstance(value, str):
        return outbound_text(value)
    if isinstance(value, dict):
        return {clean_tree(key): clean_tree(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [clean_tree(item) for item in value]
    return value


Filter = Callable[[str], str]


class SanitizingStream(io.TextIOBase):
    """A text stream that passes every write through `filter` before the wrapped stream."""

    def __init__(self, wrapped: TextIO, text_filter: Filter) -> None:
        super().__init__()
        self.wrapped = wrapped
        self._filter = text_filter

    def write(self, text: str) -> int:
        self.wrapped.write(self._filter(text))
        return len(text)

    def flush(self) -> None:
        self.wrapped.flush()

    def isatty(self) -> bool:
        return self.wrapped.isatty()

    def fileno(self) -> int:
        return self.wrapped.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.wrapped, "encoding", "utf-8")

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.wrapped, "errors", None)


def outbound_filter(stream: TextIO) -> Filter:
    """What every stdout/stderr write goes through: secrets redacted, controls stripped (ESC, CR
    kept on a terminal, where only pooldoctor's own styling can still contain it)."""
    strip = strip_controls_keep_esc if _isatty(stream) else strip_controls

    def text_filter(text: str) -> str:
        return redact(strip(text))

    return text_filter


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


@contextlib.contextmanager
def sanitized_standard_streams() -> Iterator[None]:
    """Route sys.stdout and sys.stderr through outbound_filter while the block runs."""
    saved = sys.stdout, sys.stderr
    if saved[0] is not None:
        sys.stdout = SanitizingStream(saved[0], outbound_filter(saved[0]))
    if saved[1] is not None:
        sys.stderr = SanitizingStream(saved[1], outbound_filter(saved[1]))
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(ValueError, OSError):
                stream.flush()
        sys.stdout, sys.stderr = saved
