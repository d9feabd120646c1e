"""Find the application frame that checked a connection out, cheaply (cached per code object)."""

from __future__ import annotations

import os
import sys
import sysconfig
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import CodeType, FrameType

import sqlalchemy

import pooldoctor

MAX_FRAMES_WALKED = 64  # deeper than any SQLAlchemy checkout path; bounds the cost of a miss


def _library_prefixes() -> tuple[str, ...]:
    stdlib = {sysconfig.get_paths()["stdlib"], os.path.dirname(os.__file__)}
    packages = {os.path.dirname(sqlalchemy.__file__), os.path.dirname(pooldoctor.__file__)}
    return tuple(os.path.join(os.path.realpath(path), "") for path in stdlib | packages)


def _third_party_markers() -> tuple[str, ...]:
    return (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")


_LIBRARY_PREFIXES = _library_prefixes()
_THIRD_PARTY = _third_party_markers()
_OWN_PACKAGES = tuple(
    os.path.join(os.path.realpath(os.path.dirname(module.__file__ or "")), "")
    for module in (sqlalchemy, pooldoctor)
)
# pooldoctor's lab (the demo's web app, its load and scenarios) is an application using the pool,
# not pooldoctor's own machinery: its frames are origins, so the demo names its leaking line.
_APPLICATION_PACKAGES = (
    os.path.join(os.path.realpath(os.path.dirname(pooldoctor.__file__)), "lab", ""),
)
# co_filename -> True when it belongs to SQLAlchemy, pooldoctor or the standard library. Keyed by
# the filename string because str caches its hash; hashing a code object rehashes its contents.
_is_library: dict[str, bool] = {}


@cache
def _filename_is_library(filename: str) -> bool:
    if filename.startswith("<"):  # <frozen ...>, <string>: interpreter machinery
        return True
    real = os.path.realpath(filename)
    if real.startswith(_APPLICATION_PACKAGES):
        return False
    if real.startswith(_OWN_PACKAGES):
        return True
    if any(marker in real for marker in _THIRD_PARTY):  # an installed app is not the stdlib
        return False
    return real.startswith(_LIBRARY_PREFIXES)


def _spawning_frame() -> FrameType | None:
    """Under AsyncEngine the checkout runs in a greenlet whose stack ends at its own start; the
    awaiting coroutine is found where the parent greenlet was suspended."""
    greenlet_module = sys.modules.get("greenlet")
    if greenlet_module is None:
        return None
    parent = greenlet_module.getcurrent().parent
    frame: FrameType | None = getattr(parent, "gr_frame", None) if parent is not None else None
    return frame


def caller_origin(frame: FrameType | None) -> tuple[CodeType | None, int]:
    """The first frame outside SQLAlchemy, pooldoctor (its lab app excepted) and the stdlib:
    (code, f_lasti), or (None, 0) when there is none.

    The instruction offset, not the line: `f_lineno` decodes the line table on every call, while
    `line_of` does it only when a holder is reported."""
    walked = 0
    crossed_greenlet = False
    is_library = _is_library
    while walked < MAX_FRAMES_WALKED:
        if frame is None:
            if crossed_greenlet:
                break
            crossed_greenlet = True
            frame = _spawning_frame()
            if frame is None:
                break
        code = frame.f_code
        filename = code.co_filename
        library = is_library.get(filename)
        if library is None:
            library = is_library[filename] = _filename_is_library(filename)
        if not library:
            return code, frame.f_lasti
        frame = frame.f_back
        walked += 1
    return None, 0


def line_of(code: CodeType, instruction: int) -> int:
    """The source line of the instruction at byte offset `instruction` in `code`."""
    for start, end, line in code.co_lines():
        if start <= instruction < end and line is not None:
            return line
    return code.co_firstlineno


@cache
def display_path(filename: str) -> str:
    """`filename` relative to the working directory, else to its sys.path entry, else as is."""
    path = Path(filename)
    if not path.is_absolute():
        return filename
    bases = [Path.cwd(), *(Path(entry) for entry in sys.path if entry)]
    best: str | None = None
    for base in bases:
        try:
            relative = path.relative_to(base)
        except ValueError:
            continue
        candidate = relative.as_posix()
        if best is None or len(candidate) < len(best):
            best = candidate
        if base == bases[0]:
            return candidate
    return best if best is not None else path.as_posix()


@dataclass(frozen=True, slots=True)
class CodeOrigin:
    """Where a code object lives, for messages."""

    path: str
    function: str

    @staticmethod
    def of(code: CodeType) -> CodeOrigin:
        return CodeOrigin(display_path(code.co_filename), code.co_name)

    def describe(self, line: int) -> str:
        return f"{self.path}:{line} in {self.function}"
