"""Read a log stream (plain or gzip, by magic bytes) as large spans of whole lines."""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

GZIP_MAGIC = b"\x1f\x8b"
CHUNK_BYTES = 16 * 1024 * 1024  # large spans amortise the per-span passes; memory stays bounded
GZIP_READ_BYTES = 1024 * 1024  # small gzip reads keep what was decoded before a truncation
MAX_LINE_BYTES = 1024 * 1024  # longer lines are not log lines anyone wrote on purpose
LONG_LINE_KEEP_BYTES = 64 * 1024  # what is kept of such a line for classification
MAX_LOG_BYTES = 64 * 1024**3  # about four minutes of scanning; a bigger log wants --since
LOG_SCAN_SECONDS = 600.0  # a stream that keeps coming (a pipe that never ends) stops here
BINARY_SNIFF_BYTES = 64 * 1024
# Text logs hold (almost) no NUL bytes; random or zeroed data holds at least 1 in 256.
BINARY_MIN_SNIFF_BYTES = 4096
BINARY_NUL_RATIO = 512


BINARY_REASON = "binary data (NUL bytes), not a text log"


def looks_binary(head: bytes) -> bool:
    """True for data whose first BINARY_SNIFF_BYTES hold NUL bytes as random or zeroed data
    does (text logs hold almost none)."""
    sample = head[:BINARY_SNIFF_BYTES]
    return len(sample) >= BINARY_MIN_SNIFF_BYTES and sample.count(0) * BINARY_NUL_RATIO >= len(
        sample
    )


class Readable(Protocol):
    """What a log stream is read from: a binary file, stdin, or a byte range of a file."""

    def read(self, size: int = -1, /) -> bytes | None: ...


@dataclass(frozen=True)
class Span:
    """Whole lines buffer[start:end]; the last may lack its newline at the end of the stream."""

    buffer: bytes
    start: int
    end: int


class _Prepended:
    """A read-only stream that first returns `head`, then reads from `rest`."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0 or size >= len(self._head):
                head, self._head = self._head, b""
                more = self._rest.read(-1 if size < 0 else size - len(head))
                return head + (more or b"")
            head, self._head = self._head[:size], self._head[size:]
            return head
        return self._rest.read(size) or b""


class AlignedRange:
    """Reads bytes [start, end) of a file (end None: to its end), each read ending at `align`s.

    A range scanned with `LogStream(AlignedRange(...), align, plain=True)` then sees the same
    blocks, and so yields the same spans, as a scan of the whole file would there.
    """

    def __init__(self, handle: BinaryIO, start: int, end: int | None, align: int) -> None:
        handle.seek(start)
        self._handle = handle
        self._position = start
        self._end = end
        self._align = align

    def read(self, size: int = -1) -> bytes:
        boundary = (self._position // self._align + 1) * self._align
        limit = (boundary if self._end is None else min(boundary, self._end)) - self._position
        data = self._handle.read(limit if size < 0 else min(size, limit)) or b""
        self._position += len(data)
        return data


class LogStream:
    """Iterates spans of a stream; records why it stopped early and how many lines were cut."""

    def __init__(
        self,
        raw: Readable,
        chunk_bytes: int = CHUNK_BYTES,
        *,
        plain: bool = False,
        max_bytes: int = MAX_LOG_BYTES,
        seconds: float = LOG_SCAN_SECONDS,
        deadline: float | None = None,
    ) -> None:
        """With `plain`, `raw` is read as is (a byte range of a plain file: no gzip sniffing).

        A whole stream (not `plain`) that looks binary, exceeds `max_bytes` or takes longer
        than `seconds` stops early with a stop_reason; what was read is kept. A byte range
        (`plain`) stops at `deadline` (time.monotonic()), shared by all ranges of one file.
        """
        head = b"" if plain else raw.read(2) or b""
        self.gzipped = head == GZIP_MAGIC
        self.empty = not plain and head == b""
        self._stream: Readable = raw if plain else _Prepended(head, raw)
        self._chunk_bytes = chunk_bytes
        self._sniff = not plain
        self._max_bytes = max_bytes
        self._seconds = seconds
        self._deadline = time.monotonic() + seconds if deadline is None else deadline
        self.long_lines = 0
        self.stop_reason: str | None = None
        self.consumed = 0

    def _blocks(self) -> Iterator[bytes]:
        if not self.gzipped:
            try:
                while block := self._stream.read(self._chunk_bytes):
                    yield block
                    del block  # freed before the next read, which then reuses its pages
            except OSError as exc:
                self.stop_reason = f"read failed ({exc.strerror or exc})"
            return
        pieces: list[bytes] = []
        size = 0
        unzipped = gzip.GzipFile(fileobj=self._stream, mode="rb")  # type: ignore[call-overload]
        while True:
            try:
                piece = unzipped.read1(GZIP_READ_BYTES)
            except EOFError:
                self.stop_reason = "gzip stream truncated"
                break
            except (gzip.BadGzipFile, zlib.error) as exc:
                self.stop_reason = f"gzip stream corrupt ({exc})"
                break
            except OSError as exc:
                self.stop_reason = f"read failed ({exc.strerror or exc})"
                break
            if not piece:
                break
            pieces.append(piece)
            size += len(piece)
            if size >= self._chunk_bytes:
                yield b"".join(pieces)
                pieces, size = [], 0
        if pieces:
            yield b"".join(pieces)

    def _bounded_blocks(self) -> Iterator[bytes]:
        """The blocks, stopping at binary data, the byte cap or the time cap."""
        for block in self._blocks():
            if self._sniff:
                self._sniff = False
                if looks_binary(block):
                    self.stop_reason = BINARY_REASON
                    return
            if self.consumed + len(block) > self._max_bytes:
                self.stop_reason = f"byte limit ({self._max_bytes // 1024**3} GiB) reached"
                return
            yield block
            del block
            if time.monotonic() > self._deadline:
                self.stop_reason = f"time limit ({self._seconds:g}s) reached"
                return

    def spans(self) -> Iterator[Span]:
        """Spans of whole lines, in order; overlong lines are cut to LONG_LINE_KEEP_BYTES.

        The caller should drop each span before asking for the next: a block still referenced
        during the next read makes that read fault in fresh pages instead of reusing these.
        """
        carry = b""
        skipping = False
        for block in self._bounded_blocks():
            try:
                self.consumed += len(block)
                start = 0
                if skipping:
                    newline = block.find(b"\n")
                    if newline < 0:
                        continue
                    start, skipping = newline, False
                last_newline = block.rfind(b"\n", start)
                if last_newline < 0:
                    carry += block[start:]
                    if len(carry) > MAX_LINE_BYTES:
                        carry, skipping = carry[:LONG_LINE_KEEP_BYTES], True
                        self.long_lines += 1
                    continue
                first_newline = block.find(b"\n", start)
                if carry:
                    yield self._limited(carry + block[start : first_newline + 1])
                    carry = b""
                    start = first_newline + 1
                if start <= last_newline:
                    yield self._limited_span(block, start, last_newline + 1)
                carry = block[last_newline + 1 :]
                if len(carry) > MAX_LINE_BYTES:
                    carry, skipping = carry[:LONG_LINE_KEEP_BYTES], True
                    self.long_lines += 1
            finally:
                del block
        if carry:
            yield self._limited(carry)

    def _limited(self, data: bytes) -> Span:
        return self._limited_span(data, 0, len(data))

    def _limited_span(self, buffer: bytes, start: int, end: int) -> Span:
        kept, cut = cut_long_lines(buffer, start, end)
        self.long_lines += cut
        if kept is None:
            return Span(buffer, start, end)
        return Span(kept, 0, len(kept))


def cut_long_lines(buffer: bytes, start: int, end: int) -> tuple[bytes | None, int]:
    """buffer[start:end] with lines over MAX_LINE_BYTES cut, or None if there were none.

    Steps from line to line a megabyte at a time (the last newline within the next
    MAX_LINE_BYTES), so a span without long lines costs a few rfind calls.
    """
    position = start
    pieces: list[bytes] = []
    copied_to = start
    cut = 0
    while end - position > MAX_LINE_BYTES:
        newline = buffer.rfind(b"\n", position, position + MAX_LINE_BYTES + 1)
        if newline >= 0:
            position = newline + 1
            continue
        line_end = buffer.find(b"\n", position + MAX_LINE_BYTES, end)
        line_end = end if line_end < 0 else line_end
        pieces.append(buffer[copied_to : position + LONG_LINE_KEEP_BYTES])
        copied_to = line_end
        cut += 1
        position = line_end + 1 if line_end < end else end
    if not cut:
        return None, 0
    pieces.append(buffer[copied_to:end])
    return b"".join(pieces), cut
