"""App-log records at millisecond precision: logged exceptions, request times, cancellations."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from pooldoctor.collect.inputs import open_regular
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

_FRAME = re.compile(r'^\s+File "([^"]+)", line (\d+), in (\S+)')
_FINAL = re.compile(r"^([A-Za-z_][\w.]*)(?::\s?(.*))?$")
_ACCESS = re.compile(
    r'"(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (\S+) HTTP/[\d.]+" (\d{3}) .*?'
    r"(?:\s(?:rt|request_time|duration)=)?(\d+(?:\.\d+)?)(ms)?\s*$"
)
_TRACEBACK = "Traceback (most recent call last):"


def is_app_frame(path: str) -> bool:
    """True for a file of the app's own code (not a library, not the standard library)."""
    normalised = path.replace("\\", "/")
    return not any(marker in normalised for marker in LIBRARY_PATH_MARKERS)


@dataclass
class _Record:
    """One log record: its timestamped head line and the continuation lines after it."""

    at: datetime
    head: str
    frames: list[tuple[str, int, str]] = field(default_factory=list)
    final: str | None = None
    in_traceback: bool = False


@dataclass
class _Collector:
    exceptions: deque[LoggedException] = field(default_factory=lambda: deque(maxlen=MAX_EXCEPTIONS))
    requests: deque[RequestLine] = field(default_factory=lambda: deque(maxlen=MAX_REQUESTS))
    moments: deque[LogMoment] = field(default_factory=lambda: deque(maxlen=MAX_MOMENTS))
    truncated: bool = False

    def close(self, record: _Record | None) -> None:
        if record is None:
            return
        lowered = record.head.lower()
        if GC_MARKER in lowered:
            self._moment(record.at, GC_CLEANUP, record.head)
        exception = _exception(record)
        if exception is not None:
            self._add(self.exceptions, exception)
            if "cancellederror" in exception.type.lower():
                self._moment(record.at, CANCELLED, f"{exception.type} ({record.head})")
                return
        if any(marker in lowered for marker in CANCELLATION_MARKERS):
            self._moment(record.at, CANCELLED, record.head)
        request = _request(record)
        if request is not None:
            self._add(self.requests, request)

    def _moment(self, at: datetime, kind: str, text: str) -> None:
        self._add(self.moments, LogMoment(at, kind, text[:MAX_MESSAGE_CHARS]))

    def _add(self, into: deque[LoggedException] | deque[RequestLine] | deque[LogMoment],
             item: LoggedException | RequestLine | LogMoment) -> None:  # fmt: skip
        if len(into) == into.maxlen:
            self.truncated = True
        into.append(item)  # type: ignore[arg-type]

    def facts(self) -> AppLogFacts:
        return AppLogFacts(
            exceptions=tuple(self.exceptions),
            requests=tuple(self.requests),
            moments=tuple(self.moments),
            truncated=self.truncated,
        )


def _exception(record: _Record) -> LoggedException | None:
    if record.final is None:
        return None
    match = _FINAL.match(record.final)
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


def _request(record: _Record) -> RequestLine | None:
    match = _ACCESS.search(record.head)
    if match is None:
        return None
    seconds = float(match.group(3))
    if match.group(4):
        seconds /= 1000.0
    return RequestLine(record.at, int(match.group(2)), seconds, match.group(1)[:MAX_MESSAGE_CHARS])


def read_app_facts(
    lines: Iterable[bytes],
    *,
    log_tz: tzinfo,
    reference: datetime,
    since: datetime | None = None,
    until: datetime | None = None,
) -> AppLogFacts:
    """Records of one log's lines: a traceback belongs to the timestamped line before it."""
    reader = TimestampReader(log_tz=log_tz, reference=reference)
    collector = _Collector()
    record: _Record | None = None
    for raw in lines:
        stamp = reader.read(raw, flavor=False)
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        if stamp is not None:
            collector.close(record)
            record = None
            moment = stamp.moment
            if (since is None or moment >= since) and (until is None or moment <= until):
                record = _Record(moment, text)
            continue
        if record is None:
            continue
        if text.startswith(_TRACEBACK):
            record.in_traceback = True
            record.frames.clear()
            continue
        if not record.in_traceback:
            continue
        frame = _FRAME.match(text)
        if frame is not None:
            record.frames.append((frame.group(1), int(frame.group(2)), frame.group(3)))
        elif text and not text[0].isspace() and _FINAL.match(text):
            record.final = text
            record.in_traceback = False
    collector.close(record)
    return collector.facts()


def read_app_log(
    path: str,
    *,
    log_tz: tzinfo,
    reference: datetime,
    since: datetime | None,
    until: datetime | None,
) -> AppLogFacts | None:
    """The app-log records of a plain file (its last MAX_TAIL_BYTES); None when unreadable."""
    try:
        with open_regular(path) as handle:
            head = handle.read(2)
            if head == b"\x1f\x8b":
                return None  # gzip: rotated history, not the incident in progress
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - MAX_TAIL_BYTES))
            if size > MAX_TAIL_BYTES:
                handle.readline()  # skip the partial first line
            return read_app_facts(
                handle, log_tz=log_tz, reference=reference, since=since, until=until
            )
    except (OSError, ValueError):
        return None
