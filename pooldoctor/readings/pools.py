"""Pool fill over time per instance, who holds the connections, and the checkout throughput."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pooldoctor.durations import format_duration
from pooldoctor.evidence import Evidence, Holder, PoolInstance, PoolSample
from pooldoctor.jsonio import as_utc, format_utc
from pooldoctor.readings.text import instance_label
from pooldoctor.readings.thresholds import MAX_LISTED

UNKNOWN_ORIGINS = ("", "unknown", "?")
UNREPORTED_ORIGIN = "(origin not reported)"


def describe_sample(sample: PoolSample) -> str:
    """'20 of 30 in use (pool_size 20 + overflow 0 of 10)' style reading of one sample."""
    checked_out = sample.in_use
    capacity = sample.capacity
    used = "?" if checked_out is None else checked_out
    text = f"{used} of {'?' if capacity is None else capacity} in use"
    if sample.size is not None and sample.max_overflow is not None and sample.max_overflow >= 0:
        overflow = max(0, sample.overflow or 0)
        if sample.max_overflow == 0:
            text += f" (pool_size {sample.size}, no overflow)"
        else:
            text += f" (pool_size {sample.size} + overflow {overflow} of {sample.max_overflow})"
    waiting = sample.queued
    if waiting:
        text += f", {waiting} waiting"
    return text


@dataclass(frozen=True)
class InstanceFill:
    """One app instance's pool over time: its samples in time order and when it was full."""

    instance: PoolInstance
    samples: tuple[PoolSample, ...]  # by time

    @property
    def label(self) -> str:
        return instance_label(self.instance.url)

    @property
    def full_samples(self) -> int:
        return sum(s.full for s in self.samples)

    @property
    def quiet(self) -> bool:
        """Read cleanly every time and never full."""
        return bool(self.samples) and not self.instance.errors and not self.full_samples

    def pressure(self) -> tuple[int, float]:
        """(most callers waiting, highest fill) over the samples: how close it came."""
        waiting = max((s.queued for s in self.samples), default=0)
        fills = [
            (s.in_use or 0) / capacity
            for s in self.samples
            if (capacity := s.capacity) is not None and capacity > 0
        ]
        return waiting, max(fills, default=0.0)


def instance_fill(instance: PoolInstance) -> InstanceFill:
    return InstanceFill(instance, tuple(sorted(instance.samples, key=lambda s: as_utc(s.at))))


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
    holders: tuple[Holder, ...]  # listed by the latest samples, oldest first per instance
    holders_total_now: int  # every checkout held, listed or not (payload's holders_total)
    unlisted_dead_threads: int  # held by finished threads beyond those listed
    fills: tuple[InstanceFill, ...] = ()  # every configured instance, sampled or not, in order

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

    def ranked(self) -> list[PoolInstance]:
        """Instances full now first (most callers waiting first), then the rest in order."""
        return sorted(self.instances, key=lambda i: (not i.samples[-1].full, -i.samples[-1].queued))

    def full_instances_now(self) -> list[PoolInstance]:
        """Instances whose latest sample is at capacity, most callers waiting first."""
        return [i for i in self.ranked() if i.samples[-1].full]

    def describe(self) -> str:
        parts = []
        for instance in self.ranked():
            full = sum(s.full for s in instance.samples)
            parts.append(
                f"pool {instance_label(instance.url)} at {describe_sample(instance.samples[-1])} "
                f"now, at capacity in {full}/{len(instance.samples)} samples"
            )
        if len(parts) > 3:
            fleet = f"{self.instances_full_now} of {len(parts)} instances at capacity now: "
            return f"{fleet}{'; '.join(parts[:3])}; and {len(parts) - 3} more instances"
        return "; ".join(parts)

    def as_evidence(self) -> dict[str, Any]:
        ranked = self.ranked()
        return {
            "instances": [
                {
                    "url": instance.url,
                    "checked_out": [s.in_use for s in instance.samples],
                    "capacity": [s.capacity for s in instance.samples],
                    "waiting": [s.queued for s in instance.samples],
                    "at": [format_utc(s.at) for s in instance.samples],
                }
                for instance in ranked[:MAX_LISTED]
            ],
            "instances_total": len(ranked),
            "instances_at_capacity_now": [i.url for i in ranked[:MAX_LISTED] if i.samples[-1].full],
            "samples": self.samples,
            "samples_at_capacity": self.full_samples,
            "checked_out_now": self.checked_out_now,
            "capacity_now": self.capacity_now,
            "waiting_now": self.waiting_now,
            "holders_total_now": self.holders_total_now,
        }


def pool_signal(evidence: Evidence) -> PoolSignal:
    instances = tuple(i for i in evidence.pools if i.samples)
    samples = sum(len(i.samples) for i in instances)
    full_samples = sum(s.full for i in instances for s in i.samples)
    latest = [i.samples[-1] for i in instances]
    capacities = [s.capacity for s in latest]
    checked = [s.in_use for s in latest]
    return PoolSignal(
        instances=instances,
        samples=samples,
        full_samples=full_samples,
        instances_full_now=sum(s.full for s in latest),
        capacity_now=None if not latest or None in capacities else sum(c or 0 for c in capacities),
        checked_out_now=None if not latest or None in checked else sum(c or 0 for c in checked),
        waiting_now=sum(s.queued for s in latest),
        holders=tuple(h for s in latest for h in s.holders),
        holders_total_now=sum(max(len(s.holders), s.holders_total or 0) for s in latest),
        unlisted_dead_threads=sum(unlisted_dead_threads(s) for s in latest),
        fills=tuple(instance_fill(i) for i in evidence.pools),
    )


def unlisted_dead_threads(sample: PoolSample) -> int:
    """Checkouts held by finished threads that the payload counted but did not list."""
    listed = sum(1 for h in sample.holders if h.thread_alive is False)
    return max(0, (sample.holders_dead_threads or 0) - listed)


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
        f"{row['origin']} holds {row['count']} (oldest {format_duration(row['oldest_seconds'])})"
        for row in rows[:3]
    )


# --- throughput (Little's law inputs) --------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    """Checkouts per second over the fleet and mean hold time, with what they were measured from."""

    per_second: float
    hold_seconds: float | None
    measured_from: str


_CHECKOUT_KEYS = (
    "requests_num",
    "checkouts_total",
    "checkouts",
    "checkout_total",
    "use_time_seconds_count",
)
_HOLD_PAIRS = (
    ("usage_ms", "requests_num", 1e-3),
    ("use_time_seconds_sum", "use_time_seconds_count", 1.0),
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


# --- wait and use times (db.client.connection.wait_time / use_time) -------------------------


@dataclass(frozen=True)
class CheckoutTimes:
    """Mean wait for and use of a pooled connection between the first and last samples
    (db.client.connection.wait_time / use_time histograms), over the fleet."""

    mean_wait_seconds: float | None
    mean_use_seconds: float | None
    waits: int
    uses: int

    def describe(self) -> str:
        parts = []
        if self.mean_wait_seconds is not None:
            parts.append(
                f"mean wait {format_duration(self.mean_wait_seconds)} ({self.waits} checkouts)"
            )
        if self.mean_use_seconds is not None:
            parts.append(f"mean use {format_duration(self.mean_use_seconds)} ({self.uses} returns)")
        return ", ".join(parts) + " (wait_time / use_time histograms)"


def _histogram_delta(instance: PoolInstance, name: str) -> tuple[float, float]:
    if len(instance.samples) < 2:
        return 0.0, 0.0
    first, last = instance.samples[0].counters, instance.samples[-1].counters
    keys = (f"{name}_seconds_sum", f"{name}_seconds_count")
    if not all(k in first and k in last for k in keys):
        return 0.0, 0.0
    total, count = (last[k] - first[k] for k in keys)
    return (total, count) if count > 0 and total >= 0 else (0.0, 0.0)


def checkout_times(evidence: Evidence) -> CheckoutTimes | None:
    """Wait and use times from the histograms' sums and counts; None when no pool reports them."""
    sums = {"wait_time": [0.0, 0.0], "use_time": [0.0, 0.0]}
    for instance in evidence.pools:
        for name, acc in sums.items():
            total, count = _histogram_delta(instance, name)
            acc[0] += total
            acc[1] += count
    (wait_total, waits), (use_total, uses) = sums["wait_time"], sums["use_time"]
    if not waits and not uses:
        return None
    return CheckoutTimes(
        wait_total / waits if waits else None,
        use_total / uses if uses else None,
        int(waits),
        int(uses),
    )
