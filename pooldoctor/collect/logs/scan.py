"""Scan the spans of one log file: line counts, timestamps, flavor and classified events.

Costs per span: one newline count, one strstr (or memmem) pass per search key, and timestamp
parsing only for candidate lines, the lines they continue, the first and last lines, a sample.
`timestamped_lines` is exact for spans of up to EXACT_SAMPLE_LINES lines; above that it is
estimated from SAMPLE_WINDOWS windows of SAMPLE_WINDOW_LINES lines spread over the span.
"""

from __future__ import annotations

from collections import Counter, deque
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pooldoctor.collect.logs.catalog import (
    SEARCH_KEYS,
    Check,
    checks_for,
    classify,
    quote_line,
    rules_for_keys,
)
from pooldoctor.collect.logs.newlines import count_newlines
from pooldoctor.collect.logs.reader import Span
from pooldoctor.collect.logs.search import candidate_lines
from pooldoctor.collect.logs.timestamps import TimestampReader
from pooldoctor.evidence import LogEvent, LogEventSummary, MinuteCount

EXACT_SAMPLE_LINES = 4000  # spans this short are timestamp-counted line by line
SAMPLE_WINDOWS = 2
SAMPLE_WINDOW_LINES = 250
MAX_BACKTRACK_LINES = 500  # a traceback longer than this loses its timestamp
BISECT_MIN_BYTES = 16 * 1024  # below this, edge lines are found by reading them in order
FIRST_EXAMPLES = 3
LAST_EXAMPLES = 2
MAX_MINUTES_PER_EVENT = 20_000  # two weeks of minutes; more would bloat the evidence
FLAVOR_MAJORITY = 0.8  # below this share for the top flavor, the file is "mixed"
UNDECODABLE_WINDOW_BYTES = 256 * 1024

_KEY_RULES = rules_for_keys()
ONE_MINUTE = timedelta(minutes=1)
LAST_MINUTE = datetime.max.replace(second=0, microsecond=0, tzinfo=UTC)


@dataclass
class EventTally:
    """Running totals for one event kind."""

    count: int = 0
    first: datetime | None = None
    last: datetime | None = None
    per_minute: dict[datetime, int] = field(default_factory=dict)
    minutes_dropped: bool = False
    first_examples: list[str] = field(default_factory=list)
    # Raw lines, quoted when summarised (a merge of range scans may bring quoted ones).
    last_lines: deque[bytes | str] = field(default_factory=lambda: deque(maxlen=LAST_EXAMPLES))
    # The minute of the previous moment added, and the one after it: moments (in UTC) in
    # between start the same minute, which then needs no datetime.replace().
    _minute: datetime | None = None
    _next_minute: datetime | None = None

    def add(self, moment: datetime | None, line: bytes) -> None:
        self.count += 1
        if moment is not None:
            if self.first is None or moment < self.first:
                self.first = moment
            if self.last is None or moment > self.last:
                self.last = moment
            minute, next_minute = self._minute, self._next_minute
            if minute is None or next_minute is None or not minute <= moment < next_minute:
                minute = self._minute = moment.replace(second=0, microsecond=0)
                self._next_minute = minute + ONE_MINUTE if minute < LAST_MINUTE else minute
            per_minute = self.per_minute
            seen = per_minute.get(minute)
            if seen is not None:
                per_minute[minute] = seen + 1
            elif len(per_minute) < MAX_MINUTES_PER_EVENT:
                per_minute[minute] = 1
            else:
                self.minutes_dropped = True
        if len(self.first_examples) < FIRST_EXAMPLES:
            self.first_examples.append(quote_line(line))
        else:
            self.last_lines.append(line)

    def summary(self, event: LogEvent) -> LogEventSummary:
        minutes = tuple(MinuteCount(m, c) for m, c in sorted(self.per_minute.items()))
        examples = (
            *self.first_examples,
            *(line if isinstance(line, str) else quote_line(line) for line in self.last_lines),
        )
        return LogEventSummary(event, self.count, self.first, self.last, minutes, examples)


@dataclass
class FileScan:
    """Accumulates what one file's spans showed."""

    reader: TimestampReader
    since: datetime | None
    until: datetime | None
    lines: int = 0
    timestamped: float = 0.0
    first: datetime | None = None
    last: datetime | None = None
    first_line: bytes | None = None
    flavors: Counter[str] = field(default_factory=Counter)
    tallies: dict[LogEvent, EventTally] = field(default_factory=dict)
    undecodable: int = 0
    # Lines (among those read for timestamps) whose timestamp names an impossible moment.
    bad_stamps: int = 0
    bad_stamp_line: bytes | None = None
    skipped_lines: int = 0
    skipped_events: int = 0
    consumed: int = 0
    # The record (timestamped line plus its continuation lines) the previous span ended in.
    carry_moment: datetime | None = None
    carry_record: int = -1
    _record: int = -2
    _record_events: set[LogEvent] = field(default_factory=set)
    executor: Executor | None = None
    workers: int = 1
    _check_cache: dict[int, tuple[Check, ...]] = field(default_factory=dict)

    def scan(self, span: Span) -> None:
        """Account for one span of whole lines."""
        buffer, start, end = span.buffer, span.start, span.end
        if end <= start:
            return
        line_count = count_newlines(buffer, start, end) + (buffer[end - 1] != 0x0A)
        self.lines += line_count
        if self.first_line is None:
            first_end = buffer.find(b"\n", start, end)
            self.first_line = buffer[start : first_end if first_end >= 0 else end]
        if not buffer.isascii():
            self.undecodable += undecodable(buffer, start, end)
        self._sample(buffer, start, end, line_count)
        span_first = self._first_stamp(buffer, start, end)
        span_last = self._last_stamp(buffer, start, end)
        outside = self._skip_outside(buffer, start, end, line_count, span_first, span_last)
        if not outside:
            self._events(buffer, start, end)
        if span_last is not None:
            self.carry_moment, self.carry_record = span_last
        self.consumed += end - start

    # -- timestamps -------------------------------------------------------------------

    def _note(self, moment: datetime) -> None:
        self.first = moment if self.first is None else min(self.first, moment)
        self.last = moment if self.last is None else max(self.last, moment)

    def _sample(self, buffer: bytes, start: int, end: int, line_count: int) -> None:
        if line_count <= EXACT_SAMPLE_LINES:
            stamped = self._read_lines(buffer, start, end, line_count)
            self.timestamped += stamped
            return
        sampled = stamped = 0
        step = (end - start) // SAMPLE_WINDOWS
        for window in range(SAMPLE_WINDOWS):
            position = start + window * step
            if window:
                position = buffer.find(b"\n", position, end) + 1
                if position <= 0:
                    break
            stamped += self._read_lines(buffer, position, end, SAMPLE_WINDOW_LINES)
            sampled += SAMPLE_WINDOW_LINES
        self.timestamped += line_count * stamped / max(sampled, 1)

    def _read_lines(self, buffer: bytes, position: int, end: int, limit: int) -> int:
        stamped = 0
        for _ in range(limit):
            if position >= end:
                break
            line_end = buffer.find(b"\n", position, end)
            line_end = end if line_end < 0 else line_end
            line = buffer[position:line_end]
            stamp = self.reader.read(line)
            if stamp is not None:
                stamped += 1
                self.flavors[stamp.flavor] += 1
                self._note(stamp.moment)
            else:
                if self.reader.rejected:
                    self.bad_stamps += 1
                    if self.bad_stamp_line is None:
                        self.bad_stamp_line = line
                flavor = self.reader.flavor_without_timestamp(line)
                if flavor:
                    self.flavors[flavor] += 1
            position = line_end + 1
        return stamped

    def _first_stamp(self, buffer: bytes, start: int, end: int) -> tuple[datetime, int] | None:
        position = start
        for _ in range(MAX_BACKTRACK_LINES):
            if position >= end:
                return None
            line_end = buffer.find(b"\n", position, end)
            line_end = end if line_end < 0 else line_end
            stamp = self.reader.read(buffer[position:line_end])
            if stamp is not None:
                self._note(stamp.moment)
                return stamp.moment, self.consumed + position - start
            position = line_end + 1
        return None

    def _last_stamp(self, buffer: bytes, start: int, end: int) -> tuple[datetime, int] | None:
        line_end = end - 1 if buffer[end - 1] == 0x0A else end
        for _ in range(MAX_BACKTRACK_LINES):
            if line_end < start:
                return None
            line_start = max(buffer.rfind(b"\n", start, line_end) + 1, start)
            stamp = self.reader.read(buffer[line_start:line_end])
            if stamp is not None:
                self._note(stamp.moment)
                return stamp.moment, self.consumed + line_start - start
            line_end = line_start - 1
        return None

    def _record_of(
        self, buffer: bytes, start: int, line_start: int, memo: dict[int, tuple[datetime, int]]
    ) -> tuple[datetime | None, int]:
        """Timestamp and id of the record a continuation line belongs to."""
        position = line_start
        rfind, moment_of = buffer.rfind, self.reader.moment
        for _ in range(MAX_BACKTRACK_LINES):
            if position <= start:
                return self.carry_moment, self.carry_record
            previous = max(rfind(b"\n", start, position - 1) + 1, start)
            if previous in memo:
                return memo[previous]
            # A line starting with a blank (a frame, indented SQL) or empty has no timestamp.
            if buffer[previous] > 0x20 and previous < position - 1:
                moment = moment_of(buffer[previous : position - 1])
                if moment is not None:
                    found = (moment, self.consumed + previous - start)
                    memo[previous] = found
                    return found
            position = previous
        return None, self.consumed + line_start - start

    # -- time window ------------------------------------------------------------------

    def _outside(self, moment: datetime) -> bool:
        return (self.since is not None and moment < self.since) or (
            self.until is not None and moment >= self.until
        )

    def _skip_outside(
        self,
        buffer: bytes,
        start: int,
        end: int,
        line_count: int,
        span_first: tuple[datetime, int] | None,
        span_last: tuple[datetime, int] | None,
    ) -> bool:
        """Count lines outside --since/--until; True when the whole span is outside."""
        if self.since is None and self.until is None:
            return False
        if span_first is None or span_last is None:
            return False
        low, high = span_first[0], span_last[0]
        if (self.since is not None and high < self.since) or (
            self.until is not None and low >= self.until
        ):
            self.skipped_lines += line_count
            return True
        if self._outside(low) or self._outside(high):
            self.skipped_lines += self._count_outside(buffer, start, end)
        return False

    def _count_outside(self, buffer: bytes, start: int, end: int) -> int:
        """Lines of the span before --since or at/after --until, found by bisection.

        Exact for lines in time order; a line a little out of order near an edge may be counted
        on the wrong side (events are judged line by line, so only this count is affected).
        """
        total = buffer.count(b"\n", start, end) + (buffer[end - 1] != 0x0A)
        outside = 0
        if self.since is not None:
            outside += buffer.count(b"\n", start, self._first_at(buffer, start, end, self.since))
        if self.until is not None:
            boundary = self._first_at(buffer, start, end, self.until)
            outside += total - buffer.count(b"\n", start, boundary)
        return outside

    def _first_at(self, buffer: bytes, start: int, end: int, moment: datetime) -> int:
        """Start of the first timestamped line stamped at or after `moment` (`end` if none)."""
        low, high = start, end
        while high - low > BISECT_MIN_BYTES:
            middle = buffer.find(b"\n", (low + high) // 2, high) + 1
            if middle <= 0:
                break
            found = self._next_stamp(buffer, middle, end)
            if found is not None and found < moment:
                low = middle
            else:
                high = middle
        position = low
        while position < end:
            line_end = buffer.find(b"\n", position, end)
            line_end = end if line_end < 0 else line_end
            stamp = self.reader.read(buffer[position:line_end], flavor=False)
            if stamp is not None and stamp.moment >= moment:
                return position
            position = line_end + 1
        return end

    def _next_stamp(self, buffer: bytes, position: int, end: int) -> datetime | None:
        for _ in range(MAX_BACKTRACK_LINES):
            if position >= end:
                return None
            line_end = buffer.find(b"\n", position, end)
            line_end = end if line_end < 0 else line_end
            stamp = self.reader.read(buffer[position:line_end], flavor=False)
            if stamp is not None:
                return stamp.moment
            position = line_end + 1
        return None

    # -- events -----------------------------------------------------------------------

    def _checks(self, mask: int) -> tuple[Check, ...]:
        checks = self._check_cache.get(mask)
        if checks is None:
            indexes: set[int] = set()
            for bit, key_rules in enumerate(_KEY_RULES):
                if mask >> bit & 1:
                    indexes.update(key_rules)
            checks = self._check_cache[mask] = checks_for(sorted(indexes))
        return checks

    def _events(self, buffer: bytes, start: int, end: int) -> None:
        found = candidate_lines(buffer, start, end, SEARCH_KEYS, self.executor, self.workers)
        memo: dict[int, tuple[datetime, int]] = {}
        find, moment_of, checks_of = buffer.find, self.reader.moment, self._checks
        tallies, windowed = self.tallies, self.since is not None or self.until is not None
        for line_start in sorted(found):
            line_end = find(b"\n", line_start, end)
            line = buffer[line_start : line_end if line_end >= 0 else end]
            event = classify(line, checks_of(found[line_start]))
            if event is None:
                continue
            moment = moment_of(line)
            if moment is not None:
                record = self.consumed + line_start - start
                memo[line_start] = (moment, record)
            else:
                moment, record = self._record_of(buffer, start, line_start, memo)
            if record != self._record:
                self._record, self._record_events = record, set()
            if event in self._record_events:
                continue  # the same error repeated in its own traceback
            self._record_events.add(event)
            if windowed and moment is not None and self._outside(moment):
                self.skipped_events += 1
                continue
            tally = tallies.get(event)
            if tally is None:
                tally = tallies[event] = EventTally()
            tally.add(moment, line)

    def drop_caches(self) -> None:
        """Forget what can be recomputed (before the scan is sent to another process)."""
        self._check_cache.clear()
        self.reader.clear_cache()

    def summaries(self) -> tuple[LogEventSummary, ...]:
        """Per-event summaries, most frequent first."""
        ordered = sorted(self.tallies.items(), key=lambda item: (-item[1].count, item[0].value))
        return tuple(tally.summary(event) for event, tally in ordered)

    def flavor(self) -> str:
        """The file's flavor: the dominant one, "mixed", or "unknown"."""
        known = {name: n for name, n in self.flavors.items() if name != "unknown"}
        if not known:
            return "unknown"
        top, count = max(known.items(), key=lambda item: item[1])
        return top if count >= FLAVOR_MAJORITY * sum(self.flavors.values()) else "mixed"

    def minutes_truncated(self) -> bool:
        return any(t.minutes_dropped for t in self.tallies.values())


def undecodable(buffer: bytes, start: int, end: int) -> int:
    """How many invalid UTF-8 sequences buffer[start:end] holds (each becomes one U+FFFD).

    Only windows holding a non-ASCII byte are decoded (a log with a few accented names costs
    a few windows, not two decodes of every span). Windows end just after a newline, where no
    UTF-8 sequence can go on, so their counts add up to the count over the whole.
    """
    count = 0
    position = start
    while position < end:
        window_end = end
        if end - position > UNDECODABLE_WINDOW_BYTES:
            newline = buffer.find(b"\n", position + UNDECODABLE_WINDOW_BYTES - 1, end)
            window_end = end if newline < 0 else newline + 1
        window = buffer[position:window_end]
        if not window.isascii():
            try:
                window.decode("utf-8")
            except UnicodeDecodeError:
                count += len(window.decode("utf-8", "replace")) - len(
                    window.decode("utf-8", "ignore")
                )
        position = window_end
    return count
