"""Find the lines of a large chunk that hold any of a few literals: in one pass for all of them
with Hyperscan when its wheel is installed, else one fast pass per literal over each
cache-sized window of the chunk.

Hyperscan (a vectorised multi-literal matcher) measured twice as fast as the strstr passes for
the classifier's 25 keys over the bench file (0.042 s against 0.08 s per 64 MiB). Without it,
the C library searches when it can, releasing the GIL so passes for different keys can run
on several cores: strstr (glibc's is vectorised, about twice memmem's speed) when the chunk
holds no NUL byte, memmem otherwise, and bytes.find where neither exists. strstr reads on to
the buffer's terminating NUL (CPython bytes always have one), which is at most a line or so
past the chunk's end; hits past the end are ignored.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any


def _import_hyperscan() -> Any:
    try:
        return importlib.import_module("hyperscan")
    except ImportError:  # no wheel for this platform: the strstr passes below
        return None


hyperscan: Any = _import_hyperscan()

Finder = Callable[[bytes, int, int], int]
# strstr is only used when it would read at most this far past a chunk's end.
STRSTR_MAX_TAIL_BYTES = 1024 * 1024
# Keys pass over windows of about this many bytes, which stay in a core's L2 cache between passes
# (256 KiB measured 10% faster than 16 MiB spans over the bench file; 1-2 MiB no faster).
WINDOW_BYTES = 256 * 1024


def _load_libc(name: str, argtypes: list[Any]) -> Callable[..., int | None] | None:
    if sys.platform == "win32":
        return None
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        try:
            library = ctypes.util.find_library("c")
            if library is None:
                return None
            function = getattr(ctypes.CDLL(library), name)
        except (OSError, AttributeError):
            return None
    function.restype = ctypes.c_void_p
    function.argtypes = argtypes
    return function  # type: ignore[no-any-return]


_MEMMEM = _load_libc("memmem", [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t])
_STRSTR = _load_libc("strstr", [ctypes.c_void_p, ctypes.c_char_p])
PARALLEL = _MEMMEM is not None
# Tests and the bench turn this off to compare with the strstr passes.
MULTI_LITERAL = hyperscan is not None
_DATABASES: dict[tuple[tuple[bytes, ...], bool], Any] = {}
_REGEXES: dict[bytes, Any] = {}


def make_finder(buffer: bytes, start: int = 0, end: int | None = None) -> Finder:
    """A `find(literal, start, end) -> index or -1` over `buffer`, best for [start, end)."""
    end = len(buffer) if end is None else end
    memmem, strstr = _MEMMEM, _STRSTR
    address = ctypes.cast(ctypes.c_char_p(buffer), ctypes.c_void_p).value
    if address is None or memmem is None:
        return buffer.find
    base: int = address
    if (
        strstr is not None
        and len(buffer) - end <= STRSTR_MAX_TAIL_BYTES
        and buffer.find(b"\0", start, end) < 0
    ):

        def find_terminated(literal: bytes, start: int, end: int) -> int:
            hit = strstr(base + start, literal)
            if hit is None or hit - base + len(literal) > end:
                return -1
            return hit - base

        return find_terminated

    def find(literal: bytes, start: int, end: int) -> int:
        if end - start < len(literal):
            return -1
        hit = memmem(base + start, end - start, literal, len(literal))
        return -1 if hit is None else hit - base

    return find


def _scan_keys(
    buffer: bytes, start: int, end: int, keys: Sequence[tuple[int, bytes]]
) -> list[tuple[int, int]]:
    """(line start, key bit) for every line in buffer[start:end] holding one of `keys`.

    All keys pass over one cache-sized window of whole lines before the next window: a key
    never spans lines, and the passes after the first read the window from the CPU's cache
    instead of memory. Each window is copied so strstr stops at the copy's terminating NUL.
    """
    hits: list[tuple[int, int]] = []
    window_start = start
    while window_start < end:
        window_end = end
        if window_start + WINDOW_BYTES < end:
            newline = buffer.find(b"\n", window_start + WINDOW_BYTES - 1, end)
            window_end = end if newline < 0 else newline + 1
        window = buffer[window_start:window_end]
        hits.extend((window_start + line, bit) for line, bit in _scan_window(window, keys))
        window_start = window_end
    return hits


def _scan_window(window: bytes, keys: Sequence[tuple[int, bytes]]) -> list[tuple[int, int]]:
    end = len(window)
    find = make_finder(window, 0, end)
    hits: list[tuple[int, int]] = []
    for bit, key in keys:
        position = 0
        while True:
            hit = find(key, position, end)
            if hit < 0:
                break
            hits.append((window.rfind(b"\n", 0, hit) + 1, bit))
            line_end = window.find(b"\n", hit, end)
            if line_end < 0:
                break
            position = line_end + 1
    return hits


def candidate_lines(
    buffer: bytes,
    start: int,
    end: int,
    keys: Sequence[bytes],
    executor: Executor | None = None,
    workers: int = 1,
    caseless: bool = False,
) -> dict[int, int]:
    """Map the start offset of each line in buffer[start:end] holding a key to a key bitmask.

    `caseless`: lowercase keys match in any ASCII case.
    """
    if MULTI_LITERAL:
        at_once = _multi_literal_lines(buffer, start, end, keys, caseless)
        if at_once is not None:
            return at_once
    if caseless:
        buffer = buffer.lower()  # same offsets: ASCII lowering keeps every byte in place
    numbered = list(enumerate(keys))
    if executor is None or workers <= 1 or not PARALLEL:
        groups = [numbered]
    else:
        groups = [numbered[index::workers] for index in range(workers)]
    found: dict[int, int] = {}
    if len(groups) == 1:
        results = [_scan_keys(buffer, start, end, groups[0])]
    else:
        assert executor is not None
        futures = [executor.submit(_scan_keys, buffer, start, end, group) for group in groups]
        results = [future.result() for future in futures]
    for hits in results:
        for line_start, bit in hits:
            found[line_start] = found.get(line_start, 0) | (1 << bit)
    return found


def _multi_literal_lines(
    buffer: bytes, start: int, end: int, keys: Sequence[bytes], caseless: bool
) -> dict[int, int] | None:
    """candidate_lines in one Hyperscan pass, or None when Hyperscan cannot do it here."""
    rfind = buffer.rfind
    found: dict[int, int] = {}

    def on_match(key: int, _from: int, to: int, _flags: int, _context: object) -> None:
        line = rfind(b"\n", start, start + to) + 1  # keys hold no newline
        line = line if line > 0 else start
        found[line] = found.get(line, 0) | (1 << key)

    try:
        database = _database(tuple(keys), caseless)
        database.scan(memoryview(buffer)[start:end], match_event_handler=on_match)
    except hyperscan.error:  # a database or scratch it could not build or use here
        return None
    return found


def _database(keys: tuple[bytes, ...], caseless: bool) -> Any:
    database = _DATABASES.get((keys, caseless))
    if database is None:
        database = hyperscan.Database()
        literals = [b"".join(b"\\x%02x" % byte for byte in key) for key in keys]
        flags = [hyperscan.HS_FLAG_CASELESS if caseless else 0] * len(keys)
        database.compile(
            expressions=literals, ids=list(range(len(keys))), elements=len(keys), flags=flags
        )
        _DATABASES[keys, caseless] = database
    return database


def line_ends(buffer: bytes, start: int, end: int, pattern: bytes) -> list[int] | None:
    """Offsets of the ends of the lines in buffer[start:end] that the Hyperscan regex
    `pattern` (multi-line: `$` is a line's end) matches, ascending; None without Hyperscan."""
    if not MULTI_LITERAL:
        return None
    ends: list[int] = []

    def on_match(_key: int, _from: int, to: int, _flags: int, _context: object) -> None:
        ends.append(start + to)

    try:
        database: Any = _REGEXES.get(pattern)
        if database is None:
            database = hyperscan.Database()
            database.compile(expressions=[pattern], ids=[0], elements=1,
                             flags=[hyperscan.HS_FLAG_MULTILINE])  # fmt: skip
            _REGEXES[pattern] = database
        database.scan(memoryview(buffer)[start:end], match_event_handler=on_match)
    except hyperscan.error:
        return None
    return sorted(set(ends))
