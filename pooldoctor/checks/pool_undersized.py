"""pool-undersized: demand exceeds the pool; it fills with short active queries and recovers."""

from __future__ import annotations

import math

from pooldoctor.checks.common import MAX_CONFIDENCE, finding
from pooldoctor.checks.spec import CheckSpec
from pooldoctor.durations import format_duration
from pooldoctor.evidence import Evidence
from pooldoctor.findings import Finding, Severity
from pooldoctor.readings import Readings
from pooldoctor.readings.app import ACTIVE, enough_app_backends
from pooldoctor.readings.budget import (
    HEADROOM,
    ServerBudget,
    app_processes,
    budget_remedy,
    littles_law_size,
    split_pool,
)
from pooldoctor.readings.logs import POOL_TIMEOUT_EVENTS
from pooldoctor.readings.pools import PoolSignal, Throughput
from pooldoctor.readings.sessions import SessionTrend, seconds_between
from pooldoctor.readings.thresholds import SLOW_QUERY_SECONDS

CHECK = "pool-undersized"
SHORT_QUERY_SECONDS = SLOW_QUERY_SECONDS  # younger app queries are ordinary OLTP service times
BUSY_SHARE = 0.6  # share of app backends running short queries when demand fills the pool
SHORT_HOLD_SECONDS = 5.0  # checkouts held shorter than this rotate: the pool is not stuck
UNMEASURED_GROWTH = 1.5  # with nothing measured, grow a saturated pool by half and re-measure


def _spread(total: int, processes: int) -> tuple[int, int, int]:
    """(connections per process, its pool_size, its max_overflow) for `total` over `processes`."""
    per_process = math.ceil(total / processes)
    pool_size, overflow = split_pool(per_process)
    return per_process, pool_size, overflow


def _sizing(
    evidence: Evidence,
    pool: PoolSignal,
    throughput: Throughput | None,
    budget: ServerBudget | None,
) -> list[str]:
    steps: list[str] = []
    processes = app_processes(evidence) or 1
    needed = littles_law_size(throughput) if throughput is not None else None
    if needed is not None and throughput is not None and throughput.hold_seconds is not None:
        mean = throughput.per_second * throughput.hold_seconds
        per_process, pool_size, overflow = _spread(needed, processes)
        steps.append(
            f"Little's law: {throughput.per_second:.1f} checkouts/s x "
            f"{format_duration(throughput.hold_seconds)} mean hold = {mean:.1f} connections busy "
            f"on average (measured from {throughput.measured_from}); with {HEADROOM - 1:.0%} "
            f"headroom {needed} over {processes} process(es): pool_size={pool_size}, "
            f"max_overflow={overflow} each"
        )
    elif pool.checked_out_now is not None:
        demand = pool.checked_out_now + pool.waiting_now
        target = math.ceil(
            max(demand * HEADROOM, (pool.capacity_now or demand) * UNMEASURED_GROWTH)
        )
        per_process, pool_size, overflow = _spread(target, processes)
        steps.append(
            f"Hold time was not measured: observed demand {demand} (checked out + waiting) "
            f"saturates capacity {pool.capacity_now}; try {target} over {processes} process(es) "
            f"(pool_size={pool_size}, max_overflow={overflow} each) and measure usage_ms / "
            "checkout rate to size by Little's law"
        )
    else:
        per_process = None
    if budget is not None and per_process is not None:
        fit = budget.per_process_fit()
        if fit is not None and per_process > fit:
            steps.append(
                f"That exceeds the server budget ({budget.arithmetic()}); "
                + (budget_remedy(budget) or "")
                + "; or cut concurrency per process"
            )
    steps.append("Never set max_overflow=-1: exhaustion then moves to the server")
    return steps


def _busiest_sample(trend: SessionTrend, capacity: int | None) -> tuple[int, int] | None:
    """(short active statements, app backends) in the sample with the most short statements."""
    best: tuple[int, int] | None = None
    for at, backends in trend.per_sample:
        if not enough_app_backends(len(backends), capacity):
            continue
        busy = sum(
            1
            for b in backends
            if b.state == ACTIVE
            and b.wait_event_type != "Lock"
            and (age := seconds_between(at, b.query_start)) is not None
            and age < SHORT_QUERY_SECONDS
        )
        if best is None or busy > best[0]:
            best = (busy, len(backends))
    return best


def check(readings: Readings) -> list[Finding]:
    evidence = readings.evidence
    pool = readings.pool
    timeouts = readings.log(*POOL_TIMEOUT_EVENTS)
    if not (pool.full_samples or timeouts.current):
        return []
    trend = readings.sessions
    throughput = readings.throughput
    reasons: list[str] = []
    confidence = 0.0
    peak = _busiest_sample(trend, pool.capacity_now) if trend is not None else None
    if trend is not None and peak is not None:
        busy, total = peak
        if busy < BUSY_SHARE * total:
            return []
        confidence = 0.6
        reasons.append(
            f"at peak {busy}/{total} backends of {trend.app.label} run short queries "
            f"(< {format_duration(SHORT_QUERY_SECONDS)}), no old transaction holds the pool"
        )
        reasons.extend(readings.visibility.app_counts_notes(trend.app.label))
    holders = pool.holders
    if holders and max(h.age_seconds for h in holders) < SHORT_HOLD_SECONDS:
        confidence = max(confidence, 0.45) + 0.05
        reasons.append(
            f"all {len(holders)} checkouts younger than {format_duration(SHORT_HOLD_SECONDS)}"
        )
    if throughput is not None and throughput.hold_seconds is not None:
        if throughput.hold_seconds >= SHORT_HOLD_SECONDS:
            return []
        confidence = max(confidence, 0.5)
        reasons.append(
            f"mean hold {format_duration(throughput.hold_seconds)} at "
            f"{throughput.per_second:.1f} checkouts/s"
        )
    times = readings.checkout_times
    if times is not None and times.mean_use_seconds is not None:
        if times.mean_use_seconds >= SHORT_HOLD_SECONDS:
            return []  # long use: connections are held, not scarce
        if times.mean_wait_seconds and times.mean_wait_seconds > times.mean_use_seconds:
            confidence = max(confidence, 0.5) + 0.1
            reasons.append(f"callers wait longer than they use a connection: {times.describe()}")
    if confidence == 0.0:
        return []
    if pool.recovers:
        confidence += 0.1
        reasons.append(
            f"the pool drains between peaks ({pool.full_samples}/{pool.samples} "
            "samples at capacity)"
        )
    if timeouts.current:
        confidence += 0.1
        reasons.append(timeouts.describe("QueuePool timeouts"))
    severity = Severity.CRITICAL if pool.full_now and timeouts.current else Severity.WARNING
    summary = "; ".join(([pool.describe()] if pool.has_data else []) + reasons)
    facts = {"pool": pool.as_evidence(), "pool_timeouts": timeouts.as_evidence()}
    if throughput is not None:
        facts["throughput"] = {
            "checkouts_per_second": round(throughput.per_second, 3),
            "mean_hold_seconds": throughput.hold_seconds,
            "measured_from": throughput.measured_from,
        }
    if trend is not None:
        facts["app"] = trend.app.as_evidence()
    return [
        finding(
            CHECK,
            readings.label,
            severity=severity,
            confidence=min(confidence, MAX_CONFIDENCE),
            title="Pool undersized: demand exceeds pool_size + max_overflow",
            summary=summary,
            evidence=facts,
            remediation=tuple(_sizing(evidence, pool, throughput, readings.budget)),
        )
    ]


SPEC = CheckSpec(
    CHECK,
    (CHECK,),
    "Pool full of short active queries that drains between samples; sizes it by Little's law "
    "within the server budget.",
    check,
)
