"""Log readings: every event kind's occurrences over all log files, and how recent they are."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from pooldoctor.durations import format_duration
from pooldoctor.evidence import Evidence, LogEvent, LogEventSummary, MinuteCount
from pooldoctor.jsonio import format_utc
from pooldoctor.readings.thresholds import HISTORY_SECONDS, HISTORY_WEIGHT, RECENT_SECONDS

POOL_TIMEOUT_EVENTS = (
    LogEvent.POOL_TIMEOUT,
    LogEvent.PSYCOPG_POOL_TIMEOUT,
    LogEvent.PSYCOPG_POOL_QUEUE_FULL,
)


def log_now(evidence: Evidence) -> datetime:
    """The reference time for log recency: the end of the requested window, else collection."""
    if evidence.until is not None and evidence.until < evidence.collected_at:
        return evidence.until
    return evidence.collected_at


def recency_weight(last: datetime | None, now: datetime) -> float:
    """1.0 for events in the last RECENT_SECONDS, fading linearly to HISTORY_WEIGHT."""
    if last is None:
        return 0.0
    age = (now - last).total_seconds()
    if age <= RECENT_SECONDS:
        return 1.0
    if age >= HISTORY_SECONDS:
        return HISTORY_WEIGHT
    fraction = (age - RECENT_SECONDS) / (HISTORY_SECONDS - RECENT_SECONDS)
    return 1.0 - (1.0 - HISTORY_WEIGHT) * fraction


@dataclass(frozen=True)
class LogSignal:
    """Occurrences of some log events over all files, with how recent they are."""

    events: tuple[LogEvent, ...]
    count: int
    recent: int
    first: datetime | None
    last: datetime | None
    examples: tuple[str, ...]
    files: tuple[str, ...]
    weight: float
    window_seconds: float

    @property
    def seen(self) -> bool:
        return self.count > 0

    @property
    def current(self) -> bool:
        """True when some occurrences fall in the recent window."""
        return self.recent > 0

    def describe(self, what: str) -> str:
        """One phrase: '212 QueuePool timeouts (3o7r) in the last 15 min' or when it last was."""
        window = format_duration(self.window_seconds)
        if self.current:
            return f"{self.recent} {what} in the last {window} ({self.count} in the logs)"
        assert self.last is not None
        return (
            f"{self.count} {what}, the last at {format_utc(self.last)} (none in the last {window})"
        )

    def as_evidence(self) -> dict[str, Any]:
        return {
            "events": [event.value for event in self.events],
            "count": self.count,
            "recent_count": self.recent,
            "recent_window_seconds": self.window_seconds,
            "first": format_utc(self.first) if self.first else None,
            "last": format_utc(self.last) if self.last else None,
            "examples": list(self.examples),
            "files": list(self.files),
        }


@dataclass(frozen=True)
class LogOccurrence:
    """One event kind in one log file, with how many fell in the recent window."""

    event: LogEvent
    path: str
    count: int
    recent: int
    first: datetime | None
    last: datetime | None
    examples: tuple[str, ...]
    per_minute: tuple[MinuteCount, ...] = ()  # counts per UTC minute, when timestamped

    def mentions(self, needles: Sequence[str]) -> bool:
        """True when an example line contains one of the needles (case-insensitive)."""
        return any(n.lower() in e.lower() for e in self.examples for n in needles)


def recent_count(summary: LogEventSummary, now: datetime) -> int:
    """Occurrences in the RECENT_SECONDS before `now`: per-minute buckets, else by the last one."""
    if summary.per_minute:
        return sum(
            bucket.count
            for bucket in summary.per_minute
            if (now - bucket.minute).total_seconds() < RECENT_SECONDS + 60 and bucket.minute <= now
        )
    if summary.last is not None and 0 <= (now - summary.last).total_seconds() <= RECENT_SECONDS:
        return summary.count
    return 0


def combine(
    events: tuple[LogEvent, ...], occurrences: Iterable[LogOccurrence], now: datetime
) -> LogSignal:
    """One signal over the occurrences, in file order; recency weight from the last one."""
    count = recent = 0
    first: datetime | None = None
    last: datetime | None = None
    examples: list[str] = []
    files: list[str] = []
    for occurrence in occurrences:
        count += occurrence.count
        recent += occurrence.recent
        if occurrence.first is not None and (first is None or occurrence.first < first):
            first = occurrence.first
        if occurrence.last is not None and (last is None or occurrence.last > last):
            last = occurrence.last
        examples.extend(e for e in occurrence.examples if e not in examples)
        if occurrence.path not in files:
            files.append(occurrence.path)
    weight = 1.0 if recent else recency_weight(last, now) if count else 0.0
    return LogSignal(
        events,
        count,
        recent,
        first,
        last,
        tuple(examples[:3]),
        tuple(files),
        weight,
        RECENT_SECONDS,
    )


@dataclass(frozen=True)
class LogReadings:
    """Every logged event kind, read once: occurrences per file and one signal per kind."""

    now: datetime
    occurrences: tuple[LogOccurrence, ...]  # file order, then the order the scan found them
    by_event: Mapping[LogEvent, LogSignal]  # one signal per event kind seen, with its recency

    def signal(self, *events: LogEvent, matching: Sequence[str] = ()) -> LogSignal:
        """Occurrences of `events` over all files; `matching` keeps those whose examples match."""
        if len(events) == 1 and not matching:
            return self.by_event.get(events[0]) or combine(events, (), self.now)
        chosen = (
            o
            for o in self.occurrences
            if o.event in events and (not matching or o.mentions(matching))
        )
        return combine(tuple(events), chosen, self.now)


def read_logs(evidence: Evidence) -> LogReadings:
    """Read every log file's event summaries once, against the log window's end."""
    now = log_now(evidence)
    occurrences = tuple(
        LogOccurrence(
            summary.event,
            log.path,
            summary.count,
            recent_count(summary, now),
            summary.first,
            summary.last,
            tuple(summary.examples),
            tuple(summary.per_minute),
        )
        for log in evidence.logs
        for summary in log.events
    )
    kinds = dict.fromkeys(o.event for o in occurrences)
    by_event = {
        kind: combine((kind,), (o for o in occurrences if o.event is kind), now) for kind in kinds
    }
    return LogReadings(now, occurrences, MappingProxyType(by_event))
