"""Find the lines of a large chunk that hold any of a few literals, one fast pass per literal.

The C library's memmem is used when present (glibc and BSD libc search about twice as fast as
bytes.find, and release the GIL, so passes for different keys run on several cores); otherwise
bytes.find. Both only read inside the chunk's own buffer.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Executor

Finder = Callable[[bytes, int, int], int]


def _load_memmem() -> Callable[..., int | None] | None:
    if sys.platform == "win32":
        return None
    try:
        function = ctypes.CDLL(None).memmem
    except (OSError, AttributeError):
        try:
            name = ctypes.util.find_library("c")
            if name is None:
                return None
            function = ctypes.CDLL(name).memmem
        except (OSError, AttributeError):
            return None
    function.restype = ctypes.c_void_p
    function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
    return function


_MEMMEM = _load_memmem()
PARALLEL = _MEMMEM is not None


def make_finder(buffer: bytes) -> Finder:
    """A `find(literal, start, end) -> index or -1` over `buffer`."""
    memmem = _MEMMEM
    if memmem is None:
        return buffer.find
    address = ctypes.cast(ctypes.c_char_p(buffer), ctypes.c_void_p).value
    if address is None:
        return buffer.find

    def find(literal: bytes, start: int, end: int) -> int:
        if end - start < len(literal):
            return -1
        hit = memmem(address + start, end - start, literal, len(literal))
        return -1 if hit is None else int(hit) - address

    return find


def _scan_keys(
    buffer: bytes, start: int, end: int, keys: Sequence[tuple[int, bytes]]
) -> list[tuple[int, int]]:
    """(line start, key bit) for every line in buffer[start:end] holding one of `keys`."""
    find = make_finder(buffer)
    hits: list[tuple[int, int]] = []
    for bit, key in keys:
        position = start
        while True:
            hit = find(key, position, end)
            if hit < 0:
                break
            hits.append((max(buffer.rfind(b"\n", start, hit) + 1, start), bit))
            line_end = buffer.find(b"\n", hit, end)
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
) -> dict[int, int]:
    """Map the start offset of each line in buffer[start:end] holding a key to a key bitmask."""
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
