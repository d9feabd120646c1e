"""The incident timeline: evidence merged into one short, sorted UTC list of what happened when."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePath

from pooldoctor.durations import format_duration
from pooldoctor.evidence import LogEvent, MinuteCount, PoolSample, SourceState
from pooldoctor.findings import Status
from pooldoctor.readings import Readings
from pooldoctor.readings.logs import LogOccurrence
from pooldoctor.readings.pools import InstanceFill
from pooldoctor.readings.stuck import StuckWork
from pooldoctor.readings.text import instance_label
from pooldoctor.redact import redact
from pooldoctor.report.model import EntryKind, TimelineEntry
from pooldoctor.report.textfmt import as_utc, clock, hhmm

# A postmortem timeline longer than this stops being read; the rest is counted, not listed.
MAX_TIMELINE_ENTRIES = 60
# Errors a couple of quiet minutes apart are one episode, not several bursts.
BURST_MAX_QUIET_MINUTES = 2
# Individual stuck sessions / held checkouts listed; the rest are summarised in one entry.
MAX_STUCK_LISTED = 5
# Sample values shown in a pool trend before it is abbreviated to first, peak, last.
MAX_TREND_VALUES = 6
# Past this many pool instances, the ones that never saturated and read cleanly share one row.
FLEET_INSTANCE_ROWS = 5

LOG_EVENT_LABELS: dict[LogEvent, str] = {
    LogEvent.POOL_TIMEOUT: "QueuePool timeouts",
    LogEvent.PSYCOPG_POOL_TIMEOUT: "psycopg_pool checkout timeouts",
    LogEvent.PSYCOPG_POOL_QUEUE_FULL: "psycopg_pool queue-full rejections",
    LogEvent.GC_CLEANUP: "connections left to the garbage collector (leak warning)",
    LogEvent.TOO_MANY_CLIENTS: "'too many clients' refusals",
    LogEvent.RESERVED_SLOTS: "reserved-slot refusals",
    LogEvent.ROLE_LIMIT: "role/database connection-limit refusals",
    LogEvent.STATEMENT_TIMEOUT: "statement timeouts",
    LogEvent.LOCK_TIMEOUT: "lock timeouts",
    LogEvent.DEADLOCK: "deadlocks",
    LogEvent.LOCK_WAIT: "logged lock waits",
    LogEvent.IDLE_IN_TRANSACTION_TIMEOUT: "idle-in-transaction timeouts",
    LogEvent.IDLE_SESSION_TIMEOUT: "idle-session timeouts",
    LogEvent.ADMIN_SHUTDOWN: "connections terminated by administrator",
    LogEvent.SERVER_CLOSED: "connections closed unexpectedly",
    LogEvent.CLIENT_EOF_IN_TRANSACTION: "client disconnects inside a transaction",
    LogEvent.CONNECT_TIMEOUT: "connect timeouts",
    LogEvent.CANNOT_CONNECT_NOW: "'database system is starting up' refusals",
    LogEvent.READ_ONLY: "read-only transaction errors",
    LogEvent.PREPARED_STATEMENT: "prepared-statement errors",
    LogEvent.PGBOUNCER: "PgBouncer errors",
    LogEvent.SSL_ERROR: "SSL errors",
    LogEvent.INVALID_TRANSACTION: "invalid-transaction errors",
    LogEvent.HTTP_5XX: "HTTP 5xx responses",
    LogEvent.SERVER_START: "PostgreSQL ready to accept connections",
    LogEvent.SERVER_SHUTDOWN: "PostgreSQL shutting down",
}
# Events that mark a moment (listed one by one) rather than a rate (summarised as bursts).
POINT_EVENTS = frozenset({LogEvent.SERVER_START, LogEvent.SERVER_SHUTDOWN})
# Events that are not errors: they do not start or peak an incident.
NON_ERROR_EVENTS = POINT_EVENTS | {LogEvent.LOCK_WAIT}

_KIND_ORDER = {kind: index for index, kind in enumerate(EntryKind)}


def log_event_label(event: LogEvent) -> str:
    """Human, plural name of a classified log event."""
    return LOG_EVENT_LABELS.get(event, event.value.replace("_", " "))


def log_source_name(path: str) -> str:
    """The log file's name (paths are long; the environment section lists them in full)."""
    return "stdin" if path == "-" else PurePath(path).name or path


@dataclass(frozen=True)
class Burst:
    """Consecutive minutes (allowing short quiet gaps) of one event kind in one file."""

    minutes: tuple[MinuteCount, ...]

    @property
    def first(self) -> datetime:
        return as_utc(self.minutes[0].minute)

    @property
    def last(self) -> datetime:
        return as_utc(self.minutes[-1].minute)

    @property
    def total(self) -> int:
        return sum(m.count for m in self.minutes)

    @property
    def span_minutes(self) -> int:
        return int((self.last - self.first).total_seconds() // 60) + 1

    @property
    def peak(self) -> MinuteCount:
        return max(self.minutes, key=lambda m: (m.count, -as_utc(m.minute).timestamp()))


def _merged_minutes(per_minute: Iterable[MinuteCount]) -> list[MinuteCount]:
    totals: dict[datetime, int] = {}
    for item in per_minute:
        if item.count > 0:
            minute = as_utc(item.minute).replace(second=0, microsecond=0)
            totals[minute] = totals.get(minute, 0) + item.count
    return [MinuteCount(minute, count) for minute, count in sorted(totals.items())]


def find_bursts(per_minute: Iterable[MinuteCount]) -> list[Burst]:
    """Group per-minute counts into bursts separated by more than the allowed quiet gap."""
    max_step = timedelta(minutes=BURST_MAX_QUIET_MINUTES + 1)
    groups: list[list[MinuteCount]] = []
    for item in _merged_minutes(per_minute):
        if groups and item.minute - groups[-1][-1].minute <= max_step:
            groups[-1].append(item)
        else:
            groups.append([item])
    return [Burst(tuple(group)) for group in groups]


def _within_minute(moment: datetime, minute: datetime) -> bool:
    return minute <= as_utc(moment) < minute + timedelta(minutes=1)


def _exact_or(exact: datetime | None, minute: datetime) -> datetime:
    """The exact log timestamp when it falls in `minute`, else the minute itself."""
    if exact is not None and _within_minute(exact, minute):
        return as_utc(exact)
    return minute


def _burst_entry(source: str, summary: LogOccurrence, burst: Burst) -> TimelineEntry:
    label = log_event_label(summary.event)
    at = _exact_or(summary.first, burst.first)
    until = _exact_or(summary.last, burst.last)
    if burst.span_minutes == 1:
        text = f"{label}: {burst.total} in 1 min"
    else:
        peak = burst.peak
        text = (
            f"{hhmm(burst.first)}–{hhmm(burst.last)} {label}: {burst.total} in "
            f"{burst.span_minutes} min, peak {peak.count}/min at {hhmm(peak.minute)}"
        )
    return TimelineEntry(at, source, text, EntryKind.LOG, until=until)


def _point_entries(source: str, summary: LogOccurrence) -> list[TimelineEntry]:
    label = log_event_label(summary.event)
    entries = []
    for item in _merged_minutes(summary.per_minute):
        at = _exact_or(summary.first, item.minute)
        if at == item.minute:
            at = _exact_or(summary.last, item.minute)
        text = label if item.count == 1 else f"{label} (×{item.count})"
        entries.append(TimelineEntry(at, source, text, EntryKind.SERVER, priority=0))
    return entries


def log_entries(readings: Readings) -> list[TimelineEntry]:
    """Log events: rates summarised as bursts, server start/shutdown listed individually."""
    entries: list[TimelineEntry] = []
    for summary in readings.logs.occurrences:
        source = log_source_name(summary.path)
        if summary.count <= 0:
            continue
        if summary.event in POINT_EVENTS and summary.per_minute:
            entries.extend(_point_entries(source, summary))
        elif summary.per_minute:
            entries.extend(
                _burst_entry(source, summary, b) for b in find_bursts(summary.per_minute)
            )
        elif summary.first is not None:
            span = ""
            if summary.last is not None and summary.last != summary.first:
                span = f" between {hhmm(summary.first)} and {hhmm(summary.last)}"
            text = f"{log_event_label(summary.event)}: {summary.count}{span}"
            entries.append(
                TimelineEntry(
                    as_utc(summary.first),
                    source,
                    text,
                    EntryKind.LOG,
                    until=summary.last and as_utc(summary.last),
                )
            )
    return entries


def describe_usage(sample: PoolSample) -> str:
    """'30/30 checked out, 4 waiting' from whatever the payload said."""
    capacity = sample.capacity
    used = "?" if sample.in_use is None else str(sample.in_use)
    text = f"{used}/{capacity} checked out" if capacity is not None else f"{used} checked out"
    if sample.queued:
        text += f", {sample.queued} waiting"
    return text


def _trend_text(samples: Sequence[PoolSample]) -> str | None:
    values = [s.in_use for s in samples if s.in_use is not None]
    if not values:
        return None
    capacity = samples[-1].capacity
    of = f" of {capacity}" if capacity is not None else ""
    if len(values) == 1:
        return f"pool sample: {describe_usage(samples[-1])}"
    if len(values) <= MAX_TREND_VALUES:
        shown = " → ".join(str(v) for v in values)
    else:
        shown = f"{values[0]} → … (peak {max(values)}) … → {values[-1]}"
    direction = (
        "rising" if values[-1] > values[0] else "falling" if values[-1] < values[0] else "flat"
    )
    return f"checked_out across {len(values)} samples: {shown}{of} ({direction})"


def _instance_entries(fill: InstanceFill) -> list[TimelineEntry]:
    source = fill.label
    samples = fill.samples
    instance = fill.instance
    entries: list[TimelineEntry] = []
    trend = _trend_text(samples)
    if trend is not None:
        until = as_utc(samples[-1].at) if len(samples) > 1 else None
        entries.append(
            TimelineEntry(as_utc(samples[0].at), source, trend, EntryKind.POOL, until=until)
        )
    previous: bool | None = None
    for sample in samples:
        saturated = sample.full
        if saturated and not previous:
            where = " at first sample" if previous is None else ""
            text = f"pool saturated{where}: {describe_usage(sample)}"
            entries.append(TimelineEntry(as_utc(sample.at), source, text, EntryKind.POOL))
        elif previous and not saturated:
            text = f"pool recovered: {describe_usage(sample)}"
            entries.append(TimelineEntry(as_utc(sample.at), source, text, EntryKind.POOL))
        previous = saturated
    if instance.errors and samples:  # with no sample at all, the source failure says it
        errors = sorted(instance.errors, key=lambda e: as_utc(e.at))
        total = len(errors) + len(samples)
        text = f"{len(errors)} of {total} pool-status reads failed; last: {errors[-1].error}"
        entries.append(TimelineEntry(as_utc(errors[0].at), source, text, EntryKind.POOL))
    return entries


def _fleet_entry(quiet: Sequence[InstanceFill]) -> TimelineEntry:
    samples = [s for fill in quiet for s in fill.samples]
    used = [s.checked_out for s in samples if s.checked_out is not None]
    spread = ""
    if used:
        low, high = min(used), max(used)
        spread = f": checked_out {low}" if low == high else f": checked_out {low}–{high}"
    capacities = {s.capacity for s in samples if s.capacity is not None}
    if len(capacities) == 1:
        spread += f" of {capacities.pop()}"
    first = min(as_utc(s.at) for s in samples)
    last = max(as_utc(s.at) for s in samples)
    text = f"{len(quiet)} instances never saturated{spread}"
    return TimelineEntry(first, "fleet", text, EntryKind.POOL, until=last)


def pool_entries(readings: Readings) -> list[TimelineEntry]:
    """Per instance: the checked_out trend, saturation reached / recovered, failed reads; in a
    large fleet, instances that stayed below capacity are summarised in one entry."""
    fills = readings.pool.fills
    quiet = [f for f in fills if f.quiet] if len(fills) > FLEET_INSTANCE_ROWS else []
    entries = [
        entry for fill in fills if not (quiet and fill.quiet) for entry in _instance_entries(fill)
    ]
    if quiet:
        entries.append(_fleet_entry(quiet))
    return entries


def _stuck_text(work: StuckWork) -> str:
    age = format_duration(work.age_seconds)
    if work.what == "transaction":
        return (
            f"{work.who} began the transaction still open at collection time "
            f"(open {age}; {work.detail})"
        )
    if work.what == "query":
        return (
            f"{work.who} started the query still running at collection time ({age}): {work.detail}"
        )
    if work.what == "lock wait":
        return f"{work.who} started the query now waiting for a lock ({age}; {work.detail})"
    thread = f", {work.detail}" if work.detail else ""
    return f"checkout by {work.who} still held at collection time (held {age}{thread})"


def _stuck_entries(works: Sequence[StuckWork], kind: EntryKind, noun: str) -> list[TimelineEntry]:
    """The first MAX_STUCK_LISTED one by one, root blockers always among them (they are the
    cause of the lock waits), the rest summarised in one entry."""
    ordered = sorted(works, key=lambda work: (not work.blocks, work.started))
    roots = sum(1 for work in works if work.blocks)
    listed = sorted(ordered[: max(MAX_STUCK_LISTED, roots)], key=lambda work: work.started)
    entries = [
        TimelineEntry(
            work.started,
            work.source,
            _stuck_text(work),
            kind,
            inferred=work.inferred,
            priority=0 if work.blocks else 1,
        )
        for work in listed
    ]
    rest = sorted(ordered[len(listed) :], key=lambda work: work.started)
    if rest:
        text = (
            f"{len(rest)} more {noun} began between {hhmm(rest[0].started)} and "
            f"{hhmm(rest[-1].started)} and were still open at collection time"
        )
        entries.append(
            TimelineEntry(
                rest[0].started,
                rest[0].source,
                text,
                kind,
                until=rest[-1].started,
                inferred=any(w.inferred for w in rest),
                priority=2,
            )
        )
    return entries


def postgres_entries(readings: Readings) -> list[TimelineEntry]:
    """pg_stat_activity ages turned into start times, and the oldest stuck session's connect."""
    sessions = readings.stuck.sessions
    entries: list[TimelineEntry] = []
    for what, noun in (
        ("transaction", "idle transactions"),
        ("query", "long queries"),
        ("lock wait", "lock waits"),
    ):
        chosen = [work for work in sessions if work.what == what]
        entries.extend(_stuck_entries(chosen, EntryKind.POSTGRES, noun))
    connected = [work for work in sessions if work.connected is not None]
    if connected:
        when, who = min((work.connected, work.who) for work in connected if work.connected)
        text = f"{who} connected: the oldest session among those stuck at collection time"
        entries.append(TimelineEntry(when, "postgres", text, EntryKind.POSTGRES, priority=2))
    return entries


def _checkout_group(works: Sequence[StuckWork]) -> TimelineEntry:
    """Several checkouts from one code path on one instance: one row, not one per thread."""
    first, last = works[0], works[-1]
    oldest, newest = format_duration(first.age_seconds), format_duration(last.age_seconds)
    held = oldest if oldest == newest else f"{newest} to {oldest}"
    text = (
        f"{len(works)} checkouts by {first.who} began and were still held at collection time "
        f"(held {held})"
    )
    until = last.started if clock(last.started) != clock(first.started) else None
    return TimelineEntry(
        first.started, first.source, text, EntryKind.HOLDER, until=until, inferred=True
    )


def holder_entries(readings: Readings) -> list[TimelineEntry]:
    """Checkouts the app reported as held, dated collected-at minus age; one row per code path."""
    groups: dict[tuple[str, str], list[StuckWork]] = {}
    for work in readings.stuck.checkouts:
        groups.setdefault((work.source, work.who), []).append(work)
    singles = sorted((g[0] for g in groups.values() if len(g) == 1), key=lambda w: w.started)
    entries = _stuck_entries(singles, EntryKind.HOLDER, "checkouts")
    entries.extend(_checkout_group(g) for g in groups.values() if len(g) > 1)
    return entries


def source_entries(readings: Readings) -> list[TimelineEntry]:
    """Collection start and each source that failed, at the time it failed."""
    evidence = readings.evidence
    entries = [
        TimelineEntry(
            as_utc(evidence.started_at),
            "pooldoctor",
            "evidence collection started",
            EntryKind.COLLECTION,
            priority=0,
        )
    ]
    for source in evidence.sources:
        at = source.finished_at or source.started_at
        if source.status is SourceState.OK or at is None:
            continue
        verb = "could not collect" if source.status is SourceState.ERROR else "skipped"
        text = redact(f"{verb} ({source.kind}): {source.detail or 'no detail'}")
        name = log_source_name(source.name) if source.kind == "log" else source.name
        entries.append(
            TimelineEntry(
                as_utc(at),
                instance_label(name),
                text,
                EntryKind.SOURCE,
                priority=0 if source.status is SourceState.ERROR else 2,
            )
        )
    return entries


def detection_entry(generated_at: datetime, status: Status, top_title: str | None) -> TimelineEntry:
    """The moment pooldoctor produced its verdict."""
    text = f"pooldoctor diagnosis: {status.value.upper()}"
    if top_title:
        text += f"; most probable cause: {top_title}"
    return TimelineEntry(as_utc(generated_at), "pooldoctor", text, EntryKind.DETECTION, priority=0)


def _sort_key(entry: TimelineEntry) -> tuple[datetime, int, str, str]:
    return (entry.at, _KIND_ORDER[entry.kind], entry.source, entry.event)


def cap_entries(
    entries: Iterable[TimelineEntry], limit: int = MAX_TIMELINE_ENTRIES
) -> tuple[tuple[TimelineEntry, ...], int]:
    """Deduplicate, keep the `limit` most important entries, return them by time + omitted count."""
    unique: dict[tuple[datetime, str, str], TimelineEntry] = {}
    for entry in entries:
        unique.setdefault((entry.at, entry.source, entry.event), entry)
    ordered = sorted(unique.values(), key=_sort_key)
    if len(ordered) <= limit:
        return tuple(ordered), 0
    ranked = sorted(ordered, key=lambda e: (e.priority, e.at))
    kept = sorted(ranked[:limit], key=_sort_key)
    return tuple(kept), len(ordered) - limit


def build_timeline(
    readings: Readings,
    *,
    generated_at: datetime,
    status: Status,
    top_title: str | None = None,
    limit: int = MAX_TIMELINE_ENTRIES,
) -> tuple[tuple[TimelineEntry, ...], int]:
    """The merged, sorted, deduplicated and capped timeline, and how many entries were omitted."""
    entries = [
        *source_entries(readings),
        *log_entries(readings),
        *pool_entries(readings),
        *postgres_entries(readings),
        *holder_entries(readings),
        detection_entry(generated_at, status, top_title),
    ]
    return cap_entries(entries, limit)
