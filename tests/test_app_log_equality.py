"""The candidate-based app-log reader equals the line-by-line one it replaced, on many shapes."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

import pytest

from pooldoctor.collect.logs import heads, records, search
from pooldoctor.collect.logs.records import (
    CANCELLATION_MARKERS,
    GC_MARKER,
    MAX_EXCEPTIONS,
    MAX_MOMENTS,
    MAX_REQUESTS,
    TRACEBACK,
    Record,
    read_app_facts,
    read_app_log,
)
from pooldoctor.collect.logs.timestamps import TimestampReader
from pooldoctor.evidence import AppLogFacts, LoggedException, LogMoment, RequestLine

REFERENCE = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
START = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


# --- the oracle: the reader as it was before, every line in order -------------------------------


@dataclass
class _Collector:
    exceptions: deque[LoggedException] = field(default_factory=lambda: deque(maxlen=MAX_EXCEPTIONS))
    requests: deque[RequestLine] = field(default_factory=lambda: deque(maxlen=MAX_REQUESTS))
    moments: deque[LogMoment] = field(default_factory=lambda: deque(maxlen=MAX_MOMENTS))
    truncated: bool = False

    def close(self, record: Record | None) -> None:
        if record is None:
            return
        lowered = record.head.lower()
        if GC_MARKER in lowered:
            self._moment(record.at, records.GC_CLEANUP, record.head)
        exception = records._exception(record)
        if exception is not None:
            self._add(self.exceptions, exception)
            if "cancellederror" in exception.type.lower():
                self._moment(record.at, records.CANCELLED, f"{exception.type} ({record.head})")
                return
        if any(marker in lowered for marker in CANCELLATION_MARKERS):
            self._moment(record.at, records.CANCELLED, record.head)
        request = records._request(record)
        if request is not None:
            self._add(self.requests, request)

    def _moment(self, at: datetime, kind: str, text: str) -> None:
        self._add(self.moments, LogMoment(at, kind, text[: records.MAX_MESSAGE_CHARS]))

    def _add(self, into: deque[LoggedException] | deque[RequestLine] | deque[LogMoment],
             item: LoggedException | RequestLine | LogMoment) -> None:  # fmt: skip
        if len(into) == into.maxlen:
            self.truncated = True
        into.append(item)  # type: ignore[arg-type]


def oracle_facts(
    lines: Iterable[bytes],
    *,
    log_tz: tzinfo,
    reference: datetime,
    since: datetime | None = None,
    until: datetime | None = None,
) -> AppLogFacts:
    reader = TimestampReader(log_tz=log_tz, reference=reference)
    collector = _Collector()
    record: Record | None = None
    for raw in lines:
        stamp = reader.read(raw, flavor=False)
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        if stamp is not None:
            collector.close(record)
            record = None
            moment = stamp.moment
            if (since is None or moment >= since) and (until is None or moment <= until):
                record = Record(moment, text)
            continue
        if record is None:
            continue
        if text.startswith(TRACEBACK):
            record.in_traceback = True
            record.frames.clear()
            continue
        if not record.in_traceback:
            continue
        frame = records.FRAME.match(text)
        if frame is not None:
            record.frames.append((frame.group(1), int(frame.group(2)), frame.group(3)))
        elif text and not text[0].isspace() and records.FINAL.match(text):
            record.final = text
            record.in_traceback = False
    collector.close(record)
    return AppLogFacts(
        exceptions=tuple(collector.exceptions),
        requests=tuple(collector.requests),
        moments=tuple(collector.moments),
        truncated=collector.truncated,
    )


def oracle_log(path: Path, tail_bytes: int, **window: datetime | None) -> AppLogFacts:
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(max(0, size - tail_bytes))
        if size > tail_bytes:
            handle.readline()
        return oracle_facts(handle, log_tz=UTC, reference=REFERENCE, **window)


# --- log shapes ----------------------------------------------------------------------------------


def _py(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") + f",{at.microsecond // 1000:03d}"


def _traceback(final: str, app: str = "/srv/app/views.py") -> list[str]:
    return [
        TRACEBACK,
        f'  File "{app}", line 41, in handler',
        "    return work()",
        '  File "/venv/lib/python3.12/site-packages/sqlalchemy/pool/impl.py", line 9, in get',
        "    raise exc.TimeoutError()",
        final,
    ]


FINALS = (
    "sqlalchemy.exc.TimeoutError: QueuePool limit of size 5 overflow 10 reached",
    "asyncio.exceptions.CancelledError",
    "psycopg.OperationalError: connection timeout expired",
    "KeyError: 'x'",
)
HEAD_TEXTS = (
    "INFO app: GET /orders 200 in 12ms",
    "WARNING app: client disconnected; cancelling GET /search",
    "WARNING app: Client Disconnected while streaming",
    "WARNING app: CLIENT DISCONNECTED",
    "ERROR app: starlette.requests.ClientDisconnect raised",
    "ERROR asyncio: Task was destroyed but it is pending!",
    "ERROR asyncio: TASK WAS DESTROYED BUT IT IS PENDING",
    "ERROR asyncio: tas\u212a was destroyed but it is pending",  # Kelvin sign lowers to k
    "INFO app: Request CANCELLED by the client",
    "INFO app: request cAnCeLlEd",
    "ERROR app: CancelledError in handler",
    "ERROR sqlalchemy.pool: The garbage collector is trying to clean up connection <C>",
    "ERROR sqlalchemy.pool: THE GARBAGE COLLECTOR IS TRYING TO CLEAN UP connection <C>",
    "INFO app: caf\u00e9 na\u00efve \u0130stanbul",
    'INFO app.access: 10.0.0.1 - - "GET /a?q=1 HTTP/1.1" 200 12 "-" "curl/8" 0.012',
    'INFO app.access: 10.0.0.1 - - "POST /b HTTP/1.1" 503 0 "-" "k6" 30ms',
    'INFO app.access: 10.0.0.1 - - "GET /c HTTP/2.0" 200 5 rt=1.5',
    'INFO app.access: 10.0.0.1 - - "BREW /pot HTTP/1.1" 418 0 "-" 3ms',
    'INFO app.access: "GET /d HTTP/1.1" 200 no duration here',
    'INFO app.access: "GET /f HTTP/1.1" 200 5 \u0661\u0662',  # Arabic-Indic digits: 12 s
    'INFO app.access: "GET /g HTTP/1.1" 200 5 7ms\u2003 \t',  # trailing Unicode space
    'INFO app.access: "GET /h HTTP/1.1" 200 5 "-" "curl/8"',  # combined format: no duration
    "ERROR app: request failed",
)
LOOSE_LINES = (
    "",
    "  continuation indented",
    "plain text without a time",
    'uvicorn: 127.0.0.1:5000 - "GET /loose HTTP/1.1" 200 in 3ms',
    "client disconnected (no time on this line)",
    "The garbage collector is trying to clean up (no time)",
    "\xff\xfe invalid utf-8 \x80",
    TRACEBACK,
    "ValueError: stray final line",
)


def _record_lines(rng: random.Random, at: datetime) -> list[str]:
    head = f"{_py(at)} {rng.choice(HEAD_TEXTS)}"
    roll = rng.random()
    if roll < 0.25:
        return [head, *_traceback(rng.choice(FINALS), rng.choice(("/srv/app/v.py", "<frozen x>")))]
    if roll < 0.30:  # chained: the second traceback replaces the first's frames
        first = _traceback("KeyError: 'x'")
        second = _traceback(rng.choice(FINALS), "/srv/app/b.py")
        gap = ["", "During handling of the above exception, another exception occurred:", ""]
        return [head, *first, *gap, *second]
    if roll < 0.35:
        return [head, *_traceback(rng.choice(FINALS))[:3]]  # cut short
    if roll < 0.40:
        return [head, rng.choice(LOOSE_LINES)]
    if roll < 0.43:  # an access log's own timestamp field
        stamp = at.strftime("%d/%b/%Y:%H:%M:%S +0000")
        return [f'10.0.0.9 - - [{stamp}] "GET /e HTTP/1.1" 200 7 "-" "curl" 0.250']
    return [head]


def _mixed_log(seed: int, records_count: int, loose_prefix: int = 3, crlf: bool = False) -> bytes:
    rng = random.Random(seed)
    lines: list[str] = [rng.choice(LOOSE_LINES) for _ in range(loose_prefix)]
    lines += _traceback("RuntimeError: before any timestamp")
    at = START
    for _ in range(records_count):
        at += timedelta(milliseconds=rng.randint(1, 4000))
        lines += _record_lines(rng, at)
    text = ("\r\n" if crlf else "\n").join(lines)
    if rng.random() < 0.5:
        text += "\n"
    return text.encode("utf-8", "surrogateescape")


WINDOWS = {
    "whole": {},
    "since": {"since": START + timedelta(minutes=20)},
    "until": {"until": START + timedelta(minutes=40)},
    "both": {"since": START + timedelta(minutes=10), "until": START + timedelta(minutes=30)},
}


@pytest.mark.parametrize("multi_literal", [True, False])
@pytest.mark.parametrize("window", sorted(WINDOWS))
@pytest.mark.parametrize(("seed", "crlf"), [(1, False), (2, True), (3, False), (4, False)])
def test_mixed_logs_read_as_line_by_line(
    seed: int, crlf: bool, window: str, multi_literal: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if multi_literal and not search.MULTI_LITERAL:
        pytest.skip("the hyperscan wheel is not installed here")
    monkeypatch.setattr(search, "MULTI_LITERAL", multi_literal)
    monkeypatch.setattr(heads, "ACCESS_BLOCK_BYTES", 2048)  # many blocks, lines across their edges
    data = _mixed_log(seed, 1500, crlf=crlf)
    bounds = WINDOWS[window]
    expected = oracle_facts(
        data.splitlines(keepends=True) if not crlf else _lf_split(data),
        log_tz=UTC, reference=REFERENCE, **bounds,
    )  # fmt: skip
    assert expected.exceptions and expected.moments and expected.requests  # shapes present
    assert any("\u212a" in moment.text for moment in expected.moments)
    assert {"/f", "/g"} <= {request.path for request in expected.requests}
    since, until = bounds.get("since"), bounds.get("until")
    assert read_app_facts(data, log_tz=UTC, reference=REFERENCE, since=since, until=until) == (
        expected
    )


def _lf_split(data: bytes) -> list[bytes]:
    """Lines as a binary file yields them: split at b"\\n" only (a b"\\r" stays in its line)."""
    lines = data.split(b"\n")
    joined = [line + b"\n" for line in lines[:-1]]
    return joined + ([lines[-1]] if lines[-1] else [])


def test_kept_counts_and_truncation_match() -> None:
    at = START
    lines: list[str] = []
    for index in range(MAX_REQUESTS + 300):
        at += timedelta(milliseconds=7)
        lines.append(f'{_py(at)} INFO access: "GET /r{index} HTTP/1.1" 200 1 {index % 90}ms')
        if index % 3 == 0:
            lines += [f"{_py(at)} ERROR app: client disconnected", *_traceback("KeyError: 'k'")]
    data = ("\n".join(lines) + "\n").encode()
    expected = oracle_facts(data.splitlines(keepends=True), log_tz=UTC, reference=REFERENCE)
    assert expected.truncated and len(expected.requests) == MAX_REQUESTS
    assert len(expected.exceptions) == MAX_EXCEPTIONS
    assert read_app_facts(data, log_tz=UTC, reference=REFERENCE) == expected


def test_exactly_the_kept_number_is_not_truncated() -> None:
    at = START
    lines = []
    for index in range(MAX_REQUESTS):
        at += timedelta(milliseconds=5)
        lines.append(f'{_py(at)} INFO access: "GET /r{index} HTTP/1.1" 200 1 0.{index:03d}')
    data = ("\n".join(lines) + "\n").encode()
    facts = read_app_facts(data, log_tz=UTC, reference=REFERENCE)
    assert len(facts.requests) == MAX_REQUESTS and not facts.truncated
    assert facts == oracle_facts(data.splitlines(keepends=True), log_tz=UTC, reference=REFERENCE)


@pytest.mark.parametrize("tail_bytes", [997, 4096, 20_000, 10**9])
def test_tail_start_cuts_records_as_before(tmp_path: Path, tail_bytes: int) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(_mixed_log(7, 400))  # the tail starts mid-record for most sizes
    for bounds in WINDOWS.values():
        facts = read_app_log(
            str(path), log_tz=UTC, reference=REFERENCE, tail_bytes=tail_bytes,
            since=bounds.get("since"), until=bounds.get("until"),
        )  # fmt: skip
        assert facts == oracle_log(path, tail_bytes, **bounds)


def test_tail_starting_inside_a_traceback_keeps_it_headless(tmp_path: Path) -> None:
    head = f"{_py(START)} ERROR app: request failed\n".encode()
    body = "\n".join(_traceback("KeyError: 'lost'")).encode() + b"\n"
    after = f"{_py(START + timedelta(seconds=1))} WARNING app: client disconnected\n".encode()
    path = tmp_path / "app.log"
    path.write_bytes(head + body + after)
    facts = read_app_log(str(path), log_tz=UTC, reference=REFERENCE, since=None, until=None,
                         tail_bytes=len(body) + len(after) + 5)  # fmt: skip
    assert facts is not None and facts.exceptions == ()  # its head is not in the tail
    assert [moment.kind for moment in facts.moments] == [records.CANCELLED]
