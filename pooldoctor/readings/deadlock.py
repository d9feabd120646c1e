"""The thread-pool deadlock signature: the pool full of waiting checkouts, nothing running."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pooldoctor.durations import format_duration
from pooldoctor.evidence import Evidence
from pooldoctor.readings.app import enough_app_backends
from pooldoctor.readings.holds import HoldReading
from pooldoctor.readings.logs import LogSignal
from pooldoctor.readings.pools import PoolSignal, group_holders, measure_throughput
from pooldoctor.readings.sessions import SessionTrend
from pooldoctor.readings.timing import Lockstep

DEADLOCK_SPREAD_SECONDS = 30.0  # checkouts that all went quiet within this window froze together
DEADLOCK_IDLE_SHARE = 0.7  # share of the app's backends plainly idle while the pool is full
MAX_ACTIVE_SHARE = 0.1  # "almost no activity": at most this share of app backends running
WORKER_THREAD_MARKERS = ("anyio worker", "threadpoolexecutor", "asyncio_", "worker thread")


@dataclass(frozen=True)
class DeadlockSignature:
    """Pool full, callers waiting, the app's backends idle and quiet, checkouts frozen together."""

    confidence: float
    reasons: tuple[str, ...]
    evidence: dict[str, Any]


def _idle_spread(trend: SessionTrend) -> float | None:
    if len(trend.idle) < 2:
        return None
    moments = [h.since for h in trend.idle]
    return (max(moments) - min(moments)).total_seconds()


def deadlock_signature(
    evidence: Evidence, pool: PoolSignal, timeouts: LogSignal, trend: SessionTrend | None
) -> DeadlockSignature | None:
    """The signature when the pool is full and quiet with callers waiting, else None."""
    if not (pool.full_now and pool.full_always and (timeouts.current or pool.waiting_now)):
        return None
    reasons: list[str] = []
    facts: dict[str, Any] = {}
    confidence = 0.0
    if trend is not None and enough_app_backends(len(trend.latest), pool.capacity_now):
        total = len(trend.latest)
        idle_share = len(trend.idle) / total
        active_share = len(trend.active) / total
        facts.update(idle_backends=len(trend.idle), active_backends=len(trend.active))
        if idle_share < DEADLOCK_IDLE_SHARE or active_share > MAX_ACTIVE_SHARE:
            return None
        confidence = 0.5
        reasons.append(
            f"{len(trend.idle)}/{total} backends of {trend.app.label} idle (not in a "
            f"transaction), {len(trend.active)} active"
        )
        spread = _idle_spread(trend)
        if spread is not None and spread <= DEADLOCK_SPREAD_SECONDS:
            confidence += 0.15
            reasons.append(f"they all went idle within {format_duration(spread)} of each other")
            facts["idle_since_spread_seconds"] = round(spread, 1)
    holders = pool.holders
    if holders:
        threads = [h.thread or "" for h in holders]
        worker_threads = sum(any(m in t.lower() for m in WORKER_THREAD_MARKERS) for t in threads)
        ages = [h.age_seconds for h in holders]
        if worker_threads >= len(holders) * DEADLOCK_IDLE_SHARE:
            confidence = max(confidence, 0.35) + 0.15
            reasons.append(f"{worker_threads}/{len(holders)} holders are thread-pool workers")
        if len(ages) >= 2 and max(ages) - min(ages) <= DEADLOCK_SPREAD_SECONDS:
            confidence = max(confidence, 0.3) + 0.1
            reasons.append(
                f"all {len(ages)} checkouts are {format_duration(min(ages))}-"
                f"{format_duration(max(ages))} old"
            )
        facts["holders"] = group_holders(holders)
    if confidence == 0.0:
        return None
    throughput = measure_throughput(evidence)
    if throughput is not None:
        facts["checkouts_per_second"] = round(throughput.per_second, 3)
        if throughput.per_second == 0:
            confidence += 0.1
            reasons.append(f"no checkout completed between samples ({throughput.measured_from})")
        else:
            confidence -= 0.2
    return DeadlockSignature(min(confidence, 0.9), tuple(reasons), facts)


LOCKSTEP_CONFIDENCE = 0.75  # timing alone; the nested checkout in the traceback adds to it
NESTED_CHECKOUT_CONFIDENCE = 0.1


def lockstep_signature(timing: Lockstep | None, holds: HoldReading) -> DeadlockSignature | None:
    """Holders whose transactions end only when their own requests time out, in bursts one
    pool_timeout apart (`timing`, from readings.timing.lockstep), while the pool is at its limit."""
    if timing is None or not (holds.pool.full_now or holds.pool.full_always):
        return None
    nested = len(timing.nested_frames) >= 2
    confidence = LOCKSTEP_CONFIDENCE + (NESTED_CHECKOUT_CONFIDENCE if nested else 0.0)
    return DeadlockSignature(confidence, (timing.describe(),), {"lockstep": timing.as_evidence()})
