"""Readings of evidence that several checks weigh: the app's backends, pool fill, log recency."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pooldoctor.durations import server_setting_seconds
from pooldoctor.evidence import (
    ActivitySample,
    Backend,
    Evidence,
    Holder,
    LogEvent,
    PoolInstance,
    PoolSample,
    PostgresEvidence,
)
from pooldoctor.jsonio import format_utc

RECENT_SECONDS = 15 * 60  # log errors this close to collection describe the incident in progress
HISTORY_SECONDS = 6 * 3600  # older than this a burst is history: timeline material, not a cause
HISTORY_WEIGHT = 0.1  # recency weight an old burst keeps, enough for a low-confidence INFO
MIN_APP_BACKENDS = 3  # fewer app backends than this is a quiet database: too little to judge
MAX_LISTED = 10  # pids/holders listed in a finding's evidence before truncating
SELF_APP = "pooldoctor"
UNKNOWN_ORIGINS = ("", "unknown", "?")
UNREPORTED_ORIGIN = "(origin not reported)"
MAINTENANCE_APPS = (
    "pg_dump",
    "pg_dumpall",
    "pg_basebackup",
    "pg_restore",
    "pg_rewind",
    "pg_receivewal",
    "pg_repack",
    "psql",
    "pgadmin",
    "vacuumdb",
    "reindexdb",
    "autovacuum",
    "walreceiver",
    "walsender",
)
CLIENT_BACKEND_TYPES = (None, "client backend")
IDLE = "idle"
IDLE_IN_TRANSACTION = ("idle in transaction", "idle in transaction (aborted)")
ACTIVE = "active"
POOL_TIMEOUT_EVENTS = (
    LogEvent.POOL_TIMEOUT,
    LogEvent.PSYCOPG_POOL_TIMEOUT,
    LogEvent.PSYCOPG_POOL_QUEUE_FULL,
)


# --- time -----------------------------------------------------------------------------------


def seconds_between(later: datetime | None, earlier: datetime | None) -> float | None:
    """Seconds from earlier to later, or None when either is unknown."""
    if later is None or earlier is None:
        return None
    return (later - earlier).total_seconds()


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


def fmt_duration(seconds: float) -> str:
    """Compact human duration: 45s, 14m37s, 3h02m, 2d03h."""
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{(whole % 3600) // 60:02d}m"
    return f"{whole // 86400}d{(whole % 86400) // 3600:02d}h"


def fmt_clock(moment: datetime) -> str:
    """Time of day in UTC, e.g. 09:15:23Z."""
    return format_utc(moment)[11:19] + "Z"


# --- logs -----------------------------------------------------------------------------------


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
        window = fmt_duration(self.window_seconds)
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


# --- PostgreSQL -----------------------------------------------------------------------------


def client_backends(sample: ActivitySample) -> list[Backend]:
    """Client sessions of a snapshot (no background workers)."""
    return [b for b in sample.backends if b.backend_type in CLIENT_BACKEND_TYPES]


def is_self(backend: Backend) -> bool:
    return (backend.application_name or "").lower().startswith(SELF_APP)


def is_maintenance(backend: Backend) -> bool:
    name = (backend.application_name or "").lower()
    return any(name.startswith(tool) for tool in MAINTENANCE_APPS)


@dataclass(frozen=True)
class AppIdentity:
    """How the app's own backends are recognised in pg_stat_activity, and why."""

    application_name: str | None
    usename: str | None
    backends_seen: int
    reason: str
    role: str | None = None  # the role most of the app's backends log in as

    @property
    def label(self) -> str:
        if self.application_name:
            return f"application '{self.application_name}'"
        return f"unnamed application of user '{self.usename}'"

    @property
    def short(self) -> str:
        return self.application_name or self.usename or "app"

    def matches(self, backend: Backend) -> bool:
        if backend.backend_type not in CLIENT_BACKEND_TYPES or is_self(backend):
            return False
        if self.application_name:
            return backend.application_name == self.application_name
        return not backend.application_name and backend.usename == self.usename

    def as_evidence(self) -> dict[str, Any]:
        return {
            "application_name": self.application_name,
            "usename": self.usename,
            "role": self.role,
            "chosen_because": self.reason,
        }


def identify_app(pg: PostgresEvidence | None) -> AppIdentity | None:
    """The app = the application_name (else role) with the most client backends over the samples,
    excluding pooldoctor itself and maintenance tools."""
    if pg is None or not pg.samples:
        return None
    tally: Counter[tuple[str, str]] = Counter()
    roles: dict[tuple[str, str], Counter[str]] = {}
    for sample in pg.samples:
        for backend in client_backends(sample):
            if is_self(backend) or is_maintenance(backend):
                continue
            name = backend.application_name or ""
            key = (name, "" if name else backend.usename or "")
            tally[key] += 1
            roles.setdefault(key, Counter())[backend.usename or ""] += 1
    if not tally:
        return None
    (name, user), seen = min(tally.items(), key=lambda item: (-item[1], item[0]))
    per_sample = seen / len(pg.samples)
    reason = (
        f"most client backends ({per_sample:.0f} per sample), excluding pooldoctor and "
        f"maintenance tools ({', '.join(MAINTENANCE_APPS[:4])}, ...)"
    )
    role = roles[(name, user)].most_common(1)[0][0] or None
    return AppIdentity(name or None, user or None, seen, reason, role)


def enough_app_backends(count: int, capacity: int | None) -> bool:
    """Enough app backends to judge: MIN_APP_BACKENDS, or a whole (small) pool's worth."""
    needed = MIN_APP_BACKENDS if not capacity else min(MIN_APP_BACKENDS, capacity)
    return count >= max(1, needed)


def app_backends(sample: ActivitySample, app: AppIdentity) -> list[Backend]:
    return [b for b in sample.backends if app.matches(b)]


def other_clients(sample: ActivitySample, app: AppIdentity | None) -> list[Backend]:
    """Client backends that are neither the app nor pooldoctor."""
    return [
        b for b in client_backends(sample) if not is_self(b) and (app is None or not app.matches(b))
    ]


def describe_sessions(backends: Iterable[Backend]) -> list[dict[str, Any]]:
    """Group sessions by (application_name, role): counts and pids, for a finding's evidence."""
    groups: dict[tuple[str, str], list[int]] = {}
    for backend in backends:
        key = (backend.application_name or "", backend.usename or "")
        groups.setdefault(key, []).append(backend.pid)
    return [
        {"application_name": name, "usename": user, "count": len(pids), "pids": pids[:MAX_LISTED]}
        for (name, user), pids in sorted(groups.items(), key=lambda item: -len(item[1]))
    ]


def session_label(backend: Backend) -> str:
    name = backend.application_name or "(no application_name)"
    return f"pid {backend.pid} ('{name}', role {backend.usename or '?'})"


def setting_seconds(pg: PostgresEvidence | None, name: str) -> float | None:
    """A server timeout setting in seconds (0 = disabled), or None when not collected."""
    if pg is None:
        return None
    return server_setting_seconds(pg.settings.get(name))


def setting_int(pg: PostgresEvidence | None, name: str) -> int | None:
    if pg is None or name not in pg.settings:
        return None
    try:
        return int(pg.settings[name].strip())
    except ValueError:
        return None


# --- pools ----------------------------------------------------------------------------------


def instance_label(instance: PoolInstance) -> str:
    parts = urlsplit(instance.url)
    return parts.netloc or instance.url


def sample_checked_out(sample: PoolSample) -> int | None:
    if sample.checked_out is not None:
        return sample.checked_out
    counters = sample.counters
    if "pool_size" in counters and "pool_available" in counters:
        return int(counters["pool_size"] - counters["pool_available"])
    return None


def sample_waiting(sample: PoolSample) -> int:
    if sample.waiting is not None:
        return sample.waiting
    return int(sample.counters.get("requests_waiting", 0))


def sample_full(sample: PoolSample) -> bool:
    """At capacity (every connection checked out) or callers already waiting."""
    if sample_waiting(sample) > 0:
        return True
    capacity = sample.capacity
    checked_out = sample_checked_out(sample)
    return capacity is not None and checked_out is not None and checked_out >= capacity > 0


def describe_sample(sample: PoolSample) -> str:
    """'20 of 30 in use (pool_size 20 + overflow 0 of 10)' style reading of one sample."""
    checked_out = sample_checked_out(sample)
    capacity = sample.capacity
    used = "?" if checked_out is None else checked_out
    text = f"{used} of {'?' if capacity is None else capacity} in use"
    if sample.size is not None and sample.max_overflow is not None and sample.max_overflow >= 0:
        overflow = max(0, sample.overflow or 0)
        if sample.max_overflow == 0:
            text += f" (pool_size {sample.size}, no overflow)"
        else:
            text += f" (pool_size {sample.size} + overflow {overflow} of {sample.max_overflow})"
    waiting = sample_waiting(sample)
    if waiting:
        text += f", {waiting} waiting"
    return text


@dataclass(frozen=True)
class PoolSignal:
    """Fill of the app's pools over the samples, summed over the fleet for the latest reading."""

    instances: tuple[PoolInstance, ...]
    samples: int
    full_samples: int
    instances_full_now: int
    capacity_now: int | None
    checked_out_now: int | None
    waiting_now: int
    holders: tuple[Holder, ...]

    @property
    def has_data(self) -> bool:
        return self.samples > 0

    @property
    def full_now(self) -> bool:
        return self.instances_full_now > 0

    @property
    def full_always(self) -> bool:
        return self.samples > 0 and self.full_samples == self.samples

    @property
    def recovers(self) -> bool:
        """Some but not all samples are at capacity: the pool drains between peaks."""
        return 0 < self.full_samples < self.samples

    def describe(self) -> str:
        parts = []
        for instance in self.instances:
            if not instance.samples:
                continue
            full = sum(sample_full(s) for s in instance.samples)
            parts.append(
                f"pool {instance_label(instance)} at {describe_sample(instance.samples[-1])} "
                f"now, at capacity in {full}/{len(instance.samples)} samples"
            )
        if len(parts) > 3:
            return f"{'; '.join(parts[:3])}; and {len(parts) - 3} more instances"
        return "; ".join(parts)

    def as_evidence(self) -> dict[str, Any]:
        return {
            "instances": [
                {
                    "url": instance.url,
                    "checked_out": [sample_checked_out(s) for s in instance.samples],
                    "capacity": [s.capacity for s in instance.samples],
                    "waiting": [sample_waiting(s) for s in instance.samples],
                    "at": [format_utc(s.at) for s in instance.samples],
                }
                for instance in self.instances[:MAX_LISTED]
            ],
            "samples": self.samples,
            "samples_at_capacity": self.full_samples,
            "checked_out_now": self.checked_out_now,
            "capacity_now": self.capacity_now,
            "waiting_now": self.waiting_now,
        }


def pool_signal(evidence: Evidence) -> PoolSignal:
    instances = tuple(i for i in evidence.pools if i.samples)
    samples = sum(len(i.samples) for i in instances)
    full_samples = sum(sample_full(s) for i in instances for s in i.samples)
    latest = [i.samples[-1] for i in instances]
    capacities = [s.capacity for s in latest]
    checked = [sample_checked_out(s) for s in latest]
    return PoolSignal(
        instances=instances,
        samples=samples,
        full_samples=full_samples,
        instances_full_now=sum(sample_full(s) for s in latest),
        capacity_now=None if not latest or None in capacities else sum(c or 0 for c in capacities),
        checked_out_now=None if not latest or None in checked else sum(c or 0 for c in checked),
        waiting_now=sum(sample_waiting(s) for s in latest),
        holders=tuple(h for s in latest for h in s.holders),
    )


def group_holders(holders: Iterable[Holder], min_age: float = 0.0) -> list[dict[str, Any]]:
    """Holders grouped by code origin, most connections first: count, oldest and newest age."""
    groups: dict[str, list[Holder]] = {}
    for holder in holders:
        if holder.age_seconds >= min_age:
            origin = holder.origin if holder.origin.strip().lower() not in UNKNOWN_ORIGINS else ""
            groups.setdefault(origin or UNREPORTED_ORIGIN, []).append(holder)
    rows = [
        {
            "origin": origin,
            "count": len(items),
            "oldest_seconds": round(max(h.age_seconds for h in items), 1),
            "newest_seconds": round(min(h.age_seconds for h in items), 1),
            "threads": sorted({h.thread for h in items if h.thread})[:MAX_LISTED],
        }
        for origin, items in groups.items()
    ]
    return sorted(rows, key=lambda row: (-row["count"], -row["oldest_seconds"]))


def describe_holders(rows: Sequence[dict[str, Any]]) -> str:
    """'api/orders.py:42 holds 18 (oldest 14m37s)' for the top origins."""
    return "; ".join(
        f"{row['origin']} holds {row['count']} (oldest {fmt_duration(row['oldest_seconds'])})"
        for row in rows[:3]
    )


# --- throughput (Little's law inputs) --------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    """Checkouts per second over the fleet and mean hold time, with what they were measured from."""

    per_second: float
    hold_seconds: float | None
    measured_from: str


_CHECKOUT_KEYS = ("requests_num", "checkouts_total", "checkouts", "checkout_total")
_HOLD_PAIRS = (
    ("usage_ms", "requests_num", 1e-3),
    ("hold_seconds_sum", "hold_seconds_count", 1.0),
    ("checkout_seconds_sum", "checkout_seconds_count", 1.0),
)


def measure_throughput(evidence: Evidence) -> Throughput | None:
    """Rates from counters that grew between the first and last sample of each instance."""
    rate = 0.0
    hold_total = 0.0
    hold_count = 0.0
    sources: set[str] = set()
    for instance in evidence.pools:
        if len(instance.samples) < 2:
            continue
        first, last = instance.samples[0], instance.samples[-1]
        elapsed = (last.at - first.at).total_seconds()
        if elapsed <= 0:
            continue
        for key in _CHECKOUT_KEYS:
            if key in first.counters and key in last.counters:
                delta = last.counters[key] - first.counters[key]
                if delta >= 0:
                    rate += delta / elapsed
                    sources.add(f"{key} rate")
                break
        for total_key, count_key, scale in _HOLD_PAIRS:
            keys = (total_key, count_key)
            if all(k in first.counters and k in last.counters for k in keys):
                count = last.counters[count_key] - first.counters[count_key]
                total = (last.counters[total_key] - first.counters[total_key]) * scale
                if count > 0 and total >= 0:
                    hold_total += total
                    hold_count += count
                    sources.add(f"{total_key}/{count_key}")
                break
    if not sources:
        return None
    hold = hold_total / hold_count if hold_count else None
    return Throughput(rate, hold, ", ".join(sorted(sources)))


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty sequence."""
    ordered = sorted(values)
    index = max(0, math.ceil(fraction * len(ordered)) - 1)
    return ordered[index]
