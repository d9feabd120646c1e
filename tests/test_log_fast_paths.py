"""The scan's fast paths give exactly what the plain ones give: numpy newline counts against
bytes.count, `TimestampReader.moment` against `read(flavor=False)`, the tally's cached minute
against datetime.replace, and the whole event pass against the line-by-line one it replaced."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pooldoctor.collect.logs import collect_logs, newlines
from pooldoctor.collect.logs import scan as scan_module
from pooldoctor.collect.logs.catalog import SEARCH_KEYS, classify
from pooldoctor.collect.logs.newlines import count_newlines
from pooldoctor.collect.logs.reader import LogStream
from pooldoctor.collect.logs.scan import MAX_BACKTRACK_LINES, EventTally, FileScan
from pooldoctor.collect.logs.search import candidate_lines
from pooldoctor.collect.logs.timestamps import TimestampReader

REFERENCE = datetime(2025, 1, 10, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2024, 3, 31, 0, 40, tzinfo=UTC)  # Berlin's clocks jump at 01:00 UTC


@pytest.fixture
def small_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    """The numpy path for buffers of a few KiB, in windows of 1 KiB."""
    monkeypatch.setattr(newlines, "VECTOR_MIN_BYTES", 2048)
    monkeypatch.setattr(newlines, "WINDOW_BYTES", 1024)


@pytest.mark.usefixtures("small_vectors")
def test_numpy_counts_equal_bytes_count() -> None:
    rng = random.Random(7)
    for size in (0, 1, 2047, 2048, 2049, 5000, 65536 + 3):
        share = rng.choice((0.0, 0.01, 0.5, 1.0))
        data = bytes(10 if rng.random() < share else rng.randrange(256) for _ in range(size))
        for start, end in ((0, size), (size // 3, size), (1, max(1, size - 1)), (0, size // 2)):
            expected = data.count(b"\n", start, end)
            assert count_newlines(data, start, end) == expected, (size, start, end)
    newlines.preload()
    assert newlines._numpy is not None  # so numpy counted above


def test_without_numpy_bytes_count_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(newlines, "_loaded", True)
    monkeypatch.setattr(newlines, "_numpy", None)
    data = b"a\nb\n" * 2_000_000
    assert count_newlines(data, 0, len(data)) == 4_000_000


# --- timestamps -----------------------------------------------------------------------------


def _stamp_lines(rng: random.Random) -> Iterator[bytes]:
    """Lines of every flavour the reader knows, with bad and DST-edge stamps among them."""
    moment = START
    for _ in range(4000):
        moment += timedelta(seconds=rng.uniform(0, 150))  # a wrong head: another minute
        local = moment.astimezone(BERLIN)
        naive = local.strftime("%Y-%m-%d %H:%M:%S")
        utc = moment.strftime("%Y-%m-%d %H:%M:%S")
        ms = f"{moment.microsecond // 1000:03d}"
        access = moment.strftime("%d/%b/%Y:%H:%M:%S +0000")
        yield rng.choice(
            (
                f"{naive},{ms} ERROR app: x",  # naive: read in --log-tz
                f"{naive[:11]}02:{naive[14:]} INFO gap or fold hour",  # 02:xx on DST days
                f"{utc}.{moment.microsecond:06d} UTC [7] LOG:  x",
                f"{utc}.5 CET [7] LOG:  x",
                f"{utc} CST [7] LOG:  ambiguous zone",
                f"{utc}.{ms}+02:00 x",
                f"{utc}-0530 x",
                f"{utc[:10]}T{utc[11:]}.{moment.microsecond}Z x",
                f"{utc} +24:00 bad offset",
                "2024-02-30 10:00:00 no such day",
                "2024-12-05 23:59:60.999999 leap second",
                "9999-12-31 23:59:59.999999-02:00 beyond datetime in UTC",
                f'10.0.0.{rng.randrange(256)} - - [{access}] "GET / HTTP/1.1" 503 0',
                f'10.0.0.{rng.randrange(256)} - - [{access}] "GET / HTTP/1.1" 200 0',
                f"[{utc} +0100] [42] [ERROR] gunicorn",
                f'{{"ts": "{utc[:10]}T{utc[11:]}Z", "msg": "x"}}',
                f"Dec  {rng.randrange(1, 29)} 09:30:01 db1 postgres[1]: syslog",
                '  File "x.py", line 1, in f',
                "Traceback (most recent call last):",
                "",
                "2024-12-05",
                "1234 not a stamp",
            )
        ).encode()


def test_moment_equals_read_without_flavor() -> None:
    fast, slow = TimestampReader(BERLIN, REFERENCE), TimestampReader(BERLIN, REFERENCE)
    seen_rejected = seen_none = seen_moment = 0
    for line in _stamp_lines(random.Random(11)):
        stamp = slow.read(line, flavor=False)
        assert fast.moment(line) == (None if stamp is None else stamp.moment), line
        assert fast.rejected == slow.rejected, line
        seen_rejected += slow.rejected
        seen_none += stamp is None
        seen_moment += stamp is not None
    assert fast.ambiguous_zones == slow.ambiguous_zones == {"CST"}
    assert seen_rejected and seen_none and seen_moment


# --- tallies --------------------------------------------------------------------------------


def test_cached_minutes_equal_replaced_ones() -> None:
    rng = random.Random(3)
    tally = EventTally()
    expected: dict[datetime, int] = {}
    moment = datetime(2024, 12, 5, 9, 0, 59, tzinfo=UTC)
    jumps = (0.0, 0.000001, 0.5, 1.0, 59.999999, 60.0, 61.0, -0.5, -60.0, -3600.0)
    moments = []
    for _ in range(5000):
        moment += timedelta(seconds=rng.choice(jumps))
        moments.append(moment)
    edge = datetime(9999, 12, 31, 23, 59, 30, tzinfo=UTC)  # no minute after it
    moments += [edge, edge + timedelta(seconds=29), edge - timedelta(seconds=31), edge]
    for moment in moments:
        tally.add(moment, b"x")
        minute = moment.replace(second=0, microsecond=0)
        expected[minute] = expected.get(minute, 0) + 1
    assert tally.per_minute == expected
    assert (tally.first, tally.last) == (min(moments), max(moments))


# --- the event pass -------------------------------------------------------------------------


class LineByLineScan(FileScan):
    """The event pass as it was: Stamp objects, every line read, datetime.replace per event."""

    def _record_of(
        self, buffer: bytes, start: int, line_start: int, memo: dict[int, tuple[datetime, int]]
    ) -> tuple[datetime | None, int]:
        position = line_start
        for _ in range(MAX_BACKTRACK_LINES):
            if position <= start:
                return self.carry_moment, self.carry_record
            previous = max(buffer.rfind(b"\n", start, position - 1) + 1, start)
            if previous in memo:
                return memo[previous]
            stamp = self.reader.read(buffer[previous : position - 1], flavor=False)
            if stamp is not None:
                found = (stamp.moment, self.consumed + previous - start)
                memo[previous] = found
                return found
            position = previous
        return None, self.consumed + line_start - start

    def _events(self, buffer: bytes, start: int, end: int) -> None:
        found = candidate_lines(buffer, start, end, SEARCH_KEYS)
        memo: dict[int, tuple[datetime, int]] = {}
        for line_start in sorted(found):
            line_end = buffer.find(b"\n", line_start, end)
            line = buffer[line_start : line_end if line_end >= 0 else end]
            event = classify(line, self._checks(found[line_start]))
            if event is None:
                continue
            stamp = self.reader.read(line, flavor=False)
            moment: datetime | None
            if stamp is not None:
                moment, record = stamp.moment, self.consumed + line_start - start
                memo[line_start] = (moment, record)
            else:
                moment, record = self._record_of(buffer, start, line_start, memo)
            if record != self._record:
                self._record, self._record_events = record, set()
            if event in self._record_events:
                continue
            self._record_events.add(event)
            if moment is not None and self._outside(moment):
                self.skipped_events += 1
                continue
            tally = self.tallies.setdefault(event, EventTally())
            tally._minute = tally._next_minute = None  # every minute by datetime.replace
            tally.add(moment, line)


EVENTS = (
    "FATAL:  sorry, too many clients already",
    "ERROR:  deadlock detected",
    "psycopg_pool.PoolTimeout: couldn't get a connection after 30.00 sec",
    "server closed the connection unexpectedly",
    "ERROR:  canceling statement due to statement timeout",
    "LOG:  process 42 still waiting for ShareLock on transaction 7 after 1000.1 ms",
    "ERROR:  57014: canceling statement due to user request",
    'oops sqlstate=40P01 "timeout"',
)


def _varied_log(path: Path, rng: random.Random) -> Path:
    """Every stamp flavour, events in heads and in tracebacks, blank and CRLF lines, stamps
    out of order, in Berlin's DST change."""
    lines: list[bytes] = []
    for stamp_line in _stamp_lines(rng):
        event = rng.choice(EVENTS).encode()
        roll = rng.random()
        if roll < 0.3:
            lines.append(stamp_line + b" " + event)
        elif roll < 0.45:
            lines += [stamp_line, b"Traceback (most recent call last):",
                      b'  File "/app/v.py", line 7, in h', b"", event, event]  # fmt: skip
        elif roll < 0.5:
            lines.append(stamp_line + b" " + event + b"\r")
        else:
            lines.append(stamp_line)
    for _ in range(len(lines) // 20):  # a few lines out of order
        here = rng.randrange(len(lines) - 3)
        lines[here], lines[here + 2] = lines[here + 2], lines[here]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _facts(scan: FileScan) -> tuple[object, ...]:
    return (scan.lines, scan.timestamped, scan.first, scan.last, scan.first_line,
            dict(scan.flavors), scan.summaries(), scan.undecodable, scan.bad_stamps,
            scan.skipped_lines, scan.skipped_events,
            sorted(scan.reader.ambiguous_zones))  # fmt: skip


def _scan(path: Path, kind: type[FileScan], window: tuple[datetime, datetime] | None) -> FileScan:
    since, until = window or (None, None)
    scan = kind(TimestampReader(BERLIN, REFERENCE), since, until)
    with path.open("rb") as handle:
        for span in LogStream(handle, chunk_bytes=16 * 1024).spans():
            scan.scan(span)
    return scan


@pytest.mark.usefixtures("small_vectors")
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    "window", [None, (START + timedelta(hours=2), START + timedelta(hours=30))]
)
def test_event_pass_equals_the_line_by_line_one(
    tmp_path: Path, seed: int, window: tuple[datetime, datetime] | None
) -> None:
    path = _varied_log(tmp_path / "varied.log", random.Random(seed))
    fast = _scan(path, FileScan, window)
    assert _facts(fast) == _facts(_scan(path, LineByLineScan, window))
    assert sum(tally.count for tally in fast.tallies.values()) > (500 if window is None else 100)
    assert window is None or fast.skipped_events > 0
    assert fast.bad_stamps > 0 and "CST" in fast.reader.ambiguous_zones


def test_the_vectorised_count_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _varied_log(tmp_path / "varied.log", random.Random(4))
    monkeypatch.setattr(newlines, "VECTOR_MIN_BYTES", 2048)
    vectorised = _facts(_scan(path, FileScan, None))
    monkeypatch.setattr(newlines, "VECTORISED", False)
    assert vectorised == _facts(_scan(path, FileScan, None))


def test_windowed_undecodable_count_equals_the_whole_decode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scan_module, "UNDECODABLE_WINDOW_BYTES", 64)
    rng = random.Random(5)
    pieces = (b"plain ascii ", b"\n", b"\r\n", "café ".encode(), "😀".encode(), b"\xff",
              b"\xe2\x82", b"\xe2\x82\n", b"\xf0\x9f\x98", b"\xc3", b"\x80\x80",
              b"\xed\xa0\x80")  # fmt: skip
    for _ in range(300):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 120)))
        start = rng.randrange(len(data))
        whole = data[start:]
        expected = len(whole.decode("utf-8", "replace")) - len(whole.decode("utf-8", "ignore"))
        assert scan_module.undecodable(data, start, len(data)) == expected, data


# --- a machine without the optional wheels ---------------------------------------------------

_WITHOUT_WHEELS = """
import importlib.abc, sys
from datetime import UTC


class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("hyperscan", "numpy"):
            raise ImportError(f"no module named {name!r}")
        return None


sys.meta_path.insert(0, Absent())
from pooldoctor.collect.logs import collect_logs, newlines, search

logs = collect_logs([sys.argv[1]], log_tz=UTC, since=None, until=None)
assert search.hyperscan is None and newlines._loaded and newlines._numpy is None
print(repr(logs))
"""


def test_without_hyperscan_and_numpy_a_log_scans_the_same(tmp_path: Path) -> None:
    """Where neither wheel imports (another platform, a trimmed install), the import fails
    quietly and strstr passes and bytes.count give the evidence the fast paths give."""
    block = (Path(__file__).parent / "data" / "logs" / "app.log").read_bytes()
    log = tmp_path / "app.log"
    log.write_bytes(block * (newlines.VECTOR_MIN_BYTES // len(block) + 2))
    here = collect_logs([str(log)], log_tz=UTC, since=None, until=None)
    assert here[0].app is not None and here[0].app.exceptions and here[0].events
    assert newlines._numpy is not None  # so this process counted with numpy
    child = subprocess.run(
        [sys.executable, "-c", _WITHOUT_WHEELS, str(log)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == repr(here)
