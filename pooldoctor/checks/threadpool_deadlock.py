"""threadpool-deadlock: every pool connection checked out by threads that wait, nothing runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pooldoctor.checks.common import app_label
from pooldoctor.checks.sessions import SessionTrend, session_trend
from pooldoctor.checks.signals import (
    POOL_TIMEOUT_EVENTS,
    LogSignal,
    PoolSignal,
    enough_app_backends,
    fmt_duration,
    group_holders,
    log_signal,
    measure_throughput,
    pool_signal,
)
from pooldoctor.evidence import Evidence
from pooldoctor.findings import Finding, Severity
from pooldoctor.readings.holds import hold_reading

CHECK = "threadpool-deadlock"
RUNBOOK = "threadpool-deadlock"
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
            reasons.append(f"they all went idle within {fmt_duration(spread)} of each other")
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
                f"all {len(ages)} checkouts are {fmt_duration(min(ages))}-"
                f"{fmt_duration(max(ages))} old"
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


def lockstep_signature(evidence: Evidence) -> DeadlockSignature | None:
    """Holders whose transactions end only when their own requests time out, in bursts."""
    holds = hold_reading(evidence)
    timing = holds.lockstep(evidence)
    if timing is None or not (holds.pool.full_now or holds.pool.full_always):
        return None
    confidence = LOCKSTEP_CONFIDENCE + (0.1 if len(timing.nested_frames) >= 2 else 0.0)
    return DeadlockSignature(confidence, (timing.describe(),), {"lockstep": timing.as_evidence()})


def check(evidence: Evidence) -> list[Finding]:
    pool = pool_signal(evidence)
    timeouts = log_signal(evidence, *POOL_TIMEOUT_EVENTS)
    trend = session_trend(evidence)
    signature = deadlock_signature(evidence, pool, timeouts, trend) or lockstep_signature(evidence)
    if signature is None:
        return []
    label = app_label(evidence)
    summary = f"{pool.describe()}; " + "; ".join(signature.reasons)
    if timeouts.seen:
        summary += f"; {timeouts.describe('pool timeouts')}"
    return [
        Finding(
            id=f"{CHECK}:{label}",
            check=CHECK,
            severity=Severity.CRITICAL,
            confidence=round(signature.confidence, 2),
            title="Thread-pool deadlock: threads hold every connection and wait for each other",
            summary=summary,
            runbook=RUNBOOK,
            evidence={
                "pool": pool.as_evidence(),
                "log": timeouts.as_evidence(),
                **signature.evidence,
            },
            remediation=(
                "Dump the app's thread stacks (py-spy dump --pid <worker pid>) to confirm threads "
                "block in pool checkout while holding a session",
                "Upgrade FastAPI to >= 0.82.0 (dependency cleanup no longer needs a free thread)",
                "Open and close the session inside the path function instead of a yield "
                "dependency, or make the pool at least as large as the thread pool (anyio: 40)",
                "Restart the workers to release the deadlock now",
            ),
        )
    ]
