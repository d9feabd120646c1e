"""Find the heads of the log records worth reading in a buffer, without reading every line.

A record is a timestamped head line and the untimestamped lines after it, up to the next
timestamped line. Literal passes (search.py) find the candidate lines; each is walked back to
the nearest timestamped line, its head. Every line is looked at a bounded number of times:
a walk back never passes a line an earlier walk looked at.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from pooldoctor.collect.logs.search import candidate_lines, line_ends
from pooldoctor.collect.logs.timestamps import TimestampReader

Heads = Iterator[int]
# Access lines are looked for from the end in blocks of this size, until enough are found.
ACCESS_BLOCK_BYTES = 1024 * 1024


class LineTimes:
    """The lines of data[start:] (split at b"\\n") and the timestamp each starts with."""

    def __init__(self, data: bytes, start: int, reader: TimestampReader) -> None:
        self.data = data
        self.start = start
        self._reader = reader
        self._moments: dict[int, datetime | None] = {}

    def end(self, line: int) -> int:
        """Offset just past the line starting at `line` (past its b"\\n", if it has one)."""
        newline = self.data.find(b"\n", line)
        return len(self.data) if newline < 0 else newline + 1

    def previous(self, line: int) -> int:
        """Start of the line before the one starting at `line` (which is not the first)."""
        newline = self.data.rfind(b"\n", self.start, line - 1)
        return self.start if newline < 0 else newline + 1

    def line_of(self, offset: int) -> int:
        """Start of the line holding byte `offset`."""
        newline = self.data.rfind(b"\n", self.start, offset)
        return self.start if newline < 0 else newline + 1

    def moment(self, line: int) -> datetime | None:
        """The timestamp the line starting at `line` starts with, or None."""
        data = self.data
        if line >= len(data) or data[line] <= 0x20:
            return None  # empty, or a frame or other continuation: as the reader would say
        if line in self._moments:
            return self._moments[line]
        moment = self._reader.moment(self.data[line : self.end(line)])
        self._moments[line] = moment
        return moment

    def text(self, line: int) -> str:
        """The line decoded (invalid UTF-8 replaced), without its line end."""
        return self.data[line : self.end(line)].decode("utf-8", "replace").rstrip("\r\n")


def event_heads(times: LineTimes, continuation_key: bytes, head_keys: Sequence[bytes]) -> Heads:
    """Heads, in file order and once each, of the records with a line starting with
    `continuation_key` or a timestamped line holding one of the lowercase `head_keys` in
    any ASCII case."""
    data, start = times.data, times.start
    marked = candidate_lines(data, start, len(data), head_keys, caseless=True) if head_keys else {}
    continued = candidate_lines(data, start, len(data), [continuation_key])
    looked_until = start  # no head lies between the last one yielded and this offset
    for line in sorted(marked.keys() | continued.keys()):
        head: int | None
        if line in continued and data.startswith(continuation_key, line):
            head = _nearest_head(times, line, looked_until)
        elif times.moment(line) is not None:
            head = line
        else:
            continue  # a marker in a continuation line: only heads' markers count
        looked_until = times.end(line)
        if head is not None:
            yield head


def _nearest_head(times: LineTimes, line: int, low: int) -> int | None:
    """The nearest timestamped line at or before `line` and not before `low`, or None."""
    while times.moment(line) is None:
        if line <= low:
            return None
        line = times.previous(line)
    return line


def access_heads(
    times: LineTimes, key: bytes, last_bytes: frozenset[int], trailing: frozenset[int]
) -> Heads:
    """Timestamped lines holding `key` whose last byte outside `trailing` is in `last_bytes`,
    latest first."""
    within_line = trailing - {0x0A}  # "$" is a line's end: the class must not pass it
    pattern = b"%s[^\\n]*%s%s*$" % (_hex(key), _byte_class(last_bytes), _byte_class(within_line))
    block_end = len(times.data)
    while block_end > times.start:
        block_start = times.line_of(max(times.start, block_end - ACCESS_BLOCK_BYTES))
        ends = line_ends(times.data, block_start, block_end, pattern)
        if ends is None:  # no Hyperscan: look at each line holding the key
            yield from _access_heads_by_key(times, key, last_bytes, trailing, block_end)
            return
        for end in reversed(ends):
            line = times.line_of(end)
            if times.moment(line) is not None:
                yield line
        block_end = block_start


def _hex(literal: bytes) -> bytes:
    return b"".join(b"\\x%02x" % byte for byte in literal)


def _byte_class(members: frozenset[int]) -> bytes:
    return b"[%s]" % _hex(bytes(sorted(members)))


def _access_heads_by_key(
    times: LineTimes,
    key: bytes,
    last_bytes: frozenset[int],
    trailing: frozenset[int],
    position: int,
) -> Heads:
    data, start = times.data, times.start
    rfind, find = data.rfind, data.find
    size = len(data)
    while True:
        hit = rfind(key, start, position)
        if hit < 0:
            return
        position = hit  # a second hit in the same line ends the same way: checked again
        last = find(b"\n", hit)
        last = (size if last < 0 else last) - 1
        while data[last] in trailing and last > hit:
            last -= 1
        if data[last] not in last_bytes:
            continue
        line = times.line_of(hit)
        position = line
        if times.moment(line) is not None:
            yield line


class RecordLines:
    """Records read forward from their heads, those with a head outside [since, until] left out."""

    def __init__(self, times: LineTimes, since: datetime | None, until: datetime | None) -> None:
        self.times = times
        self.since = since
        self.until = until

    def lines(self, head: int) -> tuple[datetime, list[int]] | None:
        """The head's moment and the starts of the record's lines (head first), or None when
        the head is not timestamped or lies outside the window."""
        times = self.times
        moment = times.moment(head)
        if moment is None:
            return None
        if (self.since is not None and moment < self.since) or (
            self.until is not None and moment > self.until
        ):
            return None
        starts = [head]
        line = times.end(head)
        size = len(times.data)
        while line < size and times.moment(line) is None:
            starts.append(line)
            line = times.end(line)
        return moment, starts
