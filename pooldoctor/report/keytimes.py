"""Headline moments of an incident (first error, peak, oldest stuck work, detection), its window."""

from __future__ import annotations

from datetime import datetime

from pooldoctor.durations import format_duration
from pooldoctor.evidence import LogEvent
from pooldoctor.readings import Readings
from pooldoctor.readings.app import client_backends
from pooldoctor.readings.visibility import GRANT_ROLE, hidden
from pooldoctor.report.model import KeyTime, Window
from pooldoctor.report.textfmt import as_utc, hhmm
from pooldoctor.report.timeline import (
    NON_ERROR_EVENTS,
    log_event_label,
    log_source_name,
)


def first_error(readings: Readings) -> KeyTime:
    """The earliest error in any log; else the first saturated pool sample; else our own refusal."""
    evidence = readings.evidence
    candidates: list[tuple[datetime, bool, str]] = []
    for summary in readings.logs.occurrences:
        if summary.event in NON_ERROR_EVENTS or summary.count <= 0:
            continue
        label = log_event_label(summary.event)
        where = log_source_name(summary.path)
        if summary.first is not None:
            basis = f"first of {summary.count} {label} in {where}"
            candidates.append((as_utc(summary.first), False, basis))
        elif summary.per_minute:
            minute = min(as_utc(m.minute) for m in summary.per_minute)
            basis = f"minute of the first {label} in {where} (no exact timestamp)"
            candidates.append((minute, True, basis))
    if not candidates:
        for fill in readings.pool.fills:
            for sample in fill.samples:
                if sample.full:
                    where = fill.label
                    basis = f"no error in the logs; first pool sample found saturated ({where})"
                    candidates.append((as_utc(sample.at), True, basis))
    if not candidates and evidence.postgres and evidence.postgres.connect_failure:
        failure = evidence.postgres.connect_failure
        moment = next(
            (s.finished_at for s in evidence.sources if s.kind == "postgres" and s.finished_at),
            evidence.started_at,
        )
        basis = f"pooldoctor's own connection failed ({failure.category}): {failure.message}"
        candidates.append((as_utc(moment), True, basis))
    if not candidates:
        return KeyTime("first_error", "First error", None, False, "no error seen in any source")
    at, inferred, basis = min(candidates, key=lambda c: c[0])
    return KeyTime("first_error", "First error", at, inferred, basis)


def peak_errors(readings: Readings) -> KeyTime:
    """The busiest error minute summed over every log file and error kind."""
    per_minute: dict[datetime, int] = {}
    by_event: dict[tuple[datetime, LogEvent], int] = {}
    counted: set[str] = set()
    for summary in readings.logs.occurrences:
        if summary.event in NON_ERROR_EVENTS:
            continue
        for item in summary.per_minute:
            minute = as_utc(item.minute).replace(second=0, microsecond=0)
            per_minute[minute] = per_minute.get(minute, 0) + item.count
            key = (minute, summary.event)
            by_event[key] = by_event.get(key, 0) + item.count
            counted.add(summary.path)
    files = len(counted)
    if not per_minute:
        basis = "no per-minute error counts (no logs, or no errors in them)"
        return KeyTime("peak_errors", "Peak error minute", None, False, basis)
    minute, count = max(per_minute.items(), key=lambda item: (item[1], -item[0].timestamp()))
    top_event = max(
        (event for (m, event) in by_event if m == minute), key=lambda e: by_event[(minute, e)]
    )
    basis = (
        f"busiest minute ({hhmm(minute)}) across {files} log file(s), mostly "
        f"{log_event_label(top_event)}"
    )
    return KeyTime("peak_errors", "Peak error minute", minute, False, basis, count=count)


def _hidden_caveat(readings: Readings) -> str:
    """Why the oldest stuck work may be older than shown: sessions whose times were hidden."""
    sample = readings.activity
    count = len(hidden(client_backends(sample))) if sample is not None else 0
    if not count:
        return ""
    return (
        f"; not complete: {count} session(s) were hidden from pooldoctor's role (no "
        f"{GRANT_ROLE}) and may be older"
    )


def oldest_stuck(readings: Readings) -> KeyTime:
    """When the oldest work still in progress at collection time began."""
    works = readings.stuck.all
    label = "Oldest stuck transaction or checkout"
    caveat = _hidden_caveat(readings)
    if not works:
        basis = "no stuck transaction, long query, lock wait or long-held checkout seen" + caveat
        return KeyTime("oldest_stuck", label, None, False, basis, complete=not caveat)
    oldest = min(works, key=lambda work: work.started)
    age = format_duration(oldest.age_seconds)
    if oldest.what == "checkout":
        basis = (
            f"checkout by {oldest.who} held {age} when {oldest.source} was sampled "
            "(sample time minus reported age)"
        )
    elif oldest.what == "transaction":
        basis = f"xact_start of {oldest.who} in pg_stat_activity (open {age})"
    elif oldest.what == "lock wait":
        basis = f"query_start of {oldest.who}, waiting for a lock (the wait began at or after it)"
    else:
        basis = f"query_start of {oldest.who} in pg_stat_activity (running {age})"
    return KeyTime(
        "oldest_stuck",
        label,
        oldest.started,
        oldest.inferred,
        basis + caveat,
        complete=not caveat,
    )


def detection(generated_at: datetime) -> KeyTime:
    """When this report was generated."""
    basis = "when pooldoctor generated this report"
    return KeyTime("detection", "Detection (report generated)", as_utc(generated_at), False, basis)


def build_key_times(readings: Readings, generated_at: datetime) -> tuple[KeyTime, ...]:
    """All headline moments, in reading order."""
    return (
        first_error(readings),
        peak_errors(readings),
        oldest_stuck(readings),
        detection(generated_at),
    )


def evidence_moments(readings: Readings) -> list[datetime]:
    """Every timestamp observed in the evidence itself (not pooldoctor's own bookkeeping)."""
    evidence = readings.evidence
    moments: list[datetime | None] = []
    for log in evidence.logs:
        moments.extend((log.first, log.last))
    for instance in evidence.pools:
        moments.extend(sample.at for sample in instance.samples)
    if evidence.postgres is not None:
        moments.extend(sample.at for sample in evidence.postgres.samples)
    return [as_utc(m) for m in moments if m is not None]


def build_window(readings: Readings) -> Window:
    """The requested window and the span of the evidence (collection times if nothing else)."""
    evidence = readings.evidence
    moments = evidence_moments(readings) or [
        as_utc(evidence.started_at),
        as_utc(evidence.collected_at),
    ]
    return Window(
        since=evidence.since and as_utc(evidence.since),
        until=evidence.until and as_utc(evidence.until),
        first_evidence=min(moments),
        last_evidence=max(moments),
    )
