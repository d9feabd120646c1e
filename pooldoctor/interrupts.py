"""SIGINT and SIGTERM as exceptions in the main thread, and the exit codes they end with."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING

from pooldoctor.exitcodes import ExitCode

if TYPE_CHECKING:
    from pooldoctor.evidence import Evidence


class Terminated(BaseException):
    """SIGTERM arrived; like KeyboardInterrupt, not an Exception, so no collector swallows it."""


INTERRUPTS: tuple[type[BaseException], ...] = (KeyboardInterrupt, Terminated)


class CaptureInterrupted(BaseException):
    """A capture stopped by SIGINT/SIGTERM; `evidence` holds what was collected until then.

    Defined here, not with the capture, so the CLI can catch it without importing collectors.
    """

    def __init__(self, evidence: Evidence, cause: BaseException) -> None:
        super().__init__(interrupt_name(cause))
        self.evidence = evidence
        self.cause = cause


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM raises Terminated."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _cause(exc: BaseException) -> BaseException:
    cause = getattr(exc, "cause", None)  # a CaptureInterrupted wraps the signal's exception
    return cause if isinstance(cause, BaseException) else exc


def interrupt_name(exc: BaseException) -> str:
    """'terminated' for SIGTERM, 'interrupted' for SIGINT."""
    return "terminated" if isinstance(_cause(exc), Terminated) else "interrupted"


def interrupt_exit_code(exc: BaseException) -> ExitCode:
    """143 for SIGTERM, 130 for SIGINT (128 + the signal number, as shells report it)."""
    return ExitCode.TERMINATED if isinstance(_cause(exc), Terminated) else ExitCode.INTERRUPTED
