"""--since/--until over big plain logs: binary search by byte offset, same events as a full scan."""

from __future__ import annotations

import gzip
import random
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pooldoctor.collect.logs import collect_logs
from pooldoctor.collect.logs.seek import SEEK_MARGIN, find_window
from pooldoctor.collect.logs.timestamps import TimestampReader
from pooldoctor.collect.once import log_file_status
from pooldoctor.evidence import LogFileEvidence

START = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
HOURS = 6
POOL_TIMEOUT = (
    "sqlalchemy.exc.TimeoutError: QueuePool limit of size 5 overflow 10 reached, connection "
    "timed out, timeout 30.00 (Background on this error at: https://sqlalche.me/e/20/3o7r)"
)
TOO_MANY = "FATAL:  sorry, too many clients already"


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") + f",{moment.microsecond // 1000:03d}"


@dataclass
class LogBuilder:
    """A chronological app log, one routine line every `step`, with planted records."""

    step: timedelta = timedelta(milliseconds=500)
    lines: list[str] = field(default_factory=list)
    planted: dict[datetime, list[str]] = field(default_factory=dict)

    def traceback(self, at: datetime, error: str = POOL_TIMEOUT, depth: int = 40) -> None:
        """A multi-line record: one stamped header, then `depth` unstamped traceback lines."""
        body = ["Traceback (most recent call last):"]
        for frame in range(depth):
            body += [f'  File "/app/shop/views.py", line {frame + 10}, in handler', "    pass"]
        self.planted.setdefault(at, []).append(
            "\n".join([f"{stamp(at)} ERROR shop.views: request failed", *body, error])
        )

    def out_of_order(self, written_at: datetime, stamped_at: datetime) -> None:
        """A line written among `written_at`'s lines but stamped `stamped_at`."""
        self.planted.setdefault(written_at, []).append(
            f"{stamp(stamped_at)} [4242] app@shop {TOO_MANY}"
        )

    def write(self, path: Path) -> None:
        rng = random.Random(7)
        moment = START
        end = START + timedelta(hours=HOURS)
        pending = sorted(self.planted.items())
        with path.open("w", encoding="utf-8") as out:
            while moment < end:
                while pending and pending[0][0] <= moment:
                    for text in pending.pop(0)[1]:
                        out.write(text + "\n")
                ms = rng.randint(2, 900)
                out.write(f"{stamp(moment)} INFO shop.views: GET /api/orders 200 in {ms}ms\n")
                moment += self.step


def _events(log: LogFileEvidence) -> list[tuple[object, ...]]:
    return [
        (e.event, e.count, e.first, e.last, e.per_minute, e.examples)
        for e in sorted(log.events, key=lambda e: e.event.value)
    ]


def _both(
    path: Path, since: datetime | None, until: datetime | None
) -> tuple[LogFileEvidence, ...]:
    """The plain file (seeks) and its gzip copy (streams the whole file)."""
    zipped = path.with_suffix(".log.gz")
    with path.open("rb") as source, gzip.open(zipped, "wb", compresslevel=1) as target:
        shutil.copyfileobj(source, target)
    seeked, streamed = collect_logs([str(path), str(zipped)], log_tz=UTC, since=since, until=until)
    return seeked, streamed


def _window_note(log: LogFileEvidence) -> str:
    [note] = [p for p in log.problems if p.startswith("seeked to the --since/--until window")]
    return note


def test_window_starting_mid_traceback_matches_a_full_scan(tmp_path: Path) -> None:
    since = START + timedelta(hours=3)
    until = since + timedelta(hours=1)
    log = LogBuilder()
    log.traceback(since - timedelta(seconds=1))  # begins before the window, runs into it
    log.traceback(since)  # begins exactly at --since: in
    log.traceback(since + timedelta(milliseconds=500))
    log.traceback(until - timedelta(seconds=1), depth=80)  # begins inside, ends after --until
    log.traceback(until)  # begins exactly at --until: out
    log.traceback(since - SEEK_MARGIN - timedelta(minutes=1))  # well before: out
    path = tmp_path / "app.log"
    log.write(path)
    seeked, streamed = _both(path, since, until)
    assert _events(seeked) == _events(streamed)
    [timeouts] = seeked.events
    assert timeouts.count == 3
    assert timeouts.first == since and timeouts.last == until - timedelta(seconds=1)
    assert (seeked.first, seeked.last) == (streamed.first, streamed.last)
    note = _window_note(seeked)
    assert "scanned" in note
    scanned_share = seeked.lines / streamed.lines
    assert scanned_share < 0.35  # one hour (plus margins) of six


def test_lines_a_little_out_of_order_at_both_edges_are_not_lost(tmp_path: Path) -> None:
    since = START + timedelta(hours=2, minutes=17, seconds=3)
    until = since + timedelta(minutes=45)
    log = LogBuilder()
    # Written before the window, stamped inside it (a late flush): in.
    log.out_of_order(since - timedelta(seconds=40), since + timedelta(seconds=5))
    # Written inside, stamped before it: out, in both scans.
    log.out_of_order(since + timedelta(seconds=30), since - timedelta(seconds=20))
    # Written after the window, stamped inside it: in.
    log.out_of_order(until + timedelta(seconds=50), until - timedelta(seconds=10))
    # Written inside, stamped after it: out.
    log.out_of_order(until - timedelta(seconds=30), until + timedelta(seconds=1))
    log.out_of_order(since + timedelta(minutes=10), since + timedelta(minutes=10))
    path = tmp_path / "app.log"
    log.write(path)
    seeked, streamed = _both(path, since, until)
    assert _events(seeked) == _events(streamed)
    [too_many] = seeked.events
    assert too_many.count == 3
    _window_note(seeked)


@pytest.mark.parametrize(
    ("since_hours", "until_hours"),
    [(None, 1.5), (4.25, None), (-1.0, 0.5), (5.9, 9.0), (7.0, 8.0), (-3.0, -2.0)],
)
def test_open_ended_and_out_of_file_windows(
    tmp_path: Path, since_hours: float | None, until_hours: float | None
) -> None:
    log = LogBuilder(step=timedelta(seconds=1))
    for minute in range(0, HOURS * 60, 7):
        log.traceback(START + timedelta(minutes=minute, seconds=13), depth=5)
    path = tmp_path / "app.log"
    log.write(path)
    since = None if since_hours is None else START + timedelta(hours=since_hours)
    until = None if until_hours is None else START + timedelta(hours=until_hours)
    seeked, streamed = _both(path, since, until)
    assert _events(seeked) == _events(streamed)
    at = START
    assert log_file_status(seeked, at, at).status is log_file_status(streamed, at, at).status


def test_a_file_out_of_order_by_hours_is_scanned_whole(tmp_path: Path) -> None:
    first, second = LogBuilder(step=timedelta(seconds=2)), LogBuilder(step=timedelta(seconds=2))
    first.traceback(START + timedelta(hours=1))
    second.traceback(START + timedelta(hours=4, minutes=30))
    one, two = tmp_path / "one.log", tmp_path / "two.log"
    first.write(one)
    second.write(two)
    path = tmp_path / "app.log"
    # Rotated files concatenated in the wrong order: the later day first.
    path.write_bytes(two.read_bytes() + one.read_bytes())
    since, until = START + timedelta(hours=4), START + timedelta(hours=5)
    seeked, streamed = _both(path, since, until)
    assert _events(seeked) == _events(streamed)
    assert not [p for p in seeked.problems if p.startswith("seeked")]


def test_find_window_brackets_the_margin(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    LogBuilder(step=timedelta(seconds=1)).write(path)
    since, until = START + timedelta(hours=2), START + timedelta(hours=3)
    reader = TimestampReader(log_tz=UTC, reference=START + timedelta(days=1))
    with path.open("rb") as handle:
        window = find_window(handle, path.stat().st_size, reader, since, until)
        assert window is not None and window.end is not None
        handle.seek(window.start)
        first = reader.read(handle.readline())
        handle.seek(window.end)
        after = reader.read(handle.readline())
    assert first is not None and after is not None
    assert first.moment == since - SEEK_MARGIN
    assert after.moment == until + SEEK_MARGIN
    assert window.probes < 40
    assert (window.head, window.tail) == (START, START + timedelta(hours=HOURS, seconds=-1))


def test_app_log_records_come_from_the_window_not_the_file_tail(tmp_path: Path) -> None:
    """An incident hours before the end of a big log keeps its exceptions under --since/--until."""
    incident = START + timedelta(minutes=30)
    builder = LogBuilder()
    builder.traceback(incident, depth=3)
    path = tmp_path / "app.log"
    builder.write(path)
    with path.open("a") as out:  # 40 MiB of later routine lines: more than the 32 MiB tail read
        later = START + timedelta(hours=HOURS, seconds=1)
        routine = f"{stamp(later)} INFO shop.views: GET /api/items 200 {'x' * 60}\n"
        out.write(routine * (40 * 1024 * 1024 // len(routine)))
    since, until = incident - timedelta(minutes=10), incident + timedelta(minutes=10)
    (windowed,) = collect_logs([str(path)], log_tz=UTC, since=since, until=until)
    assert windowed.app is not None
    assert [e.at for e in windowed.app.exceptions] == [incident]
    assert windowed.app.exceptions[0].type == "sqlalchemy.exc.TimeoutError"
    (whole,) = collect_logs([str(path)], log_tz=UTC, since=None, until=None)
    assert whole.app is None or not whole.app.exceptions  # the file's tail holds no incident
