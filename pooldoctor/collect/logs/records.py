"""App-log records at millisecond precision: logged exceptions, request times, cancellations.

Only records that can yield something are parsed: the lines holding a traceback marker, an
access request or a cancellation or GC marker are found by fast literal passes over the log's
tail (see heads.py), each is walked back to its record's timestamped head, and just those
records are read. The result equals that of reading every line of the tail in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from pooldoctor.collect.inputs import open_regular
from pooldoctor.collect.logs.heads import (
    Heads,
    LineTimes,
    RecordLines,
    access_heads,
    event_heads,
)
from pooldoctor.collect.logs.timestamps import TimestampReader
from pooldoctor.evidence import (
    MOMENT_CANCELLATION,
    MOMENT_GC_CLEANUP,
    AppLogFacts,
    LoggedException,
    LogMoment,
    RequestLine,
)

# The latest records of each kind are kept: enough to line up with an incident's stuck work.
MAX_EXCEPTIONS = 500
MAX_REQUESTS = 2000
MAX_MOMENTS = 1000
MAX_MESSAGE_CHARS = 300
MAX_FRAMES = 12
# Only the tail of a large log is read for these records (the per-minute event counts read all).
MAX_TAIL_BYTES = 32 * 1024 * 1024

CANCELLED = MOMENT_CANCELLATION
GC_CLEANUP = MOMENT_GC_CLEANUP
GC_MARKER = "garbage collector is trying to clean up"
# Log text that says a request's task was cancelled or its client went away.
CANCELLATION_MARKERS = (
    "cancellederror",
    "client disconnected",
    "clientdisconnect",
    "task was destroyed but it is pending",
    "request cancelled",
)
# Frames in these places are libraries or the interpreter, not the app's own code.
LIBRARY_PATH_MARKERS = ("/site-packages/", "/dist-packages/", "/lib/python3", "<frozen", "<string>")

FRAME = re.compile(r'^\s+File "([^"]+)", line (\d+), in (\S+)')
FINAL = re.compile(r"^([A-Za-z_][\w.]*)(?::\s?(.*))?$")
ACCESS = re.compile(
    r'"(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (\S+) HTTP/[\d.]+" (\d{3}) .*?'
    r"(?:\s(?:rt|request_time|duration)=)?(\d+(?:\.\d+)?)(ms)?\s*$"
)
ACCESS_KEY = b" HTTP/"  # every line ACCESS matches holds it
# ACCESS ends with a number or "ms", then str.isspace() characters: in UTF-8 these ASCII bytes
# or non-ASCII ones, whose last byte is 0x80 or above (as is any non-ASCII digit's).
ACCESS_TRAILING = frozenset(b" \t\r\x0b\x0c\x1c\x1d\x1e\x1f")
ACCESS_LAST_BYTES = frozenset(b"0123456789s") | frozenset(range(0x80, 0x100))
TRACEBACK = "Traceback (most recent call last):"


def is_app_frame(path: str) -> bool:
    """True for a file of the app's own code (not a library, not the standard library)."""
    normalised = path.replace("\\", "/")
    return not any(marker in normalised for marker in LIBRARY_PATH_MARKERS)


@dataclass
class Record:
    """One log record: its timestamped head line and the continuation lines after it."""

    at: datetime
    head: str
    frames: list[tuple[str, int, str]] = field(default_factory=list)
    final: str | None = None
    in_traceback: bool = False

    def add(self, text: str) -> None:
        """Read one continuation line (decoded, without its line end)."""
        if text.startswith(TRACEBACK):
            self.in_traceback = True
            self.frames.clear()
            return
        if not self.in_traceback:
            return
        frame = FRAME.match(text)
        if frame is not None:
            self.frames.append((frame.group(1), int(frame.group(2)), frame.group(3)))
        elif text and not text[0].isspace() and FINAL.match(text):
            self.final = text
            self.in_traceback = False


@dataclass(frozen=True)
class Yield:
    """What one record contributes: an exception, timed moments, a request time."""

    exception: LoggedException | None = None
    moments: tuple[LogMoment, ...] = ()
    request: RequestLine | None = None


def record_yield(record: Record) -> Yield:
    """The exception, moments and request one record shows."""
    moments: list[LogMoment] = []
    lowered = record.head.lower()
    if GC_MARKER in lowered:
        moments.append(_moment(record.at, GC_CLEANUP, record.head))
    exception = _exception(record)
    if exception is not None and "cancellederror" in exception.type.lower():
        moments.append(_moment(record.at, CANCELLED, f"{exception.type} ({record.head})"))
        return Yield(exception, tuple(moments))
    if any(marker in lowered for marker in CANCELLATION_MARKERS):
        moments.append(_moment(record.at, CANCELLED, record.head))
    return Yield(exception, tuple(moments), _request(record))


def _moment(at: datetime, kind: str, text: str) -> LogMoment:
    return LogMoment(at, kind, text[:MAX_MESSAGE_CHARS])


def _exception(record: Record) -> LoggedException | None:
    if record.final is None:
        return None
    match = FINAL.match(record.final)
    if match is None:
        return None
    app = [f"{path}:{line} in {func}" for path, line, func in record.frames if is_app_frame(path)]
    return LoggedException(
        at=record.at,
        type=match.group(1),
        message=(match.group(2) or "").strip()[:MAX_MESSAGE_CHARS],
        app_frame=app[-1] if app else None,
        app_frames=tuple(app[-MAX_FRAMES:]),
        logged_as=record.head[:MAX_MESSAGE_CHARS],
    )


def _request(record: Record) -> RequestLine | None:
    match = ACCESS.search(record.head)
    if match is None:
        return None
    seconds = float(match.group(3))
    if match.group(4):
        seconds /= 1000.0
    return RequestLine(record.at, int(match.group(2)), seconds, match.group(1)[:MAX_MESSAGE_CHARS])


def head_keys() -> tuple[bytes, ...]:
    """Lowercase literals, one of which a head's lowered text holds when it names a moment.

    A marker's longest piece without a "k" stands for it: str.lower() turns the Kelvin sign
    into "k", which lowering the bytes does not.
    """
    keys = []
    for marker in (GC_MARKER, *CANCELLATION_MARKERS):
        keys.append(max(marker.split("k"), key=len).encode("ascii"))
    return tuple(keys)


def read_app_facts(
    data: bytes,
    *,
    log_tz: tzinfo,
    reference: datetime,
    since: datetime | None = None,
    until: datetime | None = None,
    start: int = 0,
) -> AppLogFacts:
    """The records of the lines of data[start:]: a traceback belongs to the timestamped line
    before it; the latest MAX_* of each kind are kept."""
    times = LineTimes(data, start, TimestampReader(log_tz=log_tz, reference=reference))
    lines = RecordLines(times, since, until)
    exceptions: list[LoggedException] = []
    moments: list[LogMoment] = []
    for head in event_heads(times, TRACEBACK.encode("ascii"), head_keys()):
        record = _read_record(lines, head)
        if record is None:
            continue
        found = record_yield(record)
        if found.exception is not None:
            exceptions.append(found.exception)
        moments.extend(found.moments)
    requests = _latest_requests(
        lines, access_heads(times, ACCESS_KEY, ACCESS_LAST_BYTES, ACCESS_TRAILING)
    )
    return AppLogFacts(
        exceptions=tuple(exceptions[-MAX_EXCEPTIONS:]),
        requests=tuple(requests[-MAX_REQUESTS:]),
        moments=tuple(moments[-MAX_MOMENTS:]),
        truncated=(
            len(exceptions) > MAX_EXCEPTIONS
            or len(requests) > MAX_REQUESTS
            or len(moments) > MAX_MOMENTS
        ),
    )


def _read_record(lines: RecordLines, head: int) -> Record | None:
    found = lines.lines(head)
    if found is None:
        return None
    moment, starts = found
    record = Record(moment, lines.times.text(head))
    for line in starts[1:]:
        record.add(lines.times.text(line))
    return record


def _latest_requests(lines: RecordLines, heads: Heads) -> list[RequestLine]:
    """The last MAX_REQUESTS + 1 requests (at most) in file order: one more than kept tells
    that more existed. Heads come latest first, so earlier access lines are never parsed."""
    latest: list[RequestLine] = []
    for head in heads:
        record = _read_record(lines, head)
        request = None if record is None else record_yield(record).request
        if request is not None:
            latest.append(request)
            if len(latest) > MAX_REQUESTS:
                break
    latest.reverse()
    return latest


def read_app_log(
    path: str,
    *,
    log_tz: tzinfo,
    reference: datetime,
    since: datetime | None,
    until: datetime | None,
    tail_bytes: int = MAX_TAIL_BYTES,
    end: int | None = None,
) -> AppLogFacts | None:
    """The app-log records of a plain file: the last `tail_bytes` before byte `end` (None: the
    file's end; a --since/--until window's end, so an older incident keeps its code paths).
    None when unreadable."""
    try:
        with open_regular(path) as handle:
            if handle.read(2) == b"\x1f\x8b":
                return None  # gzip: rotated history, not the incident in progress
            size = handle.seek(0, 2)
            stop = size if end is None else min(end, size)
            offset = max(0, stop - tail_bytes)
            handle.seek(offset)
            data = handle.read(stop - offset)
    except (OSError, ValueError):
        return None
    start = 0
    if offset > 0:  # skip the partial first line
        newline = data.find(b"\n")
        start = len(data) if newline < 0 else newline + 1
    try:
        return read_app_facts(
            data, log_tz=log_tz, reference=reference, since=since, until=until, start=start
        )
    except ValueError:  # a frame's line number too long for int(): not a log to read
        return None
