"""Log signals: occurrences of event kinds over all log files, and how recent they are."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pooldoctor.durations import format_duration
from pooldoctor.evidence import Evidence, LogEvent
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


def log_signal(
    evidence: Evidence,
    *events: LogEvent,
    window: float = RECENT_SECONDS,
    matching: Sequence[str] = (),
) -> LogSignal:
    """Aggregate events over all log files; `matching` keeps summaries whose examples match."""
    now = log_now(evidence)
    count = recent = 0
    first: datetime | None = None
    last: datetime | None = None
    examples: list[str] = []
    files: list[str] = []
    for log in evidence.logs:
        for summary in log.events:
            if summary.event not in events:
                continue
            if matching and not any(
                needle.lower() in example.lower()
                for example in summary.examples
                for needle in matching
            ):
                continue
            count += summary.count
            if summary.per_minute:
                recent += sum(
                    bucket.count
                    for bucket in summary.per_minute
                    if (now - bucket.minute).total_seconds() < window + 60 and bucket.minute <= now
                )
            elif summary.last is not None and 0 <= (now - summary.last).total_seconds() <= window:
                recent += summary.count
            if summary.first is not None and (first is None or summary.first < first):
                first = summary.first
            if summary.last is not None and (last is None or summary.last > last):
                last = summary.last
            examples.extend(e for e in summary.examples if e not in examples)
            if log.path not in files:
                files.append(log.path)
    weight = recency_weight(last, now) if count else 0.0
    if recent:
        weight = 1.0
    return LogSignal(
        tuple(events), count, recent, first, last, tuple(examples[:3]), tuple(files), weight, window
    )


def examples_mention(signal: LogSignal, *needles: str) -> bool:
    """True when an example line of the signal contains one of the needles (case-insensitive)."""
    return any(n.lower() in e.lower() for e in signal.examples for n in needles)
